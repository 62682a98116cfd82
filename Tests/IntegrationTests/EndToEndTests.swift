import Foundation
import LaserWire
import Testing
import ZeroMQ

/// Real processes over real ZeroMQ sockets on loopback.
@Suite(.serialized) struct EndToEndTests {
    /// Runs `laser coordinator` plus `workers` separate `laser worker` processes on the demo data and
    /// returns the run directory. `meddle` runs against the live coordinator before the workers join.
    func distributedRun(data: String, workers: [[String]], meddle: ((String) throws -> Void)? = nil) throws -> String {
        let out = Laser.temporaryDirectory()
        let coordinator = LaserProcess([
            "coordinator", data + "/config.yaml", "--bind", "tcp://127.0.0.1:*", "--out", out, "--log-level", "info",
        ])
        try coordinator.start()
        defer { coordinator.kill() }
        let endpoint = try coordinator.waitForLine(startingWith: "coordinator listening on ")
            .components(separatedBy: ";")[0]
        // Before any worker joins, so the run cannot have finished yet.
        try meddle?(endpoint)
        var started: [LaserProcess] = []
        defer { started.forEach { $0.kill() } }
        for (i, extra) in workers.enumerated() {
            let w = LaserProcess(["worker", "--connect", endpoint, "--id", "w\(i)", "--give-up-after", "60"] + extra)
            try w.start()
            started.append(w)
        }
        let (code, _, stderr) = try coordinator.wait(timeout: 180)
        #expect(code == 0, "coordinator failed: \(stderr)")
        for w in started {
            let (wcode, _, werr) = try w.wait(timeout: 30)
            #expect(wcode == 0, "worker failed: \(werr)")
        }
        return out
    }

    func demoData(iterations: Int = 2, promptsPerTask: Int = 24) throws -> String {
        let data = Laser.temporaryDirectory()
        let (code, _, err) = try Laser.run([
            "demo-data", "--out", data, "--iterations", "\(iterations)", "--prompts-per-task", "\(promptsPerTask)",
        ])
        try #require(code == 0, "demo-data failed: \(err)")
        return data
    }

    @Test func threeWorkersWriteTheSameBytesAsOne() throws {
        let data = try demoData()
        let one = try distributedRun(data: data, workers: [["--slots", "1"]])
        let three = try distributedRun(data: data, workers: [["--slots", "1"], ["--slots", "3"], ["--slots", "2"]])
        let a = try batchFiles(one), b = try batchFiles(three)
        #expect(a.count == 2 * 9)  // 2 iterations x (72 prompts / batch size 8)
        #expect(a.keys.sorted() == b.keys.sorted())
        for key in a.keys.sorted() { #expect(a[key] == b[key], "\(key) differs") }
        // Pairs are TRL-format JSON lines with provenance.
        let line = try #require(
            String(decoding: a["0001/batch-0001.jsonl"]!, as: UTF8.self).split(separator: "\n").first)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        for key in [
            "prompt", "chosen", "rejected", "chosen_score", "rejected_score", "rm", "prompt_id", "iteration", "batch",
        ] {
            #expect(object[key] != nil, "missing \(key)")
        }
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: three + "/summary.json")))
            as! [String: Any]
        #expect((summary["iterations"] as? [Any])?.count == 2)
    }

    @Test func garbageAndStrangersDoNotHurtTheRun() throws {
        let data = try demoData(iterations: 1)
        let clean = try distributedRun(data: data, workers: [[]])
        let disturbed = try distributedRun(data: data, workers: [[]]) { endpoint in
            let ctx = try ZMQContext()
            let rogue = try ZMQSocket(ctx, type: .dealer)
            try rogue.connect(endpoint)
            try rogue.send([[0xDE, 0xAD, 0xBE, 0xEF]])  // not protobuf
            try rogue.send([[1, 2], [3]])  // two frames
            try rogue.send([
                WireCodec.encode(
                    .scoreResult(ScoreResult(taskID: 1, attempt: 1, outcome: .success([[.nan]]), elapsedMicros: 0)))
            ])
            // An unknown peer is told to say Hello.
            _ = try ZMQPoller.poll([(rogue, .readable)], timeoutMs: 5000)
            let reply = try rogue.receive(nonBlocking: true).map { try WireCodec.decode($0[0]) }
            #expect(reply == .disconnect(reason: "unknown peer: send Hello first"))
            rogue.close()
            // A worker offering an RM the run does not define is rejected and exits non-zero.
            let (code, _, err) = try Laser.run([
                "worker", "--connect", endpoint, "--rm", "gpt4-judge", "--give-up-after", "20",
            ])
            #expect(code != 0)
            #expect(err.contains("gpt4-judge"), "\(err)")
        }
        #expect(try batchFiles(clean) == batchFiles(disturbed))
    }

    @Test func theDemoRunsWithNoArguments() throws {
        let dir = Laser.temporaryDirectory()
        let p = LaserProcess(["run", "--no-progress"])
        p.process.currentDirectoryURL = URL(fileURLWithPath: dir)
        try p.start()
        let (code, stdout, stderr) = try p.wait(timeout: 300)
        #expect(code == 0, "\(stderr)")
        #expect(stdout.contains("RM chosen per task family"))
        let runs = try FileManager.default.contentsOfDirectory(atPath: dir + "/runs")
        #expect(runs.count == 1)
        #expect(FileManager.default.fileExists(atPath: dir + "/runs/" + runs[0] + "/summary.json"))
    }

    /// TRL's conversational format end to end: the demo's input with each prompt as one user message
    /// gives the same pairs, scores and bandit decisions as the plain input, written back as messages.
    /// The copied folder also shows that demo-data's config.yaml names its inputs relative to itself.
    @Test func conversationalInputGivesThePlainRunsPairsAsMessages() throws {
        let plain = try demoData(iterations: 1, promptsPerTask: 8)
        let config = try String(contentsOfFile: plain + "/config.yaml", encoding: .utf8)
        #expect(config.contains("input/iteration-1.jsonl") && !config.contains(plain), "\(config)")
        let conversational = Laser.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: conversational + "/input", withIntermediateDirectories: true)
        try config.write(toFile: conversational + "/config.yaml", atomically: true, encoding: .utf8)
        let lines = try String(contentsOfFile: plain + "/input/iteration-1.jsonl", encoding: .utf8).split(
            separator: "\n"
        ).map { line in
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            o["prompt"] = [["role": "user", "content": o["prompt"] as! String]]
            return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        try (lines.joined(separator: "\n") + "\n").write(
            toFile: conversational + "/input/iteration-1.jsonl", atomically: true, encoding: .utf8)
        var batches: [[[String: Any]]] = []
        for data in [plain, conversational] {
            let (code, _, stderr) = try Laser.run(
                ["run", data + "/config.yaml", "--out", data + "/run", "--no-progress"], timeout: 180)
            try #require(code == 0, "\(stderr)")
            let folder = data + "/run/iterations/0001"
            let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
            batches.append(
                try files.flatMap { file in
                    try String(contentsOfFile: folder + "/" + file, encoding: .utf8).split(separator: "\n").map {
                        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
                    }
                })
        }
        try #require(batches[0].count == batches[1].count && !batches[0].isEmpty)
        func message(_ value: Any?, role: String) -> String? {
            guard let list = value as? [[String: String]], list.count == 1, list[0]["role"] == role else { return nil }
            return list[0]["content"]
        }
        for (p, c) in zip(batches[0], batches[1]) {
            #expect(message(c["prompt"], role: "user") == p["prompt"] as? String)
            #expect(message(c["chosen"], role: "assistant") == p["chosen"] as? String)
            #expect(message(c["rejected"], role: "assistant") == p["rejected"] as? String)
            for key in ["chosen_score", "rejected_score", "rm", "prompt_id", "iteration", "batch"] {
                #expect((p[key] as? NSObject) == (c[key] as? NSObject), "\(key)")
            }
        }
        let selections = try [plain, conversational].map {
            try String(contentsOfFile: $0 + "/run/selections.jsonl", encoding: .utf8)
        }
        #expect(selections[0] == selections[1])
    }

    /// `--compare` runs each strategy in a folder of its own; the top folder holds only those (no empty
    /// iterations/ of a run that never happened).
    @Test func compareWritesOneRunPerStrategyAndNothingElse() throws {
        let data = try demoData(iterations: 1, promptsPerTask: 4)
        let out = data + "/compare"
        let (code, stdout, stderr) = try Laser.run(
            ["run", data + "/config.yaml", "--compare", "--out", out, "--no-progress"], timeout: 300)
        try #require(code == 0, "\(stderr)")
        #expect(stdout.contains("fixed:answer-match"))
        let top = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0 != ".lock" }.sorted()
        #expect(!top.contains("iterations"), "\(top)")
        #expect(top.contains("linucb") && top.contains("fixed-length"), "\(top)")
        #expect(FileManager.default.fileExists(atPath: out + "/linucb/iterations/0001"))
    }

    @Test func badInputFailsWithFileAndLineAndWritesNoBatch() throws {
        let dir = Laser.temporaryDirectory()
        try "{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n{\"prompt\": \"q\", \"candidates\": [\"only one\"]}\n"
            .write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        try "input: in.jsonl\nreward_models: [{kind: length}]\nworkers: {local: 1}\n"
            .write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        let (code, _, stderr) = try Laser.run(["run", dir + "/config.yaml", "--out", dir + "/run", "--no-progress"])
        #expect(code != 0)
        #expect(stderr.contains("in.jsonl:2: prompt 'line-2' has 1 candidate(s)"), "\(stderr)")
        // Found before anything is made (issue 14 item 7): no run directory to clean up or to trap a retry.
        #expect(!FileManager.default.fileExists(atPath: dir + "/run"))
        #expect(!stderr.contains("Fatal error"))
    }

    @Test func unknownStrategyInConfigIsAClearError() throws {
        let dir = Laser.temporaryDirectory()
        try "input: in.jsonl\nstrategy: ucb9\nreward_models: [{kind: length}]\n".write(
            toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let (code, _, stderr) = try Laser.run(["run", dir + "/c.yaml", "--out", dir + "/run"])
        #expect(code != 0)
        #expect(stderr.contains("c.yaml: strategy 'ucb9' is not a strategy"), "\(stderr)")
    }
}
