import LaserErrors
import CZeroMQ
import Foundation
import LaserCore
import LaserWire
import Logging
import ZeroMQ

/// The coordinator process shell: owns the ROUTER socket, the clock and the run directory, feeds
/// events into the `Coordinator` state machine and carries out its actions. Everything runs on the
/// calling thread, which is the only one that touches the socket.
public final class CoordinatorService {
    public let config: RunConfig
    public let runDirectory: RunDirectory
    private var core: Coordinator
    private let logger: Logger
    private let reader: PromptReader
    /// The current iteration's input, read batch by batch ahead of the core on a thread of its own.
    private var input: PromptPrefetcher?
    /// What the journal says each iteration's input was (a resume checks the digest, see `rescan`).
    private var recordedInputs: [Int: (digest: String, prompts: Int)] = [:]
    private var sentAny = false
    /// Batch files and journal records, written in order on a thread of its own (set up by `run`).
    private var output: OutputWriter?
    /// The scan of the next iteration's input, while it runs (see `checkLoader`).
    private var loader: InputLoader?
    /// The open iteration's input and its scan (a probe reads its first prompts apart from the batches).
    private var opened: (iteration: Int, path: String, scan: PromptReader.Scan)?
    private let context: ZMQContext
    private let router: ZMQSocket
    /// The ZAP handler when security.curve is on; lives as long as the ROUTER.
    private let authenticator: ZAPAuthenticator?
    /// Which CURVE keys may act as workers and as the trainer (nil: CURVE off, no identities).
    private let roles: PeerRoles?
    /// Failed CURVE handshakes of the ROUTER (a client without keys, a wrong server key), to log: a
    /// refused client gets silence, so this side says what happened.
    private let monitor: ZMQSocket?
    private let handshakeRefusals = RefusalLog()
    /// The endpoint actually bound (a "tcp://host:*" bind resolves to the chosen port).
    public let endpoint: String
    /// Called about once a second with the core's progress (for terminal output).
    public var onProgress: ((CoordinatorProgress) -> Void)?
    /// Called about once a second with the live status (progress display); see Observe/RunObserver.swift.
    public var onStatus: ((LiveStatus) -> Void)?
    /// Metrics, status.json and timeline.jsonl (Observe/RunObserver.swift).
    public let observer: RunObserver
    private var pending: [CoordinatorEvent] = []
    /// The inputs as scanned at start (InputValidation), reused instead of a second scan.
    private let validated: ValidatedInputs?
    /// The run directory held no run, or one that did no work: this is a fresh start (the caller writes
    /// the run's config.yaml).
    public private(set) var startedAfresh = false
    private var outcome: Result<RunSummary, Error>?
    private let journal: JournalFile

    /// Opens (or, with `resume`, continues) the run in `runDirectory`. A directory that already holds
    /// a journal is only ever resumed; a resume with a config that differs in anything that shapes the
    /// output is refused unless `force` (which also accepts changed input files).
    public init(
        config: RunConfig, runDirectory: RunDirectory, logger: Logger, coordinatorID: String = "coordinator",
        resume: Bool = false, force: Bool = false, validated: ValidatedInputs? = nil
    ) throws {
        self.config = config
        self.validated = validated
        self.runDirectory = runDirectory
        // Every line of this coordinator names its run (a field in --log-format json).
        var logger = logger
        logger[metadataKey: "run"] = .string(runDirectory.path)
        self.logger = logger
        // One writer per run directory, before anything in it is read or written (Output/RunDirectoryLock.swift).
        try RunDirectoryLock.acquire(runDirectory.path)
        // Next, so a metrics port in use stops the start before anything is written.
        observer = try RunObserver(
            runDirectory: runDirectory, settings: config.metrics, strategy: config.strategy.rawValue,
            rewardModels: config.rewardModels.map(\.name), logger: logger)
        let (journal, records, torn) = try JournalFile.open(path: runDirectory.journalPath)
        self.journal = journal
        if torn > 0 {
            logger.warning(
                "journal \(runDirectory.journalPath): cut a torn last record (\(torn) bytes) left by a crash")
        }
        var replay = records
        var newRun = false
        let stale = runDirectory.removeStaleTemporaryFiles()
        if stale > 0 { logger.info("removed \(stale) temp file(s) a crash left mid-write") }
        // Work that a resume must not contradict: scores, emitted batches, losses. (Selections alone are
        // decisions nothing was built on yet: a fresh start may make them again, differently.)
        let progressed = records.contains {
            switch $0 {
            case .scored, .emitted, .feedback: return true
            case .runStarted, .started, .iterationLoaded, .selected: return false
            }
        }
        if case .runStarted? = records.first, !progressed {
            // A run that did no work (a typo in an input, a bad line, a stop before the first batch) never
            // blocks a corrected start, fresh or --resume, with whatever config.
            logger.info("\(runDirectory.path) holds a run that did no work yet; starting it afresh with this config")
            try journal.reset()
            newRun = true
            replay = []
        } else if case .runStarted(let digest, _)? = records.first {
            guard resume else {
                throw ConfigError(
                    "\(runDirectory.path) already holds a run (\(records.count) journal records); continue it with --resume \(runDirectory.path), or choose another --out",
                    code: .runExists)
            }
            if digest != config.semanticDigest {
                let keys =
                    (try? RunConfig.load(path: runDirectory.configPath)).map { config.differingKeys(from: $0) } ?? []
                let which = keys.isEmpty ? "" : " in \(keys.joined(separator: ", "))"
                guard force else {
                    throw ConfigError(
                        "the config differs\(which) from the one \(runDirectory.path) was started with (\(runDirectory.configPath)); resume with that config, or pass --force to continue with this one",
                        code: .configChanged)
                }
                logger.warning(
                    "resuming with a config that differs\(which) (--force): output may differ from an uninterrupted run"
                )
            }
            // The inputs of iterations that started must be the same bytes (checked here, at start, naming
            // the file); inputs of iterations not started yet may change (docs/reliability.md).
            if let validated, !force {
                for case .iterationLoaded(let n, let recorded, _) in records {
                    let path = config.input(forIteration: n)
                    guard let now = validated.scans[path]?.digest, now != recorded else { continue }
                    if (try? PromptReader.legacyDigest(path: path)) == recorded { continue }
                    throw ConfigError(
                        "the input of iteration \(n) (\(path)) changed since the run started (digest \(recorded), now \(now)); restore the original file, or resume with --force to accept the new one",
                        code: .inputChanged)
                }
            }
            if force {
                replay = records.filter { if case .iterationLoaded = $0 { return false } else { return true } }
            }
        } else {
            newRun = true
            replay = []
        }
        startedAfresh = newRun
        if !newRun { baseline = SummaryBaseline(path: runDirectory.summaryPath) }
        core = Coordinator(plan: config.plan(coordinatorID: coordinatorID), journal: replay)
        for case .iterationLoaded(let n, let digest, let prompts) in replay { recordedInputs[n] = (digest, prompts) }
        reader = ValidatedInputs.reader(for: config)
        context = try ZMQContext()
        router = try ZMQSocket(context, type: .router)
        try router.setRouterMandatory(true)
        try router.setMaxMessageSize(config.maxMessageBytes)
        try router.setSendHighWaterMark(100_000)
        try router.setReceiveHighWaterMark(100_000)
        // CurveZMQ (Security/CoordinatorSecurity.swift): before bind, so no client connects in plaintext.
        let security = try Self.configureSecurity(config.security, router: router, context: context, logger: logger)
        authenticator = security?.0
        roles = security?.1
        monitor =
            security == nil
            ? nil
            : try router.monitorHandshakeFailures(
                name: "coordinator-\(getpid())-\(UInt(bitPattern: ObjectIdentifier(router).hashValue))")
        do { try router.bind(config.bind) } catch {
            throw ConfigError(
                "coordinator cannot bind \(config.bind): \(error). Is another coordinator running there? Choose another network.bind address (port * picks a free one)."
            )
        }
        endpoint = try router.lastEndpoint()
        // Only now does the directory hold a run: a failed bind above leaves it reusable.
        if newRun {
            try journal.append(.runStarted(configDigest: config.semanticDigest, version: laserVersion), sync: true)
        }
    }

    /// Runs the job to completion on this thread. Returns the summary or throws what stopped it.
    public func run() throws -> RunSummary {
        // Where `laser feedback` and trainers on this host find the coordinator.
        try AtomicFile.write(endpoint + "\n", to: runDirectory.path + "/endpoint")
        logger.info("coordinator listening on \(endpoint)")
        let tickMs = max(10, min(100, Int(config.scheduler.heartbeatIntervalMs / 4)))
        var nextTick = Self.now().adding(milliseconds: UInt64(tickMs))
        var nextProgress = Self.now().adding(milliseconds: 1000)
        observer.started(endpoint: endpoint, now: Self.now())
        let output = OutputWriter(runDirectory: runDirectory, journal: journal, logger: logger)
        self.output = output
        defer {
            output.stop()
            input?.stop()
            observer.finish(core.status(now: Self.now()), now: Self.now(), stopped: stopInfo)
        }
        pending.append(.start)
        drain()
        while outcome == nil {
            if StopSignal.received != 0 {
                stop(because: RunInterrupted(signal: StopSignal.received, runDirectory: runDirectory.path))
                break
            }
            if let error = stopRequest {
                stop(because: error)
                break
            }
            let now = Self.now()
            var wait = nextTick > now ? Int((nextTick.nanoseconds - now.nanoseconds) / 1_000_000) : 0
            if loader != nil { wait = min(wait, 2) }
            if waitingForInput != nil { wait = min(wait, 50) }
            var sockets = [(router, ZMQPollEvents.readable)]
            if let monitor { sockets.append((monitor, .readable)) }
            let ready = try ZMQPoller.poll(sockets, timeoutMs: max(0, wait))
            if let monitor, ready.count > 1, ready[1].contains(.readable) { logHandshakeFailures(monitor) }
            checkWaiting()
            checkLoader()
            checkOutput()
            if ready[0].contains(.readable) {
                // Bounded per wake-up so ticks (heartbeats, leases) are never starved by traffic.
                var received = 0
                while received < 10_000, let message = try router.receive(nonBlocking: true, maxFrames: 3) {
                    received += 1
                    pending.append(Self.event(from: message, roles: roles))
                    drain()
                    if outcome != nil { break }
                }
            }
            let after = Self.now()
            if after >= nextTick {
                pending.append(.tick)
                drain()
                nextTick = after.adding(milliseconds: UInt64(tickMs))
            }
            if after >= nextProgress {
                onProgress?(core.progress)
                let live = observer.sample(core.status(now: after), now: after)
                onStatus?(live)
                nextProgress = after.adding(milliseconds: 1000)
            }
        }
        // Give Shutdown messages a moment to leave before the socket closes (linger is 0).
        flushOutgoing()
        onProgress?(core.progress)
        if case .failure(let error)? = outcome, stopInfo == nil, core.status(now: Self.now()).phase != .finished {
            stopInfo = (Self.oneLine(error), "laser run --resume \(runDirectory.path)")
        }
        if let live = observer.finish(core.status(now: Self.now()), now: Self.now(), stopped: stopInfo) {
            onStatus?(live)
        }
        return try outcome!.get()
    }

    public var progress: CoordinatorProgress { core.progress }

    private var stopRequest: Error?
    /// Whether this incarnation emitted a batch (a resume of a complete run emits none).
    private var emittedAny = false
    /// What earlier incarnations of this run counted (their summary.json): totals add up across resumes.
    private var baseline = SummaryBaseline()

    /// Stops the run cleanly at the next turn of the loop (from a callback on this thread, such as
    /// `onStatus`): journal synced, status written with the reason, `run()` throws `error`.
    public func requestStop(_ error: Error) {
        if stopRequest == nil { stopRequest = error }
    }

    /// How the run ended when the shell stopped it (for status.json), set once.
    private var stopInfo: (reason: String, resume: String)?

    static func oneLine(_ error: Error) -> String {
        String("\(error)".split(separator: "\n").first ?? "")
    }

    /// On a failure or a stop: what is queued for disk is written, the journal synced, and selections and
    /// the summary so far (with earlier incarnations' totals) written, best effort.
    private func keepWhatWasDone() {
        _ = output?.flush()
        try? journal.sync()
        try? runDirectory.write(selections: core.batchLog)
        try? runDirectory.write(summary: baseline.adding(to: core.summary(now: Self.now())))
    }

    /// A clean stop: what is queued for disk is written and synced, selections and summary so far are
    /// written, workers and the trainer are told, and the run ends with `error`.
    private func stop(because error: Error) {
        logger.warning("\(error)")
        keepWhatWasDone()
        stopInfo = (Self.oneLine(error), "laser run --resume \(runDirectory.path)")
        // No Shutdown to the workers: they keep knocking (Paranoid Pirate) and rejoin a resumed
        // coordinator; local workers of laser run leave with their parent.
        outcome = .failure(error)
    }

    /// Logs failed CURVE handshakes, sparingly (the first ten, then every 10,000th).
    private func logHandshakeFailures(_ monitor: ZMQSocket) {
        while let frames = try? monitor.receive(nonBlocking: true) {
            guard let failure = ZMQSocket.handshakeFailure(from: frames), handshakeRefusals.allow() else { continue }
            logger.warning(
                "CURVE: a client's handshake failed on \(failure.endpoint): \(failure.explanation)\(handshakeRefusals.suffix)"
            )
        }
    }

    static func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Instant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    static func event(from frames: [[UInt8]]) -> CoordinatorEvent {
        event(from: ZMQSocket.Received(frames: frames, framesDropped: 0, userID: nil), roles: nil)
    }

    /// The core's event for one message from the ROUTER: identity frame, then exactly one payload frame.
    /// With CURVE, a message that asks for a role its key does not have is handed over as `.forbidden`.
    static func event(from received: ZMQSocket.Received, roles: PeerRoles?) -> CoordinatorEvent {
        let frames = received.frames
        let peer = PeerID(frames[0])
        guard frames.count == 2, received.framesDropped == 0 else {
            return .undecodable(
                from: peer, reason: "expected 1 payload frame, got \(frames.count - 1 + received.framesDropped)")
        }
        let message: WireMessage
        do { message = try WireCodec.decode(frames[1]) } catch {
            return .undecodable(from: peer, reason: "\(error)")
        }
        if let roles, let refusal = roles.refusal(of: message, key: received.userID) {
            return .forbidden(from: peer, message, reason: refusal)
        }
        return .message(from: peer, message)
    }

    private func drain() {
        while !pending.isEmpty && outcome == nil {
            let event = pending.removeFirst()
            let now = Self.now()
            let actions = core.handle(event, now: now)
            observer.observe(event, actions, now: now)
            for action in actions {
                perform(action)
                // After a failed write nothing more is carried out: in particular no journal record may
                // claim a batch whose file did not make it to disk.
                if outcome != nil { break }
            }
        }
    }

    private func perform(_ action: CoordinatorAction) {
        switch action {
        case .send(let peer, let message):
            sentAny = true
            // A trainer gets a batch only once its file is durable (as when files were written inline).
            if case .preferenceBatch = message, let error = output?.flush() {
                outcome = .failure(error)
                return
            }
            do {
                // Never block on a peer: one that does not read (full pipe) is treated like one that left.
                if try !router.send([peer.bytes], thenMalloced: WireCodec.encodeMalloced(message), nonBlocking: true) {
                    pending.append(.unreachable(peer))
                }
            } catch let error as ZMQError where error.isHostUnreachable {
                pending.append(.unreachable(peer))
            } catch {
                logger.error(
                    "cannot send \(message.kind) to \(peer): \(error); the message is dropped (a worker that misses messages is dropped by its heartbeat and its tasks retried)"
                )
            }
        case .loadIteration(let n):
            guard config.inputReady(forIteration: n) else {
                // On-policy: the file is written while the run goes; wait for it (checkWaiting).
                let what =
                    "iteration \(n) input (\(config.inputPattern?.waitingText(forIteration: n) ?? config.input(forIteration: n)))"
                waitingForInput = (n, Self.now(), what)
                observer.waitingForInput = what
                logger.info("waiting for \(what)")
                return
            }
            startLoading(n)
        case .readProbePrompts(let n, let count):
            do {
                guard let opened, opened.iteration == n else {
                    throw RunFailure(
                        "internal error: probe prompts of iteration \(n) asked for before the iteration was opened")
                }
                let stream = try PromptStream(path: opened.path, scan: opened.scan, reader: reader)
                pending.append(.probePromptsRead(iteration: n, prompts: try stream.next(count)))
            } catch {
                outcome = .failure(error)
            }
        case .readPrompts(let n, let range):
            do {
                guard let input else {
                    throw RunFailure(
                        "internal error: prompts \(range) of iteration \(n) asked for before the iteration was opened")
                }
                pending.append(.promptsRead(iteration: n, first: range.lowerBound, prompts: try input.take(range)))
            } catch {
                outcome = .failure(error)
            }
        case .emitBatch(let batch):
            emittedAny = true
            if output?.submit(.batch(batch)) == false {
                outcome = .failure(output?.error ?? RunFailure("the output thread stopped"))
            }
        case .journal(let record, let sync):
            if output?.submit(.journal(record, sync: sync)) == false {
                outcome = .failure(output?.error ?? RunFailure("the output thread stopped"))
            }
        case .log(let level, let text, let fields):
            let metadata = fields.isEmpty ? nil : fields.mapValues { Logger.MetadataValue.string($0) }
            switch level {
            case .debug: logger.debug("\(text)", metadata: metadata)
            case .info: logger.info("\(text)", metadata: metadata)
            case .warning: logger.warning("\(text)", metadata: metadata)
            case .error: logger.error("\(text)", metadata: metadata)
            }
        case .finish(let summary):
            if let error = output?.flush() {
                outcome = .failure(error)
                return
            }
            let total = baseline.adding(to: summary)
            // A resume of a run that was already complete did nothing: its files stay as they were.
            if !emittedAny && summary.counters.tasksDispatched == 0 && baseline.present {
                logger.info("the run was already complete; summary.json and selections.jsonl are left as they were")
                outcome = .success(total)
                return
            }
            do {
                try journal.sync()
                try runDirectory.write(selections: core.batchLog)
                try runDirectory.write(summary: total)
                outcome = .success(total)
            } catch {
                outcome = .failure(error)
            }
        case .fail(let failure):
            keepWhatWasDone()
            outcome = .failure(RunFailure(failure.message, code: .core(failure.code)))
        }
    }

    private func startLoading(_ n: Int) {
        let path = config.input(forIteration: n)
        loader = InputLoader(
            iteration: n, path: path, reader: reader, recorded: recordedInputs[n],
            validated: validated?.scans[path])
    }

    /// An on-policy iteration the run waits for: loaded once its file is complete; the run stops
    /// (resumable) after input.wait_timeout_s.
    private var waitingForInput: (iteration: Int, since: Instant, what: String)?

    private func checkWaiting() {
        guard let waiting = waitingForInput else { return }
        if config.inputReady(forIteration: waiting.iteration) {
            waitingForInput = nil
            observer.waitingForInput = nil
            let waited = Self.now().milliseconds(since: waiting.since) / 1000
            logger.info(
                "iteration \(waiting.iteration) input is ready after \(String(format: "%.1f", waited)) s; loading \(config.input(forIteration: waiting.iteration))"
            )
            startLoading(waiting.iteration)
            return
        }
        let limit = config.inputPattern?.waitTimeoutSeconds ?? 0
        if limit > 0, Self.now().milliseconds(since: waiting.since) / 1000 > limit {
            outcome = .failure(
                InputError(
                    "waited \(Int(limit)) s (input.wait_timeout_s) for \(waiting.what) and it did not come; write it (and its .done marker), then continue with laser run --resume \(runDirectory.path)",
                    code: .waitTimedOut))
        }
    }

    /// Stops the run at the output thread's first failure (a full disk), and passes its journal timings on.
    private func checkOutput() {
        guard let output else { return }
        for t in output.takeJournalTimings() { observer.journalWritten(seconds: t.seconds, sync: t.sync) }
        if outcome == nil, let error = output.error { outcome = .failure(error) }
    }

    /// Hands a finished input scan to the core (and starts reading its batches ahead).
    private func checkLoader() {
        guard let loading = loader, let result = loading.poll() else { return }
        loader = nil
        switch result {
        case .success(let (scan, stream)):
            input?.stop()
            // Batches a resume replays without emitting or sending them again need no candidate texts.
            let first = core.nextBatchIndex, size = config.batchSize
            let settled = Set(
                (0..<((scan.prompts + size - 1) / size)).filter { !core.textsNeeded(forBatch: first + $0) })
            input = PromptPrefetcher(
                stream: stream, batchSize: size, depth: config.pipelineDepth + 1,
                textsNeeded: { !settled.contains($0) })
            opened = (loading.iteration, config.input(forIteration: loading.iteration), scan)
            pending.append(.iterationOpened(iteration: loading.iteration, prompts: scan.prompts, digest: scan.digest))
            drain()
        case .failure(let error):
            outcome = .failure(error)
        }
    }

    /// Lets queued outgoing messages (Shutdown) reach the workers before the socket closes; nothing to
    /// wait for when no message was ever sent (a resume that only replayed).
    private func flushOutgoing() {
        guard sentAny else { return }
        let deadline = Self.now().adding(milliseconds: 200)
        while Self.now() < deadline {
            _ = try? ZMQPoller.poll([(router, .readable)], timeoutMs: 20)
            while let frames = try? router.receive(nonBlocking: true) {
                // A worker that still talks gets told the run is over.
                let peer = PeerID(frames[0])
                _ = try? router.send([peer.bytes, WireCodec.encode(.shutdown(reason: "run complete"))])
            }
        }
    }
}

/// Why a run stopped before completing.
/// A run that started and could not go on (exit status 1); resumable.
public typealias RunFailure = CodedError<RunFailureCode>

/// The codes of ``RunFailure``.
public enum RunFailureCode: ErrorCode {
    case general
    /// The core stopped the run (CoreFailure's code says why).
    case core(CoreFailure.Code)

    public static var unspecified: Self { .general }
}
