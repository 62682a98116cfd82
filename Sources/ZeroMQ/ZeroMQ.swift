import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// An error reported by libzmq: the operation, errno and libzmq's own text for it.
public struct ZMQError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let code: Int32
    public var description: String { "\(operation): \(String(cString: zmq_strerror(code))) (errno \(code))" }

    /// True for errors that mean "try again later" on a non-blocking call.
    public var isWouldBlock: Bool { code == EAGAIN }
    /// True when the context was terminated under the socket.
    public var isTerminated: Bool { code == ETERM }
    /// True when a ROUTER with ZMQ_ROUTER_MANDATORY cannot route to the identity (peer gone).
    public var isHostUnreachable: Bool { code == EHOSTUNREACH }

    static func last(_ operation: String) -> ZMQError { ZMQError(operation: operation, code: zmq_errno()) }
}

/// A libzmq context. One per process; sockets keep it alive.
public final class ZMQContext: @unchecked Sendable {  // a libzmq context is thread-safe by libzmq's contract
    let handle: UnsafeMutableRawPointer

    public init() throws {
        guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        handle = h
    }

    deinit { _ = zmq_ctx_term(handle) }

    /// libzmq's version as (major, minor, patch).
    public static var version: (Int, Int, Int) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (Int(major), Int(minor), Int(patch))
    }
}

/// The socket types laser uses.
public enum ZMQSocketType: Sendable {
    case router, dealer, pair, push, pull
    /// REQ/REP: only for the ZAP handshake (RFC 27 prescribes a REP handler).
    case req, rep

    var raw: Int32 {
        switch self {
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .pair: return ZMQ_PAIR
        case .push: return ZMQ_PUSH
        case .pull: return ZMQ_PULL
        case .req: return ZMQ_REQ
        case .rep: return ZMQ_REP
        }
    }
}

/// A libzmq socket. Not thread-safe (libzmq's rule): one thread owns it for its whole life.
public final class ZMQSocket {
    public let context: ZMQContext
    let handle: UnsafeMutableRawPointer
    private var closed = false

    public init(_ context: ZMQContext, type: ZMQSocketType) throws {
        guard let h = zmq_socket(context.handle, type.raw) else { throw ZMQError.last("zmq_socket") }
        self.context = context
        handle = h
        // Never block process exit on unsent messages.
        try setOption(ZMQ_LINGER, Int32(0))
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        _ = zmq_close(handle)
    }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError.last("zmq_bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("zmq_connect \(endpoint)") }
    }

    public func disconnect(_ endpoint: String) throws {
        guard zmq_disconnect(handle, endpoint) == 0 else { throw ZMQError.last("zmq_disconnect \(endpoint)") }
    }

    // MARK: options

    public func setOption(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("zmq_setsockopt \(option)")
        }
    }

    public func setOption(_ option: Int32, _ value: Int64) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("zmq_setsockopt \(option)")
        }
    }

    public func setOption(_ option: Int32, bytes: [UInt8]) throws {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw ZMQError.last("zmq_setsockopt \(option)") }
    }

    public func setOption(_ option: Int32, string: String) throws {
        try setOption(option, bytes: Array(string.utf8))
    }

    /// The identity a ROUTER sees for this (DEALER) socket.
    public func setRoutingID(_ id: [UInt8]) throws { try setOption(ZMQ_ROUTING_ID, bytes: id) }
    /// ROUTER: fail with EHOSTUNREACH instead of silently dropping messages to unknown peers.
    public func setRouterMandatory(_ on: Bool) throws { try setOption(ZMQ_ROUTER_MANDATORY, Int32(on ? 1 : 0)) }
    /// Largest inbound message accepted; bigger ones make libzmq drop the connection.
    public func setMaxMessageSize(_ bytes: Int64) throws { try setOption(ZMQ_MAXMSGSIZE, bytes) }
    public func setSendHighWaterMark(_ n: Int32) throws { try setOption(ZMQ_SNDHWM, n) }
    public func setReceiveHighWaterMark(_ n: Int32) throws { try setOption(ZMQ_RCVHWM, n) }
    /// Milliseconds between reconnect attempts of a connecting socket.
    public func setReconnectInterval(ms: Int32) throws { try setOption(ZMQ_RECONNECT_IVL, ms) }

    /// The endpoint actually bound, e.g. after binding "tcp://127.0.0.1:*".
    public func lastEndpoint() throws -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else {
            throw ZMQError.last("zmq_getsockopt ZMQ_LAST_ENDPOINT")
        }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: messages

    /// Sends all frames as one multipart message. Returns false if `nonBlocking` and it would block.
    /// Retries on EINTR (SIGCHLD from spawned workers interrupts libzmq calls).
    @discardableResult
    public func send(_ frames: [[UInt8]], nonBlocking: Bool = false) throws -> Bool {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        return try sendCopies(frames, moreFollows: false, nonBlocking: nonBlocking)
    }

    /// Sends each frame (copied by libzmq); the last one with ZMQ_SNDMORE too if `moreFollows`.
    private func sendCopies(_ frames: [[UInt8]], moreFollows: Bool, nonBlocking: Bool) throws -> Bool {
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = nonBlocking ? ZMQ_DONTWAIT : 0
            if i < frames.count - 1 || moreFollows { flags |= ZMQ_SNDMORE }
            while true {
                let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
                if rc >= 0 { break }
                let err = ZMQError.last("zmq_send")
                if err.code == EINTR { continue }
                // Only the first frame may report EAGAIN; later frames of a started message are queued atomically.
                if err.isWouldBlock && i == 0 { return false }
                throw err
            }
        }
        return true
    }

    /// Sends `frames` and then `body` as the message's last frame, without copying `body`: ZeroMQ
    /// takes the malloc'd bytes and frees them once they are on the wire (or at once when the send
    /// fails; the bytes are the caller's no longer in every case). For large bodies (a score task's
    /// candidates) this saves a copy per message. Returns false if `nonBlocking` and it would block.
    @discardableResult
    public func send(
        _ frames: [[UInt8]], thenMalloced body: UnsafeMutableRawBufferPointer, nonBlocking: Bool = false
    ) throws -> Bool {
        var msg = zmq_msg_t()
        guard zmq_msg_init_data(&msg, body.baseAddress, body.count, { data, _ in free(data) }, nil) == 0 else {
            free(body.baseAddress)
            throw ZMQError.last("zmq_msg_init_data")
        }
        defer { zmq_msg_close(&msg) }  // frees the bytes unless the send took them
        if !frames.isEmpty, try !sendCopies(frames, moreFollows: true, nonBlocking: nonBlocking) { return false }
        while true {
            if zmq_msg_send(&msg, handle, nonBlocking ? ZMQ_DONTWAIT : 0) >= 0 { return true }
            let err = ZMQError.last("zmq_msg_send")
            if err.code == EINTR { continue }
            if err.isWouldBlock && frames.isEmpty { return false }
            throw err
        }
    }

    /// Receives one whole multipart message, or nil if `nonBlocking` and none is waiting.
    public func receive(nonBlocking: Bool = false) throws -> [[UInt8]]? {
        try receive(nonBlocking: nonBlocking, maxFrames: Int.max).map(\.frames)
    }

    /// One received message: its frames (at most `maxFrames` kept; `framesDropped` more were read and
    /// discarded, so a peer cannot make the receiver hold any number of them) and the User-Id that the
    /// ZAP handler gave its connection (the client's CURVE key in laser; nil without ZAP).
    public struct Received {
        public var frames: [[UInt8]]
        public var framesDropped: Int
        public var userID: String?
        public init(frames: [[UInt8]], framesDropped: Int = 0, userID: String? = nil) {
            self.frames = frames
            self.framesDropped = framesDropped
            self.userID = userID
        }
    }

    public func receive(nonBlocking: Bool = false, maxFrames: Int) throws -> Received? {
        var received = Received(frames: [], framesDropped: 0, userID: nil)
        var first = true
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            var rc: Int32
            repeat {
                rc = zmq_msg_recv(&msg, handle, (nonBlocking && first) ? ZMQ_DONTWAIT : 0)
            } while rc < 0 && zmq_errno() == EINTR
            if rc < 0 {
                let err = ZMQError.last("zmq_msg_recv")
                if err.isWouldBlock && first { return nil }
                throw err
            }
            // A ROUTER's identity frame is made locally and has no metadata: take it from any frame.
            if received.userID == nil, let user = zmq_msg_gets(&msg, "User-Id") {
                received.userID = String(cString: user)
            }
            first = false
            if received.frames.count >= maxFrames {
                received.framesDropped += 1
            } else {
                let size = zmq_msg_size(&msg)
                if size == 0 {
                    received.frames.append([])
                } else {
                    let data = zmq_msg_data(&msg)!
                    received.frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
                }
            }
            if zmq_msg_more(&msg) == 0 { return received }
        }
    }
}

/// What to wait for on a socket in `ZMQPoller.poll`.
public struct ZMQPollEvents: OptionSet, Sendable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public static let readable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLIN))
    public static let writable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLOUT))
}

/// zmq_poll over a fixed set of sockets.
public enum ZMQPoller {
    /// Waits up to `timeoutMs` (-1: forever) and returns, per socket, the events that are ready.
    /// EINTR is treated as "nothing ready" so callers simply go round their loop again.
    public static func poll(_ sockets: [(ZMQSocket, ZMQPollEvents)], timeoutMs: Int) throws -> [ZMQPollEvents] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.0.handle, fd: 0, events: $0.1.rawValue, revents: 0) }
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), timeoutMs) }
        if rc < 0 {
            let err = ZMQError.last("zmq_poll")
            if err.code == EINTR { return Array(repeating: [], count: sockets.count) }
            throw err
        }
        return items.map { ZMQPollEvents(rawValue: $0.revents) }
    }

    /// Like ``poll(_:timeoutMs:)``, plus plain file descriptors (a pipe another thread writes to
    /// wake this one, for example), polled for readability.
    public static func poll(
        _ sockets: [(ZMQSocket, ZMQPollEvents)], readableFileDescriptors fds: [Int32],
        timeoutMs: Int
    ) throws -> (sockets: [ZMQPollEvents], fileDescriptors: [Bool]) {
        var items = sockets.map { zmq_pollitem_t(socket: $0.0.handle, fd: 0, events: $0.1.rawValue, revents: 0) }
        items += fds.map { zmq_pollitem_t(socket: nil, fd: $0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32($0.count), timeoutMs) }
        if rc < 0 {
            let err = ZMQError.last("zmq_poll")
            if err.code == EINTR {
                return (Array(repeating: [], count: sockets.count), Array(repeating: false, count: fds.count))
            }
            throw err
        }
        return (
            items.prefix(sockets.count).map { ZMQPollEvents(rawValue: $0.revents) },
            items.suffix(fds.count).map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
        )
    }
}

/// A failed handshake as a socket monitor reports it (ZMQ_EVENT_HANDSHAKE_FAILED_*): what libzmq knows
/// about a client that never got in (no CURVE keys, a wrong server key, a ZAP refusal).
public struct ZMQHandshakeFailure: Sendable, Equatable {
    /// The ZMQ_EVENT_* code and its value (the ZMQ_PROTOCOL_ERROR_* code for protocol failures).
    public var event: UInt16
    public var value: UInt32
    /// The endpoint the event is about (for a server socket: the endpoint it bound).
    public var endpoint: String

    /// What probably went wrong, in words.
    public var explanation: String {
        switch (Int32(event), Int32(bitPattern: value)) {
        case (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH):
            return "the client does not use CURVE (a worker or trainer started without --server-key/--key?)"
        case (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC):
            return
                "the client's CURVE handshake does not decrypt (its --server-key is not this coordinator's public key?)"
        case (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, _):
            return "the client's key was refused (not in the allow-lists)"
        case (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, _):
            return "protocol error 0x\(String(value, radix: 16)) (not a laser client, or another ZeroMQ version?)"
        default:
            return "no detail (the client closed the connection during the handshake?)"
        }
    }
}

extension ZMQSocket {
    /// Starts a monitor of this socket's failed handshakes and returns the PAIR socket that receives
    /// them (read it with `ZMQSocket.handshakeFailure(from:)`). `name` makes the inproc endpoint unique.
    public func monitorHandshakeFailures(name: String) throws -> ZMQSocket {
        let endpoint = "inproc://laser.monitor." + name
        let events =
            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else { throw ZMQError.last("zmq_socket_monitor") }
        let pair = try ZMQSocket(context, type: .pair)
        try pair.connect(endpoint)
        return pair
    }

    /// Decodes one monitor message: [uint16 event, uint32 value] and the endpoint.
    public static func handshakeFailure(from frames: [[UInt8]]) -> ZMQHandshakeFailure? {
        guard frames.count == 2, frames[0].count >= 6 else { return nil }
        let f = frames[0]
        let event = UInt16(f[0]) | UInt16(f[1]) << 8
        let value = UInt32(f[2]) | UInt32(f[3]) << 8 | UInt32(f[4]) << 16 | UInt32(f[5]) << 24
        return ZMQHandshakeFailure(event: event, value: value, endpoint: String(decoding: frames[1], as: UTF8.self))
    }
}
