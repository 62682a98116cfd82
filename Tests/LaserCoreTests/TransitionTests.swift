import LaserWire
import Testing

@testable import LaserCore

/// One transition at a time, with the exact list of actions it must produce (as swift-nio tests its
/// state machines), beside the whole-run simulation (CoordinatorTests).
@Suite struct TransitionTests {
    let now = Instant(nanoseconds: 1_000_000_000)

    @Test func startJournalsTheIncarnationThenAsksForIterationOne() {
        var core = Coordinator(plan: Fixtures.plan())
        #expect(core.handle(.start, now: now) == [.journal(.started(epoch: 0), sync: true), .loadIteration(1)])
        // A second start is ignored: nothing happens.
        #expect(core.handle(.start, now: now).isEmpty)
    }

    @Test func aResumedStartSaysWhatTheJournalHolds() {
        var first = Coordinator(plan: Fixtures.plan())
        let journal = first.handle(.start, now: now).compactMap {
            if case .journal(let r, _) = $0 { return r } else { return nil }
        }
        var core = Coordinator(plan: Fixtures.plan(), journal: journal)
        #expect(
            core.handle(.start, now: now) == [
                .journal(.started(epoch: 1), sync: true),
                .log(
                    .info,
                    "resuming (incarnation 1): 0 selections, 0 scored shards and 0 emitted batches in the journal"),
                .loadIteration(1),
            ])
    }

    @Test func anIterationOpenedOutOfTurnIsIgnoredWithAWarning() {
        var core = Coordinator(plan: Fixtures.plan())
        _ = core.handle(.start, now: now)
        #expect(
            core.handle(.iterationOpened(iteration: 2, prompts: 10, digest: "d"), now: now) == [
                .log(.warning, "ignored iteration 2: not the one requested")
            ])
    }

    @Test func aChangedInputOfAStartedIterationFailsTheRunWithItsCode() {
        var first = Coordinator(plan: Fixtures.plan())
        var journal = first.handle(.start, now: now).compactMap {
            if case .journal(let r, _) = $0 { return r } else { return nil }
        }
        journal += first.handle(.iterationOpened(iteration: 1, prompts: 8, digest: "old"), now: now).compactMap {
            if case .journal(let r, _) = $0 { return r } else { return nil }
        }
        var core = Coordinator(plan: Fixtures.plan(), journal: journal)
        _ = core.handle(.start, now: now)
        let actions = core.handle(.iterationOpened(iteration: 1, prompts: 8, digest: "new"), now: now)
        #expect(
            actions == [
                .fail(
                    CoreFailure(
                        .inputChanged,
                        "the input of iteration 1 changed since the run started (digest old, now new); restore the original file, or resume with --force to accept the new one"
                    ))
            ])
    }

    /// Log lines carry fields (swift-log metadata; the JSON log format writes them): a worker's failed
    /// task names the iteration, the worker, the task, its RM and its batch.
    @Test func logLinesCarryTheRunsCoordinatesAsFields() throws {
        var sim = Simulation(
            plan: Fixtures.plan(iterations: 1), iterations: Fixtures.iterations(1, prompts: 16, seed: 2),
            workers: [("good", 1, .good), ("bad", 1, .failing)], seed: 1)
        sim.run()
        let i = try #require(sim.logs.firstIndex { $0.contains("failed task") })
        let fields = sim.logFields[i]
        #expect(fields["iteration"] == "1" && fields["worker"] == "bad", "\(fields)")
        #expect(
            fields["task"] != nil && fields["batch"] != nil && Fixtures.rms.map(\.name).contains(fields["rm"] ?? ""),
            "\(fields)")
    }
}
