import LaserWire
import Testing
@testable import LaserCore

@Suite struct CoordinatorTests {
    let data = Fixtures.iterations(2, prompts: 40, seed: 11)

    func reference(_ plan: RunPlan) -> Simulation {
        var sim = Simulation(plan: plan, iterations: data, workers: [("solo", 1, .good)], seed: 0)
        sim.run()
        return sim
    }

    @Test func completesAndEmitsEveryPromptOnce() throws {
        let sim = reference(Fixtures.plan())
        #expect(sim.failure == nil)
        let summary = try sim.requireSummary()
        #expect(summary.iterations.map(\.prompts) == [40, 40])
        #expect(sim.emitted.map(\.promptCount).reduce(0, +) == 80)
        #expect(sim.emitted.map(\.globalIndex) == Array(0..<10))
        let idsWithPairs = Set(sim.emitted.flatMap { $0.pairs.map(\.promptID) })
        #expect(idsWithPairs.isSubset(of: Set(data.flatMap { $0.map(\.id) })))
        // One RM per batch: every candidate scored exactly once.
        let candidates = data.joined().reduce(0) { $0 + $1.candidates.count }
        #expect(summary.iterations.reduce(0) { $0 + $1.rmCalls.values.reduce(0, +) } == candidates)
        #expect(summary.iterations.flatMap(\.tasks).reduce(0) { $0 + $1.rmCalls.values.reduce(0, +) } == candidates)
        // Workers are told to go home at the end.
        #expect(sim.sentToPeers.contains { if case .shutdown = $0.1 { return true } else { return false } })
    }

    @Test(arguments: [StrategyKind.linucb, .exp3, .random, .sequential, .ensemble, .agreement, .fixed], [1, 2, 3])
    func outputIndependentOfWorkerCountAndMessageOrder(strategy: StrategyKind, depth: Int) throws {
        let plan = Fixtures.plan(strategy: strategy, depth: depth)
        let expected = reference(plan)
        #expect(expected.failure == nil)
        for seed in 0..<8 as Range<UInt64> {
            var sim = Simulation(
                plan: plan, iterations: data,
                workers: [("w1", 2, .good), ("w2", 1, .good), ("w3", 3, .good)], seed: seed)
            sim.run()
            #expect(sim.failure == nil)
            #expect(sim.output == expected.output, "seed \(seed) strategy \(strategy) depth \(depth)")
            #expect(sim.finishedArms == expected.finishedArms)
        }
    }

    @Test func theEnsembleCostsKTimesTheRMCalls() throws {
        let sim = reference(Fixtures.plan(strategy: .ensemble))
        let summary = try sim.requireSummary()
        let candidates = data.joined().reduce(0) { $0 + $1.candidates.count }
        for rm in Fixtures.rms.map(\.name) {
            #expect(summary.iterations.reduce(0) { $0 + ($1.rmCalls[rm] ?? 0) } == candidates)
        }
        #expect(sim.emitted.allSatisfy { $0.rm == "ensemble" })
    }

    @Test func neverExceedsDeclaredSlots() {
        var sim = Simulation(
            plan: Fixtures.plan(), iterations: data,
            workers: [("w1", 1, .good), ("w2", 2, .good)], seed: 5)
        sim.run()
        #expect(sim.failure == nil)
        #expect((sim.maxOutstandingSeen["w1"] ?? 0) <= 1)
        #expect((sim.maxOutstandingSeen["w2"] ?? 0) <= 2)
    }

    @Test func invalidScoresAreRetriedElsewhereAndCounted() throws {
        let expected = reference(Fixtures.plan())
        for behaviour in [SimBehaviour.nanFirst(2), .wrongCount] {
            var sim = Simulation(
                plan: Fixtures.plan(maxAttempts: 50), iterations: data,
                workers: [("bad", 4, behaviour), ("good", 1, .good)], seed: 9)
            sim.run()
            let summary = try sim.requireSummary()
            #expect(summary.counters.invalidResults > 0)
            #expect(sim.output == expected.output)
        }
    }

    @Test func duplicateResultsAreDroppedAndCounted() throws {
        let expected = reference(Fixtures.plan())
        var sim = Simulation(plan: Fixtures.plan(), iterations: data, workers: [("dup", 2, .duplicates)], seed: 1)
        sim.run()
        let summary = try sim.requireSummary()
        // The last duplicate may arrive after the run finished (then it is answered with Shutdown). A
        // second result for a task the worker no longer holds is a foreign result (it may not send it).
        #expect(
            summary.counters.duplicateResults + summary.counters.foreignResults >= summary.counters.tasksDispatched - 1)
        #expect(sim.output == expected.output)
    }

    @Test func aDeadWorkersTasksGoToTheOthers() throws {
        let expected = reference(Fixtures.plan())
        var sim = Simulation(
            plan: Fixtures.plan(), iterations: data,
            workers: [("mortal", 3, .diesAfter(4)), ("survivor", 1, .good)], seed: 2)
        sim.run()
        let summary = try sim.requireSummary()
        #expect(summary.counters.workersLost >= 1)
        #expect(summary.counters.tasksRetried >= 1)
        #expect(sim.output == expected.output)
    }

    @Test func anExpiredLeaseIsRetriedAndALateAnswerIsNotUsedTwice() throws {
        let expected = reference(Fixtures.plan(leaseMs: 500))
        var sim = Simulation(
            plan: Fixtures.plan(leaseMs: 500), iterations: data,
            workers: [("hole", 1, .blackHole), ("good", 2, .good)], seed: 4)
        sim.run()
        let summary = try sim.requireSummary()
        #expect(summary.counters.tasksRetried >= 1)
        #expect(sim.output == expected.output)
    }

    @Test func anRMThatAlwaysFailsFailsTheRunLoudly() throws {
        var sim = Simulation(
            plan: Fixtures.plan(strategy: .ensemble, maxAttempts: 3), iterations: data,
            workers: [("broken", 2, .failing)], seed: 0)
        sim.run()
        #expect(sim.finished == nil as RunSummary?)
        let failure = sim.failure
        let message = try #require(failure)
        #expect(message.contains("after 3 attempts"))
        #expect(message.contains("CUDA out of memory (simulated)"))
        #expect(sim.sentToPeers.contains { if case .shutdown = $0.1 { return true } else { return false } })
    }

    @Test func unknownPeersAreToldToSayHello() {
        var core = Coordinator(plan: Fixtures.plan())
        _ = core.handle(.start, now: Instant(nanoseconds: 0))
        let actions = core.handle(.message(from: PeerID([9]), .heartbeat), now: Instant(nanoseconds: 1))
        #expect(actions.contains(.send(to: PeerID([9]), .disconnect(reason: "unknown peer: send Hello first"))))
        let stray = core.handle(
            .message(
                from: PeerID([9]),
                .scoreResult(ScoreResult(taskID: 77, attempt: 1, outcome: .success([[1]]), elapsedMicros: 0))),
            now: Instant(nanoseconds: 2))
        #expect(stray.contains { if case .send(_, .disconnect) = $0 { return true } else { return false } })
    }

    @Test func helloIsValidated() {
        var core = Coordinator(plan: Fixtures.plan())
        _ = core.handle(.start, now: Instant(nanoseconds: 0))
        func reply(_ h: Hello) -> WireMessage? {
            core.handle(.message(from: PeerID([1]), .hello(h)), now: Instant(nanoseconds: 5)).compactMap {
                if case .send(_, let m) = $0 { return m } else { return nil }
            }.first
        }
        guard
            case .reject(let reason, _)? = reply(
                Hello(workerID: "w", rewardModels: ["gpt-judge"], slots: 1, softwareVersion: ""))
        else {
            Issue.record("unknown RM not rejected"); return
        }
        #expect(reason.contains("gpt-judge") && reason.contains("oracle"))
        guard case .reject? = reply(Hello(workerID: "w", rewardModels: [], slots: 0, softwareVersion: "")) else {
            Issue.record("zero slots not rejected"); return
        }
        guard
            case .welcome(let w)? = reply(Hello(workerID: "w", rewardModels: ["oracle"], slots: 1, softwareVersion: ""))
        else {
            Issue.record("valid hello not welcomed"); return
        }
        #expect(w.rewardModels.map(\.name) == ["oracle"])
    }

    /// A worker whose Hello reads JSON-escaped candidates gets them so; the others get text.
    @Test func candidatesTravelInTheFormEachWorkerAskedFor() throws {
        var sim = Simulation(
            plan: Fixtures.plan(), iterations: data, workers: [("w0", 2, .good), ("w1", 2, .good), ("w2", 1, .good)],
            seed: 3)
        sim.workers[1].json = true
        sim.run()
        _ = try sim.requireSummary()
        #expect(sim.wrongCandidateForm == 0)
        #expect((sim.tasksByCandidateForm[true] ?? 0) > 0 && (sim.tasksByCandidateForm[false] ?? 0) > 0)
    }

    @Test func undecodableBytesAreCountedNotFatal() throws {
        var sim = Simulation(plan: Fixtures.plan(), iterations: data, workers: [("w", 1, .good)], seed: 0)
        sim.feed(.start)
        sim.feed(.undecodable(from: PeerID([42]), reason: "garbage"))
        sim.run()
        let summary = try sim.requireSummary()
        #expect(summary.counters.malformedMessages == 1)
    }

    @Test func linucbLearnsTheOracleRM() throws {
        let long = Fixtures.iterations(6, prompts: 64, seed: 5)
        var sim = Simulation(plan: Fixtures.plan(iterations: 6), iterations: long, workers: [("w", 2, .good)], seed: 0)
        sim.run()
        let summary = try sim.requireSummary()
        let last = try #require(summary.iterations.last)
        let oracleShare = Double(last.tasks.reduce(0) { $0 + ($1.selections["oracle"] ?? 0) }) / Double(last.prompts)
        #expect(oracleShare > 0.6, "oracle chosen for \(oracleShare) of the last iteration")
        #expect((last.labelAccuracy ?? 0) > (summary.iterations.first?.labelAccuracy ?? 1))
    }
}

@Suite struct ReRegistrationTests {
    @Test func repeatedHelloNeverUsesUpAttempts() throws {
        let data = Fixtures.iterations(1, prompts: 8, seed: 1)
        // Two attempts: the flaky peer finally falls silent and dies, which rightly uses up one.
        var sim = Simulation(
            plan: Fixtures.plan(iterations: 1, maxAttempts: 2), iterations: data, workers: [("w", 2, .good)], seed: 0)
        sim.feed(.start)
        let flaky = PeerID([7, 7])
        // A peer that takes tasks and says Hello again, many times over.
        for _ in 0..<50 {
            sim.feed(
                .message(from: flaky, .hello(Hello(workerID: "flaky", rewardModels: [], slots: 4, softwareVersion: "")))
            )
        }
        #expect(sim.failure == nil)
        sim.run()
        _ = try sim.requireSummary()
    }
}
