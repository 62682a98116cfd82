import Foundation
import Testing

/// The Python trainer client (clients/python, pyzmq + protobuf) against a real coordinator.
@Suite(.serialized) struct PythonClientTests {
    static var clientDirectory: String {
        // Tests run from the package root (swift test); fall back to this file's location.
        let fromCwd = FileManager.default.currentDirectoryPath + "/clients/python"
        if FileManager.default.fileExists(atPath: fromCwd + "/train_dpo.py") { return fromCwd }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../clients/python"
        ).standardized.path
    }

    /// Each reward source a trainer feeds (docs/trainer.md#reward-sources), with the real Python client:
    /// every batch with pairs gets exactly one accepted report, and the reward is what the source says.
    @Test(arguments: ["trainer-loss", "prediction-gain", "probe-progress"])
    func theDPOExampleTrainsAndEveryLossIsTheBanditsReward(source: String) throws {
        let config = try SlowJob.make(
            ms: 0, iterations: 2, promptsPerTask: 16,
            extra:
                "reward: {source: \(source), probe_size: 16}\nbandit: {warm_start: round-robin, ties: seeded, first_reward: neutral}"
        ).config
        let out = Laser.temporaryDirectory() + "/py"
        let coordinator = LaserProcess([
            "coordinator", config, "--bind", "tcp://127.0.0.1:*", "--out", out, "--log-level", "warning",
        ])
        try coordinator.start()
        defer { coordinator.kill() }
        let endpoint = try coordinator.waitForLine(startingWith: "coordinator listening on ").components(
            separatedBy: ";")[0]
        let worker = LaserProcess(["worker", "--connect", endpoint, "--give-up-after", "60"])
        try worker.start()
        defer { worker.kill() }

        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = [
            "python3", Self.clientDirectory + "/train_dpo.py", "--connect", endpoint, "--give-up-after", "30",
        ]
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
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
            as! [String: Any]
        let counters = summary["counters"] as! [String: Int]
        let nonEmpty = try batchFiles(out).values.filter { !$0.isEmpty }.count
        let steps = stdout.split(separator: "\n").filter { $0.hasPrefix("batch ") }.count
        #expect(counters["losses_accepted"] == nonEmpty, "\(counters)")
        #expect(steps == nonEmpty)
        // selections.jsonl carries each loss and the reward derived from it.
        let selections = try String(contentsOfFile: out + "/selections.jsonl", encoding: .utf8)
        #expect(selections.split(separator: "\n").filter { $0.contains("\"loss\":") }.count == nonEmpty)
        // The raw reward: -loss for the paper's source; a decrease for the other two (the stand-in's step
        // lowers the loss on the batch it trained on, so prediction gains are positive).
        let rows = selections.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        .filter { $0["loss"] != nil }
        for row in rows {
            let loss = (row["loss"] as! NSNumber).doubleValue, raw = (row["raw_reward"] as! NSNumber).doubleValue
            switch source {
            case "trainer-loss": #expect(abs(raw + loss) <= 1e-12 * abs(loss))  // JSONSerialization may differ in the last digit
            case "prediction-gain": #expect(raw > 0 && raw < loss, "\(row)")
            default: #expect(raw != -loss, "\(row)")
            }
        }
        if source == "probe-progress" {
            let probe = try #require(summary["probe"] as? [String: Any])
            #expect((probe["prompts"] as? Int) == 16 && ((probe["pairs"] as? Int) ?? 0) > 0, "\(probe)")
        } else {
            #expect(summary["probe"] == nil)
        }
    }
}
