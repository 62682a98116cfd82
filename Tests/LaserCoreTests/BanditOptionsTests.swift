import LaserWire
import StableRandom
import Testing
@testable import LaserCore

/// Warm start, seeded ties and the first-reward rule (issue 16), each against a reference written
/// here from its definition; prediction gain as a reward, through the core and across crashes.
@Suite struct BanditOptionsTests {
    /// The reference rule for a decision: warm start first, then LinUCB's bound from the closed form,
    /// ties to whichever comes first in the given order.
    func reference(_ bandit: ClosedFormLinUCB, x: [Double], batch: Int, warm: [Int]?, order: [Int]) -> Int {
        if let warm, batch < warm.count { return warm[batch] }
        let p = bandit.ucb(x)
        let top = p.max()!
        // Equal within the Float32 factor's rounding counts as a tie, as the closed form is exact.
        return order.first { abs(p[$0] - top) <= 1e-5 * max(1, abs(top)) }!
    }

    @Test func warmStartTriesEveryArmOnceInASeededOrderThenLinUCB() {
        var orders = Set<[Int]>()
        for seed in 0..<20 as Range<UInt64> {
            let s = Selector(
                kind: .linucb, armCount: 4, dimension: 3, seed: seed, options: BanditOptions(warmStart: .roundRobin))
            let first = (0..<4).map { s.select(context: [1, 0, 0], batch: $0) }
            #expect(
                first.compactMap { if case .arm(let k) = $0 { return k } else { return nil } }.sorted() == [
                    0, 1, 2, 3,
                ], "seed \(seed)")
            #expect(first == s.warmOrder.map { .arm($0) })
            orders.insert(s.warmOrder)
            // Batch 4 is LinUCB's own decision (a fresh bandit: every bound equal, arm 0 under `first` ties).
            #expect(s.select(context: [1, 0, 0], batch: 4) == .arm(0))
        }
        // The order is the seed's, not the config's: arm 0 does not always go first.
        #expect(orders.count > 5 && orders.contains { $0[0] != 0 })
        // Instance level: the first batch's prompts cycle through the same order.
        let p = Selector(
            kind: .linucb, armCount: 3, dimension: 2, seed: 9, options: BanditOptions(warmStart: .roundRobin),
            perPrompt: true)
        #expect(
            (0..<6).map { p.select(context: [1, 0], batch: 0, unit: $0) } == (0..<6).map { .arm(p.warmOrder[$0 % 3]) })
        #expect(p.select(context: [1, 0], batch: 1, unit: 0) == .arm(0))
    }

    @Test func seededTiesFollowAPermutationAndMatchTheReference() {
        let arms = 4, d = 5
        var rng = SplitMix64(seed: 5)
        func uniform() -> Double { Double(rng.next() >> 11) * 0x1.0p-53 }
        for warm in [false, true] {
            var s = Selector(
                kind: .linucb, armCount: arms, dimension: d, seed: 77, alpha: 0.5,
                options: BanditOptions(warmStart: warm ? .roundRobin : .none, ties: .seeded))
            var closed = ClosedFormLinUCB(arms: arms, d: d, alpha: 0.5, lambda: 1)
            var wins = Array(repeating: 0, count: arms)
            for t in 0..<60 {
                // Every other context is the same one-hot vector: before an arm is updated along it, the
                // untouched arms tie exactly.
                let x = t % 2 == 0 ? [1.0, 0, 0, 0, 0] : (0..<d).map { _ in uniform() - 0.5 }
                let order = BanditOptions.permutation(arms, seed: 77, tag: 0x71E5, UInt64(t), 0)
                let expected = reference(closed, x: x, batch: t, warm: warm ? s.warmOrder : nil, order: order)
                guard case .arm(let k) = s.select(context: x, batch: t) else { Issue.record("no arm"); return }
                #expect(k == expected, "t \(t) warm \(warm)")
                wins[k] += 1
                let r = uniform() < 0.3 + 0.1 * Double(k) ? 1.0 : 0.0
                s.update(arm: k, context: x, reward: r)
                closed.update(k, x, r)
            }
            #expect(wins.allSatisfy { $0 > 0 }, "\(wins)")
        }
        // A fresh bandit: every bound is equal. `first` always says arm 0; `seeded` spreads the ties.
        let fresh = Selector(
            kind: .linucb, armCount: arms, dimension: d, seed: 1, options: BanditOptions(ties: .seeded))
        let picks = (0..<400).map { fresh.select(context: [1, 0, 0, 0, 0], batch: $0) }
        for k in 0..<arms { #expect(picks.filter { $0 == .arm(k) }.count > 60, "arm \(k)") }
        let paper = Selector(kind: .linucb, armCount: arms, dimension: d, seed: 1)
        #expect((0..<50).allSatisfy { paper.select(context: [1, 0, 0, 0, 0], batch: $0) == .arm(0) })
    }

    @Test func permutationsArePermutationsAndSeeded() {
        for n in 1...7 {
            let p = BanditOptions.permutation(n, seed: 3, tag: 1, 2, 3)
            #expect(p.sorted() == Array(0..<n))
            #expect(p == BanditOptions.permutation(n, seed: 3, tag: 1, 2, 3))
        }
        #expect(Set((0..<50).map { BanditOptions.permutation(5, seed: $0, tag: 1, 0, 0) }).count > 20)
    }

    /// The first reward is passed raw by the normaliser (the paper's code) or counts as 0.5 (`neutral`):
    /// after one update, arm 0's estimate is r x / (1 + |x|^2) with that r.
    @Test(arguments: [(BanditOptions.FirstReward.paper, 0.9), (.neutral, 0.5)])
    func theFirstRewardRule(rule: BanditOptions.FirstReward, expected: Double) {
        var plan = Fixtures.plan()
        plan.bandit.firstReward = rule
        var core = Coordinator(plan: plan)
        var actions: [CoordinatorAction] = []
        var x = Array(repeating: 0.0, count: plan.contextDimension)
        x[0] = 0.6
        x[1] = 0.8
        core.apply(.reward(raw: 0.9, arm: 0, context: x, probability: 1), batch: 0, &actions)
        let theta = core.selector.linucb!.theta(arm: 0)
        #expect(
            abs(theta[0] - expected * 0.6 / 2) < 1e-6 && abs(theta[1] - expected * 0.8 / 2) < 1e-6, "\(theta[0...1])")
        // The second reward is normalised against both, as before: the lower one maps to 0.
        core.apply(.reward(raw: 0.1, arm: 1, context: x, probability: 1), batch: 1, &actions)
        #expect(abs(core.selector.linucb!.theta(arm: 1)[0]) < 1e-9)
    }

    // MARK: prediction gain

    func predictionGainPlan(depth: Int = 1) -> RunPlan {
        var p = Fixtures.plan(depth: depth)
        p.rewardSource = .predictionGain
        p.bandit = BanditOptions(warmStart: .roundRobin, ties: .seeded, firstReward: .neutral)
        return p
    }

    func run(
        _ plan: RunPlan, workers: [(String, UInt32, SimBehaviour)] = [("solo", 1, .good)], seed: UInt64 = 0,
        crashRate: UInt64 = 0, maxCrashes: Int = 0
    ) -> Simulation {
        var sim = Simulation(
            plan: plan, iterations: Fixtures.iterations(2, prompts: 40, seed: 11), workers: workers, seed: seed)
        sim.trainerPeer = PeerID([0xEE])
        sim.trainerWindow = 2
        sim.crashRate = crashRate
        sim.maxCrashes = maxCrashes
        sim.run()
        return sim
    }

    @Test func theRewardIsTheLossDecreaseOnTheBatch() throws {
        let sim = run(predictionGainPlan())
        let summary = try sim.requireSummary()
        let withPairs = sim.emitted.filter { !$0.pairs.isEmpty }
        #expect(summary.counters.lossesAccepted == withPairs.count && !withPairs.isEmpty)
        for b in withPairs {
            let entry = sim.core.batchLog[b.globalIndex]
            let loss = Simulation.standInLoss(Coordinator.message(for: b))
            let after = Simulation.lossAfter(Coordinator.message(for: b), loss)
            #expect(entry.loss == loss)
            #expect(abs(entry.rawReward! - (loss - after)) < 1e-12)
            #expect(sim.journal.contains(.feedback(batch: b.globalIndex, loss: loss, lossAfter: after)))
        }
    }

    @Test func aLossWithoutTheLossAfterIsRefusedWithWhatToSend() {
        var sim = Simulation(
            plan: predictionGainPlan(), iterations: Fixtures.iterations(1, prompts: 16, seed: 2),
            workers: [("w", 1, .good)], seed: 0)
        sim.feed(.start)
        sim.feed(
            .message(from: PeerID([0xCC]), .trainerHello(TrainerHello(trainerID: "t", window: 4, softwareVersion: ""))))
        let welcome = sim.sentToPeers.compactMap {
            if case .trainerWelcome(let w) = $0.1 { return w } else { return nil }
        }.first
        #expect(welcome?.wantsLoss == true && welcome?.wantsLossAfter == true)
        sim.feed(
            .message(
                from: sim.workers[0].peer, .hello(Hello(workerID: "w", rewardModels: [], slots: 1, softwareVersion: ""))
            ))
        var steps = 0
        while !sim.emitted.contains(where: { !$0.pairs.isEmpty }) && steps < 10_000 {
            steps += 1
            if let (peer, m) = sim.toWorkers.first { sim.toWorkers.removeFirst(); sim.deliver(m, to: peer) }
        }
        guard let first = sim.emitted.first(where: { !$0.pairs.isEmpty }) else {
            Issue.record("no batch with pairs"); return
        }
        func ack(_ f: BatchFeedback) -> FeedbackAck? {
            let before = sim.sentToPeers.count
            sim.feed(.message(from: PeerID([0xCC]), .batchFeedback(f)))
            return sim.sentToPeers[before...].compactMap {
                if case .feedbackAck(let a) = $0.1 { return a } else { return nil }
            }.first
        }
        let g = UInt64(first.globalIndex)
        #expect(
            ack(BatchFeedback(globalBatch: g, loss: 0.7))?.reason.contains(
                "report the batch's loss before the step (loss) and on the same pairs after it (loss_after") == true)
        #expect(
            ack(BatchFeedback(globalBatch: g, loss: 0.7, lossAfter: .infinity))?.reason.contains(
                "loss_after inf is not a finite number") == true)
        #expect(ack(BatchFeedback(globalBatch: g, loss: 0.7, lossAfter: 0.4))?.accepted == true)
        #expect(abs(sim.core.batchLog[first.globalIndex].rawReward! - 0.3) < 1e-12)
    }

    /// The determinism rule and the fault campaign for the new options and the new feedback field:
    /// any worker count, message order, pipeline depth or coordinator crash gives the same bytes and
    /// the same bandit state, and every loss pair is applied exactly once.
    @Test(arguments: [1, 2])
    func newOptionsAreDeterministicAndSurviveCrashes(depth: Int) throws {
        let plan = predictionGainPlan(depth: depth)
        let expected = run(plan)
        _ = try expected.requireSummary()
        var crashes = 0
        for seed in 0..<10 as Range<UInt64> {
            let sim = run(
                plan, workers: [("a", 2, .good), ("b", 1, .good)], seed: seed, crashRate: seed % 2 == 0 ? 0 : 15,
                maxCrashes: 4)
            _ = try sim.requireSummary()
            crashes += sim.crashes
            #expect(sim.output == expected.output, "seed \(seed)")
            #expect(sim.core.selector == expected.core.selector, "seed \(seed)")
            #expect(sim.conflicts == 0)
        }
        #expect(crashes > 0)
    }
}

/// `bandit.record_decisions: full`: selections.jsonl's record is enough to replay every decision with
/// a LinUCB written from the paper's formulas (closed form, Float64) and the normaliser.
@Suite struct DecisionRecordTests {
    @Test func aRunsDecisionsReplayFromTheirRecord() throws {
        var plan = Fixtures.plan()
        plan.bandit.record = .full
        var sim = Simulation(
            plan: plan, iterations: Fixtures.iterations(2, prompts: 40, seed: 11), workers: [("w", 2, .good)], seed: 1)
        sim.run()
        _ = try sim.requireSummary()
        var closed = ClosedFormLinUCB(
            arms: plan.rewardModels.count, d: plan.contextDimension, alpha: plan.alpha, lambda: plan.lambda)
        var normalizer = RewardNormalizer()
        #expect(!sim.core.batchLog.isEmpty)
        for b in sim.core.batchLog {
            let d = try #require(b.decisions?.first)
            let x = try #require(d.context)
            #expect(d.contextDigest == DecisionRecord.digest(x) && d.contextDigest.count == 16)
            let expected = closed.ucb(x)
            let bounds = try #require(d.bounds)
            for k in expected.indices {
                #expect(
                    abs(bounds[k] - expected[k]) <= 1e-5 * max(1, abs(expected[k])), "batch \(b.globalIndex) arm \(k)")
            }
            let top = expected.max()!
            let arm = expected.indices.first { abs(expected[$0] - top) <= 1e-5 * max(1, abs(top)) }!
            #expect(d.arm == arm, "batch \(b.globalIndex)")
            // The update the coordinator applied (label reward, depth 1): normalised raw reward, or the
            // penalty 0 for a batch without pairs.
            if b.pairs == 0 {
                closed.update(d.arm!, x, 0)
            } else if let raw = b.rawReward {
                closed.update(d.arm!, x, normalizer.normalize(raw))
            }
        }
        // Without the option nothing is recorded.
        var plain = Simulation(
            plan: Fixtures.plan(iterations: 1), iterations: Fixtures.iterations(1, prompts: 16, seed: 2),
            workers: [("w", 1, .good)], seed: 0)
        plain.run()
        #expect(plain.core.batchLog.allSatisfy { $0.decisions == nil })
    }
}

/// Linear Thompson sampling: the draw against its formula, the normal draws, learning, priors, and
/// the determinism matrix with crashes.
@Suite struct ThompsonSamplingTests {
    @Test func drawsFollowThePosteriorAndThePriorCombination() {
        let posterior = [(mean: 0.2, variance: 0.5), (mean: -0.1, variance: 2.0), (mean: 0.4, variance: 0.01)]
        let plain = ThompsonSettings(v: 0.7)
        let withPriors = ThompsonSettings(
            v: 0.7,
            priors: [
                ArmPrior(mean: 0.9, variance: 0.01), ArmPrior(mean: 0.1, variance: 1),
                ArmPrior(mean: 0.5, variance: 0.2),
            ])
        for batch in 0..<50 {
            let s = ThompsonSampling.samples(posterior, settings: plain, seed: 4, batch: batch, unit: 0)
            let p = ThompsonSampling.samples(posterior, settings: withPriors, seed: 4, batch: batch, unit: 0)
            for k in 0..<3 {
                let z = ThompsonSampling.standardNormal(seed: 4, batch: batch, unit: 0, arm: k)
                let v2 = 0.49 * posterior[k].variance
                #expect(abs(s[k] - (posterior[k].mean + v2.squareRoot() * z)) < 1e-12)
                // Precision-weighted: 1/var = 1/s^2 + 1/(v^2 x'A^-1x).
                let prior = withPriors.priors[k]
                let variance = 1 / (1 / prior.variance + 1 / v2)
                let mean = variance * (prior.mean / prior.variance + posterior[k].mean / v2)
                #expect(abs(p[k] - (mean + variance.squareRoot() * z)) < 1e-12)
            }
        }
    }

    @Test func normalDrawsAreStandardNormal() {
        let z = (0..<20_000).map { ThompsonSampling.standardNormal(seed: 1, batch: $0, unit: 0, arm: 0) }
        let mean = z.reduce(0, +) / Double(z.count)
        let variance = z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(z.count - 1)
        #expect(abs(mean) < 0.03 && abs(variance - 1) < 0.05, "\(mean) \(variance)")
        #expect(abs(Double(z.filter { abs($0) < 1.96 }.count) / Double(z.count) - 0.95) < 0.01)
    }

    func plan(priors: [ArmPrior] = []) -> RunPlan {
        var p = Fixtures.plan(strategy: .thompson, depth: 1)
        p.thompson = ThompsonSettings(v: 0.3, priors: priors)
        p.bandit = BanditOptions(warmStart: .roundRobin, ties: .seeded, firstReward: .neutral)
        return p
    }

    @Test func learnsTheOracleRMAndIsDeterministicAcrossCrashes() throws {
        let data = Fixtures.iterations(3, prompts: 48, seed: 5)
        var p = plan()
        p.iterations = 3
        var expected = Simulation(plan: p, iterations: data, workers: [("solo", 1, .good)], seed: 0)
        expected.run()
        let summary = try expected.requireSummary()
        let oracle = summary.arms.first { $0.name == "oracle" }!.batches
        #expect(oracle > summary.arms.map(\.batches).reduce(0, +) / 2, "\(summary.arms)")
        for seed in 0..<8 as Range<UInt64> {
            var sim = Simulation(plan: p, iterations: data, workers: [("a", 2, .good), ("b", 1, .good)], seed: seed)
            sim.crashRate = seed % 2 == 0 ? 0 : 12
            sim.maxCrashes = 4
            sim.run()
            _ = try sim.requireSummary()
            #expect(sim.output == expected.output, "seed \(seed)")
            #expect(sim.core.selector == expected.core.selector, "seed \(seed)")
        }
    }

    /// A confident prior for an arm makes the first decisions after the warm start its own.
    @Test func aPriorSteersTheStart() {
        let confident = [
            ArmPrior(mean: 0, variance: 0.0001), ArmPrior(mean: 0, variance: 0.0001),
            ArmPrior(mean: 1, variance: 0.0001),
        ]
        let s = Selector(
            kind: .thompson, armCount: 3, dimension: 4, seed: 2, thompson: ThompsonSettings(v: 0.5, priors: confident))
        #expect((0..<40).allSatisfy { s.select(context: [1, 0, 0, 0], batch: $0) == .arm(2) })
        let flat = Selector(kind: .thompson, armCount: 3, dimension: 4, seed: 2)
        let picks = Set(
            (0..<60).compactMap {
                if case .arm(let k) = flat.select(context: [1, 0, 0, 0], batch: $0) { return k } else { return nil }
            })
        #expect(picks.count == 3)
    }
}
