import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where `laser status` reads a run from: a run directory (its status.json) or a coordinator's
/// metrics endpoint (`host:port`, `http://host:port` or `http://host:port/metrics`).
public enum StatusSource: Equatable, Sendable {
    case runDirectory(String)
    case metrics(host: String, port: Int, path: String)

    /// A folder that exists is a run directory; anything shaped like host:port or a URL is an endpoint.
    public static func parse(_ text: String) throws -> StatusSource {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: text, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw StorageError(
                    "\(text) is a file; give a run directory (the folder with status.json) or a metrics address host:port"
                )
            }
            return .runDirectory(text)
        }
        if text.hasPrefix("tcp://") {
            throw StorageError(
                "\(text) is the coordinator's ZeroMQ endpoint; laser status reads the metrics endpoint (metrics.port, printed as 'metrics on http://...') or the run directory"
            )
        }
        var rest = Substring(text)
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst(7)
        } else if rest.contains("://") {
            throw StorageError("\(text): only http:// metrics addresses are supported")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = rest[..<slash]
        let path = slash < rest.endIndex ? String(rest[slash...]) : "/metrics"
        var host: Substring, portText: Substring
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            portText = hostPort[hostPort.index(after: close)...].drop { $0 == ":" }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            throw StorageError(
                "\(text) is neither a folder nor a metrics address; give a run directory, or host:port of a coordinator started with --metrics-port"
            )
        }
        guard let port = Int(portText), (1...65535).contains(port), !host.isEmpty else {
            throw StorageError("\(text): expected host:port with a port between 1 and 65535")
        }
        return .metrics(host: String(host), port: port, path: path.isEmpty ? "/metrics" : path)
    }

    public var description: String {
        switch self {
        case .runDirectory(let d): return d
        case .metrics(let h, let p, let path): return "http://\(h.contains(":") ? "[\(h)]" : h):\(p)\(path)"
        }
    }

    /// The run as it is now.
    public func read(timeoutSeconds: Double = 5) throws -> LiveStatus {
        switch self {
        case .runDirectory(let d): return try LiveStatus.read(runDirectory: d)
        case .metrics(let host, let port, let path):
            let text = try HTTPGet.fetch(host: host, port: port, path: path, timeoutSeconds: timeoutSeconds)
            return try LiveStatus(prometheusText: text, source: description)
        }
    }
}

/// A minimal blocking HTTP/1.1 GET (for `laser status`): connect with a timeout, one request,
/// `Connection: close`, read to the end.
public enum HTTPGet {
    public static func fetch(host: String, port: Int, path: String, timeoutSeconds: Double) throws -> String {
        let url = "http://\(host):\(port)\(path)"
        func problem(_ why: String) -> StorageError {
            StorageError(
                "no answer from \(url): \(why). Is the coordinator running, started with --metrics-port (or metrics.port), and is the address reachable from here? For a run on this machine, laser status RUN_DIR works without metrics."
            )
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw problem("cannot resolve \(host) (\(String(cString: gai_strerror(rc))))")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(
            first.pointee.ai_family, first.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), first.pointee.ai_protocol
        )
        guard fd >= 0 else { throw problem("cannot open a socket (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        // Non-blocking connect so an unreachable host times out instead of hanging.
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        if connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else { throw problem(String(cString: strerror(errno)).lowercased()) }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, Int32(timeoutSeconds * 1000)) == 1 else {
                throw problem("connection timed out after \(timeoutSeconds) s")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            guard err == 0 else { throw problem(String(cString: strerror(err)).lowercased()) }
        }
        _ = fcntl(fd, F_SETFL, flags)
        var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - floor(timeoutSeconds)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array(
            "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nAccept: text/plain\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count
        else {
            throw problem("cannot send the request (\(String(cString: strerror(errno))))")
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while response.count < 64 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                throw problem(
                    errno == EAGAIN ? "no complete answer within \(timeoutSeconds) s" : String(cString: strerror(errno))
                )
            }
            if n == 0 { break }
            response += buffer[0..<n]
        }
        guard let split = response.windowsIndex(of: [13, 10, 13, 10]) else { throw problem("the answer is not HTTP") }
        let head = String(decoding: response[0..<split], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
        guard statusLine.split(separator: " ").dropFirst().first == "200" else {
            throw StorageError(
                "\(url) answered '\(statusLine)'; is that a laser coordinator's metrics endpoint (path /metrics)?")
        }
        return String(decoding: response[(split + 4)...], as: UTF8.self)
    }
}

/// One sample of the Prometheus text exposition format.
public struct PrometheusSample: Equatable, Sendable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    /// Parses the text format (comments skipped; escaped label values unescaped). Lines that do not
    /// parse are skipped.
    public static func parse(_ text: String) -> [PrometheusSample] {
        var out: [PrometheusSample] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var chars = Substring(line)
            let nameEnd = chars.firstIndex { $0 == "{" || $0 == " " } ?? chars.endIndex
            let name = String(chars[..<nameEnd])
            chars = chars[nameEnd...]
            var labels: [String: String] = [:]
            if chars.first == "{" {
                chars = chars.dropFirst()
                var ok = true
                while let c = chars.first, c != "}" {
                    if c == "," || c == " " { chars = chars.dropFirst(); continue }
                    guard let eq = chars.firstIndex(of: "=") else { ok = false; break }
                    let key = String(chars[..<eq]).trimmingCharacters(in: .whitespaces)
                    chars = chars[chars.index(after: eq)...]
                    guard chars.first == "\"" else { ok = false; break }
                    chars = chars.dropFirst()
                    var value = ""
                    var escaped = false
                    while let v = chars.first {
                        chars = chars.dropFirst()
                        if escaped {
                            value.append(v == "n" ? "\n" : v)
                            escaped = false
                        } else if v == "\\" {
                            escaped = true
                        } else if v == "\"" {
                            break
                        } else {
                            value.append(v)
                        }
                    }
                    labels[key] = value
                }
                guard ok, chars.first == "}" else { continue }
                chars = chars.dropFirst()
            }
            let fields = chars.split(separator: " ")
            guard let first = fields.first else { continue }
            let v: Double?
            switch first {
            case "+Inf": v = .infinity
            case "-Inf": v = -.infinity
            case "NaN": v = .nan
            default: v = Double(first)
            }
            guard let value = v else { continue }
            out.append(PrometheusSample(name: name, labels: labels, value: value))
        }
        return out
    }
}

extension LiveStatus {
    /// Rebuilds the status from a laser coordinator's /metrics text (metric names: LaserMetrics).
    public init(prometheusText text: String, source: String) throws {
        let samples = PrometheusSample.parse(text)
        guard samples.contains(where: { $0.name == "laser_info" }) else {
            throw StorageError(
                "\(source) answered, but not with laser's metrics (no laser_info); is it a laser coordinator's /metrics?"
            )
        }
        func one(_ name: String) -> Double { samples.first { $0.name == name }?.value ?? 0 }
        func byLabel(_ name: String, _ label: String) -> [String: Double] {
            var m: [String: Double] = [:]
            for s in samples where s.name == name { if let l = s.labels[label] { m[l] = s.value } }
            return m
        }
        let info = samples.first { $0.name == "laser_info" }!
        let phase = samples.first { $0.name == "laser_run_phase" && $0.value == 1 }?.labels["phase"] ?? "running"
        // RMs in the run's order (laser_reward_model's value is the arm index).
        let rms = samples.filter { $0.name == "laser_reward_model" }.sorted { $0.value < $1.value }.compactMap {
            $0.labels["rm"]
        }
        let scored = byLabel("laser_candidates_scored_total", "rm"), queued = byLabel("laser_tasks_queued", "rm")
        let inFlight = byLabel("laser_tasks_in_flight", "rm")
        let slots = byLabel("laser_worker_slots", "worker"), held = byLabel("laser_worker_tasks_in_flight", "worker")
        let heard = byLabel("laser_worker_last_heard_seconds", "worker")
        var hosts: [String: [String]] = [:]
        for s in samples where s.name == "laser_worker_rm" && s.value == 1 {
            if let w = s.labels["worker"], let rm = s.labels["rm"] { hosts[w, default: []].append(rm) }
        }
        let selections = byLabel("laser_bandit_selections_total", "rm"),
            rewards = byLabel("laser_bandit_rewards_total", "rm")
        let mean = byLabel("laser_bandit_mean_reward", "rm"), ucb = byLabel("laser_bandit_ucb", "rm")
        let probability = byLabel("laser_bandit_probability", "rm")
        let failures =
            byLabel("laser_task_failures_total", "rm").values.reduce(0, +) + one("laser_invalid_results_total")
        self.init(
            updatedAt: Date().timeIntervalSince1970, phase: phase, strategy: info.labels["strategy"] ?? "?",
            endpoint: nil,
            metricsAddress: source, elapsedSeconds: 0, iteration: Int(one("laser_iteration")),
            iterations: Int(one("laser_iterations")),
            promptsInIteration: Int(one("laser_prompts_in_iteration")),
            promptsScoredInIteration: Int(one("laser_prompts_scored_in_iteration")),
            batchesInIteration: Int(one("laser_batches_in_iteration")),
            batchesEmittedInIteration: Int(one("laser_batches_emitted_in_iteration")),
            batchesEmitted: Int(one("laser_batches_emitted_total")), candidatesScored: Int(scored.values.reduce(0, +)),
            candidatesPerSecond: one("laser_candidates_per_second"),
            queue: rms.map {
                QueueEntry(
                    rm: $0, queued: Int(queued[$0] ?? 0), inFlight: Int(inFlight[$0] ?? 0),
                    candidatesScored: Int(scored[$0] ?? 0))
            },
            workers: slots.keys.sorted().map { w in
                Worker(
                    id: w, rewardModels: rms.filter { (hosts[w] ?? []).contains($0) }, slots: Int(slots[w] ?? 0),
                    inFlight: Int(held[w] ?? 0), secondsSinceHeard: heard[w] ?? 0)
            },
            arms: rms.map {
                Arm(
                    name: $0, selections: Int(selections[$0] ?? 0), rewards: Int(rewards[$0] ?? 0),
                    meanReward: mean[$0], ucb: ucb[$0], probability: probability[$0])
            },
            batchesAwaitingLoss: Int(one("laser_feedback_awaiting_batches")),
            trainer: one("laser_trainer_connected") > 0 ? "connected" : nil,
            tasksRetried: Int(one("laser_tasks_retried_total")), tasksFailed: Int(failures))
    }
}
