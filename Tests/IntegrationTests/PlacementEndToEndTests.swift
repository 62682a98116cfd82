import Foundation
import Testing

/// Dynamic placement with real processes (docs/placement.md): `laser run`'s local workers of
/// `rm_capacity` 1, simulated-load RMs (a SIMULATION: they sleep per prompt and per load), and a
/// bandit that switches RMs, against the same run with static workers: the same bytes, and the loads
/// counted in summary.json.
@Suite(.serialized) struct PlacementEndToEndTests {
    func job(capacity: Int, strategy: String, workers extra: String = "") throws -> String {
        let data = Laser.temporaryDirectory()
        let (code, _, err) = try Laser.run(["demo-data", "--out", data, "--iterations", "2", "--prompts-per-task", "12"])
        try #require(code == 0, "\(err)")
        let rms = ["length", "self-consistency", "arithmetic-check"].map { base in
            "  - {name: \(base), kind: simulated-load, params: {base: \(base), ms: 5, load_ms: 150}}"
        }.joined(separator: "\n")
        let config = """
            input: [\(data)/input/iteration-1.jsonl, \(data)/input/iteration-2.jsonl]
            seed: 9
            strategy: \(strategy)
            batch_size: 8
            shard_size: 2
            pipeline_depth: 2
            reward_models:
            \(rms)
            network: {heartbeat_ms: 200, liveness: 10, lease_ms: 20000}
            workers: {local: 3, slots: 1, rm_capacity: \(capacity)\(extra)}
            placement: {dynamic: {min_residency_s: 0.1, assumed_load_s: 0.15}}
            """
        let path = data + "/placement.yaml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func run(_ config: String) throws -> (files: [String: Data], summary: [String: Any]) {
        let out = Laser.temporaryDirectory() + "/run"
        let (code, _, err) = try Laser.run(["run", config, "--out", out, "--no-progress"], timeout: 120)
        try #require(code == 0, "\(err)")
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
            as! [String: Any]
        return (try batchFiles(out), summary)
    }

    @Test(arguments: ["random", "linucb"])
    func capacityLimitedWorkersGiveTheStaticRunsBytes(strategy: String) throws {
        let reference = try run(try job(capacity: 0, strategy: strategy))
        let dynamic = try run(try job(capacity: 1, strategy: strategy))
        #expect(!reference.files.isEmpty)
        #expect(dynamic.files == reference.files)
        let counters = dynamic.summary["counters"] as! [String: Int]
        #expect(counters["rm_loads", default: 0] >= 3, "\(counters)")
        if strategy == "random" {
            // Three RMs on three one-RM workers, picked at random: some worker had to switch.
            #expect(counters["rm_unloads", default: 0] >= 1, "\(counters)")
        }
        #expect((reference.summary["counters"] as! [String: Int])["rm_loads"] == 0)
    }

    /// A memory budget instead of a count (workers.memory_budget, rm_memory): each local worker holds
    /// length (0.6) with nothing else, or the two others (0.5 each) together.
    @Test func aMemoryBudgetGivesTheStaticRunsBytes() throws {
        let reference = try run(try job(capacity: 0, strategy: "random"))
        let budget = try run(
            try job(
                capacity: 0, strategy: "random",
                workers: ", memory_budget: 1.0, rm_memory: {length: 0.6, self-consistency: 0.5, arithmetic-check: 0.5}"))
        #expect(budget.files == reference.files)
        let counters = budget.summary["counters"] as! [String: Int]
        #expect(counters["rm_loads", default: 0] >= 3, "\(counters)")
        #expect(counters["rm_load_failures", default: 0] == 0, "a load beyond the budget was asked for: \(counters)")
    }
}
