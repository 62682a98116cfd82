import Foundation
import Testing

/// Issue 14 ("Hold the edges"), with real processes: what a new user meets when a run starts, stops,
/// fails and resumes.
@Suite(.serialized) struct EdgeTests {
    func demo(iterations: Int = 1) throws -> String {
        let dir = Laser.temporaryDirectory()
        let (code, _, err) = try Laser.run([
            "demo-data", "--out", dir, "--iterations", "\(iterations)", "--prompts-per-task", "8",
        ])
        try #require(code == 0, "\(err)")
        return dir
    }

    /// Item 4: a prompt too large for one message is an input error naming file:line, size and limit,
    /// before any worker is involved, in well under a second's worth of work.
    @Test func anOversizedLineIsAnInputErrorNamingTheLine() throws {
        let dir = try demo()
        let input = dir + "/big.jsonl"
        let big = String(repeating: "x", count: 2_000_000)
        try
            ("{\"id\": \"a\", \"prompt\": \"p\", \"candidates\": [\"x\", \"y\"]}\n{\"id\": \"b\", \"prompt\": \"p\", \"candidates\": [\"\(big)\", \"y\"]}\n")
            .write(toFile: input, atomically: true, encoding: .utf8)
        let config = dir + "/big.yaml"
        try
            "input: [big.jsonl]\nreward_models: [{name: l, kind: length}]\nnetwork: {max_message_bytes: 1048576}\nreward: {allow_unrewarded: true}\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let start = Date()
        let (code, _, err) = try Laser.run(["run", config, "--out", dir + "/run", "--no-progress"], timeout: 60)
        #expect(code != 0)
        #expect(err.contains("\(input):2: the line is 2000") && err.contains("network.max_message_bytes"), "\(err)")
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(
            !FileManager.default.fileExists(atPath: dir + "/run"), "a run directory was made for input that cannot run")
    }

    /// Item 7: a typo in an input path leaves nothing behind; `laser validate` and `--dry-run` say what
    /// would run; a run directory whose run did no work never blocks a corrected start.
    @Test func badConfigIsFoundBeforeAnythingIsMadeAndNeverTrapsTheRunDirectory() throws {
        let dir = try demo()
        let bad = dir + "/typo.yaml"
        try "input: [input/iteration-l.jsonl]\nreward_models: [{name: am, kind: answer-match}]\n".write(
            toFile: bad, atomically: true, encoding: .utf8)
        let (c1, _, e1) = try Laser.run(["run", bad, "--out", dir + "/run", "--no-progress"])
        #expect(c1 != 0 && e1.contains("iteration-l.jsonl: input of iteration 1 does not exist"), "\(e1)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/run"))
        let (c2, o2, _) = try Laser.run(["validate", dir + "/config.yaml"])
        #expect(c2 == 0 && o2.contains("iteration 1: 24 prompts in 3 mini-batch(es)"), "\(o2)")
        let (c3, o3, _) = try Laser.run(["run", dir + "/config.yaml", "--dry-run", "--out", dir + "/dry"])
        #expect(c3 == 0 && o3.contains("config OK") && !FileManager.default.fileExists(atPath: dir + "/dry"), "\(o3)")
        // A run directory that holds a run which did no work (it was stopped before its first batch).
        let fixed = dir + "/fixed.yaml"
        try "input: [input/iteration-1.jsonl]\nreward_models: [{name: am, kind: answer-match}]\nworkers: {local: 0}\n"
            .write(toFile: fixed, atomically: true, encoding: .utf8)
        let stuck = LaserProcess([
            "coordinator", fixed, "--bind", "tcp://127.0.0.1:*", "--out", dir + "/stuck", "--log-level", "warning",
        ])
        try stuck.start()
        _ = try stuck.waitForLine(startingWith: "coordinator listening on ")
        stuck.kill()
        let (c4, _, e4) = try Laser.run(["run", dir + "/config.yaml", "--out", dir + "/stuck", "--no-progress"])
        #expect(c4 == 0, "a corrected fresh start was refused: \(e4)")
    }

    /// Item 8: refusals of a resume name the key or the file.
    @Test func resumeRefusalsNameTheKeyAndTheFile() throws {
        let (data, config) = try SlowJob.make(ms: 0, iterations: 2, promptsPerTask: 8)
        let out = Laser.temporaryDirectory() + "/run"
        let (c0, _, e0) = try Laser.run(["run", config, "--out", out, "--no-progress"])
        try #require(c0 == 0, "\(e0)")
        let changed = data + "/changed.yaml"
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(
            of: "batch_size: 8", with: "batch_size: 4"
        )
        .write(toFile: changed, atomically: true, encoding: .utf8)
        let (c1, _, e1) = try Laser.run(["run", changed, "--resume", out, "--no-progress"])
        #expect(c1 != 0 && e1.contains("the config differs in batch_size"), "\(e1)")
        try FileHandle(forWritingTo: URL(fileURLWithPath: data + "/input/iteration-1.jsonl")).seekToEnd()
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: data + "/input/iteration-1.jsonl"))
        try h.seekToEnd()
        try h.write(
            contentsOf: Data(
                "{\"id\": \"extra\", \"prompt\": \"p\", \"candidates\": [\"a\", \"b\"], \"reference\": \"a\"}\n".utf8))
        try h.close()
        let (c2, _, e2) = try Laser.run(["run", "--resume", out, "--no-progress"])
        #expect(c2 != 0 && e2.contains("the input of iteration 1 (\(data)/input/iteration-1.jsonl) changed"), "\(e2)")
    }

    /// Items 9 and 10: a stop by signal leaves status.json saying so (and how to resume), exits 130/143;
    /// totals add up across the resume; resuming a finished run changes no file.
    @Test func aSignalStopsCleanlyAndTotalsAddUpAcrossTheResume() throws {
        let (_, config) = try SlowJob.make(ms: 60, iterations: 1, promptsPerTask: 16)
        let out = Laser.temporaryDirectory() + "/run"
        let first = LaserProcess(["run", config, "--out", out, "--no-progress"])
        try first.start()
        let deadline = Date().addingTimeInterval(30)
        while (try? batchFiles(out).count) ?? 0 < 1 && Date() < deadline { usleep(50_000) }
        first.process.interrupt()  // SIGINT, as Ctrl-C
        let (code, _, err) = try first.wait(timeout: 10)
        #expect(code == 130, "\(err)")
        let status =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/status.json")))
            as! [String: Any]
        #expect(status["phase"] as? String == "failed")
        #expect((status["stop_reason"] as? String)?.contains("SIGINT") == true)
        #expect(status["resume_command"] as? String == "laser run --resume \(out)")
        #expect((status["workers"] as? [Any])?.isEmpty == true)
        func summary() throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
                as! [String: Any]
        }
        let before = try summary()
        let wallBefore = ((before["iterations"] as! [[String: Any]])[0]["wall_seconds"] as! NSNumber).doubleValue
        let dispatchedBefore = ((before["counters"] as! [String: Any])["tasks_dispatched"] as! NSNumber).intValue
        #expect(wallBefore > 0 && dispatchedBefore > 0)
        let (c2, _, e2) = try Laser.run(["run", "--resume", out, "--no-progress"])
        try #require(c2 == 0, "\(e2)")
        let after = try summary()
        let wallAfter = ((after["iterations"] as! [[String: Any]])[0]["wall_seconds"] as! NSNumber).doubleValue
        let dispatchedAfter = ((after["counters"] as! [String: Any])["tasks_dispatched"] as! NSNumber).intValue
        #expect(
            wallAfter > wallBefore && dispatchedAfter > dispatchedBefore,
            "wall \(wallBefore) -> \(wallAfter), dispatched \(dispatchedBefore) -> \(dispatchedAfter)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))
        let (c3, _, e3) = try Laser.run(["run", "--resume", out, "--no-progress"])
        #expect(c3 == 0, "\(e3)")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")) == bytes,
            "resuming a finished run rewrote summary.json")
    }

    /// Item 10: a local worker that dies is started again and the run completes.
    @Test func aDeadLocalWorkerIsRestarted() throws {
        let (_, config) = try SlowJob.make(ms: 40, iterations: 1, promptsPerTask: 16)
        let out = Laser.temporaryDirectory() + "/run"
        let run = LaserProcess(["run", config, "--out", out, "--no-progress", "--workers", "1"])
        try run.start()
        defer { run.kill() }
        let deadline = Date().addingTimeInterval(30)
        var killed = false
        while !killed && Date() < deadline {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            p.arguments = ["-KILL", "-f", "id local-1 .*parent-pid \(run.process.processIdentifier)"]
            try p.run()
            p.waitUntilExit()
            killed = p.terminationStatus == 0
            usleep(100_000)
        }
        try #require(killed)
        let (code, _, err) = try run.wait(timeout: 120)
        #expect(code == 0, "\(err)")
        #expect(err.contains("local worker 1 exited") && err.contains("starting it again"), "\(err)")
    }

    /// Polish: endpoints, commands and empty input say what is wrong and what to do.
    @Test func endpointsCommandsAndEmptyInputAreClear() throws {
        let (c1, _, e1) = try Laser.run(["worker", "--connect", "127.0.0.1:5555"])
        #expect(c1 != 0 && e1.contains("write tcp://127.0.0.1:5555"), "\(e1)")
        let (c2, _, e2) = try Laser.run(["worker", "--connect", "tcp://127.0.0.1:99999"])
        #expect(c2 != 0 && e2.contains("not a TCP port"), "\(e2)")
        let (c3, _, e3) = try Laser.run(["stauts"])
        #expect(c3 != 0 && e3.contains("did you mean: laser status"), "\(e3)")
        let dir = Laser.temporaryDirectory()
        try "".write(toFile: dir + "/empty.jsonl", atomically: true, encoding: .utf8)
        try "input: [empty.jsonl]\nreward_models: [{name: l, kind: length}]\nreward: {allow_unrewarded: true}\n".write(
            toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let (c4, o4, e4) = try Laser.run(["run", dir + "/c.yaml", "--out", dir + "/run", "--no-progress"])
        #expect(c4 == 0 && o4.contains("nothing ran: the input has no prompts"), "\(o4) \(e4)")
    }

    /// Item 6: the label reward on input without labels stops at start and says what to do.
    @Test func aRewardThatCanNeverArriveIsRefusedAtStart() throws {
        let dir = Laser.temporaryDirectory()
        try "{\"id\": \"a\", \"prompt\": \"p\", \"candidates\": [\"x\", \"yy\"]}\n".write(
            toFile: dir + "/u.jsonl", atomically: true, encoding: .utf8)
        try "input: [u.jsonl]\nreward_models: [{name: l, kind: length}]\n".write(
            toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let (c1, _, e1) = try Laser.run(["run", dir + "/c.yaml", "--out", dir + "/run", "--no-progress"])
        #expect(c1 != 0 && e1.contains("has a label") && e1.contains("reward.allow_unrewarded"), "\(e1)")
        try "input: [u.jsonl]\nreward_models: [{name: l, kind: length}]\nreward: {allow_unrewarded: true}\n".write(
            toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let (c2, o2, e2) = try Laser.run(["run", dir + "/c.yaml", "--out", dir + "/run", "--no-progress"])
        #expect(c2 == 0 && e2.contains("warning:") && o2.contains("rewarded: 0 of 1"), "\(o2) \(e2)")
    }
}
