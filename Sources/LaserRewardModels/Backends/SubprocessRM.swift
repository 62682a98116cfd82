import LaserJSON
import Foundation

/// A reward model in a child process of the worker (typically a Python script with a model on a
/// GPU), spoken to in JSON lines over its stdin and stdout. The protocol is in docs/rm-backends.md:
///
///     -> {"id": 7, "prompts": [{"prompt_id": "q1", "prompt": "...", "candidates": ["a", "b"], "reference": "42"}]}
///     <- {"id": 7, "scores": [[0.3, -1.2]]}          or  {"id": 7, "error": "CUDA out of memory"}
///
/// - The child is started on first use and kept; its stderr goes to the worker's log.
/// - A reply that is not JSON, has another id, or not exactly one finite number per candidate
///   fails the request and the child is stopped (the stream can no longer be trusted); the next
///   request starts a fresh one. An `error` reply fails the request and keeps the child.
/// - A child that exits during a request fails it with its exit status and last stderr lines; one
///   that exited while idle is restarted silently (logged).
/// - A request without a reply within `timeout_ms` fails; the child's process group gets SIGTERM,
///   then SIGKILL after `kill_grace_ms`.
///
/// Thread safety: a pool of at most `processes` children (default 1); each request has one child
/// to itself, and requests beyond that wait for a free child. One child per GPU model is the usual
/// choice: two threads then share it in turn rather than loading the model twice.
public final class SubprocessRM: RewardModel, @unchecked Sendable {  // its pool of children is behind `condition`
    public let name: String
    /// The command: argv (no shell) or `["/bin/sh", "-c", line]`.
    public let argv: [String]
    public let timeoutMs: Int
    public let killGraceMs: Int
    public let maxProcesses: Int
    public let workdir: String?
    /// Variables added to (or replacing) the worker's environment for the child.
    public let extraEnvironment: [String: String]
    /// Largest reply line accepted.
    public var maxReplyBytes = 64 << 20

    private let log: BackendLog
    private let condition = NSCondition()
    private var idle: [ChildProcess] = []
    private var live: [ObjectIdentifier: ChildProcess] = [:]
    private var checkedOut = 0
    private var closed = false
    private var nextRequestID: UInt64 = 1

    public init(
        name: String, argv: [String], timeoutMs: Int = 60_000, killGraceMs: Int = 2_000, processes: Int = 1,
        workdir: String? = nil, environment: [String: String] = [:], log: @escaping BackendLog = standardErrorLog
    ) {
        precondition(!argv.isEmpty && timeoutMs > 0 && processes > 0 && killGraceMs >= 0)
        self.name = name
        self.argv = argv
        self.timeoutMs = timeoutMs
        self.killGraceMs = killGraceMs
        self.maxProcesses = processes
        self.workdir = workdir
        self.extraEnvironment = environment
        self.log = log
    }

    /// Builds the RM from config params: `command` (required), `timeout_ms`, `kill_grace_ms`,
    /// `processes`, `workdir`, `env`. Starts nothing.
    public convenience init(name: String, params: [String: String], log: @escaping BackendLog = standardErrorLog) throws
    {
        var reader = ParamReader(rm: name, kind: "subprocess", params: params)
        let command = try reader.requiredString(
            "command", expected: "a shell command line, or a list (JSON array) of program and arguments")
        let argv: [String]
        if command.hasPrefix("[") {
            guard case .array(let items)? = try? JSONValue.parse(command), !items.isEmpty,
                case let strings = items.compactMap({ if case .string(let s) = $0 { return s } else { return nil } }),
                strings.count == items.count, !strings[0].isEmpty
            else {
                throw reader.invalid(
                    "command", command, expected: "a non-empty list of strings (program and arguments)")
            }
            argv = strings
        } else {
            argv = ["/bin/sh", "-c", command]
        }
        let timeout = try reader.integer(
            "timeout_ms", default: 60_000, range: 1...86_400_000, expected: "milliseconds, 1 to 86400000")
        let grace = try reader.integer(
            "kill_grace_ms", default: 2_000, range: 0...600_000, expected: "milliseconds, 0 to 600000")
        let processes = try reader.integer(
            "processes", default: 1, range: 1...1024, expected: "a number of child processes, 1 to 1024")
        let workdir = reader.string("workdir").flatMap { $0.isEmpty ? nil : $0 }
        var environment: [String: String] = [:]
        if let text = reader.string("env"), !text.isEmpty {
            guard let members = (try? JSONValue.parse(text))?.members else {
                throw reader.invalid("env", text, expected: "a mapping of variable names to values")
            }
            for (key, value) in members {
                switch value {
                case .string(let s): environment[key] = s
                case .number(let literal, _): environment[key] = literal  // as written: 8 stays "8", 0.5 "0.5"
                case .bool(let b): environment[key] = b ? "true" : "false"
                default: throw reader.invalid("env", text, expected: "a mapping of variable names to strings")
                }
                guard !key.isEmpty, !key.contains("=") else {
                    throw reader.invalid("env", text, expected: "variable names without '='")
                }
            }
        }
        try reader.rejectUnused()
        self.init(
            name: name, argv: argv, timeoutMs: timeout, killGraceMs: grace, processes: processes,
            workdir: workdir, environment: environment, log: log)
    }

    deinit { close() }

    /// How the command reads in messages.
    private var commandText: String {
        argv.count == 3 && argv[0] == "/bin/sh" && argv[1] == "-c" ? argv[2] : argv.joined(separator: " ")
    }

    private func error(_ message: String) -> RewardModelError {
        RewardModelError("reward model '\(name)' (subprocess `\(excerpt(commandText, limit: 80))`): \(message)")
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        try scoreBatch([request])[0]
    }

    /// Dynamic placement's load: starts one child now, so its start-up is the load time rather than the
    /// first task's (as far as the child loads its model before it reads its first request).
    public func load() throws {
        var child = try checkOut()
        do {
            if child == nil { child = try startChild(why: " (load)") }
        } catch {
            checkIn(nil)
            throw self.error("\(error)")
        }
        checkIn(child)
    }

    /// A new child, registered (so `close` reaches it) and logged.
    private func startChild(why: String = "") throws -> ChildProcess {
        let c = try ChildProcess(
            argv: argv, environment: ProcessInfo.processInfo.environment.merging(extraEnvironment) { $1 },
            workdir: workdir, logPrefix: "rm \(name)", log: log)
        register(c)
        log("rm \(name): started child pid \(c.pid)\(why): \(excerpt(commandText, limit: 200))")
        return c
    }

    public func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
        guard !requests.isEmpty else { return [] }
        var child = try checkOut()
        do {
            if let c = child, c.hasExited {
                retire(c)
                let how = c.stop(graceMs: 0, terminate: false)
                log("rm \(name): child pid \(c.pid) exited while idle (\(how))\(stderrSuffix(c)); starting a new one")
                child = nil
            }
            if child == nil { child = try startChild() }
        } catch {
            checkIn(nil)
            throw self.error("\(error)")
        }
        let c = child!
        let id = takeRequestID()
        let line = Array((Self.requestLine(id: id, requests) + "\n").utf8)
        let deadline = monotonicMs() + UInt64(timeoutMs)
        let reply: [UInt8]
        do {
            try c.write(line, deadline: deadline)
            reply = try c.readLine(deadline: deadline, maxBytes: maxReplyBytes)
        } catch {
            retire(c)
            let message: String
            switch error {
            case .timedOut:
                let how = c.stop(graceMs: killGraceMs, terminate: true)
                message = "no reply within \(timeoutMs) ms (timeout_ms); stopped the child pid \(c.pid) (\(how))"
            case .closed:
                let how = c.stop(graceMs: max(killGraceMs, 500), terminate: false)
                message = "the child pid \(c.pid) exited during a request (\(how))"
            case .lineTooLong(let n):
                c.stop(graceMs: killGraceMs, terminate: true)
                message = "reply longer than \(n) bytes without a newline; stopped the child pid \(c.pid)"
            case .system(let what):
                c.stop(graceMs: killGraceMs, terminate: true)
                message = "\(what); stopped the child pid \(c.pid)"
            }
            checkIn(nil)
            log("rm \(name): \(message)")
            throw self.error(message + stderrSuffix(c) + "; the next request starts a new child")
        }
        do {
            let scores = try Self.parseReply(reply, id: id, requests)
            checkIn(c)
            return scores
        } catch let failure {
            if failure.keepChild {
                checkIn(c)
                throw self.error(failure.message)
            }
            retire(c)
            c.stop(graceMs: killGraceMs, terminate: true)
            checkIn(nil)
            log("rm \(name): \(failure.message); stopped the child pid \(c.pid)")
            throw self.error(failure.message + "; stopped the child pid \(c.pid), the next request starts a new one")
        }
    }

    /// Stops every child: idle ones now; busy ones get SIGKILL, so their requests fail at once.
    public func close() {
        condition.lock()
        closed = true
        let idleChildren = idle
        idle = []
        for child in idleChildren { live[ObjectIdentifier(child)] = nil }
        let busy = Array(live.values)
        condition.broadcast()
        condition.unlock()
        for child in busy { kill(-child.pid, SIGKILL) }
        for child in idleChildren { child.stop(graceMs: killGraceMs, terminate: true) }
    }

    /// Children that are running now (for tests and logs).
    public var childPIDs: [Int32] {
        condition.lock()
        defer { condition.unlock() }
        return live.values.map(\.pid).sorted()
    }

    // MARK: pool

    private func checkOut() throws -> ChildProcess? {
        condition.lock()
        defer { condition.unlock() }
        while !closed && idle.isEmpty && checkedOut >= maxProcesses { condition.wait() }
        guard !closed else { throw error("closed (the worker is stopping)") }
        checkedOut += 1
        return idle.popLast()
    }

    private func checkIn(_ child: ChildProcess?) {
        condition.lock()
        checkedOut -= 1
        var stopNow: ChildProcess?
        if let child {
            if closed {
                live[ObjectIdentifier(child)] = nil
                stopNow = child
            } else {
                idle.append(child)
            }
        }
        condition.signal()
        condition.unlock()
        stopNow?.stop(graceMs: killGraceMs, terminate: true)
    }

    private func register(_ child: ChildProcess) {
        condition.lock()
        live[ObjectIdentifier(child)] = child
        let isClosed = closed
        condition.unlock()
        if isClosed { kill(-child.pid, SIGKILL) }
    }

    /// Forgets a child before it is stopped, so ``close()`` never signals a reaped process.
    private func retire(_ child: ChildProcess) {
        condition.lock()
        live[ObjectIdentifier(child)] = nil
        condition.unlock()
    }

    private func takeRequestID() -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        nextRequestID += 1
        return nextRequestID - 1
    }

    private func stderrSuffix(_ child: ChildProcess) -> String {
        let lines = child.lastStderrLines.suffix(5)
        return lines.isEmpty ? "; no stderr output" : "; last stderr lines: " + lines.joined(separator: " | ")
    }

    // MARK: protocol

    /// The request line (without the newline): keys sorted, `reference` only when there is one.
    static func requestLine(id: UInt64, _ requests: [ScoringRequest]) -> String {
        JSONValue.object(sorting: [
            "id": .number(Double(id)),
            "prompts": .array(
                requests.map { request in
                    var item: [String: JSONValue] = [
                        "prompt_id": .string(request.promptID),
                        "prompt": .string(request.prompt),
                        "candidates": .array(request.candidates.map { .string($0) }),
                    ]
                    if let reference = request.reference { item["reference"] = .string(reference) }
                    return .object(sorting: item)
                }),
        ]).serialized
    }

    struct ReplyError: Error {
        var message: String
        /// The child answered the request properly (with an error): it stays in service.
        var keepChild = false
    }

    /// Validates a reply line: JSON, this request's id, and one finite number per candidate.
    static func parseReply(_ line: [UInt8], id: UInt64, _ requests: [ScoringRequest]) throws(ReplyError) -> [[Double]] {
        let value: JSONValue
        do { value = try JSONValue.parse(line) } catch {
            throw ReplyError(
                message: "reply is not JSON (\(error)): \"\(excerpt(line))\" (write logs to stderr, not stdout)")
        }
        guard case .object = value else {
            throw ReplyError(
                message: "reply is \(value.typeName), not an object {\"id\", \"scores\"}: \"\(excerpt(line))\"")
        }
        guard case .number(_, let replyID)? = value["id"] else {
            throw ReplyError(message: "reply has no numeric \"id\" (expected \(id)): \"\(excerpt(line))\"")
        }
        guard replyID == Double(id) else {
            throw ReplyError(
                message:
                    "reply id \(replyID == replyID.rounded() && abs(replyID) < 1e15 ? String(Int64(replyID)) : "\(replyID)") does not match the request id \(id)"
            )
        }
        if let error = value["error"], error != .null {
            let text: String
            if case .string(let s) = error { text = s } else { text = error.serialized }
            throw ReplyError(message: "the child reported an error: \(excerpt(text, limit: 500))", keepChild: true)
        }
        guard case .array(let lists)? = value["scores"] else {
            throw ReplyError(
                message: "reply has neither \"scores\" (a list per prompt) nor \"error\": \"\(excerpt(line))\"")
        }
        guard lists.count == requests.count else {
            throw ReplyError(message: "reply has \(lists.count) score lists for \(requests.count) prompts")
        }
        var out: [[Double]] = []
        out.reserveCapacity(requests.count)
        for (list, request) in zip(lists, requests) {
            guard case .array(let items) = list else {
                throw ReplyError(message: "scores for prompt '\(request.promptID)' are \(list.typeName), not a list")
            }
            guard items.count == request.candidates.count else {
                throw ReplyError(
                    message:
                        "reply has \(items.count) scores for the \(request.candidates.count) candidates of prompt '\(request.promptID)'"
                )
            }
            var scores: [Double] = []
            scores.reserveCapacity(items.count)
            for (index, item) in items.enumerated() {
                guard case .number(_, let d) = item else {
                    throw ReplyError(
                        message: "score \(index) of prompt '\(request.promptID)' is \(item.typeName), not a number")
                }
                guard d.isFinite else {
                    throw ReplyError(message: "score \(index) of prompt '\(request.promptID)' is \(d) (not finite)")
                }
                scores.append(d)
            }
            out.append(scores)
        }
        return out
    }
}
