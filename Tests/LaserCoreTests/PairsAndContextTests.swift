import StableRandom
import Testing
@testable import LaserCore

@Suite struct PairPolicyTests {
    @Test func bestVsRestIsTheNestedWalkOverTheSortedList() {
        let p = PairPolicy(mode: .bestVsRest, maxPairs: 10)
        // sorted order: 2 (0.9), 0 (0.5), 3 (0.3), 1 (0.1)
        let pairs = p.pairs(scores: [0.5, 0.1, 0.9, 0.3]).map { [$0.chosen, $0.rejected] }
        #expect(pairs == [[2, 0], [2, 3], [2, 1], [0, 3], [0, 1], [3, 1]])
    }

    @Test func capsAtMaxPairsBestFirst() {
        let scores = (0..<30).map { Double($0) }
        let pairs = PairPolicy(mode: .bestVsRest, maxPairs: 10).pairs(scores: scores)
        #expect(pairs.count == 10)
        #expect(pairs.allSatisfy { $0.chosen == 29 })
        #expect(pairs.map(\.rejected) == Array((19...28).reversed()))
    }

    @Test func tiesAndMarginAreSkipped() {
        #expect(PairPolicy().pairs(scores: [1, 1, 1]).isEmpty)
        let pairs = PairPolicy(margin: 0.15).pairs(scores: [1.0, 0.9, 0.5]).map { [$0.chosen, $0.rejected] }
        #expect(pairs == [[0, 2], [1, 2]])
        #expect(PairPolicy().pairs(scores: [2]).isEmpty)
    }

    @Test func bestVsWorst() {
        let p = PairPolicy(mode: .bestVsWorst)
        #expect(p.pairs(scores: [0.2, 0.9, -1, 0.5]).map { [$0.chosen, $0.rejected] } == [[1, 2]])
        #expect(p.pairs(scores: [3, 3]).isEmpty)
        // Equal scores keep input order: the earlier candidate ranks first.
        #expect(p.pairs(scores: [1, 2, 2, 0]).map { [$0.chosen, $0.rejected] } == [[1, 3]])
    }

    @Test func ensembleAveragesZScores() {
        let combined = ScoreEnsemble.combine([[0, 1], [10, 30], [5, 5]])
        // z-scores: [-1, 1], [-1, 1], constant -> 0; mean over 3 RMs
        #expect(abs(combined[0] + 2.0 / 3) < 1e-12 && abs(combined[1] - 2.0 / 3) < 1e-12)
    }

    @Test func labelPairAccuracyCountsTiesHalf() {
        var a = LabelPairAccuracy()
        a.add(chosenCorrect: true, rejectedCorrect: false)
        a.add(chosenCorrect: false, rejectedCorrect: true)
        a.add(chosenCorrect: true, rejectedCorrect: true)
        a.add(chosenCorrect: nil, rejectedCorrect: true)
        #expect(a.labelledPairs == 3)
        #expect(a.value == 0.5)
        #expect(LabelPairAccuracy().value == nil)
    }
}

@Suite struct FeaturizerTests {
    @Test func unitLengthStableAndDiscriminative() {
        let f = HashingFeaturizer(dimension: 64)
        let a = f.features("What is the capital of France?")
        #expect(a.count == 64)
        #expect(abs(a.reduce(0) { $0 + $1 * $1 } - 1) < 1e-12)
        #expect(a == HashingFeaturizer(dimension: 64).features("what is the CAPITAL of france"))
        let b = f.features("Write exactly 8 words in lowercase")
        #expect(dot(a, b) < 0.9)
        #expect(f.features("").first == 1)
    }

    /// The ASCII fast path hashes exactly the n-grams of the general (Unicode) path.
    @Test func asciiFastPathMatchesTheGeneralPath() {
        let f = HashingFeaturizer(dimension: 32, ngrams: 3)
        for text in ["What is 12 + 30? Show   your work.", "  a", "ab-cd_EF 99x\ty\n", "", "!!!", "x"] {
            var hashed = [Double](repeating: 0, count: 31)
            let tokens = HashingFeaturizer.tokens(text)
            for n in 1...3 where tokens.count >= n {
                for s in 0...(tokens.count - n) {
                    let h = FNV1a.hash(tokens[s..<(s + n)].joined(separator: " "))
                    hashed[Int(h % 31)] += (h >> 63) == 0 ? 1 : -1
                }
            }
            let words = HashingFeaturizer.normalized(hashed)
            let half = 0.5.squareRoot()
            let expected = [words.contains { $0 != 0 } ? half : 1] + words.map { $0 * half }
            #expect(f.features(text) == expected, "\(text)")
        }
        // Non-ASCII text takes the general path and still tells words apart.
        #expect(f.features("Größe été") != f.features("grosse ete"))
    }

    @Test func batchContextIsTheMean() {
        #expect(HashingFeaturizer.mean([[1, 0], [0, 1]]) == [0.5, 0.5])
    }
}
