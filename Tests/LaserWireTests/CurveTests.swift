import Foundation
import Testing
import ZeroMQ

@Suite struct CurveKeyTests {
    @Test func curveIsAvailable() {
        #expect(CurveKeyPair.isAvailable, "this libzmq lacks CURVE: the security tests cannot mean anything")
    }

    @Test func generatedPairsAreZ85AndConsistent() throws {
        let a = try CurveKeyPair.generate(), b = try CurveKeyPair.generate()
        #expect(a.publicKey.count == 40 && a.secretKey.count == 40)
        #expect(try Z85.decodeKey(a.publicKey).count == 32)
        #expect(a != b)
        #expect(try CurveKeyPair(secretKey: a.secretKey) == a)
        #expect(try CurveKeyPair(publicKey: a.publicKey, secretKey: a.secretKey) == a)
        #expect(throws: CurveKeyError.self) { try CurveKeyPair(publicKey: b.publicKey, secretKey: a.secretKey) }
        let bytes = try Z85.decodeKey(a.publicKey)
        #expect(try Z85.encodeKey(bytes) == a.publicKey)
    }

    @Test func badZ85IsAClearError() {
        func message(_ s: String) -> String {
            do { _ = try Z85.decodeKey(s); return "no error" } catch { return "\(error)" }
        }
        #expect(message("abc").contains("40 Z85 characters; got 3"))
        #expect(message(String(repeating: "~", count: 40)).contains("not valid Z85"))
        #expect(message(String(repeating: "a", count: 45)).contains("got 45"))
        #expect(!Z85.isValidKey(String(repeating: "\"", count: 40)))
    }
}

/// Real sockets over TCP loopback: a CURVE ROUTER with a ZAP allow-list, and clients of every kind.
@Suite struct CurveSocketTests {
    struct Server {
        let context: ZMQContext
        let authenticator: ZAPAuthenticator
        let router: ZMQSocket
        let endpoint: String
        let keys: CurveKeyPair
    }

    /// The order the coordinator uses: handler first, CURVE options, then bind.
    func server(allowing clients: [CurveKeyPair]) throws -> Server {
        let context = try ZMQContext()
        let keys = try CurveKeyPair.generate()
        let authenticator = try ZAPAuthenticator(
            context: context, domain: "test", allowedClientKeys: Set(clients.map(\.publicKey)))
        let router = try ZMQSocket(context, type: .router)
        try router.makeCurveServer(secretKey: keys.secretKey, zapDomain: "test")
        try router.bind("tcp://127.0.0.1:*")
        return Server(
            context: context, authenticator: authenticator, router: router, endpoint: try router.lastEndpoint(),
            keys: keys)
    }

    func client(_ server: Server, context: ZMQContext, keys: CurveKeyPair?) throws -> ZMQSocket {
        let dealer = try ZMQSocket(context, type: .dealer)
        if let keys { try dealer.makeCurveClient(serverPublicKey: server.keys.publicKey, keyPair: keys) }
        try dealer.setReconnectInterval(ms: 100)
        try dealer.connect(server.endpoint)
        return dealer
    }

    /// Whatever reaches the ROUTER within `ms`.
    func received(_ router: ZMQSocket, within ms: Int) throws -> [[UInt8]]? {
        let deadline = Date().addingTimeInterval(Double(ms) / 1000)
        while Date() < deadline {
            _ = try ZMQPoller.poll([(router, .readable)], timeoutMs: 50)
            if let frames = try router.receive(nonBlocking: true) { return frames }
        }
        return nil
    }

    func waitFor(_ condition: () -> Bool, seconds: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() && Date() < deadline { usleep(10_000) }
        return condition()
    }

    @Test func aListedClientTalksBothWays() throws {
        let worker = try CurveKeyPair.generate()
        let s = try server(allowing: [worker])
        let clientContext = try ZMQContext()
        let dealer = try client(s, context: clientContext, keys: worker)
        try dealer.send([Array("hello".utf8)])
        let frames = try #require(try received(s.router, within: 5000))
        #expect(frames.count == 2 && frames[1] == Array("hello".utf8))
        try s.router.send([frames[0], Array("welcome".utf8)])
        _ = try ZMQPoller.poll([(dealer, .readable)], timeoutMs: 5000)
        #expect(try dealer.receive(nonBlocking: true) == [Array("welcome".utf8)])
        #expect(s.authenticator.allowedCount >= 1)
        #expect(s.authenticator.deniedCount == 0)
    }

    @Test func anUnlistedKeyIsRefused() throws {
        let listed = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let s = try server(allowing: [listed])
        let clientContext = try ZMQContext()
        let dealer = try client(s, context: clientContext, keys: stranger)
        try dealer.send([Array("let me in".utf8)])
        #expect(try received(s.router, within: 1500) == nil)
        #expect(waitFor { s.authenticator.deniedCount >= 1 })
        #expect(s.authenticator.allowedCount == 0)
    }

    @Test func aPlaintextClientIsRefused() throws {
        let s = try server(allowing: [try CurveKeyPair.generate()])
        let clientContext = try ZMQContext()
        let dealer = try client(s, context: clientContext, keys: nil)
        try dealer.send([Array("plaintext".utf8)])
        // The mechanisms differ (NULL vs CURVE), so libzmq drops it in the greeting, before ZAP.
        #expect(try received(s.router, within: 1500) == nil)
        #expect(s.authenticator.allowedCount == 0)
    }

    @Test func aClientWithTheWrongServerKeyIsRefused() throws {
        let worker = try CurveKeyPair.generate()
        let s = try server(allowing: [worker])
        let clientContext = try ZMQContext()
        let dealer = try ZMQSocket(clientContext, type: .dealer)
        try dealer.makeCurveClient(serverPublicKey: try CurveKeyPair.generate().publicKey, keyPair: worker)
        try dealer.connect(s.endpoint)
        try dealer.send([Array("impostor server".utf8)])
        #expect(try received(s.router, within: 1500) == nil)
    }

    /// The handler's rules, asked directly over inproc the way libzmq asks them.
    @Test func theHandlerAnswersPerRFC27() throws {
        let context = try ZMQContext()
        let listed = try CurveKeyPair.generate()
        let decisions = DecisionLog()
        let authenticator = try ZAPAuthenticator(context: context, domain: "d", allowedClientKeys: [listed.publicKey]) {
            decisions.append($0)
        }
        let req = try ZMQSocket(context, type: .req)
        try req.connect(ZAPAuthenticator.endpoint)
        func ask(domain: String, mechanism: String, credentials: [[UInt8]]) throws -> [String] {
            try req.send(
                [
                    Array("1.0".utf8), Array("7".utf8), Array(domain.utf8), Array("10.0.0.1".utf8), [],
                    Array(mechanism.utf8),
                ] + credentials)
            _ = try ZMQPoller.poll([(req, .readable)], timeoutMs: 5000)
            return try #require(try req.receive(nonBlocking: true)).map { String(decoding: $0, as: UTF8.self) }
        }
        let key = try Z85.decodeKey(listed.publicKey)
        let ok = try ask(domain: "d", mechanism: "CURVE", credentials: [key])
        #expect(Array(ok.prefix(4)) == ["1.0", "7", "200", "OK"])
        #expect(ok[4] == listed.publicKey)  // user id
        #expect(try ask(domain: "d", mechanism: "NULL", credentials: [])[2] == "400")
        #expect(try ask(domain: "other", mechanism: "CURVE", credentials: [key])[2] == "400")
        #expect(
            try ask(domain: "d", mechanism: "CURVE", credentials: [Array(repeating: 1, count: 32)])[3]
                == "client key is not on the allow-list")
        #expect(try ask(domain: "d", mechanism: "CURVE", credentials: [[1, 2, 3]])[2] == "400")
        #expect(authenticator.allowedCount == 1 && authenticator.deniedCount == 4)
        #expect(decisions.all.map(\.allowed) == [true, false, false, false, false])
        #expect(decisions.all[1].reason.contains("NULL"))
        #expect(decisions.all[0].address == "10.0.0.1")
    }

    @Test func oneHandlerPerContextAndStopReleasesTheEndpoint() throws {
        let context = try ZMQContext()
        let first = try ZAPAuthenticator(context: context, domain: "d", allowedClientKeys: [])
        #expect(throws: ZMQError.self) { try ZAPAuthenticator(context: context, domain: "d", allowedClientKeys: []) }
        let start = Date()
        first.stop()
        first.stop()  // idempotent
        #expect(Date().timeIntervalSince(start) < 1)
        // libzmq releases an inproc name when its reaper has processed the close: allow it a moment.
        let deadline = Date().addingTimeInterval(2)
        var second: ZAPAuthenticator?
        while second == nil && Date() < deadline {
            second = try? ZAPAuthenticator(context: context, domain: "d", allowedClientKeys: [])
            if second == nil { usleep(10_000) }
        }
        #expect(second != nil, "the endpoint was not released after stop()")
    }

    @Test func aBadAllowListKeyIsRejected() throws {
        let context = try ZMQContext()
        #expect(throws: CurveKeyError.self) {
            try ZAPAuthenticator(context: context, domain: "d", allowedClientKeys: ["nope"])
        }
    }
}

/// Decisions collected from the handler thread.
final class DecisionLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ZAPDecision] = []
    func append(_ d: ZAPDecision) { lock.lock(); items.append(d); lock.unlock() }
    var all: [ZAPDecision] { lock.lock(); defer { lock.unlock() }; return items }
}
