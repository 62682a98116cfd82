import Foundation
import Testing

/// On-policy iterations (docs/on-policy.md): `input: {dir, pattern, iterations}` makes the coordinator
/// wait for each iteration's file, complete by its `.done` marker, with bandit state, normaliser and
/// journal carried across; resume works while it waits.
@Suite struct OnPolicyTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/data").path
    let sources = [
        1: examples + "/iteration-1.jsonl", 2: examples + "/iteration-2.jsonl", 3: examples + "/iteration-1.jsonl",
    ]

    func config(_ dir: String, input: String) throws -> String {
        let path = dir + "/config.yaml"
        try """
        \(input)
        seed: 11
        batch_size: 8
        reward_models:
          - {name: length, kind: length, params: {prefer: shorter}}
          - {name: answer-match, kind: answer-match}
          - {name: self-consistency, kind: self-consistency}
        workers: {local: 2}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func write(_ n: Int, into dir: String, marker: Bool = true) throws {
        try FileManager.default.copyItem(atPath: sources[n]!, toPath: dir + "/data/iteration-\(n).jsonl")
        if marker { _ = FileManager.default.createFile(atPath: dir + "/data/iteration-\(n).jsonl.done", contents: nil) }
    }

    func status(_ run: String) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: run + "/status.json") else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    func waitUntilWaiting(for n: Int, _ run: String) -> Bool {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (status(run)["waiting_for_input"] as? String)?.hasPrefix("iteration \(n) input") == true { return true }
            usleep(50_000)
        }
        return false
    }

    /// The batches of a run given all three files up front (the reference).
    func reference() throws -> [String: Data] {
        let dir = Laser.temporaryDirectory()
        let list = "input:\n" + (1...3).map { "  - \(sources[$0]!)" }.joined(separator: "\n")
        let (code, _, err) = try Laser.run([
            "run", try config(dir, input: list), "--out", dir + "/run", "--no-progress",
        ])
        try #require(code == 0, "\(err)")
        return try batchFiles(dir + "/run")
    }

    @Test func theRunWaitsForEachFileAndItsMarkerAndGivesTheSameBatchesAsAllFilesUpFront() throws {
        let dir = Laser.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        try write(1, into: dir)
        let cfg = try config(dir, input: #"input: {dir: data, pattern: "iteration-{n}.jsonl", iterations: 3}"#)
        let run = LaserProcess(["run", cfg, "--out", dir + "/run", "--no-progress"])
        try run.start()
        defer { run.kill() }
        #expect(waitUntilWaiting(for: 2, dir + "/run"))
        try write(2, into: dir, marker: false)  // the file without its marker is not read yet
        usleep(500_000)
        #expect(waitUntilWaiting(for: 2, dir + "/run"), "a file without its .done marker may be half written")
        let (_, statusText, _) = try Laser.run(["status", dir + "/run"])
        #expect(
            statusText.contains("waiting for iteration 2 input (\(dir)/data/iteration-2.jsonl and its marker"),
            "\(statusText)")
        _ = FileManager.default.createFile(atPath: dir + "/data/iteration-2.jsonl.done", contents: nil)
        #expect(waitUntilWaiting(for: 3, dir + "/run"))
        try write(3, into: dir)
        let (code, _, err) = try run.wait(timeout: 60)
        try #require(code == 0, "\(err)")
        #expect(
            try batchFiles(dir + "/run") == reference(), "bandit state, normaliser and journal carry across the waits")
    }

    @Test func aCoordinatorKilledWhileWaitingResumesAndWaitsAgain() throws {
        let dir = Laser.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        try write(1, into: dir)
        let cfg = try config(dir, input: #"input: {dir: data, pattern: "iteration-{n}.jsonl", iterations: 3}"#)
        let first = LaserProcess(["run", cfg, "--out", dir + "/run", "--no-progress"])
        try first.start()
        #expect(waitUntilWaiting(for: 2, dir + "/run"))
        kill(first.process.processIdentifier, SIGKILL)
        _ = try? first.wait(timeout: 10)
        let second = LaserProcess(["run", "--resume", dir + "/run", "--no-progress"])
        try second.start()
        defer { second.kill() }
        try? FileManager.default.removeItem(atPath: dir + "/run/status.json")
        #expect(waitUntilWaiting(for: 2, dir + "/run"), "the resumed run waits for the same iteration")
        try write(2, into: dir)
        try write(3, into: dir)
        let (code, _, err) = try second.wait(timeout: 60)
        try #require(code == 0, "\(err)")
        #expect(try batchFiles(dir + "/run") == reference(), "nothing lost or duplicated across the kill")
    }

    @Test func aWaitThatTimesOutStopsTheRunSayingWhatToDoAndTheResumeFinishes() throws {
        let dir = Laser.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        try write(1, into: dir)
        let cfg = try config(
            dir, input: #"input: {dir: data, pattern: "iteration-{n}.jsonl", iterations: 2, wait_timeout_s: 1}"#)
        let (code, _, err) = try Laser.run(["run", cfg, "--out", dir + "/run", "--no-progress"])
        #expect(code != 0)
        #expect(
            err.contains("waited 1 s (input.wait_timeout_s) for iteration 2 input")
                && err.contains("laser run --resume \(dir)/run"), "\(err)")
        try write(2, into: dir)
        let (c2, _, e2) = try Laser.run(["run", "--resume", dir + "/run", "--no-progress"])
        #expect(c2 == 0, "\(e2)")
        #expect(try batchFiles(dir + "/run").keys.contains { $0.hasPrefix("0002/") })
    }

    @Test func patternConfigsAreValidated() throws {
        let dir = Laser.temporaryDirectory()
        func message(_ input: String) throws -> String {
            let (_, out, err) = try Laser.run(["validate", try config(dir, input: input)])
            return out + err
        }
        #expect(
            try message(#"input: {dir: data, pattern: "iteration.jsonl", iterations: 2}"#).contains(
                "must be a file name with {n}"))
        #expect(try message(#"input: {dir: data, pattern: "it-{n}.jsonl"}"#).contains("iterations"))
        #expect(
            try message(#"input: {dir: data, pattern: "it-{n}.jsonl", iterations: 2, ready: maybe}"#).contains(
                "'maybe' is not one of done-file, exists"))
        #expect(try message(#"input: {dir: data, pattern: "it-{n}.jsonl", iterations: 2, wait: 3}"#).contains("wait"))
    }
}
