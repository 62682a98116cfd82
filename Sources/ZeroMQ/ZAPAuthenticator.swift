import LaserSync
import Foundation

/// One answer the ZAP handler gave: who asked, and whether they got in.
public struct ZAPDecision: Sendable, Equatable {
    public var allowed: Bool
    /// "CURVE", "NULL", "PLAIN", ...
    public var mechanism: String
    /// The client's network address as libzmq reports it (e.g. "127.0.0.1").
    public var address: String
    /// The client's public key in Z85 for CURVE requests.
    public var clientKey: String?
    /// Why (the status text sent back to libzmq).
    public var reason: String
}

/// A ZAP handler (ZeroMQ RFC 27) that admits CURVE clients whose public key is on an allow-list.
///
/// It binds a REP socket to `inproc://zeromq.zap.01` on the server socket's context, on a thread of
/// its own that is the only one touching that socket. Create it BEFORE the server socket binds, so
/// no handshake can happen without it. libzmq asks it about every handshake on sockets of that
/// context that have a ZAP domain; a server socket also needs ZMQ_ZAP_ENFORCE_DOMAIN
/// (`makeCurveServer` sets it), or libzmq 4.3.4 admits clients whenever the handler is missing.
///
/// `stop()` (or deinit) ends the thread and closes the socket; the handler's state keeps the
/// context alive until then, so the context is never terminated under a running handler.
public final class ZAPAuthenticator {
    /// The endpoint RFC 27 fixes for ZAP handlers (one per context).
    public static let endpoint = "inproc://zeromq.zap.01"

    private let state: ZAPHandlerState

    /// Starts the handler thread and returns once its socket is bound (throws if it cannot bind,
    /// e.g. another handler already serves this context).
    /// - Parameters:
    ///   - allowedClientKeys: Z85 public keys of the clients to admit.
    ///   - onDecision: called on the handler thread for each request, before the reply goes out
    ///     (so keep it short: the client's handshake waits); must not call `stop()`.
    public init(
        context: ZMQContext, domain: String, allowedClientKeys: Set<String>,
        onDecision: (@Sendable (ZAPDecision) -> Void)? = nil
    ) throws {
        var keys = Set<[UInt8]>()
        for key in allowedClientKeys {
            do { keys.insert(try Z85.decodeKey(key)) } catch {
                throw CurveKeyError("allow-list entry '\(key)': \(error)")
            }
        }
        state = ZAPHandlerState(context: context, domain: domain, allowed: keys, onDecision: onDecision)
        startThread(named: "laser-zap") { [state] in state.run() }
        state.started.wait()
        if let error = state.startError {
            state.join()
            throw error
        }
    }

    deinit { stop() }

    /// Ends the handler thread (within one poll interval) and closes its socket. Idempotent.
    public func stop() { state.join() }

    /// Requests admitted so far.
    public var allowedCount: Int { state.counts().allowed }
    /// Requests refused so far.
    public var deniedCount: Int { state.counts().denied }
    /// What stopped the handler loop early, if anything (the server then refuses everyone).
    public var failure: Error? { state.loopFailure() }
}

/// Everything the handler thread uses. Immutable apart from the lock-guarded fields; the socket
/// itself is a local of `run()`, so no other thread can reach it.
private final class ZAPHandlerState: Sendable {
    let context: ZMQContext
    let domain: String
    let allowed: Set<[UInt8]>
    let onDecision: (@Sendable (ZAPDecision) -> Void)?
    let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// What the handler thread shares (its socket is a local of `run()`, reachable from no other thread).
    private struct Shared {
        var startError: Error?
        var stopRequested = false
        var joined = false
        var allowedCount = 0
        var deniedCount = 0
        var failure: Error?
    }
    private let shared = Locked(Shared())

    /// Why the handler could not start (set before `started` is signalled).
    var startError: Error? { shared.withLock { $0.startError } }

    /// How often the loop looks at the stop flag: the longest `stop()` waits.
    static let pollMs = 50

    init(context: ZMQContext, domain: String, allowed: Set<[UInt8]>, onDecision: (@Sendable (ZAPDecision) -> Void)?) {
        self.context = context
        self.domain = domain
        self.allowed = allowed
        self.onDecision = onDecision
    }

    func counts() -> (allowed: Int, denied: Int) { shared.withLock { ($0.allowedCount, $0.deniedCount) } }

    func loopFailure() -> Error? { shared.withLock { $0.failure } }

    private var shouldStop: Bool { shared.withLock { $0.stopRequested } }

    /// Asks the thread to stop and waits until it has closed its socket. Safe to call twice.
    func join() {
        let wait = shared.withLock { s -> Bool in
            s.stopRequested = true
            defer { s.joined = true }
            return !s.joined
        }
        if wait { finished.wait() }
    }

    func run() {
        defer { finished.signal() }
        let socket: ZMQSocket
        do {
            socket = try ZMQSocket(context, type: .rep)
            try socket.bind(ZAPAuthenticator.endpoint)
        } catch {
            shared.withLock { $0.startError = error }
            started.signal()
            return
        }
        started.signal()
        defer { socket.close() }
        while !shouldStop {
            do {
                // A timeout rather than blocking forever, so the stop flag is seen promptly.
                let ready = try ZMQPoller.poll([(socket, .readable)], timeoutMs: Self.pollMs)
                guard ready[0].contains(.readable), let request = try socket.receive(nonBlocking: true) else {
                    continue
                }
                let (reply, decision) = answer(request)
                // Counted and reported before the reply, so whoever sees the handshake's outcome
                // also sees the count.
                shared.withLock { if decision.allowed { $0.allowedCount += 1 } else { $0.deniedCount += 1 } }
                onDecision?(decision)
                try socket.send(reply)
            } catch {
                // Leaving closes the socket and unbinds the endpoint; with ZAP_ENFORCE_DOMAIN every
                // later handshake then fails, so a broken handler fails closed.
                shared.withLock { $0.failure = error }
                return
            }
        }
    }

    /// The reply frames for one request (RFC 27) and the decision they carry.
    func answer(_ frames: [[UInt8]]) -> ([[UInt8]], ZAPDecision) {
        func text(_ i: Int) -> String { i < frames.count ? String(decoding: frames[i], as: UTF8.self) : "" }
        let requestID = frames.count > 1 ? frames[1] : []
        let mechanism = text(5)
        var decision = ZAPDecision(allowed: false, mechanism: mechanism, address: text(3), clientKey: nil, reason: "")
        func reply(_ code: String, _ reason: String, userID: String = "") -> ([[UInt8]], ZAPDecision) {
            decision.reason = reason
            decision.allowed = code == "200"
            // version, request id, status code, status text, user id, metadata (none)
            return (
                [Array("1.0".utf8), requestID, Array(code.utf8), Array(reason.utf8), Array(userID.utf8), []], decision
            )
        }
        // version, request id, domain, address, identity, mechanism, credentials...
        guard frames.count >= 6, text(0) == "1.0" else { return reply("500", "malformed ZAP request") }
        guard mechanism == "CURVE" else { return reply("400", "mechanism \(mechanism) is not allowed; CURVE only") }
        guard text(2) == domain else { return reply("400", "unknown ZAP domain '\(text(2))'") }
        guard frames.count == 7, frames[6].count == 32 else {
            return reply("400", "CURVE credentials must be one 32-byte public key")
        }
        let key = frames[6]
        decision.clientKey = try? Z85.encodeKey(key)
        guard allowed.contains(key) else { return reply("400", "client key is not on the allow-list") }
        return reply("200", "OK", userID: decision.clientKey ?? "")
    }
}
