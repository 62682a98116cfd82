import Foundation
import StableRandom
import Testing
@testable import LaserCore

/// Explicit-inverse LinUCB, the closed form the Sherman-Morrison version must match.
private struct ClosedFormLinUCB {
    var a: [[[Double]]]
    var b: [[Double]]
    let alpha: Double

    init(arms: Int, d: Int, alpha: Double, lambda: Double) {
        a = Array(repeating: (0..<d).map { i in (0..<d).map { j in i == j ? lambda : 0 } }, count: arms)
        b = Array(repeating: Array(repeating: 0, count: d), count: arms)
        self.alpha = alpha
    }

    func ucb(_ x: [Double]) -> [Double] {
        a.indices.map { k in
            let inv = invert(a[k])
            let theta = mul(inv, b[k])
            let v = mul(inv, x)
            return dot(theta, x) + alpha * dot(x, v).squareRoot()
        }
    }

    mutating func update(_ k: Int, _ x: [Double], _ r: Double) {
        for i in x.indices {
            for j in x.indices { a[k][i][j] += x[i] * x[j] }
            b[k][i] += r * x[i]
        }
    }
}

func invert(_ m: [[Double]]) -> [[Double]] {
    let n = m.count
    var aug = m.enumerated().map { i, row in row + (0..<n).map { $0 == i ? 1.0 : 0.0 } }
    for c in 0..<n {
        let p = (c..<n).max { abs(aug[$0][c]) < abs(aug[$1][c]) }!
        aug.swapAt(c, p)
        let pivot = aug[c][c]
        aug[c] = aug[c].map { $0 / pivot }
        for r in 0..<n where r != c {
            let f = aug[r][c]
            if f != 0 { aug[r] = zip(aug[r], aug[c]).map { $0 - f * $1 } }
        }
    }
    return aug.map { Array($0[n...]) }
}

func mul(_ m: [[Double]], _ x: [Double]) -> [Double] { m.map { dot($0, x) } }
func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

@Suite struct LinUCBTests {
    @Test func matchesClosedFormOnRandomData() {
        var rng = SplitMix64(seed: 42)
        let arms = 4, d = 8
        var fast = LinUCB(armCount: arms, dimension: d, alpha: 0.1, lambda: 1)
        var slow = ClosedFormLinUCB(arms: arms, d: d, alpha: 0.1, lambda: 1)
        for step in 0..<300 {
            let x = (0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 }
            let pFast = fast.upperConfidenceBounds(x)
            let pSlow = slow.ucb(x)
            for k in 0..<arms { #expect(abs(pFast[k] - pSlow[k]) < 1e-9, "step \(step) arm \(k)") }
            let chosen = fast.select(x)
            let slowChoice = pSlow.indices.max { pSlow[$0] < pSlow[$1] || (pSlow[$0] == pSlow[$1] && $0 > $1) }!
            #expect(chosen == slowChoice, "step \(step)")
            let r = Double(rng.next() % 1000) / 1000
            fast.update(arm: chosen, context: x, reward: r)
            slow.update(chosen, x, r)
        }
        for k in 0..<arms {
            let inv = invert(slow.a[k])
            for i in 0..<d {
                for j in 0..<d { #expect(abs(fast.aInverse[k][i * d + j] - inv[i][j]) < 1e-9) }
            }
        }
    }

    @Test func firstSelectionIsArmZeroAndTiesGoLow() {
        let bandit = LinUCB(armCount: 3, dimension: 4, alpha: 0.1, lambda: 1)
        #expect(bandit.select([0.5, 0.5, 0.5, 0.5]) == 0)
        #expect(bandit.select([0, 0, 0, 0]) == 0)
    }

    @Test func learnsWhichArmPaysForWhichContext() {
        var bandit = LinUCB(armCount: 2, dimension: 2, alpha: 0.5, lambda: 1)
        let a: [Double] = [1, 0], b: [Double] = [0, 1]
        for _ in 0..<50 {
            for (x, good) in [(a, 0), (b, 1)] {
                let k = bandit.select(x)
                bandit.update(arm: k, context: x, reward: k == good ? 1 : 0)
            }
        }
        #expect(bandit.select(a) == 0)
        #expect(bandit.select(b) == 1)
    }
}

@Suite struct RewardNormalizerTests {
    @Test func fewerThanTwoEntriesPassThrough() {
        var n = RewardNormalizer()
        #expect(n.normalize(-3.5) == -3.5)
    }

    @Test func percentilesInterpolateLikeNumpy() {
        // numpy.percentile([1,2,3,4,5], 20) == 1.8, 80 -> 4.2
        #expect(abs(RewardNormalizer.percentile([1, 2, 3, 4, 5], 0.2) - 1.8) < 1e-12)
        #expect(abs(RewardNormalizer.percentile([1, 2, 3, 4, 5], 0.8) - 4.2) < 1e-12)
        var n = RewardNormalizer()
        for r in [1.0, 2, 4, 5] { _ = n.normalize(r) }
        // history becomes [1,2,3,4,5]: (3 - 1.8) / (4.2 - 1.8) = 0.5
        #expect(abs(n.normalize(3) - 0.5) < 1e-12)
        #expect(n.normalize(-10) == 0)
        #expect(n.normalize(100) == 1)
    }

    @Test func flatHistoryDoesNotDivideByZero() {
        var n = RewardNormalizer()
        _ = n.normalize(0.7)
        let r = n.normalize(0.7)
        #expect(r == 0.5)
        #expect(r.isFinite)
    }
}

@Suite struct SelectorTests {
    @Test func sequentialIsRoundRobinOverTheRun() {
        let s = Selector(kind: .sequential, armCount: 3, dimension: 2, seed: 0)
        #expect((0..<7).map { s.select(context: [0, 0], batch: $0) } == [0, 1, 2, 0, 1, 2, 0].map(Selection.arm))
    }

    @Test func randomIsSeededAndStateless() {
        let s1 = Selector(kind: .random, armCount: 4, dimension: 2, seed: 7)
        let s2 = Selector(kind: .random, armCount: 4, dimension: 2, seed: 7)
        let s3 = Selector(kind: .random, armCount: 4, dimension: 2, seed: 8)
        let a = (0..<64).map { s1.select(context: [0, 0], batch: $0) }
        #expect(a == (0..<64).map { s2.select(context: [0, 0], batch: $0) })
        #expect(a != (0..<64).map { s3.select(context: [0, 0], batch: $0) })
        #expect(Set(a.map { if case .arm(let k) = $0 { return k } else { return -1 } }) == [0, 1, 2, 3])
    }

    @Test func fixedAndEnsemble() {
        #expect(Selector(kind: .fixed, armCount: 3, dimension: 1, seed: 0, fixedArm: 2).select(context: [1], batch: 5) == .arm(2))
        #expect(Selector(kind: .ensemble, armCount: 3, dimension: 1, seed: 0).select(context: [1], batch: 0) == .ensemble)
    }
}

@Suite struct Exp3Tests {
    @Test func probabilitiesFollowTheFormula() {
        var e = Exp3(armCount: 4, gamma: 0.2)
        #expect(e.probabilities.allSatisfy { abs($0 - 0.25) < 1e-12 })
        e.update(arm: 2, reward: 1, probability: 0.25)
        // w_2 = exp(0.2 * (1 / 0.25) / 4) = e^0.2, others 1.
        let w = [1, 1, exp(0.2), 1]
        let expected = w.map { 0.8 * $0 / w.reduce(0, +) + 0.05 }
        for k in 0..<4 { #expect(abs(e.probabilities[k] - expected[k]) < 1e-12) }
        #expect(abs(e.probabilities.reduce(0, +) - 1) < 1e-12)
    }

    @Test func drawsFollowTheCumulativeDistribution() {
        let e = Exp3(armCount: 4, gamma: 0.1)
        #expect(e.draw(0).arm == 0 && e.draw(0.3).arm == 1 && e.draw(0.74).arm == 2 && e.draw(0.9999).arm == 3)
    }

    @Test func learnsTheBestArmAndSurvivesHugeWeights() {
        var e = Exp3(armCount: 3, gamma: 0.1)
        var rng = SplitMix64(seed: 1)
        for _ in 0..<20_000 {
            let (arm, p) = e.draw(Double(rng.next() >> 11) * 0x1.0p-53)
            e.update(arm: arm, reward: arm == 1 ? 1 : 0.2, probability: p)
        }
        #expect(e.probabilities[1] > 0.9)
        #expect(e.probabilities.allSatisfy { $0.isFinite })
    }
}

@Suite struct AgreementFilterTests {
    @Test func countsOnlyRMsWithAnOpinion() {
        let perRM: [[Double]] = [[1, 0], [0.9, 0.1], [5, 5], [0, 1]]
        #expect(AgreementFilter.agreement(perRM, chosen: 0, rejected: 1) == 2.0 / 3)
        #expect(AgreementFilter.agreement([[1, 1], [2, 2]], chosen: 0, rejected: 1) == nil)
    }

    @Test func vetoedPairsDoNotCountTowardsMaxPairs() {
        let pairs = PairPolicy(maxPairs: 2).pairs(scores: [3, 2, 1, 0]) { c, r in !(c == 0 && r == 1) }
        #expect(pairs.map { [$0.chosen, $0.rejected] } == [[0, 2], [0, 3]])
    }
}
