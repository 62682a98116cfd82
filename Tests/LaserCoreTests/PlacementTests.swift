import LaserWire
import Testing
@testable import LaserCore

@Suite struct PlacementTests {
    let all = ["a", "b", "c"]

    @Test func precedenceIsWorkerThenLabelsThenAllWithinTheOffer() {
        let p = Placement(byWorker: ["w1": ["c"]], byLabel: ["gpu": ["b", "a"], "cpu": ["c"]])
        func served(_ id: String, rms: [String] = [], labels: [String] = []) -> [String] {
            p.rewardModels(
                for: Hello(workerID: id, rewardModels: rms, slots: 1, softwareVersion: "", labels: labels), all: all)
        }
        // An offer (--rm, --rm-config) bounds what placement gives; without a placement entry it is taken as is.
        #expect(served("w1", rms: ["a", "c"], labels: ["gpu"]) == ["c"])
        #expect(served("w1", rms: ["a"], labels: ["gpu"]) == [])
        #expect(served("w2", rms: ["c", "b"], labels: ["gpu"]) == ["b"])
        #expect(served("w3", rms: ["c"]) == ["c"])
        #expect(served("w1", labels: ["gpu"]) == ["c"])
        #expect(served("w2", labels: ["gpu"]) == ["a", "b"])
        #expect(served("w2", labels: ["gpu", "cpu"]) == ["a", "b", "c"])
        #expect(served("w2", labels: ["tpu"]) == all)
        #expect(served("w2") == all)
    }

    @Test func labelledWorkersGetOnlyTheirRMsAndTheOutputIsUnchanged() throws {
        let data = Fixtures.iterations(2, prompts: 40, seed: 11)
        var plan = Fixtures.plan(strategy: .sequential)
        plan.placement = Placement(byLabel: ["big": ["oracle"], "small": ["noise-a", "noise-b"]])
        var reference = Simulation(
            plan: Fixtures.plan(strategy: .sequential), iterations: data, workers: [("solo", 1, .good)], seed: 0)
        reference.run()
        var sim = Simulation(plan: plan, iterations: data, workers: [("g", 2, .good), ("s", 2, .good)], seed: 3)
        sim.workers[0].labels = ["big"]
        sim.workers[1].labels = ["small"]
        sim.run()
        _ = try sim.requireSummary()
        #expect(sim.output == reference.output)
        let tasksTo = Dictionary(
            grouping: sim.sentToPeers.compactMap { m -> (PeerID, String)? in
                if case .scoreTask(let t) = m.1 { return (m.0, t.rewardModel) } else { return nil }
            }, by: \.0
        ).mapValues { Set($0.map(\.1)) }
        #expect(tasksTo[sim.workers[0].peer] == ["oracle"])
        #expect(tasksTo[sim.workers[1].peer] == ["noise-a", "noise-b"])
    }

    @Test func aWorkerHostingOnlyUnusedRMsIsReported() throws {
        let data = Fixtures.iterations(2, prompts: 40, seed: 11)
        var plan = Fixtures.plan(strategy: .fixed)
        plan.fixedArm = 1  // oracle only
        plan.placement = Placement(byWorker: ["spare": ["noise-a"]], idleReportSeconds: 0.3)
        var sim = Simulation(plan: plan, iterations: data, workers: [("busy", 1, .good), ("spare", 2, .good)], seed: 1)
        sim.run()
        let summary = try sim.requireSummary()
        #expect(summary.counters.idleWorkerReports >= 1)
    }
}

@Suite struct StaleHelloTests {
    /// A worker's earlier sockets' Hellos, read late: each registers, its connection is already gone,
    /// and its tasks must not lose attempts (three such registrations used to fail a task).
    @Test func registrationsWhoseConnectionIsGoneCostNoAttempts() throws {
        let data = Fixtures.iterations(1, prompts: 16, seed: 2)
        var sim = Simulation(
            plan: Fixtures.plan(iterations: 1, maxAttempts: 1), iterations: data, workers: [("w", 2, .good)], seed: 0)
        sim.feed(.start)
        for stale in 0..<5 {
            let peer = PeerID([0x5A, UInt8(stale)])
            sim.feed(
                .message(from: peer, .hello(Hello(workerID: "w", rewardModels: [], slots: 2, softwareVersion: ""))))
            sim.feed(.unreachable(peer))
        }
        #expect(sim.failure == nil)
        sim.run()
        _ = try sim.requireSummary()
    }

    @Test func aWorkerThatTalkedAndVanishedStillCostsAnAttempt() {
        let data = Fixtures.iterations(1, prompts: 16, seed: 2)
        var sim = Simulation(plan: Fixtures.plan(iterations: 1, maxAttempts: 1), iterations: data, workers: [], seed: 0)
        sim.feed(.start)
        let peer = PeerID([0x5B])
        sim.feed(.message(from: peer, .hello(Hello(workerID: "w", rewardModels: [], slots: 2, softwareVersion: ""))))
        sim.feed(.message(from: peer, .heartbeat))
        sim.feed(.unreachable(peer))
        #expect(sim.failure?.contains("after 1 attempts") == true)
    }
}
