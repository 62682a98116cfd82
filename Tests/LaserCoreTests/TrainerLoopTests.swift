import LaserWire
import Testing
@testable import LaserCore

/// The trainer loop: losses as the bandit's reward, delivered in order, applied once, replayed.
@Suite struct TrainerLoopTests {
    let data = Fixtures.iterations(2, prompts: 40, seed: 11)

    func plan(strategy: StrategyKind = .linucb, depth: Int = 1) -> RunPlan {
        var p = Fixtures.plan(strategy: strategy, depth: depth)
        p.rewardSource = .trainerLoss
        return p
    }

    func run(
        _ plan: RunPlan, workers: [(String, UInt32, SimBehaviour)] = [("solo", 1, .good)], window: UInt32 = 1,
        seed: UInt64 = 0, crashRate: UInt64 = 0, maxCrashes: Int = 0
    ) -> Simulation {
        var sim = Simulation(plan: plan, iterations: data, workers: workers, seed: seed)
        sim.trainerPeer = PeerID([0xEE])
        sim.trainerWindow = window
        sim.crashRate = crashRate
        sim.maxCrashes = maxCrashes
        sim.run()
        return sim
    }

    @Test func everyBatchWithPairsGetsExactlyOneLoss() throws {
        let sim = run(plan())
        let summary = try sim.requireSummary()
        let withPairs = sim.emitted.filter { !$0.pairs.isEmpty }.map(\.globalIndex)
        #expect(summary.counters.lossesAccepted == withPairs.count)
        #expect(Set(sim.lossesSent.keys) == Set(withPairs))
        #expect(sim.core.batchLog.filter { $0.pairs > 0 }.allSatisfy { $0.loss != nil && $0.rawReward == -$0.loss! })
        // The bandit learned from the losses: its arms' updates add up to the batches.
        #expect(sim.core.selector.linucb!.updates.reduce(0, +) == sim.emitted.count)
    }

    @Test(arguments: [1, 2, 3])
    func decisionsDoNotDependOnTiming(depth: Int) throws {
        let expected = run(plan(depth: depth))
        _ = try expected.requireSummary()
        for seed in 0..<6 as Range<UInt64> {
            let sim = run(
                plan(depth: depth), workers: [("a", 2, .good), ("b", 1, .good)], window: UInt32(1 + seed % 3),
                seed: seed)
            _ = try sim.requireSummary()
            #expect(sim.output == expected.output, "seed \(seed)")
            #expect(sim.core.selector == expected.core.selector)
        }
    }

    @Test func crashesKeepLossesAndNeverRewardTwice() throws {
        let expected = run(plan(depth: 2))
        for seed in 0..<10 as Range<UInt64> {
            let sim = run(
                plan(depth: 2), workers: [("a", 2, .good)], window: 2, seed: seed, crashRate: 15, maxCrashes: 4)
            _ = try sim.requireSummary()
            #expect(sim.output == expected.output, "seed \(seed)")
            #expect(sim.core.selector == expected.core.selector, "seed \(seed)")
            #expect(sim.conflicts == 0)
            #expect(sim.blankTextsSent == 0, "seed \(seed): a trainer got a batch whose texts a resume left out")
        }
    }

    @Test func badLossesAreRefusedAndCounted() {
        var sim = Simulation(plan: plan(), iterations: data, workers: [("w", 1, .good)], seed: 0)
        sim.feed(.start)
        func ack(_ f: BatchFeedback, from peer: PeerID = PeerID([0xCC])) -> FeedbackAck? {
            let before = sim.sentToPeers.count
            sim.feed(.message(from: peer, .batchFeedback(f)))
            return sim.sentToPeers[before...].compactMap {
                if case .feedbackAck(let a) = $0.1 { return a } else { return nil }
            }.first
        }
        // Only the registered trainer reports losses (issue 19 item 4).
        #expect(
            ack(BatchFeedback(globalBatch: 0, loss: 0.5))?.reason.contains("only the registered trainer reports losses")
                == true)
        sim.feed(
            .message(
                from: PeerID([0xCC]), .trainerHello(TrainerHello(trainerID: "t", window: 100, softwareVersion: ""))))
        #expect(ack(BatchFeedback(globalBatch: 99, loss: 0.5))?.reason.contains("has not been emitted") == true)
        #expect(
            ack(BatchFeedback(globalBatch: 0, loss: 0.5, iteration: 9, batch: 9))?.reason.contains(
                "9/9 has not been emitted") == true)
        // A worker joins; deliver until a batch with pairs is out, then report NaN, a loss, the same again.
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
            Issue.record("no batch with pairs was emitted")
            return
        }
        let g = UInt64(first.globalIndex)
        #expect(ack(BatchFeedback(globalBatch: g, loss: .nan))?.reason.contains("not a finite number") == true)
        // A loss beyond reward.max_abs_loss (issue 19 item 3), and one from a peer that is not the trainer.
        #expect(ack(BatchFeedback(globalBatch: g, loss: -1e308))?.reason.contains("reward.max_abs_loss") == true)
        #expect(
            ack(BatchFeedback(globalBatch: g, loss: 0.7), from: PeerID([0xDD]))?.reason.contains(
                "only the registered trainer") == true)
        #expect(ack(BatchFeedback(globalBatch: g, loss: 0.7))?.accepted == true)
        #expect(ack(BatchFeedback(globalBatch: g, loss: 0.7))?.reason.contains("already has a loss") == true)
        #expect(sim.core.currentSummary.counters.lossesRejected == 7)
        #expect(sim.journal.contains(.feedback(batch: Int(g), loss: 0.7)))
    }

    @Test func aLabelRunRefusesLosses() {
        var sim = Simulation(plan: Fixtures.plan(), iterations: data, workers: [("w", 1, .good)], seed: 0)
        sim.feed(.start)
        sim.feed(
            .message(from: PeerID([0xCC]), .trainerHello(TrainerHello(trainerID: "t", window: 1, softwareVersion: ""))))
        sim.feed(.message(from: PeerID([0xCC]), .batchFeedback(BatchFeedback(globalBatch: 0, loss: 0.5))))
        let ack = sim.sentToPeers.compactMap { if case .feedbackAck(let a) = $0.1 { return a } else { return nil } }
            .first
        #expect(ack?.accepted == false)
        #expect(ack?.reason.contains("label-pair-accuracy") == true)
    }

    @Test func theRunWaitsForTheTrainer() {
        // No trainer: everything is scored and emitted, but the run cannot finish without losses.
        var sim = Simulation(plan: plan(), iterations: data, workers: [("w", 2, .good)], seed: 0)
        sim.run(maxSteps: 5000)
        #expect(sim.finished == nil && sim.failure == nil)
        #expect(sim.emitted.count >= 1)
    }
}
