import Foundation
import Testing

/// The Python trainer client (clients/python, pyzmq + protobuf) against a real coordinator.
@Suite(.serialized) struct PythonClientTests {
    static var clientDirectory: String {
        // Tests run from the package root (swift test); fall back to this file's location.
        let fromCwd = FileManager.default.currentDirectoryPath + "/clients/python"
        if FileManager.default.fileExists(atPath: fromCwd + "/train_dpo.py") { return fromCwd }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../clients/python").standardized.path
    }

    @Test func theDPOExampleTrainsAndEveryLossIsTheBanditsReward() throws {
        let config = try SlowJob.make(ms: 0, iterations: 2, promptsPerTask: 16, extra: "reward: {source: trainer-loss}").config
        let out = Laser.temporaryDirectory() + "/py"
        let coordinator = LaserProcess(["coordinator", config, "--bind", "tcp://127.0.0.1:*", "--out", out, "--log-level", "warning"])
        try coordinator.start()
        defer { coordinator.kill() }
        let endpoint = try coordinator.waitForLine(startingWith: "coordinator listening on ").components(separatedBy: ";")[0]
        let worker = LaserProcess(["worker", "--connect", endpoint, "--give-up-after", "60"])
        try worker.start()
        defer { worker.kill() }

        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", Self.clientDirectory + "/train_dpo.py", "--connect", endpoint, "--give-up-after", "30"]
        let out1 = Pipe(), err1 = Pipe()
        python.standardOutput = out1
        python.standardError = err1
        try python.run()
        let stdout = String(decoding: out1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        #expect(python.terminationStatus == 0, "python client failed: \(stderr)")
        #expect(stdout.contains("done: "), "\(stdout)")

        let (code, _, cerr) = try coordinator.wait(timeout: 60)
        #expect(code == 0, "\(cerr)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as! [String: Any]
        let counters = summary["counters"] as! [String: Int]
        let nonEmpty = try batchFiles(out).values.filter { !$0.isEmpty }.count
        let steps = stdout.split(separator: "\n").filter { $0.hasPrefix("batch ") }.count
        #expect(counters["losses_accepted"] == nonEmpty, "\(counters)")
        #expect(steps == nonEmpty)
        // selections.jsonl carries each loss and the reward derived from it.
        let selections = try String(contentsOfFile: out + "/selections.jsonl", encoding: .utf8)
        #expect(selections.split(separator: "\n").filter { $0.contains("\"loss\":") }.count == nonEmpty)
    }
}
