import Foundation
import StableRandom
import Testing
@testable import LaserCore

/// Explicit-inverse Float64 LinUCB, the closed form the Float32 Cholesky version must match.
struct ClosedFormLinUCB {
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

/// Bounds agree with the Float64 closed form to this much of max(1, |p|). LinUCB keeps Float32
/// factors (unit roundoff 6e-8); the error grows with d and the number of updates: measured at most
/// 2e-6 at d = 8 and 1e-5 at d = 100 after 3,000 updates, so 1e-4 leaves a 10-50x margin while still
/// catching any real mistake (a wrong sign or index is off by O(1)).
private let ucbTolerance = 1e-4

@Suite struct LinUCBTests {
    @Test func matchesClosedFormOnRandomData() {
        var rng = SplitMix64(seed: 42)
        let arms = 4, d = 8
        var fast = LinUCB(armCount: arms, dimension: d, alpha: 0.1, lambda: 1)
        var slow = ClosedFormLinUCB(arms: arms, d: d, alpha: 0.1, lambda: 1)
        var comparedChoices = 0
        for step in 0..<300 {
            let x = (0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 }
            let pFast = fast.upperConfidenceBounds(x)
            let pSlow = slow.ucb(x)
            for k in 0..<arms {
                #expect(abs(pFast[k] - pSlow[k]) <= ucbTolerance * max(1, abs(pSlow[k])), "step \(step) arm \(k)")
            }
            let chosen = fast.select(x)
            let slowChoice = pSlow.indices.max { pSlow[$0] < pSlow[$1] || (pSlow[$0] == pSlow[$1] && $0 > $1) }!
            // Identical choices wherever the closed form's margin exceeds what the tolerance allows
            // (and on exact ties, which the first steps have: every arm is still at its prior).
            let runnerUp = pSlow.indices.filter { $0 != slowChoice }.map { pSlow[$0] }.max()!
            let margin = pSlow[slowChoice] - runnerUp
            if margin == 0 || margin > 2 * ucbTolerance * max(1, abs(pSlow[slowChoice])) {
                #expect(chosen == slowChoice, "step \(step)")
                comparedChoices += 1
            }
            let r = Double(rng.next() % 1000) / 1000
            fast.update(arm: chosen, context: x, reward: r)
            slow.update(chosen, x, r)
        }
        #expect(comparedChoices > 290)
        for k in 0..<arms {
            // The factor is a factor of A, and theta = A^-1 b.
            let l = fast.choleskyFactor(arm: k)
            let scale = slow.a[k].joined().map(abs).max()!
            for i in 0..<d {
                for j in 0..<d {
                    let llt = (0..<d).reduce(0.0) { $0 + l[i * d + $1] * l[j * d + $1] }
                    #expect(abs(llt - slow.a[k][i][j]) <= 1e-6 * scale)
                }
            }
            let theta = mul(invert(slow.a[k]), slow.b[k])
            let fastTheta = fast.theta(arm: k)
            for i in 0..<d { #expect(abs(fastTheta[i] - theta[i]) <= ucbTolerance * max(1, abs(theta[i]))) }
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

    /// The Float32 factor does not drift away from A over many updates: its backward error
    /// max|L L^T - A| / max|A| (A summed in Float64) stays at the Float32 roundoff level instead of
    /// growing with the number of updates (Sherman-Morrison in Float32 does grow; laser-bench drift).
    @Test func factorDoesNotDriftOverManyUpdates() {
        let d = 12
        var bandit = LinUCB(armCount: 1, dimension: d, alpha: 0.1, lambda: 1)
        var a = (0..<d).map { i in (0..<d).map { j in i == j ? 1.0 : 0 } }
        var rng = SplitMix64(seed: 5)
        var errors: [Double] = []
        for u in 1...20_000 {
            let x = HashingFeaturizer.normalized((0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 })
            bandit.update(arm: 0, context: x, reward: 0.5)
            for i in 0..<d { for j in 0..<d { a[i][j] += x[i] * x[j] } }
            if u == 200 || u == 2_000 || u == 20_000 {
                let l = bandit.choleskyFactor(arm: 0)
                var worst = 0.0
                for i in 0..<d {
                    for j in 0...i {
                        let llt = (0...j).reduce(0.0) { $0 + l[i * d + $1] * l[j * d + $1] }
                        worst = max(worst, abs(llt - a[i][j]))
                    }
                }
                errors.append(worst / a.joined().map(abs).max()!)
            }
        }
        #expect(errors.allSatisfy { $0 < 5e-7 }, "\(errors)")
        #expect(errors[2] < 10 * errors[0] + 1e-7, "\(errors)")
    }

    /// Value semantics: a copy is a snapshot. Covers the deferred update, which a select on one copy
    /// applies to storage the copies share, and an update on a shared copy, which must copy first.
    @Test func copiesAreIndependent() {
        let d = 6
        var rng = SplitMix64(seed: 3)
        let steps = (0..<40).map { _ in
            (
                (0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 }, Int(rng.next() % 3),
                Double(rng.next() % 1000) / 1000
            )
        }
        let probe = (0..<d).map { Double($0) / 10 - 0.2 }
        func replay(_ n: Int) -> LinUCB {
            var b = LinUCB(armCount: 3, dimension: d, alpha: 0.3, lambda: 1)
            for (x, k, r) in steps[..<n] { b.update(arm: k, context: x, reward: r) }
            return b
        }
        var live = replay(20)  // ends with a deferred update
        let snapshot = live
        let other = live
        #expect(snapshot == live)
        _ = other.select(probe)  // applies the deferred update in the shared storage
        #expect(snapshot == replay(20) && other == replay(20))
        for (x, k, r) in steps[20...] { live.update(arm: k, context: x, reward: r) }
        #expect(snapshot.upperConfidenceBounds(probe) == replay(20).upperConfidenceBounds(probe))
        #expect(snapshot.updates == replay(20).updates)
        #expect(live == replay(40) && live != snapshot)
        #expect(live.upperConfidenceBounds(probe) == replay(40).upperConfidenceBounds(probe))
        var fork = snapshot
        fork.update(arm: 0, context: probe, reward: 1)
        #expect(snapshot == replay(20) && fork != snapshot)
    }

    /// Same update sequence, same bits: the result does not depend on the thread count or on when a
    /// deferred update is applied (fused into a select's pass, or on its own by the next update).
    @Test func deterministicWhateverTheThreadsAndTiming() {
        let d = 520  // 4 arms of d(d+1)/2 floats exceed parallelThreshold: selects use 2 threads
        #expect(4 * d * (d + 1) / 2 * 4 > LinUCB.parallelThreshold)
        var rng = SplitMix64(seed: 11)
        var threaded = LinUCB(armCount: 4, dimension: d, alpha: 0.2, lambda: 1)
        var single = threaded
        single.maxThreads = 1
        var noSelects = threaded
        for _ in 0..<6 {
            let x = HashingFeaturizer.normalized((0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 })
            let p2 = threaded.upperConfidenceBounds(x), p1 = single.upperConfidenceBounds(x)
            #expect(p1 == p2)
            let k = threaded.select(x)
            #expect(k == single.select(x))
            threaded.update(arm: k, context: x, reward: 0.25 * Double(k))
            single.update(arm: k, context: x, reward: 0.25 * Double(k))
            noSelects.update(arm: k, context: x, reward: 0.25 * Double(k))
        }
        #expect(threaded == single && threaded == noSelects)
        for k in 0..<4 { #expect(threaded.choleskyFactor(arm: k) == noSelects.choleskyFactor(arm: k)) }
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
        #expect(
            Selector(kind: .fixed, armCount: 3, dimension: 1, seed: 0, fixedArm: 2).select(context: [1], batch: 5)
                == .arm(2))
        #expect(
            Selector(kind: .ensemble, armCount: 3, dimension: 1, seed: 0).select(context: [1], batch: 0) == .ensemble)
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
