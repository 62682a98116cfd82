import Foundation
import Testing

/// Starts the real `laser` executable as child processes for end-to-end tests.
enum Laser {
    /// The `laser` binary next to the test bundle (swift build puts both in the same folder).
    static var binary: String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("laser")
                .path,
            FileManager.default.currentDirectoryPath + "/.build/debug/laser",
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "laser-it-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs `laser ARGS` to completion and returns (exit code, stdout, stderr).
    @discardableResult
    static func run(_ args: [String], timeout: Double = 120) throws -> (Int32, String, String) {
        let p = LaserProcess(args)
        try p.start()
        return try p.wait(timeout: timeout)
    }
}

/// One child process with its stdout and stderr captured (read on background threads so a full pipe
/// never blocks the child).
final class LaserProcess: @unchecked Sendable {
    let process = Process()
    private let out = Pipe(), err = Pipe()
    private let lock = NSLock()
    private var stdoutText = "", stderrText = ""
    private let group = DispatchGroup()

    init(_ args: [String]) {
        process.executableURL = URL(fileURLWithPath: Laser.binary)
        process.arguments = args
        process.standardOutput = out
        process.standardError = err
    }

    func start() throws {
        try process.run()
        for (pipe, isOut) in [(out, true), (err, false)] {
            group.enter()
            // A thread of its own, not a Dispatch worker: under a full parallel test run the shared
            // pool can be busy long enough for output to be missed.
            Thread {
                while true {
                    let data = pipe.fileHandleForReading.availableData
                    if data.isEmpty { break }
                    self.lock.lock()
                    if isOut {
                        self.stdoutText += String(decoding: data, as: UTF8.self)
                    } else {
                        self.stderrText += String(decoding: data, as: UTF8.self)
                    }
                    self.lock.unlock()
                }
                self.group.leave()
            }.start()
        }
    }

    var stdout: String { lock.lock(); defer { lock.unlock() }; return stdoutText }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return stderrText }

    /// Waits until stdout contains a line starting with `prefix`; returns the rest of that line.
    func waitForLine(startingWith prefix: String, timeout: Double = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(line.dropFirst(prefix.count))
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw HarnessError("no line starting with '\(prefix)' (stdout: \(stdout) stderr: \(stderr))")
    }

    func wait(timeout: Double) throws -> (Int32, String, String) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw HarnessError("laser \(process.arguments ?? []) did not finish within \(timeout) s; stderr: \(stderr)")
        }
        process.waitUntilExit()
        _ = group.wait(timeout: .now() + 30)
        return (process.terminationStatus, stdout, stderr)
    }

    /// SIGTERM, then SIGKILL if the process has not exited within 3 s (a child that inherited a blocked
    /// SIGTERM must not hang the test run).
    func kill() {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Every batch file of a run directory, by relative path.
func batchFiles(_ runDirectory: String) throws -> [String: Data] {
    var out: [String: Data] = [:]
    let root = runDirectory + "/iterations"
    // iterations/ appears with the first batch file; before that a run has no batches.
    guard FileManager.default.fileExists(atPath: root) else { return out }
    for it in try FileManager.default.contentsOfDirectory(atPath: root).sorted() {
        // Hidden names are temp files of a write in progress, not batches.
        for f in try FileManager.default.contentsOfDirectory(atPath: root + "/" + it).sorted() where !f.hasPrefix(".") {
            out[it + "/" + f] = try Data(contentsOf: URL(fileURLWithPath: root + "/" + it + "/" + f))
        }
    }
    return out
}

/// Demo data plus a config whose RMs are wrapped in `simulated-latency` (a simulation: it sleeps
/// `ms` per prompt), so a run lasts long enough to be disturbed.
enum SlowJob {
    static func make(
        ms: Int, iterations: Int = 3, promptsPerTask: Int = 16, extra: String = ""
    ) throws -> (data: String, config: String) {
        let data = Laser.temporaryDirectory()
        let (code, _, err) = try Laser.run([
            "demo-data", "--out", data, "--iterations", "\(iterations)", "--prompts-per-task", "\(promptsPerTask)",
        ])
        guard code == 0 else { throw HarnessError("demo-data failed: \(err)") }
        let inputs = (1...iterations).map { "  - \(data)/input/iteration-\($0).jsonl" }.joined(separator: "\n")
        let rms = ["length", "self-consistency", "arithmetic-check", "instruction-following", "answer-match"].map {
            "  - {name: \($0), kind: simulated-latency, params: {base: \($0), ms: \(ms)}}"
        }.joined(separator: "\n")
        let config = """
            input:
            \(inputs)
            seed: 5
            linucb: {alpha: 2.0}
            batch_size: 8
            shard_size: 2
            context: {dimension: 128}
            reward_models:
            \(rms)
            network: {heartbeat_ms: 200, liveness: 5, lease_ms: 20000}
            workers: {local: 2, slots: 2}
            \(extra)
            """
        let path = data + "/slow-\(ms).yaml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        return (data, path)
    }
}
