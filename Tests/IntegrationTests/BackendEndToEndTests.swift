import Foundation
import Testing

/// `laser run` with RMs in other processes (the example subprocess script and HTTP server), and a
/// worker whose RM call outlasts the coordinator's liveness window.
@Suite(.serialized) struct BackendEndToEndTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// `python3 examples/rm-servers/http_rm.py --port 0`, stopped with SIGKILL (a child of a test
    /// thread inherits its blocked signals, SIGTERM included).
    final class ExampleServer {
        let process = Process()
        private let out = Pipe()
        let url: String

        init() throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "python3", BackendEndToEndTests.repositoryRoot + "/examples/rm-servers/http_rm.py", "--port", "0",
            ]
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var text = ""
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline, !text.contains("\n") {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            guard let range = text.range(of: "listening on ") else {
                kill(process.processIdentifier, SIGKILL)
                throw HarnessError("http_rm.py did not start: \(text)")
            }
            url = String(text[range.upperBound...].prefix { !$0.isNewline })
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    func processes(matching text: String) -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["pgrep", "-f", text]
        let out = Pipe()
        p.standardOutput = out
        try? p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
            .map(String.init)
    }

    @Test func runWithSubprocessAndHTTPRMsCompletesAndRepeatsByteForByte() throws {
        let data = Laser.temporaryDirectory()
        let (code, _, err) = try Laser.run(["demo-data", "--out", data, "--iterations", "1", "--prompts-per-task", "8"])
        try #require(code == 0, "demo-data failed: \(err)")
        let server = try ExampleServer()
        defer { server.stop() }
        let mark = "laser-e2e-" + UUID().uuidString  // an argument the script ignores: finds its processes
        let script = Self.repositoryRoot + "/examples/rm-servers/subprocess_rm.py"
        try """
        input: input/iteration-1.jsonl
        strategy: sequential          # batch t uses RM t mod 4: every backend scores a batch
        batch_size: 6
        shard_size: 2
        reward_models:
          - name: sub
            kind: subprocess
            params: {command: [python3, "\(script)", "\(mark)"], timeout_ms: 20000, env: {LASER_EXAMPLE: 1}}
          - {name: rlhf, kind: http, params: {url: "\(server.url)/get_reward", api: openrlhf, batch_size: 4}}
          - {name: vllm, kind: http, params: {url: "\(server.url)/v1/score", api: vllm-score}}
          - {name: am, kind: answer-match}
        workers: {local: 2, slots: 2}
        """.write(toFile: data + "/backends.yaml", atomically: true, encoding: .utf8)
        var runs: [String] = []
        for _ in 0..<2 {
            let out = data + "/run-\(runs.count + 1)"
            let (code, _, stderr) = try Laser.run(
                ["run", data + "/backends.yaml", "--out", out, "--no-progress"], timeout: 120)
            #expect(code == 0, "\(stderr.suffix(3000))")
            runs.append(out)
        }
        let first = try batchFiles(runs[0]), second = try batchFiles(runs[1])
        #expect(first.count == 4)  // 24 prompts / 6
        #expect(first == second, "the same batch files twice")
        let selections = try String(contentsOfFile: runs[0] + "/selections.jsonl", encoding: .utf8)
        for rm in ["sub", "rlhf", "vllm", "am"] {
            #expect(selections.contains("\"rm\":\"\(rm)\""), "\(rm) ranked a batch: \(selections)")
        }
        let logs = try FileManager.default.contentsOfDirectory(atPath: runs[0] + "/logs")
            .map { try String(contentsOfFile: runs[0] + "/logs/" + $0, encoding: .utf8) }.joined()
        #expect(logs.contains("subprocess_rm: ready"), "the child's stderr is in the worker log: \(logs.suffix(2000))")
        #expect(processes(matching: mark).isEmpty, "no RM child outlives its worker")
    }

    /// Scoring runs on threads: a worker whose RM call takes 3x the coordinator's liveness window
    /// keeps heartbeating, so it is never declared dead and no task is retried.
    @Test func aSlowRMCallDoesNotStopHeartbeats() throws {
        let dir = Laser.temporaryDirectory()
        try """
        {"id": "a", "prompt": "p", "candidates": ["x", "yy"]}
        {"id": "b", "prompt": "q", "candidates": ["x", "yy"]}
        """.write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        // Liveness window: 150 ms x 4 = 600 ms (wide enough for a loaded CI machine); one task (one
        // prompt) takes 1800 ms. One attempt only: a worker declared dead would fail the run.
        try """
        input: in.jsonl
        strategy: fixed
        fixed_rm: slow
        batch_size: 2
        shard_size: 1
        reward_models: [{name: slow, kind: simulated-latency, params: {base: length, ms: 1800}}]
        network: {heartbeat_ms: 150, liveness: 4, lease_ms: 30000, max_attempts: 1}
        workers: {local: 1, slots: 2}
        """.write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        let (code, _, stderr) = try Laser.run(
            ["run", dir + "/config.yaml", "--out", dir + "/run", "--no-progress"], timeout: 60)
        #expect(code == 0, "\(stderr.suffix(3000))")
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/run/summary.json")))
            as! [String: Any]
        let counters = summary["counters"] as! [String: Int]
        #expect(counters["workers_lost"] == 0 && counters["tasks_retried"] == 0, "\(counters)")
        #expect(counters["tasks_dispatched"] == 2, "\(counters)")
    }
}
