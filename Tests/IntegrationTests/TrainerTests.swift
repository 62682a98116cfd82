import Foundation
import Testing

/// The trainer loop with real processes: a file-watching trainer reporting with `laser feedback`, and
/// the simulated trainer surviving its own death and the coordinator's.
@Suite(.serialized) struct TrainerTests {
    func lossConfig(iterations: Int = 2, promptsPerTask: Int = 8, depth: Int = 1, latencyMs: Int = 0) throws -> String {
        try SlowJob.make(
            ms: latencyMs, iterations: iterations, promptsPerTask: promptsPerTask,
            extra: "reward: {source: trainer-loss}\npipeline_depth: \(depth)"
        ).config
    }

    @Test func aFileWatchingTrainerReportsWithLaserFeedback() throws {
        let config = try lossConfig()
        let out = Laser.temporaryDirectory() + "/watched"
        let coordinator = LaserProcess([
            "coordinator", config, "--bind", "tcp://127.0.0.1:*", "--out", out, "--log-level", "warning",
        ])
        try coordinator.start()
        defer { coordinator.kill() }
        _ = try coordinator.waitForLine(startingWith: "coordinator listening on ")
        let worker = LaserProcess(["worker", "--connect", try FeedbackEndpoint.read(out), "--give-up-after", "60"])
        try worker.start()
        defer { worker.kill() }

        // Refusals: a batch that does not exist yet, a NaN loss.
        let (unknown, _, unknownErr) = try Laser.run(["feedback", out, "--batch", "9/9", "--loss", "0.5"])
        #expect(unknown != 0 && unknownErr.contains("9/9 has not been emitted"), "\(unknownErr)")

        var reported: Set<String> = []
        var refusedNaN = false, refusedTwice = false
        let deadline = Date().addingTimeInterval(120)
        while coordinator.process.isRunning && Date() < deadline {
            for key in try batchFiles(out).keys.sorted() where !reported.contains(key) {
                reported.insert(key)
                let data = try batchFiles(out)[key]!
                guard !data.isEmpty else { continue }  // no pairs: no loss is expected
                let parts = key.replacingOccurrences(of: "batch-", with: "").replacingOccurrences(
                    of: ".jsonl", with: ""
                ).split(separator: "/")
                guard parts.count == 2, let iteration = Int(parts[0]), let batch = Int(parts[1]) else {
                    Issue.record("unexpected file \(key) in the run directory")
                    continue
                }
                let id = "\(iteration)/\(batch)"
                if !refusedNaN {
                    let (c, _, e) = try Laser.run(["feedback", out, "--batch", id, "--loss", "nan"])
                    refusedNaN = c != 0 && e.contains("not a finite number")
                }
                let (c, o, e) = try Laser.run(["feedback", out, "--batch", id, "--loss", "0.25"])
                #expect(c == 0, "\(o) \(e)")
                if !refusedTwice {
                    let (c2, _, e2) = try Laser.run(["feedback", out, "--batch", id, "--loss", "0.25"])
                    refusedTwice = c2 != 0 && e2.contains("already has a loss")
                }
            }
            usleep(50_000)
        }
        let (code, _, err) = try coordinator.wait(timeout: 30)
        #expect(code == 0, "\(err)")
        #expect(refusedNaN && refusedTwice)
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
            as! [String: Any]
        let counters = summary["counters"] as! [String: Int]
        #expect(counters["losses_accepted"]! >= 1 && counters["losses_rejected"]! >= 3, "\(counters)")
    }

    @Test func trainerAndCoordinatorDeathsChangeNothing() throws {
        let fast = try lossConfig(iterations: 2, promptsPerTask: 16, depth: 2)
        let clean = Laser.temporaryDirectory() + "/clean"
        let (c0, _, e0) = try Laser.run(["run", fast, "--out", clean, "--simulate-trainer", "0", "--no-progress"])
        try #require(c0 == 0, "\(e0)")
        let expected = try batchFiles(clean)

        let slow = try lossConfig(iterations: 2, promptsPerTask: 16, depth: 2, latencyMs: 30)
        let out = Laser.temporaryDirectory() + "/chaos"
        let port = try ChaosTests.freePort()
        let endpoint = "tcp://127.0.0.1:\(port)"
        var coordinator = LaserProcess(["coordinator", slow, "--bind", endpoint, "--out", out, "--log-level", "info"])
        try coordinator.start()
        let worker = LaserProcess(["worker", "--connect", endpoint, "--give-up-after", "60"])
        try worker.start()
        var trainer = LaserProcess(["trainer-sim", "--connect", endpoint, "--step-ms", "40", "--window", "2"])
        try trainer.start()
        defer { worker.kill(); trainer.kill(); coordinator.kill() }
        var kills = 0
        while coordinator.process.isRunning && kills < 4 {
            usleep(600_000)
            guard coordinator.process.isRunning else { break }
            kills += 1
            if kills % 2 == 1 {
                kill(trainer.process.processIdentifier, SIGKILL)
                trainer.process.waitUntilExit()
                trainer = LaserProcess(["trainer-sim", "--connect", endpoint, "--step-ms", "40", "--window", "2"])
                try trainer.start()
            } else {
                kill(coordinator.process.processIdentifier, SIGKILL)
                coordinator.process.waitUntilExit()
                if coordinator.process.terminationReason == .exit { break }
                coordinator = LaserProcess(["coordinator", "--resume", out, "--bind", endpoint, "--log-level", "info"])
                try coordinator.start()
            }
        }
        let (code, _, err) = try coordinator.wait(timeout: 120)
        #expect(code == 0, "\(err.suffix(1500))")
        #expect(kills >= 2, "the run ended too early to kill anything twice")
        #expect(try batchFiles(out) == expected)
        print(
            "trainer loop: \(kills) kills (trainer and coordinator alternately); batch files identical to the clean run"
        )
    }
}

enum FeedbackEndpoint {
    static func read(_ runDirectory: String) throws -> String {
        try String(contentsOfFile: runDirectory + "/endpoint", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
    }
}
