import LaserWire
import StableRandom
import Testing
@testable import LaserCore

/// Dynamic placement (Placement.swift, docs/placement.md): the pure rule, one transition each, and the
/// determinism matrix and fault campaign with capacity-limited workers.
@Suite struct DynamicPlacementTests {
    let data = Fixtures.iterations(2, prompts: 40, seed: 11)

    /// A plan whose loads are quick in simulated time (the sim's loads take 50-300 ms).
    static func plan(_ strategy: StrategyKind = .linucb, depth: Int = 2) -> RunPlan {
        var plan = Fixtures.plan(strategy: strategy, depth: depth)
        plan.placement.dynamic = DynamicPlacementSettings(
            minResidencySeconds: 0.2, recentSelections: 4, assumedLoadSeconds: 0.2, loadTimeoutSeconds: 5)
        return plan
    }

    // MARK: the rule

    static func rm(_ name: String, backlog: Int, spc: Double? = 0.02, load: Double = 2, recent: Bool = false)
        -> PlacementInput.RM
    {
        PlacementInput.RM(
            name: name, backlogCandidates: backlog, secondsPerCandidate: spc, loadSeconds: load,
            minResidencySeconds: load, recent: recent)
    }

    static func worker(_ n: UInt8, loaded: Set<String>, capacity: Int = 1, residency: Double = 100)
        -> PlacementInput.Worker
    {
        PlacementInput.Worker(
            peer: PeerID([n]), workerID: "w\(n)", capacity: capacity, slots: 1, loadable: ["a", "b", "c"],
            loaded: loaded, residency: Dictionary(uniqueKeysWithValues: loaded.map { ($0, residency) }))
    }

    @Test func aColdRMGetsAReplicaOnAFreeSpotFirst() {
        let moves = PlacementRule.plan(
            PlacementInput(
                rms: [Self.rm("a", backlog: 0), Self.rm("b", backlog: 10, spc: nil)], fixedSlots: [:],
                workers: [Self.worker(1, loaded: ["a"]), Self.worker(2, loaded: [], capacity: 1)]))
        #expect(moves == [PlacementMove(peer: PeerID([2]), load: "b", unload: nil)])
    }

    @Test func aBusyRMTakesWorkersFromAnIdleOneWhileTheMovePays() {
        // b: 4000 candidates x 20 ms on one slot = 80 s; a load takes 2 s: every idle a-worker moves.
        let moves = PlacementRule.plan(
            PlacementInput(
                rms: [Self.rm("a", backlog: 0), Self.rm("b", backlog: 4000)], fixedSlots: [:],
                workers: [Self.worker(1, loaded: ["a"]), Self.worker(2, loaded: ["a"]), Self.worker(3, loaded: ["b"])]))
        #expect(moves.map(\.load) == ["b", "b"])
        #expect(moves.allSatisfy { $0.unload == "a" })
    }

    @Test func aLoadThatDoesNotPayIsNotMade() {
        // b: 40 candidates x 20 ms = 0.8 s on its one slot, less than the 2 s load: nobody moves.
        let moves = PlacementRule.plan(
            PlacementInput(
                rms: [Self.rm("a", backlog: 0), Self.rm("b", backlog: 40)], fixedSlots: [:],
                workers: [Self.worker(1, loaded: ["a"]), Self.worker(2, loaded: ["b"])]))
        #expect(moves.isEmpty)
    }

    @Test func hysteresisKeepsTheLastReplicaOfARecentRMAndRespectsResidency() {
        let input = PlacementInput(
            rms: [Self.rm("a", backlog: 0, recent: true), Self.rm("b", backlog: 4000)], fixedSlots: [:],
            workers: [Self.worker(1, loaded: ["a"]), Self.worker(2, loaded: ["b"])])
        #expect(PlacementRule.plan(input).isEmpty)
        // Not recent any more: it goes.
        var stale = input
        stale.rms[0].recent = false
        #expect(PlacementRule.plan(stale) == [PlacementMove(peer: PeerID([1]), load: "b", unload: "a")])
        // Loaded only 1 s ago (its residency is its 2 s load time): it stays.
        var young = stale
        young.workers[0].residency = ["a": 1]
        #expect(PlacementRule.plan(young).isEmpty)
        // A cold RM may take the last replica of a recent one (its batch blocks emission otherwise).
        let cold = PlacementInput(
            rms: [Self.rm("a", backlog: 0, recent: true), Self.rm("b", backlog: 10, spc: nil)], fixedSlots: [:],
            workers: [Self.worker(1, loaded: ["a"])])
        #expect(PlacementRule.plan(cold) == [PlacementMove(peer: PeerID([1]), load: "b", unload: "a")])
    }

    /// A memory budget: two RMs fit the count of 2 but not the budget, so the second takes the first's place.
    @Test func aMemoryBudgetLimitsWhatFitsBesidesTheCount() {
        var w = Self.worker(1, loaded: ["a"], capacity: 2)
        w.memoryBudget = 1.0
        w.memory = ["a": 0.6, "b": 0.5, "c": 0.3]
        let b = PlacementRule.plan(
            PlacementInput(rms: [Self.rm("a", backlog: 0), Self.rm("b", backlog: 4000)], fixedSlots: [:], workers: [w]))
        #expect(b == [PlacementMove(peer: PeerID([1]), load: "b", unload: "a")])
        let c = PlacementRule.plan(
            PlacementInput(rms: [Self.rm("a", backlog: 0), Self.rm("c", backlog: 4000)], fixedSlots: [:], workers: [w]))
        #expect(c == [PlacementMove(peer: PeerID([1]), load: "c", unload: nil)])
        #expect(PlacementRule.fits(["a", "c"], capacity: 2, budget: 1.0, memory: w.memory))
        #expect(!PlacementRule.fits(["a", "b"], capacity: 2, budget: 1.0, memory: w.memory))
        #expect(!PlacementRule.fits(["a", "b", "c"], capacity: 2, budget: 0, memory: [:]))
    }

    @Test func theLastReplicaOfAnRMWithWorkIsNeverTaken() {
        let moves = PlacementRule.plan(
            PlacementInput(
                rms: [Self.rm("a", backlog: 100), Self.rm("b", backlog: 100_000)], fixedSlots: [:],
                workers: [Self.worker(1, loaded: ["a"]), Self.worker(2, loaded: ["b"])]))
        #expect(moves.isEmpty)
    }

    // MARK: one transition

    @Test func aCapacityLimitedWorkerIsToldToLoadTheSelectedRMAndGetsItsTasksOnlyOnceLoaded() throws {
        var core = Coordinator(plan: Self.plan(.fixed, depth: 1))
        var now = Instant(nanoseconds: 1_000_000_000)
        _ = core.handle(.start, input: data, now: now)
        _ = core.handle(.iterationOpened(iteration: 1, prompts: data[0].count, digest: "d"), input: data, now: now)
        let peer = PeerID([7])
        var actions = core.handle(
            .message(
                from: peer,
                .hello(Hello(workerID: "gpu0", rewardModels: [], slots: 2, softwareVersion: "t", rmCapacity: 1))),
            input: data, now: now)
        let loads = actions.compactMap { if case .send(_, .loadRM(let l)) = $0 { return l } else { return nil } }
        // The fixed strategy picks arm 0 ("noise-a"): one LoadRM for it, and no task before the answer.
        #expect(loads == [LoadRM(requestID: 1, load: ["noise-a"], unload: [])])
        #expect(!actions.contains { if case .send(_, .scoreTask) = $0 { return true } else { return false } })
        now = now.adding(milliseconds: 100)
        actions = core.handle(
            .message(
                from: peer,
                .rmState(
                    RMState(
                        requestID: 1, loaded: ["noise-a"], loads: [RMState.Load(name: "noise-a", loadMs: 90)]))),
            input: data, now: now)
        let tasks = actions.compactMap { if case .send(_, .scoreTask(let t)) = $0 { return t } else { return nil } }
        #expect(tasks.count == 2)
        #expect(tasks.allSatisfy { $0.rewardModel == "noise-a" })
    }

    @Test func anRMStateBeyondCapacityDropsTheWorker() {
        var core = Coordinator(plan: Self.plan(.fixed, depth: 1))
        let now = Instant(nanoseconds: 1_000_000_000)
        _ = core.handle(.start, input: data, now: now)
        _ = core.handle(.iterationOpened(iteration: 1, prompts: data[0].count, digest: "d"), input: data, now: now)
        let peer = PeerID([7])
        _ = core.handle(
            .message(
                from: peer,
                .hello(Hello(workerID: "gpu0", rewardModels: [], slots: 1, softwareVersion: "t", rmCapacity: 1))),
            input: data, now: now)
        let actions = core.handle(
            .message(from: peer, .rmState(RMState(requestID: 1, loaded: ["noise-a", "oracle"]))), input: data,
            now: now)
        #expect(actions.contains { if case .send(_, .disconnect) = $0 { return true } else { return false } })
    }

    /// An RM whose load fails on every worker is not hidden: the waiting tasks are reported with the
    /// workers whose loads failed.
    @Test func anRMNoWorkerCanLoadIsReportedNamingTheFailedLoads() throws {
        var sim = Simulation(
            plan: Self.plan(.fixed, depth: 1), iterations: data, workers: [("gpu0", 1, .good)], seed: 1)
        sim.workers[0].capacity = 1
        sim.workers[0].failLoads = ["noise-a"]
        sim.run(maxSteps: 4000)
        #expect(sim.finished == nil)
        #expect(sim.core.summary.counters.rmLoadFailures >= 1)
        #expect(sim.logs.contains { $0.contains("for RM noise-a are waiting") && $0.contains("its load failed on gpu0") })
    }

    // MARK: whole runs

    /// The determinism matrix with capacity-limited workers: strategies, depths, capacities, worker
    /// counts and message orders change when tasks run, never the output or the bandit state.
    @Test(arguments: [StrategyKind.linucb, .random, .ensemble], [1, 2])
    func capacityLimitedWorkersGiveTheUnconstrainedOutput(strategy: StrategyKind, depth: Int) throws {
        let plan = Self.plan(strategy, depth: depth)
        var reference = Simulation(plan: plan, iterations: data, workers: [("solo", 1, .good)], seed: 0)
        reference.run()
        var loads = 0
        for seed in 0..<8 as Range<UInt64> {
            let count = 2 + Int(seed % 3)
            var sim = Simulation(
                plan: plan, iterations: data, workers: (0..<count).map { ("gpu\($0)", UInt32(1 + $0 % 2), .good) },
                seed: seed)
            for i in sim.workers.indices { sim.workers[i].capacity = UInt32(1 + (Int(seed) + i) % 2) }
            if seed % 2 == 1 {
                // Capacity 3, but a memory budget that holds oracle (0.7) alone or the two others together.
                for i in sim.workers.indices {
                    sim.workers[i].capacity = 3
                    sim.workers[i].memoryBudget = 1.0
                    sim.workers[i].rmMemory = ["oracle": 0.7, "noise-a": 0.5, "noise-b": 0.5]
                }
            }
            sim.run()
            let summary = try sim.requireSummary()
            #expect(sim.output == reference.output, "seed \(seed)")
            #expect(sim.core.selector == reference.core.selector, "seed \(seed)")
            #expect(sim.tasksForUnloadedRMs == 0, "seed \(seed)")
            #expect(sim.overBudgetLoads == 0, "seed \(seed): asked to load beyond the memory budget")
            loads += summary.counters.rmLoads
        }
        #expect(loads > 8)
    }

    /// Faults around loads: loads that fail, workers that die mid-load, and coordinator crashes while
    /// loads are in flight (their RMState reaches the next incarnation, which asks for a Hello).
    @Test func loadFailuresDeathsMidLoadAndCrashesChangeNothing() throws {
        let small = Fixtures.iterations(2, prompts: 24, seed: 21)
        var references: [String: Simulation] = [:]
        var failedLoads = 0, deaths = 0, crashes = 0
        for seed in 0..<200 as Range<UInt64> {
            var rng = SplitMix64(seed: 0x10AD ^ seed)
            let strategy = [StrategyKind.linucb, .random, .ensemble, .sequential][Int(rng.next() % 4)]
            let plan = Self.plan(strategy, depth: 1 + Int(rng.next() % 3))
            let key = "\(strategy)-\(plan.pipelineDepth)"
            if references[key] == nil {
                var r = Simulation(plan: plan, iterations: small, workers: [("solo", 1, .good)], seed: 0)
                r.run()
                references[key] = r
            }
            // One capacity-limited worker that never fails, so the run can finish; up to three faulty ones.
            var pool: [(String, UInt32, SimBehaviour)] = [("good", 1, .good)]
            for i in 0..<Int(1 + rng.next() % 3) { pool.append(("w\(i)", UInt32(1 + rng.next() % 2), .good)) }
            var sim = Simulation(plan: plan, iterations: small, workers: pool, seed: seed)
            sim.workers[0].capacity = 1
            for i in sim.workers.indices.dropFirst() {
                sim.workers[i].capacity = UInt32(1 + rng.next() % 2)
                if rng.next() % 2 == 0 { sim.workers[i].failLoads = [Fixtures.rms[Int(rng.next() % 3)].name] }
                if rng.next() % 3 == 0 {
                    sim.workers[i].diesOnLoad = 1 + Int(rng.next() % 3)
                    deaths += 1
                }
            }
            sim.crashRate = 20 + rng.next() % 60
            sim.maxCrashes = Int(rng.next() % 4)
            sim.run()
            crashes += sim.crashes
            guard let summary = sim.finished, sim.conflicts == 0, sim.output == references[key]!.output,
                sim.core.selector == references[key]!.core.selector, sim.tasksForUnloadedRMs == 0
            else {
                Issue.record(
                    "seed \(seed) (\(key)): failure \(sim.failure ?? "none"), output equal \(sim.output == references[key]!.output), tasks to unloaded RMs \(sim.tasksForUnloadedRMs)"
                )
                return
            }
            failedLoads += summary.counters.rmLoadFailures
        }
        print("placement fault campaign: 200 runs, \(failedLoads) failed loads, \(deaths) workers set to die mid-load, \(crashes) coordinator crashes; output identical")
        #expect(failedLoads > 10)
        #expect(crashes > 50)
    }
}
