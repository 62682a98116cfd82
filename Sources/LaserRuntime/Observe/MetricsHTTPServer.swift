import LaserSync
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 responder on its own thread: `GET /metrics` (and HEAD) answers with the
/// body the owner supplies, every other path 404, every other method 405. One request per connection
/// (`Connection: close`); up to 32 connections at once, multiplexed on one thread, each with 2 s in all
/// to send its request and read the answer, so a slow or idle client never delays another's scrape.
///
/// Why not swift-nio or hummingbird: a scrape every few seconds needs none of their concurrency, and
/// they would add minutes to every clean CI build (docs/architecture.md#dependencies).
public final class MetricsHTTPServer: Sendable {
    /// The address actually bound (port 0 resolves to a free port).
    public let host: String
    public let port: Int
    private let fd: Int32
    private let body: @Sendable () -> [UInt8]
    /// Whether `start` ran, and whether `stop` did (the serving thread checks between polls).
    private let flags = Locked((started: false, stopping: false))
    private let done = DispatchSemaphore(value: 0)

    /// Binds and listens (so a port in use fails here, before the run starts); `start` serves.
    public init(host: String, port: Int, body: @escaping @Sendable () -> [UInt8]) throws {
        guard (0...65535).contains(port) else {
            throw ConfigError("metrics port \(port) is not a TCP port (0-65535; 0 picks a free one)")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw ConfigError(
                "metrics.bind \(host) is not an address this machine can listen on (\(String(cString: gai_strerror(rc)))); use 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)"
            )
        }
        defer { freeaddrinfo(list) }
        let s = socket(
            first.pointee.ai_family, first.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), first.pointee.ai_protocol
        )
        guard s >= 0 else {
            throw ConfigError("cannot open a socket for the metrics endpoint: \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(s, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let code = errno
            close(s)
            let what =
                code == EADDRINUSE
                ? "port \(port) on \(host) is already in use (another coordinator, or another exporter?)"
                : code == EACCES
                    ? "port \(port) on \(host) needs privileges (ports below 1024 do)"
                    : "cannot listen on \(host):\(port): \(String(cString: strerror(code)))"
            throw ConfigError(
                "metrics endpoint: \(what). Choose another port with --metrics-port N or metrics.port in the config (0 picks a free one), or leave metrics off."
            )
        }
        _ = fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK)
        guard listen(s, 16) == 0 else {
            let code = errno
            close(s)
            throw ConfigError("metrics endpoint: cannot listen on \(host):\(port): \(String(cString: strerror(code)))")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) }
        }
        var bound = port
        if storage.ss_family == sa_family_t(AF_INET) {
            bound = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        } else if storage.ss_family == sa_family_t(AF_INET6) {
            bound = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin6_port))
                }
            }
        }
        self.fd = s
        self.host = host
        self.port = bound
        self.body = body
    }

    deinit {
        stop()
        close(fd)
    }

    /// The URL a scraper uses (with 0.0.0.0 bound, 127.0.0.1 for this machine).
    public var url: String {
        let h = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : (host.contains(":") ? "[\(host)]" : host)
        return "http://\(h):\(port)/metrics"
    }

    public func start() {
        let first = flags.withLock { f -> Bool in
            defer { f.started = true }
            return !f.started
        }
        if first { startThread(named: "laser-metrics") { [self] in serve() } }
    }

    /// Stops serving and waits for the thread (at most one poll interval).
    public func stop() {
        let wasServing = flags.withLock { f -> Bool in
            defer { f.stopping = true }
            return f.started && !f.stopping
        }
        if wasServing { done.wait() }
    }

    private var shouldStop: Bool { flags.withLock { $0.stopping } }

    /// Most connections served at once; a new one beyond that pushes out the one closest to its deadline.
    static let maxConnections = 32
    /// Each connection gets this long, in all, to send its request and read the answer.
    static let requestDeadlineSeconds = 2.0

    /// One client connection: reading its request, then writing the answer; closed at its deadline.
    private struct Connection {
        var fd: Int32
        var deadline: Date
        var request: [UInt8] = []
        var response: [UInt8]?
        var sent = 0
    }

    /// One thread multiplexes every connection with poll(2), never blocking on one client: a client
    /// that sends a byte now and then (slowloris) delays nobody, and is cut off at its deadline.
    private func serve() {
        defer { done.signal() }
        var connections: [Connection] = []
        defer { for c in connections { close(c.fd) } }
        while !shouldStop {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: Int16(c.response == nil ? POLLIN : POLLOUT), revents: 0))
            }
            let n = poll(&fds, nfds_t(fds.count), 100)
            let now = Date()
            if n > 0 {
                for i in connections.indices where fds[i + 1].revents != 0 { step(&connections[i]) }
                if fds[0].revents & Int16(POLLIN) != 0 {
                    while true {
                        let client = accept(fd, nil, nil)  // the listening socket is non-blocking
                        if client < 0 { break }
                        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                        if connections.count >= Self.maxConnections,
                            let oldest = connections.indices.min(by: {
                                connections[$0].deadline < connections[$1].deadline
                            })
                        {
                            close(connections[oldest].fd)
                            connections.remove(at: oldest)
                        }
                        connections.append(
                            Connection(fd: client, deadline: now.addingTimeInterval(Self.requestDeadlineSeconds)))
                    }
                }
            }
            connections.removeAll { c in
                let over = c.fd < 0 || c.deadline < now
                if over && c.fd >= 0 { close(c.fd) }
                return over
            }
        }
    }

    /// Reads what the client sent (answering once the request is complete) or writes what it can;
    /// marks the connection finished (fd -1) when done or broken.
    private func step(_ c: inout Connection) {
        if c.response == nil {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                close(c.fd)
                c.fd = -1
                return
            }
            if n > 0 { c.request += buffer[0..<n] }
            let end: [UInt8] = [13, 10, 13, 10]
            guard c.request.windowsIndex(of: end) != nil || c.request.count >= 16_384 else { return }
            let (status, headers, payload) = Self.respond(to: c.request, body: body)
            var out = Array("HTTP/1.1 \(status)\r\n".utf8)
            for (k, v) in headers { out += Array("\(k): \(v)\r\n".utf8) }
            out += Array("Connection: close\r\n\r\n".utf8)
            c.response = out + payload
        }
        guard let out = c.response else { return }
        let n = out.withUnsafeBytes { send(c.fd, $0.baseAddress! + c.sent, out.count - c.sent, Int32(MSG_NOSIGNAL)) }
        if n > 0 { c.sent += n }
        if c.sent >= out.count || (n < 0 && errno != EAGAIN && errno != EINTR) {
            close(c.fd)
            c.fd = -1
        }
    }

    /// The response to one raw request: status line, headers, body. Pure, for tests.
    static func respond(to request: [UInt8], body: () -> [UInt8]) -> (String, [(String, String)], [UInt8]) {
        guard let headerEnd = request.windowsIndex(of: [13, 10]) else {
            return text("400 Bad Request", "malformed request\n")
        }
        let line = String(decoding: request[0..<headerEnd], as: UTF8.self).split(separator: " ")
        guard line.count == 3, line[2].hasPrefix("HTTP/1.") else {
            return text("400 Bad Request", "malformed request line\n")
        }
        let method = line[0]
        let path = line[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == "/metrics" else {
            return text("404 Not Found", "not found: this endpoint serves only GET /metrics (Prometheus text format)\n")
        }
        guard method == "GET" || method == "HEAD" else {
            var r = text("405 Method Not Allowed", "only GET and HEAD\n")
            r.1.append(("Allow", "GET, HEAD"))
            return r
        }
        let payload = body()
        return (
            "200 OK",
            [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Content-Length", "\(payload.count)")],
            method == "HEAD" ? [] : payload
        )
    }

    private static func text(_ status: String, _ message: String) -> (String, [(String, String)], [UInt8]) {
        let b = Array(message.utf8)
        return (status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "\(b.count)")], b)
    }
}

extension Array where Element == UInt8 {
    /// Index of the first occurrence of `needle`.
    func windowsIndex(of needle: [UInt8]) -> Int? {
        guard count >= needle.count else { return nil }
        for i in 0...(count - needle.count) where self[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
