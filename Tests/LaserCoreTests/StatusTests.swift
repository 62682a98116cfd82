import LaserWire
import Testing
@testable import LaserCore

/// `Coordinator.status(now:)`: what live displays and metrics see.
@Suite struct StatusTests {
    let data = Fixtures.iterations(1, prompts: 16, seed: 4)

    func started(_ plan: RunPlan) -> (Coordinator, [CoordinatorAction]) {
        var core = Coordinator(plan: plan)
        let t = Instant(nanoseconds: 1_000_000_000)
        _ = core.handle(.start, now: t)
        _ = core.handle(.iterationOpened(iteration: 1, prompts: data[0].count, digest: "d"), input: data, now: t)
        let actions = core.handle(
            .message(
                from: PeerID(Array("w1".utf8)),
                .hello(Hello(workerID: "w1", rewardModels: [], slots: 2, softwareVersion: "t"))), input: data, now: t)
        return (core, actions)
    }

    @Test func showsWorkersQueueAndArms() throws {
        let plan = Fixtures.plan(iterations: 1)
        var (core, actions) = started(plan)
        let t = Instant(nanoseconds: 3_000_000_000)
        var s = core.status(now: t)
        #expect(s.phase == .running)
        #expect(s.iteration == 1 && s.iterations == 1 && s.promptsInIteration == 16 && s.batchesInIteration == 2)
        #expect(s.workers.count == 1)
        let w = try #require(s.workers.first)
        #expect(w.workerID == "w1" && w.slots == 2 && w.inFlight == 2 && w.rewardModels == plan.armNames)
        #expect(w.secondsSinceHeard == 2 && w.utilisation == 1)
        // Batch 1 (8 prompts, shard size 3): 3 tasks for one RM, 2 out with the worker, 1 queued.
        #expect(s.totalTasksInFlight == 2 && s.totalTasksQueued == 1)
        #expect(s.promptsScoredInIteration == 0 && s.totalCandidatesScored == 0)
        // LinUCB: one selection so far, every arm has a bound for the last decision's context.
        #expect(s.arms.map(\.name) == plan.armNames)
        #expect(s.arms.reduce(0) { $0 + $1.selections } == 0)  // counted when the batch is emitted
        #expect(s.arms.allSatisfy { $0.upperConfidenceBound != nil && $0.probability == nil })

        // Answer one task: its prompts count as scored, its candidates as RM calls.
        let task = try #require(
            actions.compactMap { a -> ScoreTask? in
                if case .send(_, .scoreTask(let t)) = a { return t } else { return nil }
            }.first)
        let scores = task.items.map { $0.candidates.map { _ in 0.5 } }
        _ = core.handle(
            .message(
                from: PeerID(Array("w1".utf8)),
                .scoreResult(ScoreResult(taskID: task.taskID, attempt: 1, outcome: .success(scores), elapsedMicros: 10))
            ), input: data, now: t)
        s = core.status(now: t)
        #expect(s.promptsScoredInIteration == task.items.count)
        #expect(s.totalCandidatesScored == task.items.reduce(0) { $0 + $1.candidates.count })
        // Taking a snapshot changes nothing.
        #expect(core.status(now: t) == s)
    }

    @Test func exp3ShowsProbabilitiesAndEnsembleNoArm() {
        let (exp3, _) = started(Fixtures.plan(strategy: .exp3, iterations: 1))
        let p = exp3.status(now: Instant(nanoseconds: 2_000_000_000)).arms.compactMap(\.probability)
        #expect(p.count == 3 && abs(p.reduce(0, +) - 1) < 1e-9)
        let (ensemble, _) = started(Fixtures.plan(strategy: .ensemble, iterations: 1))
        let s = ensemble.status(now: Instant(nanoseconds: 2_000_000_000))
        #expect(s.arms.allSatisfy { $0.upperConfidenceBound == nil && $0.probability == nil })
        // Every RM has tasks for the first batch.
        #expect(s.tasksQueued.count == 3)
        #expect(s.totalTasksQueued + s.totalTasksInFlight == 9)
    }

    @Test func finishedRunSaysSo() {
        var sim = Simulation(
            plan: Fixtures.plan(iterations: 1), iterations: data, workers: [("solo", 1, .good)], seed: 0)
        sim.run()
        let s = sim.core.status(now: sim.now)
        #expect(s.phase == .finished)
        #expect(s.batchesEmitted == 2 && s.batchesEmittedInIteration == 2 && s.promptsScoredInIteration == 16)
        #expect(s.totalTasksQueued == 0 && s.totalTasksInFlight == 0)
        #expect(s.arms.reduce(0) { $0 + $1.selections } == 2)
    }
}
