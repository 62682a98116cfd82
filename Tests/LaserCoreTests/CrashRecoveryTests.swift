import LaserWire
import StableRandom
import Testing
@testable import LaserCore

/// Coordinator crashes at random points, followed by a replay of what the journal kept.
@Suite struct CrashRecoveryTests {
    let data = Fixtures.iterations(2, prompts: 40, seed: 11)

    func reference(_ plan: RunPlan, data: [[PromptRecord]]) -> Simulation {
        var sim = Simulation(plan: plan, iterations: data, workers: [("solo", 1, .good)], seed: 0)
        Self.attachTrainerIfNeeded(&sim)
        sim.run()
        return sim
    }

    /// A simulated trainer (window 2) when the plan's reward comes from one.
    static func attachTrainerIfNeeded(_ sim: inout Simulation) {
        guard sim.plan.rewardSource.fromTrainer else { return }
        sim.trainerPeer = PeerID([0xEE])
        sim.trainerWindow = 2
    }

    @Test(arguments: [StrategyKind.linucb, .random, .ensemble], [1, 2])
    func crashesDoNotChangeTheOutput(strategy: StrategyKind, depth: Int) throws {
        let plan = Fixtures.plan(strategy: strategy, depth: depth)
        let expected = reference(plan, data: data)
        var crashed = 0
        for seed in 0..<12 as Range<UInt64> {
            var sim = Simulation(
                plan: plan, iterations: data, workers: [("w1", 2, .good), ("w2", 1, .good)], seed: seed)
            sim.crashRate = 12
            sim.maxCrashes = 6
            sim.run()
            crashed += sim.crashes
            _ = try sim.requireSummary()
            #expect(sim.conflicts == 0, "seed \(seed)")
            #expect(sim.output == expected.output, "seed \(seed): \(sim.crashes) crashes")
            #expect(sim.core.selector == expected.core.selector, "seed \(seed): bandit state differs")
        }
        #expect(crashed > 12)
    }

    @Test func aCompleteJournalReplaysWithoutWorkersAndEmitsNothingAgain() throws {
        let plan = Fixtures.plan()
        let first = reference(plan, data: data)
        var replay = Simulation(plan: plan, iterations: data, workers: [], seed: 0)
        replay.core = Coordinator(plan: plan, journal: first.journal)
        replay.run()
        let summary = try replay.requireSummary()
        #expect(replay.emitted.isEmpty)
        #expect(summary.counters.tasksDispatched == 0)
        #expect(replay.core.selector == first.core.selector)
        #expect(replay.core.batchLog == first.core.batchLog)
    }

    @Test func aChangedInputIsRefused() {
        let plan = Fixtures.plan()
        let first = reference(plan, data: data)
        var core = Coordinator(plan: plan, journal: first.journal)
        _ = core.handle(.start, now: Instant(nanoseconds: 0))
        let actions = core.handle(
            .iterationOpened(iteration: 1, prompts: data[0].count, digest: "something else"), input: data,
            now: Instant(nanoseconds: 1))
        let failure = actions.compactMap { if case .fail(let f) = $0 { return f.message } else { return nil } }.first
        #expect(failure?.contains("the input of iteration 1 changed since the run started") == true)
    }

    @Test func taskIDsOfAResumedCoordinatorCannotCollideWithEarlierOnes() {
        var sim = Simulation(plan: Fixtures.plan(), iterations: data, workers: [("w", 1, .good)], seed: 3)
        sim.crashRate = 5
        sim.maxCrashes = 1
        sim.run()
        #expect(sim.crashes == 1)
        let ids = sim.sentToPeers.compactMap {
            if case .scoreTask(let t) = $0.1 { return t.taskID } else { return nil }
        }
        #expect(ids.contains { $0 >> 32 == 1 })
        #expect(sim.journal.contains(.started(epoch: 1)))
    }

    /// The seeded fault campaign: many runs, each with its own mix of misbehaving workers and
    /// coordinator crashes, each checked against the fault-free output. A failing seed is printed and
    /// replays exactly (`Simulation` is deterministic in its seed).
    @Test func seededFaultCampaign() throws {
        let small = Fixtures.iterations(2, prompts: 24, seed: 21)
        let behaviours: [SimBehaviour] = [
            .good, .duplicates, .nanFirst(1), .wrongCount, .blackHole, .diesAfter(3), .failing,
        ]
        let runs = 1500
        var faults = 0, crashes = 0, rejected = 0
        var references: [String: Simulation] = [:]
        for seed in 0..<UInt64(runs) {
            var rng = SplitMix64(seed: 0xFA17 ^ seed)
            let strategy = StrategyKind.allCases[Int(rng.next() % UInt64(StrategyKind.allCases.count))]
            let depth = 1 + Int(rng.next() % 3)
            var plan = Fixtures.plan(strategy: strategy, depth: depth, maxAttempts: 1000, leaseMs: 300)
            // The reward's source too: the labels, or a simulated trainer's feedback (loss, loss before
            // and after, probe losses), which must count exactly once across crashes.
            let sources: [RewardSource] = [.labelPairAccuracy, .trainerLoss, .predictionGain, .probeProgress]
            let source =
                strategy == .linucb || strategy == .thompson
                ? sources[Int(rng.next() % UInt64(sources.count))] : .labelPairAccuracy
            if source != .labelPairAccuracy {
                plan.rewardSource = source
                plan.probeSize = 8
                plan.bandit = BanditOptions(warmStart: .roundRobin, ties: .seeded, firstReward: .neutral)
                // Every probe rule (from the seed, so the other draws stay as they were).
                plan.probeConsensus = ProbeConsensus.allCases[Int(seed % UInt64(ProbeConsensus.allCases.count))]
            }
            let key = "\(strategy)-\(depth)-\(source.rawValue)-\(plan.probeConsensus.rawValue)"
            if references[key] == nil { references[key] = reference(plan, data: small) }
            // Always one good worker, so the run can finish; up to three others of any kind.
            var pool: [(String, UInt32, SimBehaviour)] = [("good", UInt32(1 + rng.next() % 3), .good)]
            for i in 0..<Int(rng.next() % 4) {
                let b = behaviours[Int(rng.next() % UInt64(behaviours.count))]
                if b != .good { faults += 1 }
                pool.append(("w\(i)", UInt32(1 + rng.next() % 3), b))
            }
            var sim = Simulation(plan: plan, iterations: small, workers: pool, seed: seed)
            Self.attachTrainerIfNeeded(&sim)
            sim.crashRate = 8 + rng.next() % 60
            sim.maxCrashes = Int(rng.next() % 5)
            sim.run()
            crashes += sim.crashes
            guard let summary = sim.finished, sim.conflicts == 0, sim.blankTextsSent == 0,
                sim.output == references[key]!.output,
                sim.core.selector == references[key]!.core.selector, sim.probeSeen == references[key]!.probeSeen
            else {
                Issue.record(
                    "seed \(seed) (\(key), workers \(pool.map { "\($0.2)" })): failure \(sim.failure ?? "none"), conflicts \(sim.conflicts), blank texts sent \(sim.blankTextsSent), output equal \(sim.output == references[key]!.output)"
                )
                return
            }
            rejected += summary.counters.invalidResults + summary.counters.duplicateResults
        }
        print(
            "fault campaign: \(runs) seeded runs (\(references.count) strategy/depth/reward combinations), \(faults) faulty workers, \(crashes) coordinator crashes, \(rejected) invalid or duplicate results dropped, 0 lost, 0 emitted twice with different content"
        )
        #expect(crashes > runs / 2)
    }
}
