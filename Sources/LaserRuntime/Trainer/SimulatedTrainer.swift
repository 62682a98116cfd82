import CZeroMQ
import Foundation
import LaserWire
import Logging
import ZeroMQ

/// A SIMULATED trainer for tests and benchmarks (`laser trainer-sim`): it speaks the real trainer
/// protocol, "trains" by sleeping `stepMs` per batch, and reports a stand-in loss: the mean logistic
/// loss on the RM score margins of the batch's pairs, log(1 + exp(-(chosen_score - rejected_score))).
/// A deterministic function of the batch, so a run's decisions do not depend on timing. The real
/// client (DPO on a policy) is clients/python.
public final class SimulatedTrainer {
    public struct Options: Sendable {
        public var endpoint: String
        public var trainerID = "trainer-sim"
        public var stepMs: Double = 0
        public var window: UInt32 = 1
        public var giveUpAfterSeconds: Double = 60
        public var parentPID: Int32?

        public init(endpoint: String) { self.endpoint = endpoint }
    }

    let options: Options
    let logger: Logger
    private let context: ZMQContext
    private var socket: ZMQSocket?
    private var queue: [PreferenceBatch] = []
    private var lastHeard = Date()
    private var lastSent = Date()
    private var helloSent = Date.distantPast
    private var welcomed = false
    /// prediction-gain: the coordinator wants each batch's loss after the step too.
    private var wantsLossAfter = false
    /// probe-progress: the probe's pairs, and whether the coordinator wants losses on them.
    private var wantsProbeLosses = false
    private var probe: [TrainerPair] = []
    private var heartbeatMs = 1000.0
    private var liveness = 5.0
    /// Batches trained (a batch sent again after a restart is trained again: delivery is at least once).
    public private(set) var stepsTaken = 0

    public init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger
        context = try ZMQContext()
    }

    /// The stand-in loss of a batch (see the type's comment).
    public static func standInLoss(_ b: PreferenceBatch) -> Double {
        guard !b.pairs.isEmpty else { return 0 }
        return b.pairs.reduce(0.0) { $0 + log1p(exp(-($1.chosenScore - $1.rejectedScore))) } / Double(b.pairs.count)
    }

    /// Runs until the coordinator says Shutdown (returns normally) or is gone for good (throws).
    public func run() throws {
        try connect()
        var silentSince = Date()
        while true {
            if let parent = options.parentPID, getppid() != parent { return }
            let ready = try ZMQPoller.poll([(socket!, .readable)], timeoutMs: queue.isEmpty ? 50 : 0)
            if ready[0].contains(.readable) {
                while let frames = try socket!.receive(nonBlocking: true) {
                    lastHeard = Date()
                    silentSince = Date()
                    guard frames.count == 1, let message = try? WireCodec.decode(frames[0]) else { continue }
                    switch message {
                    case .trainerWelcome(let w):
                        welcomed = true
                        wantsLossAfter = w.wantsLossAfter
                        wantsProbeLosses = w.wantsProbeLosses
                        heartbeatMs = Double(max(10, w.heartbeatIntervalMs))
                        liveness = Double(max(2, w.liveness))
                    case .probeSet(let set):
                        probe = set.pairs
                    case .preferenceBatch(let b):
                        queue.append(b)
                    case .feedbackAck(let a) where !a.accepted:
                        logger.warning("coordinator refused the loss for batch \(a.globalBatch): \(a.reason)")
                    case .disconnect:
                        welcomed = false
                        queue.removeAll()
                        try sendHello()
                    case .reject(let reason, _):
                        throw RunFailure("the coordinator rejected this trainer: \(reason)")
                    case .shutdown:
                        return
                    default:
                        break
                    }
                }
            }
            if !queue.isEmpty {
                let b = queue.removeFirst()
                if options.stepMs > 0 { usleep(useconds_t(options.stepMs * 1000)) }
                stepsTaken += 1
                let loss = Self.standInLoss(b)
                // No model, so no loss after a step to measure: a SIMULATED step that lowers the stand-in
                // loss by a tenth, so prediction-gain runs end to end (the gain is loss / 10).
                // The probe the same way: its stand-in loss, lowered by a tenth of the batch's own share.
                let probeBefore = Self.standInLoss(
                    PreferenceBatch(globalBatch: 0, iteration: 0, batch: 0, rewardModel: "", pairs: probe, path: ""))
                try send(
                    .batchFeedback(
                        BatchFeedback(
                            globalBatch: b.globalBatch, loss: loss, lossAfter: wantsLossAfter ? loss * 0.9 : nil,
                            probeLosses: wantsProbeLosses ? (probeBefore, probeBefore - loss / 10) : nil)))
            }
            let now = Date()
            if welcomed {
                if now.timeIntervalSince(lastHeard) * 1000 > heartbeatMs * liveness {
                    logger.warning("coordinator silent; reconnecting")
                    welcomed = false
                    try connect()
                } else if now.timeIntervalSince(lastSent) * 1000 >= heartbeatMs {
                    try send(.heartbeat)
                }
            } else {
                if options.giveUpAfterSeconds > 0 && now.timeIntervalSince(silentSince) > options.giveUpAfterSeconds {
                    throw RunFailure(
                        "no coordinator answered at \(options.endpoint) within \(options.giveUpAfterSeconds) s; is it running, and is that its endpoint (printed at its start, and in RUN_DIR/endpoint)?"
                    )
                }
                if now.timeIntervalSince(helloSent) > 2 { try connect() }
            }
        }
    }

    private func connect() throws {
        socket?.close()
        let s = try ZMQSocket(context, type: .dealer)
        try s.setReconnectInterval(ms: 100)
        try s.connect(options.endpoint)
        socket = s
        queue.removeAll()
        try sendHello()
    }

    private func sendHello() throws {
        helloSent = Date()
        try send(
            .trainerHello(
                TrainerHello(trainerID: options.trainerID, window: options.window, softwareVersion: laserVersion)))
    }

    private func send(_ m: WireMessage) throws {
        lastSent = Date()
        try socket!.send([WireCodec.encode(m)])
    }
}

/// `laser feedback`: one loss for one batch, sent to the run's coordinator; returns its answer.
public enum FeedbackClient {
    /// The endpoint a local client should connect to, from RUN_DIR/endpoint (a wildcard host becomes
    /// 127.0.0.1).
    public static func endpoint(runDirectory: String) throws -> String {
        let path = runDirectory + "/endpoint"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw RunFailure(
                "\(path) not found: is a coordinator running for \(runDirectory)? (or give --connect ENDPOINT)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "//0.0.0.0:", with: "//127.0.0.1:")
            .replacingOccurrences(of: "//*:", with: "//127.0.0.1:")
    }

    /// Registers as the trainer (only the trainer may report losses, docs/security.md), sends the loss
    /// and waits for the acknowledgement. Refused while another trainer is connected and alive.
    public static func send(
        _ feedback: BatchFeedback, to endpoint: String, timeoutSeconds: Double
    ) throws -> FeedbackAck {
        let ctx = try ZMQContext()
        let s = try ZMQSocket(ctx, type: .dealer)
        defer { s.close() }
        try s.connect(endpoint)
        // A window that takes every batch still waiting for a loss, so the one to report is among them.
        let hello = TrainerHello(
            trainerID: "laser-feedback-\(getpid())", window: 1_000_000, softwareVersion: laserVersion)
        try s.send([WireCodec.encode(.trainerHello(hello))])
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var welcomed = false
        while Date() < deadline {
            _ = try ZMQPoller.poll([(s, .readable)], timeoutMs: 100)
            while let frames = try s.receive(nonBlocking: true) {
                guard frames.count == 1, let message = try? WireCodec.decode(frames[0]) else { continue }
                switch message {
                case .trainerWelcome where !welcomed:
                    welcomed = true
                    try s.send([WireCodec.encode(.batchFeedback(feedback))])
                case .reject(let reason, let retryAfterMs) where retryAfterMs > 0 && !welcomed:
                    // Another trainer holds the role for now (a live one, or an earlier laser feedback
                    // that has not been seen leaving): ask again after the time the coordinator names.
                    let wait = min(Double(retryAfterMs) / 1000, max(0, deadline.timeIntervalSinceNow))
                    if wait <= 0 {
                        throw RunFailure(
                            "the coordinator refused this client as the trainer: \(PeerText.printable(reason))")
                    }
                    usleep(UInt32(min(wait, 1.0) * 1_000_000))
                    try s.send([WireCodec.encode(.trainerHello(hello))])
                case .reject(let reason, _):
                    throw RunFailure(
                        "the coordinator refused this client as the trainer: \(PeerText.printable(reason))")
                case .feedbackAck(let a):
                    // Give the role back at once, so the next trainer (or laser feedback) is not kept waiting.
                    try s.setOption(ZMQ_LINGER, Int32(500))
                    _ = try? s.send([WireCodec.encode(.disconnect(reason: "feedback sent"))])
                    return a
                default:
                    continue
                }
            }
        }
        throw RunFailure("no answer from the coordinator at \(endpoint) within \(timeoutSeconds) s; is it running?")
    }
}
