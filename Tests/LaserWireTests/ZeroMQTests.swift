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
