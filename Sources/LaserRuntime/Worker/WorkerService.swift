import Foundation
import LaserRewardModels
import LaserWire
import Logging
import ZeroMQ

/// Settings of a worker process.
public struct WorkerOptions: Sendable {
    public var endpoint: String
    public var workerID: String
    /// RM names offered in Hello; empty: any built-in RM the coordinator assigns.
    public var rewardModels: [String]
    /// RMs defined on this side (`--rm-config`): the only subprocess and HTTP RMs this worker runs.
    public var localDefinitions: [RewardModelSpec] = []
    public var slots: UInt32
    /// Dynamic placement (docs/placement.md): 0 loads every RM at once (static); M > 0 holds at most M
    /// loaded and loads or unloads them when the coordinator says (`--rm-capacity`).
    public var rmCapacity: UInt32 = 0
    /// Optional, with `rmCapacity > 0`: a memory budget (0: none) and each RM's weight against it
    /// (`--memory-budget`, `--rm-memory NAME=WEIGHT`).
    public var memoryBudget = 0.0
    public var rmMemory: [String: Double] = [:]
    /// Give up when no coordinator has answered for this long (0: keep trying forever).
    public var giveUpAfterSeconds: Double
    public var maxMessageBytes: Int64
    /// Labels sent in Hello; the run's placement maps them to RMs.
    public var labels: [String] = []
    /// Serve Prometheus metrics on this port (nil: off; 0: any free port) and address.
    public var metricsPort: Int?
    public var metricsBind = "127.0.0.1"
    /// Exit when this process's parent is no longer `parentPID` (local workers of `laser run`, so a
    /// killed launcher leaves no orphans behind).
    public var parentPID: Int32?
    /// The coordinator's CURVE public key (Z85); with `curveKeyPair`, connect as a CURVE client.
    public var curveServerKey: String?
    /// This worker's CURVE key pair (see `useCurve(serverKeyFile:keyFile:)`).
    public var curveKeyPair: CurveKeyPair?

    public init(
        endpoint: String, workerID: String, rewardModels: [String] = [], slots: UInt32 = 2,
        giveUpAfterSeconds: Double = 0, maxMessageBytes: Int64 = 256 << 20
    ) {
        self.endpoint = endpoint
        self.workerID = workerID
        self.rewardModels = rewardModels
        self.slots = slots
        self.giveUpAfterSeconds = giveUpAfterSeconds
        self.maxMessageBytes = maxMessageBytes
    }
}

/// Why a worker stopped.
public enum WorkerExit: Equatable, Sendable {
    /// The coordinator said the run is over.
    case shutdown(String)
    /// The coordinator refused this worker.
    case rejected(String)
    /// No coordinator answered within `giveUpAfterSeconds`.
    case gaveUp
    /// The coordinator asked for something this worker does not run (docs/security.md); nothing was run.
    case refused(String)
}

/// The worker process shell: one DEALER socket to the coordinator, the RMs it hosts, and the
/// Paranoid-Pirate loop (Hello, heartbeats, reconnect when the coordinator goes silent).
/// Scoring runs on `slots` threads of a ``ScoringPool``; this thread only moves messages, so
/// heartbeats keep flowing while an RM call takes minutes.
public final class WorkerService {
    public let options: WorkerOptions
    private let logger: Logger
    private let context: ZMQContext
    private var socket: ZMQSocket?
    private var models: [String: any RewardModel] = [:]
    /// What `models` were built from: a Welcome with the same definitions keeps them (and their
    /// child processes); other definitions replace them.
    private var modelDefinitions: ([RewardModelDefinition], UInt64)?
    private var pool: ScoringPool?
    /// With `rmCapacity > 0`: the definitions it may load (from the last Welcome) and its loader.
    private var loadable: [String: RewardModelSpec] = [:]
    private var loader: RMLoader?
    private var metrics: WorkerMetrics?
    private var metricsServer: MetricsHTTPServer?
    /// The metrics URL once the endpoint listens.
    public private(set) var metricsURL: String?
    private var registered = false {
        didSet { if registered != oldValue { metrics?.registered(registered) } }
    }
    private var heartbeatMs: UInt64 = 1000
    private var liveness: UInt32 = 5
    private var lastHeard = Date()
    private var lastSent = Date()
    private var helloSent = Date.distantPast
    /// Seconds without a Welcome before Hello is sent again (longer after a temporary Reject).
    private var helloRetrySeconds = 2.0
    private var startedWaiting = Date()
    /// Whether this wait for a Welcome has been reported as silent.
    private var warnedSilent = false
    static let silentWarningSeconds = 5.0

    public init(options: WorkerOptions, logger: Logger) throws {
        self.options = options
        // Every line of this worker says which worker and which coordinator (fields in --log-format json).
        var logger = logger
        logger[metadataKey: "worker"] = .string(options.workerID)
        logger[metadataKey: "coordinator"] = .string(options.endpoint)
        self.logger = logger
        context = try ZMQContext()
    }

    public func run() throws -> WorkerExit {
        let pool = try ScoringPool(threads: Int(options.slots), workerID: options.workerID)
        self.pool = pool
        if let port = options.metricsPort {
            let m = WorkerMetrics(workerID: options.workerID, slots: Int(options.slots))
            let server = try MetricsHTTPServer(host: options.metricsBind, port: port, body: { m.render() })
            server.start()
            metrics = m
            metricsServer = server
            metricsURL = "http://\(options.metricsBind):\(server.port)/metrics"
            logger.info("metrics on \(metricsURL!)")
        }
        defer { metricsServer?.stop() }
        defer { stopScoring(pool) }
        logger.info(
            "connecting to the coordinator at \(options.endpoint) as \(options.workerID)\(options.giveUpAfterSeconds > 0 ? " (giving up after \(Int(options.giveUpAfterSeconds)) s without an answer)" : "")"
        )
        try connect()
        while true {
            let ready = try ZMQPoller.poll(
                [(socket!, .readable)], readableFileDescriptors: [pool.wakeFD], timeoutMs: 50)
            if ready.fileDescriptors[0] { try sendResults(pool) }
            try sendLoads()
            if ready.sockets[0].contains(.readable) {
                while let frames = try socket!.receive(nonBlocking: true) {
                    lastHeard = Date()
                    guard frames.count == 1 else {
                        logger.warning("coordinator sent a \(frames.count)-frame message; expected 1; dropped")
                        continue
                    }
                    let message: WireMessage
                    do { message = try WireCodec.decode(frames[0]) } catch {
                        logger.warning("undecodable message from the coordinator: \(error); dropped")
                        continue
                    }
                    if let exit = try handle(message) { return exit }
                }
            }
            if let parent = options.parentPID, getppid() != parent {
                logger.warning("the laser run that started this worker is gone; exiting")
                return .shutdown("parent process exited")
            }
            let now = Date()
            if registered {
                if now.timeIntervalSince(lastHeard) * 1000 > Double(heartbeatMs) * Double(liveness) {
                    logger.warning(
                        "coordinator silent for \(Int(now.timeIntervalSince(lastHeard) * 1000)) ms; reconnecting")
                    registered = false
                    startedWaiting = now
                    try connect()
                } else if now.timeIntervalSince(lastSent) * 1000 >= Double(heartbeatMs) {
                    try send(.heartbeat)
                }
            } else {
                // Silence is all a refused CURVE handshake (wrong server key, no keys, key not listed) or a
                // wrong address gives: say what to check, once per wait.
                if !warnedSilent, now.timeIntervalSince(startedWaiting) > Self.silentWarningSeconds {
                    warnedSilent = true
                    let curve =
                        options.curveKeyPair == nil
                        ? "if the coordinator runs with security.curve, pass --server-key and --key"
                        : "check --server-key (the coordinator's .pub) and that this worker's .pub is in the coordinator's allowed_workers"
                    logger.warning(
                        "no answer from the coordinator at \(options.endpoint) after \(Int(Self.silentWarningSeconds)) s; still trying. Check the address and that the coordinator runs; \(curve)"
                    )
                }
                if options.giveUpAfterSeconds > 0, now.timeIntervalSince(startedWaiting) > options.giveUpAfterSeconds {
                    logger.error(
                        "no coordinator answered at \(options.endpoint) within \(options.giveUpAfterSeconds) s; giving up"
                    )
                    return .gaveUp
                }
                // Hello again now and then: a coordinator that was not up yet, or restarted, answers it.
                if now.timeIntervalSince(helloSent) > helloRetrySeconds {
                    helloRetrySeconds = 2
                    try connect()
                }
            }
        }
    }

    /// Sends what the scoring threads finished. Results that come back while this worker is not
    /// registered are dropped: the coordinator has re-queued those tasks (leases, a new epoch).
    private func sendResults(_ pool: ScoringPool) throws {
        for result in pool.takeResults() {
            metrics?.taskFinished(result)
            if registered {
                try send(.scoreResult(result))
            } else {
                logger.info(
                    "dropping the result of task \(result.taskID) (not registered with a coordinator now)",
                    metadata: ["task": .string(String(result.taskID))])
            }
        }
    }

    /// On exit: close the RMs first (child processes get SIGTERM, so calls in progress return),
    /// then stop the threads.
    private func stopScoring(_ pool: ScoringPool) {
        loader?.stop()
        for model in models.values { model.close() }
        models = [:]
        modelDefinitions = nil
        pool.stop(timeout: 2)
    }

    /// A fresh DEALER socket (dropping queued messages of the old one) and a Hello.
    private func connect() throws {
        socket?.close()
        let s = try ZMQSocket(context, type: .dealer)
        try s.setMaxMessageSize(options.maxMessageBytes)
        try s.setReconnectInterval(ms: 100)
        try applySecurity(to: s)  // CURVE client when keys are given (Security/WorkerSecurity.swift)
        try s.connect(options.endpoint)
        socket = s
        try sendHello()
    }

    /// Never blocks: before a handshake has succeeded (a refused CURVE handshake, a coordinator that is
    /// not up) libzmq may have no pipe to queue on, and a blocking send would hang the worker past
    /// `--give-up-after`. A hello that cannot be queued now is sent again by the retry in the loop.
    private func sendHello() throws {
        helloSent = Date()
        if try !send(
            .hello(
                Hello(
                    workerID: options.workerID, rewardModels: options.rewardModels, slots: options.slots,
                    softwareVersion: laserVersion, labels: options.labels, acceptsJSONCandidates: true,
                    rmCapacity: options.rmCapacity, loaded: options.rmCapacity > 0 ? models.keys.sorted() : [],
                    memoryBudget: options.memoryBudget, rmMemory: options.rmMemory)),
            nonBlocking: true)
        {
            logger.debug("the hello could not be queued yet (no connection); retrying")
        }
    }

    @discardableResult
    private func send(_ message: WireMessage, nonBlocking: Bool = false) throws -> Bool {
        lastSent = Date()
        return try socket!.send([WireCodec.encode(message)], nonBlocking: nonBlocking)
    }

    private func handle(_ message: WireMessage) throws -> WorkerExit? {
        switch message {
        case .welcome(let welcome):
            if modelDefinitions == nil || modelDefinitions! != (welcome.rewardModels, welcome.runSeed) {
                // Only what this side defines, or built-in kinds: never a command or URL from the wire.
                let specs: [RewardModelSpec]
                do {
                    specs = try LocalRewardModels(definitions: options.localDefinitions, selected: options.rewardModels)
                        .resolve(welcome.rewardModels)
                } catch {
                    logger.error("\(error)")
                    return .refused("\(error)")
                }
                var built: [String: any RewardModel] = [:]
                for spec in specs {
                    do { built[spec.name] = try RewardModelCatalog.make(spec, runSeed: welcome.runSeed) } catch {
                        let message =
                            "cannot build RM \(PeerText.printable(spec.name)): \(PeerText.printable("\(error)"))"
                        logger.error("\(message)")
                        return .refused(message)
                    }
                }
                for old in models.values { old.close() }
                if options.rmCapacity > 0 {
                    // Capacity-limited: every definition is checked now (built, never loaded); an RM is
                    // loaded only when the coordinator's LoadRM asks (docs/placement.md).
                    for model in built.values { model.close() }
                    built = [:]
                    loadable = Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0) })
                    loader?.stop()
                    loader = RMLoader(runSeed: welcome.runSeed)
                }
                models = built
                modelDefinitions = (welcome.rewardModels, welcome.runSeed)
            }
            heartbeatMs = UInt64(max(10, welcome.heartbeatIntervalMs))
            liveness = max(2, welcome.liveness)
            // Once per registration: a repeated Welcome (answers to Hellos sent while waiting) says nothing new.
            if !registered {
                logger.info(
                    "registered with \(PeerText.printable(welcome.coordinatorID)): serving \(welcome.rewardModels.map { PeerText.printable($0.name) }.joined(separator: ", "))"
                )
            }
            registered = true
            warnedSilent = false
        case .reject(let reason, let retryAfterMs) where retryAfterMs > 0:
            logger.warning("coordinator refused this worker for now: \(PeerText.printable(reason))")
            registered = false
            helloSent = Date()
            helloRetrySeconds = Double(retryAfterMs) / 1000
        case .reject(let reason, _):
            logger.error("coordinator rejected this worker: \(PeerText.printable(reason))")
            return .rejected(PeerText.printable(reason))
        case .heartbeat:
            break
        case .disconnect(let reason):
            logger.info("coordinator disconnected this worker (\(PeerText.printable(reason))); saying Hello again")
            registered = false
            startedWaiting = Date()
            try sendHello()
        case .shutdown(let reason):
            logger.info("coordinator shut this worker down: \(PeerText.printable(reason))")
            return .shutdown(reason)
        case .loadRM(let request):
            try startLoad(request)
        case .scoreTask(let task):
            metrics?.taskStarted(task)
            pool?.submit(task, model: models[task.rewardModel], served: Array(models.keys))
        case .hello, .scoreResult, .rmState, .trainerHello, .trainerWelcome, .preferenceBatch, .batchFeedback, .feedbackAck,
            .probeSet:
            logger.warning("coordinator sent \(message.kind), which only workers send; ignored")
        }
        return nil
    }
}

extension WorkerService {
    /// A LoadRM: unload first (here: cheap), then hand the loads to the loader thread; RMState follows
    /// from ``sendLoads()`` once they are done. Only names this worker defines are loaded, from its own
    /// definitions, and never more than its capacity.
    fileprivate func startLoad(_ request: LoadRM) throws {
        guard options.rmCapacity > 0, let loader else {
            logger.warning("coordinator sent LoadRM, but this worker has no --rm-capacity (static); ignored")
            return
        }
        var unloading: [(name: String, model: any RewardModel)] = []
        for name in request.unload {
            guard let model = models.removeValue(forKey: name) else { continue }
            unloading.append((name, model))
            logger.info("unloading RM \(PeerText.printable(name))", metadata: ["rm": .string(name)])
        }
        var specs: [RewardModelSpec] = []
        var refused: [(name: String, why: String)] = []
        var room = Int(options.rmCapacity) - models.count
        var memoryLeft = options.memoryBudget - models.keys.reduce(0.0) { $0 + (options.rmMemory[$1] ?? 0) }
        for name in request.load {
            if models[name] != nil { continue }
            guard let spec = loadable[name] else {
                refused.append((name, "worker \(options.workerID) does not define RM \(PeerText.printable(name))"))
                continue
            }
            guard room > 0 else {
                refused.append((name, "worker \(options.workerID) is at its capacity of \(options.rmCapacity) RM(s)"))
                continue
            }
            let weight = options.rmMemory[name] ?? 0
            guard options.memoryBudget <= 0 || weight <= memoryLeft + 1e-9 else {
                refused.append(
                    (name, "worker \(options.workerID) has \(memoryLeft) of its memory budget \(options.memoryBudget) left; RM \(PeerText.printable(name)) weighs \(weight)"))
                continue
            }
            room -= 1
            memoryLeft -= weight
            specs.append(spec)
        }
        logger.info(
            "loading \(specs.isEmpty ? "nothing" : specs.map(\.name).joined(separator: ", ")) (request \(request.requestID))")
        loader.submit(
            RMLoader.Request(requestID: request.requestID, specs: specs, refused: refused, unloading: unloading))
    }

    /// Installs what the loader finished and reports each request's RMState.
    fileprivate func sendLoads() throws {
        guard let loader else { return }
        for done in loader.finished() {
            for problem in done.unloadErrors { logger.warning("unload hook failed: \(problem); released all the same") }
            for (name, model) in done.models {
                models[name]?.close()
                models[name] = model
            }
            for load in done.loads {
                if load.error.isEmpty {
                    logger.info("loaded RM \(load.name) in \(load.loadMs) ms", metadata: ["rm": .string(load.name)])
                } else {
                    logger.warning("could not load RM \(load.name): \(load.error)", metadata: ["rm": .string(load.name)])
                }
            }
            if registered {
                try send(.rmState(RMState(requestID: done.requestID, loaded: models.keys.sorted(), loads: done.loads)))
            }
        }
    }
}

/// This build's version string.
public let laserVersion = "0.1.0"
