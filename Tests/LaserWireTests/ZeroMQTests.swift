import LaserWire
import Testing
import ZeroMQ

@Suite struct ZeroMQTests {
    @Test func routerDealerRoundTripOverTCP() throws {
        let ctx = try ZMQContext()
        let router = try ZMQSocket(ctx, type: .router)
        try router.setRouterMandatory(true)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint()
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let dealer = try ZMQSocket(ctx, type: .dealer)
        try dealer.connect(endpoint)
        try dealer.send([WireCodec.encode(.heartbeat)])
        let ready = try ZMQPoller.poll([(router, .readable)], timeoutMs: 5000)
        #expect(ready[0].contains(.readable))
        let frames = try #require(try router.receive())
        #expect(frames.count == 2)
        #expect(try WireCodec.decode(frames[1]) == .heartbeat)
        try router.send([frames[0], WireCodec.encode(.shutdown(reason: "bye"))])
        _ = try ZMQPoller.poll([(dealer, .readable)], timeoutMs: 5000)
        #expect(try dealer.receive().map { try WireCodec.decode($0[0]) } == .shutdown(reason: "bye"))
        // Non-blocking receive with nothing waiting.
        #expect(try dealer.receive(nonBlocking: true) == nil)
    }

    /// The no-copy send: the malloc'd body arrives whole after the identity frame, the same bytes as
    /// `encode`; a send to an unknown peer throws (and frees the body: run under ASan/valgrind to see).
    @Test func mallocedBodyIsSentWithoutACopy() throws {
        let ctx = try ZMQContext()
        let router = try ZMQSocket(ctx, type: .router)
        try router.setRouterMandatory(true)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(ctx, type: .dealer)
        try dealer.connect(try router.lastEndpoint())
        try dealer.send([WireCodec.encode(.heartbeat)])
        _ = try ZMQPoller.poll([(router, .readable)], timeoutMs: 5000)
        let identity = try #require(try router.receive())[0]
        let message = WireMessage.shutdown(
            reason: String(repeating: "long enough to leave libzmq's inline buffer ", count: 40))
        let body = WireCodec.encodeMalloced(message)
        #expect(Array(UnsafeRawBufferPointer(body)) == WireCodec.encode(message))
        #expect(try router.send([identity], thenMalloced: body, nonBlocking: true))
        _ = try ZMQPoller.poll([(dealer, .readable)], timeoutMs: 5000)
        let got = try #require(try dealer.receive())
        #expect(got.count == 1 && got[0] == WireCodec.encode(message))
        #expect(try WireCodec.decode(got[0]) == message)
        #expect(throws: ZMQError.self) {
            try router.send([[9, 9, 9]], thenMalloced: WireCodec.encodeMalloced(message), nonBlocking: true)
        }
    }

    @Test func routerMandatoryReportsUnknownPeers() throws {
        let ctx = try ZMQContext()
        let router = try ZMQSocket(ctx, type: .router)
        try router.setRouterMandatory(true)
        try router.bind("inproc://mandatory")
        do {
            try router.send([[1, 2, 3], [0]])
            Issue.record("send to an unknown identity succeeded")
        } catch let e as ZMQError {
            #expect(e.isHostUnreachable)
        }
    }

    @Test func badEndpointIsAClearError() throws {
        let ctx = try ZMQContext()
        let s = try ZMQSocket(ctx, type: .router)
        #expect(throws: ZMQError.self) { try s.bind("nonsense://x") }
    }
}
