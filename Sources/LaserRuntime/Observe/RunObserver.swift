import Foundation
import LaserCore
import LaserWire
import Logging

/// Watches a coordinator from its own thread and makes the run visible: Prometheus metrics (when
/// `metrics.port` is set), RUN_DIR/status.json rewritten every second, and RUN_DIR/timeline.jsonl
/// appended every second (for `laser report`). It only reads the core's events, actions and status:
/// nothing here can change a decision. A failing status or timeline write is logged once and the run
/// goes on (observability must never stop a run).
public final class RunObserver {
    public let runDirectory: RunDirectory
    public let metrics: LaserMetrics?
    public let server: MetricsHTTPServer?
    private let logger: Logger
    private var endpoint: String?
    private var startedAt = Date()
    private var startedMonotonic: Instant?
    /// Dispatched tasks not yet answered: for latency per RM and worker.
    private var outstanding: [UInt64: (rm: String, worker: String, sent: Instant)] = [:]
    private var workerNames: [PeerID: String] = [:]
    private var tasksFailed = 0
    /// (monotonic seconds, candidates scored) of the last 10 s, for the rate.
    private var samples: [(Double, Int)] = []
    private var timeline: FileHandle?
    private var warned: Set<String> = []
    private var finished = false
    public private(set) var last: LiveStatus?
    /// Set by the coordinator while it waits for an on-policy iteration's input ("iteration 3 input (PATH)").
    public var waitingForInput: String?
    /// Why the run stopped and how to continue it (set by `finish` for a run the shell stopped).
    private var stopInfo: (reason: String, resume: String)?

    public var statusPath: String { runDirectory.path + "/status.json" }
    public var timelinePath: String { runDirectory.path + "/timeline.jsonl" }

    /// Binds the metrics endpoint when `settings.port` is set (a port in use fails here, with a message
    /// saying what to do).
    public init(
        runDirectory: RunDirectory, settings: MetricsSettings, strategy: String, rewardModels: [String], logger: Logger
    ) throws {
        self.runDirectory = runDirectory
        self.logger = logger
        if let port = settings.port {
            let m = LaserMetrics(strategy: strategy, rewardModels: rewardModels)
            metrics = m
            server = try MetricsHTTPServer(host: settings.bind, port: port) { m.render() }
        } else {
            metrics = nil
            server = nil
        }
    }

    deinit {
        server?.stop()
        try? timeline?.close()
    }

    /// The metrics URL, when metrics are on.
    public var metricsAddress: String? { server?.url }

    func started(endpoint: String, now: Instant) {
        self.endpoint = endpoint
        startedAt = Date()
        startedMonotonic = now
        server?.start()
        if let url = server?.url { logger.info("metrics on \(url)") }
    }

    /// Every event the core handled and the actions it answered with.
    func observe(_ event: CoordinatorEvent, _ actions: [CoordinatorAction], now: Instant) {
        switch event {
        case .unreachable(let peer):
            workerNames[peer] = nil
        case .message(_, .scoreResult(let r)):
            if let task = outstanding.removeValue(forKey: r.taskID) {
                var failed = false
                if case .failure = r.outcome { failed = true; tasksFailed += 1 }
                metrics?.recordResult(
                    rm: task.rm, worker: task.worker, elapsedMicros: r.elapsedMicros,
                    roundTripSeconds: max(0, now.milliseconds(since: task.sent) / 1000), failed: failed)
            }
        default:
            break
        }
        // Names only of registered workers (a Welcome), forgotten when the core lets them go: refused
        // and departed peers cost no memory here.
        if case .message(let peer, .hello(let hello)) = event,
            actions.contains(where: { if case .send(peer, .welcome) = $0 { return true } else { return false } })
        {
            workerNames[peer] = hello.workerID
        }
        for action in actions {
            switch action {
            case .send(let peer, .scoreTask(let t)):
                outstanding[t.taskID] = (t.rewardModel, workerNames[peer] ?? peer.description, now)
            case .send(let peer, .disconnect), .send(let peer, .reject), .send(let peer, .shutdown):
                workerNames[peer] = nil
            default:
                break
            }
        }
    }

    func journalWritten(seconds: Double, sync: Bool) {
        metrics?.recordJournalWrite(seconds: seconds, sync: sync)
    }

    /// The once-a-second snapshot: metrics, status.json, a timeline line. Returns what it wrote.
    @discardableResult
    func sample(_ s: CoordinatorStatus, now: Instant) -> LiveStatus {
        let t = now.milliseconds(since: startedMonotonic ?? now) / 1000
        samples.append((t, s.totalCandidatesScored))
        samples.removeAll { t - $0.0 > 10.5 }
        var rate = 0.0
        if let first = samples.first, let lastSample = samples.last, lastSample.0 - first.0 > 0.2 {
            rate = Double(lastSample.1 - first.1) / (lastSample.0 - first.0)
        }
        var live = LiveStatus(
            s, updatedAt: Date().timeIntervalSince1970, elapsedSeconds: (t * 10).rounded() / 10,
            candidatesPerSecond: (rate * 10).rounded() / 10, endpoint: endpoint,
            metricsAddress: metricsAddress, tasksFailed: tasksFailed + s.counters.invalidResults)
        live.stopReason = stopInfo?.reason
        live.resumeCommand = stopInfo?.resume
        live.waitingForInput = waitingForInput
        last = live
        // Workers the core dropped without a message to them (silent ones) are forgotten here too.
        let present = Set(s.workers.map(\.workerID))
        workerNames = workerNames.filter { present.contains($0.value) }
        outstanding = outstanding.filter {
            present.contains($0.value.worker) || now.milliseconds(since: $0.value.sent) < 60_000
        }
        metrics?.update(s, candidatesPerSecond: rate)
        attempt("status") { try Self.replace(statusPath, with: live.json()) }
        attempt("timeline") {
            if timeline == nil {
                if !FileManager.default.fileExists(atPath: timelinePath) {
                    guard FileManager.default.createFile(atPath: timelinePath, contents: nil) else {
                        throw StorageError("cannot create \(timelinePath)")
                    }
                }
                guard let h = FileHandle(forWritingAtPath: timelinePath) else {
                    throw StorageError("cannot open \(timelinePath)")
                }
                try h.seekToEnd()
                timeline = h
            }
            try timeline!.write(contentsOf: Data(TimelinePoint(live).line().utf8))
        }
        return live
    }

    /// The last snapshot (phase finished or failed) and the end of the metrics endpoint; once.
    @discardableResult
    func finish(_ s: CoordinatorStatus, now: Instant, stopped: (reason: String, resume: String)? = nil) -> LiveStatus? {
        guard !finished else { return nil }
        finished = true
        var status = s
        // A run stopped by the shell (a signal, bad input, a full disk) still has the core's phase
        // "running": the file says how it ended and how to continue, and lists no workers as live.
        if let stopped, status.phase != .finished {
            status.phase = .failed
            status.workers = []
            stopInfo = stopped
        }
        if status.phase == .finished { status.workers = [] }
        let live = sample(status, now: now)
        server?.stop()
        try? timeline?.close()
        timeline = nil
        return live
    }

    private func attempt(_ what: String, _ body: () throws -> Void) {
        do { try body() } catch {
            if warned.insert(what).inserted {
                logger.warning(
                    "cannot update the run's \(what) file (\(error)); the run goes on, but laser status and laser report will miss it. Check the run directory's disk space and permissions."
                )
            }
        }
    }

    /// Replaces a file atomically (temp file, rename) without fsync: a reader sees the old or the new
    /// status, and a crash loses at most a second of it.
    static func replace(_ path: String, with bytes: [UInt8]) throws {
        // `.NAME.tmp-PID`: the pattern RunDirectory.removeStaleTemporaryFiles cleans up after a crash.
        let url = URL(fileURLWithPath: path)
        let temp = url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temp, contents: Data(bytes)) else {
            throw StorageError("cannot write \(temp)")
        }
        guard rename(temp, path) == 0 else {
            let code = errno
            unlink(temp)
            throw StorageError.errno("cannot rename into place", path, code)
        }
    }
}

/// The `metrics:` section of the config: off unless a port is given.
public struct MetricsSettings: Equatable, Sendable {
    /// TCP port of the /metrics endpoint (nil: off; 0: any free port).
    public var port: Int?
    /// Address to listen on.
    public var bind = "127.0.0.1"
    public init(port: Int? = nil, bind: String = "127.0.0.1") {
        self.port = port
        self.bind = bind
    }
}

/// One line of RUN_DIR/timeline.jsonl: the run once a second, for the report's charts over time.
public struct TimelinePoint: Codable, Equatable, Sendable {
    /// Unix time.
    public var time: Double
    public var iteration: Int
    public var batchesEmitted: Int
    public var promptsScoredInIteration: Int
    public var candidatesScored: Int
    public var candidatesPerSecond: Double
    public var tasksQueued: Int
    public var tasksInFlight: Int
    public var workers: Int
    public var slots: Int
    public var busySlots: Int
    /// Per RM: slots that hold it loaded, slots loading it, and tasks of it out (busy slots); for the
    /// report's placement chart. Absent in timelines of earlier versions.
    public var rms: [RMSlots]?

    public struct RMSlots: Codable, Equatable, Sendable {
        public var rm: String
        public var loaded: Int
        public var loading: Int
        public var busy: Int
        /// Slots that hold the RM and have no task of it.
        public var idle: Int { max(0, loaded - busy) }
    }

    public init(_ s: LiveStatus) {
        time = (s.updatedAt * 1000).rounded() / 1000
        iteration = s.iteration
        batchesEmitted = s.batchesEmitted
        promptsScoredInIteration = s.promptsScoredInIteration
        candidatesScored = s.candidatesScored
        candidatesPerSecond = s.candidatesPerSecond
        tasksQueued = s.tasksQueued
        tasksInFlight = s.tasksInFlight
        workers = s.workers.count
        slots = s.totalSlots
        busySlots = s.busySlots
        rms = s.queue.map { q in
            RMSlots(
                rm: q.rm, loaded: s.workers.filter { $0.ready.contains(q.rm) }.reduce(0) { $0 + $1.slots },
                loading: s.workers.filter { $0.loading?.contains(q.rm) ?? false }.reduce(0) { $0 + $1.slots },
                busy: q.inFlight)
        }
    }

    func line() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return ((try? e.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }
}
