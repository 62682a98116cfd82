import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LaserRewardModels

/// Paths and helpers shared by the backend tests (real child processes, real HTTP servers).
enum Backends {
    /// The repository root (this file is Tests/LaserRewardModelsTests/BackendTestSupport.swift).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static let subprocessExample = repositoryRoot + "/examples/rm-servers/subprocess_rm.py"
    static let httpExample = repositoryRoot + "/examples/rm-servers/http_rm.py"

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "laser-backend-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Collects a backend's log lines (instead of the test's stderr).
    final class LogSink: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        var log: BackendLog {
            { [self] line in
                lock.lock(); lines.append(line); lock.unlock()
            }
        }
        var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
    }

    /// The example RMs' placeholder score, in Swift: the share of the prompt's distinct
    /// (whitespace-separated, lower-cased) words the response repeats, minus 0.001 per character,
    /// rounded to 6 decimals. ASCII inputs only (Python's `lower` and `split` agree with this there).
    static func placeholderScore(prompt: String, response: String) -> Double {
        let p = Set(prompt.lowercased().split(whereSeparator: \.isWhitespace))
        let r = Set(response.lowercased().split(whereSeparator: \.isWhitespace))
        let overlap = Double(p.intersection(r).count) / Double(1 + p.count)
        return ((overlap - 0.001 * Double(response.count)) * 1e6).rounded() / 1e6
    }

    static let requests = [
        ScoringRequest(
            promptID: "q1", prompt: "What is two plus two?", candidates: ["two plus two is 4", "5", "What is it?"],
            reference: "4"),
        ScoringRequest(promptID: "q2", prompt: "Name a colour", candidates: ["red", "a colour: blue"]),
    ]
}

/// A child process (a Python server) with its stdout read line by line.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    private let out = Pipe()
    let url: String

    /// Starts `python3 SCRIPT ARGS --port 0` and waits for its "... listening on URL" line.
    init(script: String, arguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--port", "0"] + arguments
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var buffer = Data()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            if let text = String(data: buffer, encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.contains("listening on ") })
            {
                url = String(line.components(separatedBy: "listening on ")[1]).trimmingCharacters(in: .whitespaces)
                return
            }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw RewardModelError("\(script) did not say where it listens: \(String(decoding: buffer, as: UTF8.self))")
    }

    /// SIGKILL: a child of a test thread inherits its blocked signals, SIGTERM included.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// GET a path, the body as text.
    func get(_ path: String) throws -> String {
        try Self.fetch(url + path)
    }

    static func fetch(_ url: String) throws -> String {
        try fetch(URLRequest(url: URL(string: url)!))
    }

    /// A request's body as text (10 s at most).
    static func fetch(_ request: URLRequest) throws -> String {
        final class Box: @unchecked Sendable { var text: String?; var error: Error? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, _, error in
            box.text = data.map { String(decoding: $0, as: UTF8.self) }
            box.error = error
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 10) == .success, let text = box.text else {
            throw RewardModelError(
                "\(request.httpMethod ?? "GET") \(request.url?.absoluteString ?? ""): \(box.error.map { "\($0)" } ?? "no answer")"
            )
        }
        return text
    }
}
