import Foundation
import LaserWire
import Testing
import ZeroMQ

/// A running coordinator under a flood of random and mutated frames keeps serving its real worker,
/// finishes with the right output, and counts what it rejected.
@Suite(.serialized) struct HostileInputTests {
    /// Deterministic byte source for the fuzzer (the failing frame can be regenerated).
    struct Fuzz {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
    }

    /// Valid messages to mutate (no Hello: the flood comes from a peer that never registers).
    static let valid: [WireMessage] = [
        .heartbeat,
        .scoreResult(ScoreResult(taskID: 1, attempt: 1, outcome: .success([[1, 2], [3]]), elapsedMicros: 1)),
        .scoreResult(ScoreResult(taskID: 99, attempt: 1, outcome: .failure("x"), elapsedMicros: 1)),
        .scoreTask(
            ScoreTask(
                taskID: 1, attempt: 1, rewardModel: "length", iteration: 1,
                items: [ScoreItem(promptID: "p", prompt: "q", candidates: ["a", "b"], reference: nil)])),
    ]

    /// One hostile frame (or multipart message) of a given kind.
    static func frame(_ kind: Int, _ f: inout Fuzz) -> [[UInt8]] {
        let base = WireCodec.encode(valid[f.below(valid.count)])
        switch kind {
        case 0: return [f.bytes(f.below(200))]  // random bytes
        case 1: return [Array(base.prefix(f.below(base.count)))]  // truncated
        case 2:  // bit flips
            var b = base
            for _ in 0...f.below(4) { let i = f.below(b.count); b[i] ^= UInt8(1 << f.below(8)) }
            return [b]
        case 3: return [[0x08, UInt8(2 + f.below(100)), 0x6A, 0x00]]  // wrong protocol version
        case 4: return [[0x08, 0x01, UInt8(0x92 + 0), 0x03, 0x00]]  // unknown oneof case (field 18)
        case 5: return [base, f.bytes(8)]  // two frames
        case 6: return [[]]  // empty frame
        default:  // NaN/Inf scores for unknown tasks
            let bad: [Double] = [.nan, .infinity, -.infinity, 1]
            return [
                WireCodec.encode(
                    .scoreResult(
                        ScoreResult(
                            taskID: f.next(), attempt: 1, outcome: .success([[bad[f.below(4)]]]), elapsedMicros: 0)))
            ]
        }
    }

    @Test func aHundredThousandHostileFramesChangeNothing() throws {
        // The demo's data with RMs slowed down (simulated latency, 250 ms a prompt: about 12 s for 48
        // prompts on one slot), so the run outlasts the flood even on a loaded CI machine (at 50 ms it once
        // finished first).
        let data = Laser.temporaryDirectory()
        let (code, _, err) = try Laser.run([
            "demo-data", "--out", data, "--iterations", "1", "--prompts-per-task", "16",
        ])
        try #require(code == 0, "\(err)")
        let rms = ["length", "self-consistency", "arithmetic-check", "instruction-following", "answer-match"].map {
            "  - {name: \($0), kind: simulated-latency, params: {base: \($0), ms: 250}}"
        }.joined(separator: "\n")
        let config = data + "/hostile.yaml"
        try """
        input: [\(data)/input/iteration-1.jsonl]
        seed: 3
        linucb: {alpha: 2.0}
        batch_size: 8
        shard_size: 2
        context: {dimension: 128}
        reward_models:
        \(rms)
        network: {max_message_bytes: 1048576, max_attempts: 3, heartbeat_ms: 200}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let clean = Laser.temporaryDirectory() + "/clean"
        let (c0, _, e0) = try Laser.run(["run", config, "--out", clean, "--no-progress", "--workers", "3"])
        try #require(c0 == 0, "\(e0)")

        let out = Laser.temporaryDirectory() + "/hostile"
        let coordinator = LaserProcess([
            "coordinator", config, "--bind", "tcp://127.0.0.1:*", "--out", out, "--log-level", "info",
        ])
        try coordinator.start()
        defer { coordinator.kill() }
        let endpoint = try coordinator.waitForLine(startingWith: "coordinator listening on ").components(
            separatedBy: ";")[0]
        // The honest worker is in before the flood starts.
        let worker = LaserProcess([
            "worker", "--connect", endpoint, "--id", "honest", "--slots", "1", "--give-up-after", "60",
        ])
        try worker.start()
        defer { worker.kill() }
        let joinDeadline = Date().addingTimeInterval(30)
        while !coordinator.stderr.contains("worker honest joined") && Date() < joinDeadline { usleep(20_000) }
        try #require(coordinator.stderr.contains("worker honest joined"))

        // Phase 1: a peer that never registered floods the coordinator.
        let ctx = try ZMQContext()
        let rogue = try ZMQSocket(ctx, type: .dealer)
        try rogue.setSendHighWaterMark(0)
        try rogue.connect(endpoint)
        var f = Fuzz(state: 0xBAD)
        let flood = 100_000
        for i in 0..<flood { try rogue.send(Self.frame(i % 8, &f)) }
        // Phase 2: Hello from the same connection; its Welcome means every earlier frame was handled
        // (one connection's messages are processed in order).
        try rogue.send([
            WireCodec.encode(.hello(Hello(workerID: "rogue", rewardModels: [], slots: 4, softwareVersion: "")))
        ])
        var welcomed = false
        var pendingTasks: [ScoreTask] = []
        // Generous: on a loaded 2-core machine the 100,000 frames take a while to go through.
        let deadline = Date().addingTimeInterval(180)
        while !welcomed && Date() < deadline {
            _ = try ZMQPoller.poll([(rogue, .readable)], timeoutMs: 200)
            while let frames = try rogue.receive(nonBlocking: true) {
                switch try? WireCodec.decode(frames[0]) {
                case .welcome?: welcomed = true
                case .scoreTask(let t)?: pendingTasks.append(t)
                default: break
                }
            }
        }
        try #require(
            welcomed, "the coordinator did not answer Hello after the flood: \(coordinator.stderr.suffix(3000))")
        let floodDone = coordinator.process.isRunning

        // Phase 3: the rogue, now registered, answers every task with bad scores (NaN, infinity,
        // wrong counts) plus a result for a task that does not exist, until the run ends.
        var badResults = 0
        func poison(_ t: ScoreTask) throws {
            let poisoned: [[Double]]
            switch badResults % 4 {
            case 0: poisoned = t.items.map { $0.candidates.map { _ in Double.nan } }
            case 1: poisoned = t.items.map { $0.candidates.map { _ in Double.infinity } }
            case 2: poisoned = t.items.map { Array(repeating: 0.5, count: $0.candidates.count + 1) }
            default: poisoned = Array(t.items.map { $0.candidates.map { _ in 0.5 } }.dropLast())
            }
            badResults += 1
            try rogue.send([
                WireCodec.encode(
                    .scoreResult(
                        ScoreResult(taskID: t.taskID, attempt: t.attempt, outcome: .success(poisoned), elapsedMicros: 0)
                    ))
            ])
            try rogue.send([
                WireCodec.encode(
                    .scoreResult(
                        ScoreResult(taskID: t.taskID ^ 0xFFFF, attempt: 1, outcome: .success([[1]]), elapsedMicros: 0)))
            ])
        }
        for t in pendingTasks { try poison(t) }
        while coordinator.process.isRunning && Date() < deadline {
            _ = try ZMQPoller.poll([(rogue, .readable)], timeoutMs: 50)
            while let frames = try rogue.receive(nonBlocking: true) {
                if case .scoreTask(let t)? = try? WireCodec.decode(frames[0]) { try poison(t) }
            }
        }
        rogue.close()
        let (cc, _, cerr) = try coordinator.wait(timeout: 120)
        #expect(cc == 0, "\(cerr.suffix(2000))")
        #expect(floodDone, "the run ended before the flood was handled; slow the RMs down")
        #expect(try batchFiles(out) == batchFiles(clean))
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
            as! [String: Any]
        let counters = summary["counters"] as! [String: Int]
        let rejectedFlood = counters["malformed_messages"]! + counters["unknown_peer_messages"]!
        #expect(rejectedFlood == flood, "counters \(counters)")
        #expect(
            badResults >= 1 && counters["invalid_results"]! == badResults,
            "counters \(counters), bad results sent \(badResults)")
        #expect(cerr.split(separator: "\n").count < 300, "the flood should be logged sparingly")
        print(
            "hostile input: \(flood) flood frames all rejected and counted (\(counters["malformed_messages"]!) malformed, \(counters["unknown_peer_messages"]!) from an unknown peer); \(badResults) poisoned results from a registered rogue, all \(counters["invalid_results"]!) rejected; \(counters["duplicate_results"]!) results for unknown tasks dropped; output identical to the clean run"
        )
    }
}
