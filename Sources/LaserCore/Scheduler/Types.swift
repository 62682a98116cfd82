import LaserWire

/// A ZeroMQ routing identity: how the coordinator's ROUTER socket names a connected peer.
public struct PeerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public static func < (a: PeerID, b: PeerID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public var description: String {
        if let s = String(validating: bytes, as: UTF8.self), !s.isEmpty,
            s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F })
        {
            return s
        }
        return "0x" + bytes.map { String($0, radix: 16).leftPadded(2) }.joined()
    }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

/// A point on a monotonic clock, in nanoseconds. The core never reads a clock; the shell passes `now`.
public struct Instant: Comparable, Hashable, Sendable {
    public var nanoseconds: UInt64
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }
    public func adding(milliseconds ms: UInt64) -> Instant { Instant(nanoseconds: nanoseconds &+ ms * 1_000_000) }
    public func milliseconds(since earlier: Instant) -> Double {
        Double(Int64(bitPattern: nanoseconds &- earlier.nanoseconds)) / 1e6
    }
}

/// Liveness and retry settings of the scheduler.
public struct SchedulerSettings: Equatable, Sendable {
    /// Heartbeats are sent after this long without other traffic.
    public var heartbeatIntervalMs: UInt64 = 1000
    /// A peer is dead after this many silent heartbeat intervals.
    public var liveness: UInt32 = 5
    /// A task not answered within this time is queued again (attempt + 1).
    public var leaseMs: UInt64 = 60_000
    /// After this many attempts a task fails the run loudly with the RM's last error. An attempt is used
    /// up only once every connected worker that serves the RM has failed the task (docs/reliability.md).
    public var maxAttempts: UInt32 = 3
    /// Slots a Hello may declare; more are clamped to this (a peer must not take every task).
    public var maxSlotsPerWorker: UInt32 = 64
    /// A worker that fails this many tasks in a row gets no tasks for `quarantineSeconds` (0: never).
    public var quarantineAfter: Int = 5
    public var quarantineSeconds: Double = 60

    public init(
        heartbeatIntervalMs: UInt64 = 1000, liveness: UInt32 = 5, leaseMs: UInt64 = 60_000, maxAttempts: UInt32 = 3,
        maxSlotsPerWorker: UInt32 = 64, quarantineAfter: Int = 5, quarantineSeconds: Double = 60
    ) {
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.liveness = liveness
        self.leaseMs = leaseMs
        self.maxAttempts = maxAttempts
        self.maxSlotsPerWorker = maxSlotsPerWorker
        self.quarantineAfter = quarantineAfter
        self.quarantineSeconds = quarantineSeconds
    }

    /// How long a peer may be silent before it is taken for gone.
    public var deadAfterMs: UInt64 { heartbeatIntervalMs * UInt64(liveness) }
}

/// Which workers host which RMs. Precedence: `byWorker[worker id]`, then the union of `byLabel[label]`
/// over its labels, then every RM of the run; a worker that offers a list (`--rm`, `--rm-config`) gets
/// only those of its offer.
public struct Placement: Equatable, Sendable {
    public var byWorker: [String: [String]] = [:]
    public var byLabel: [String: [String]] = [:]
    /// How long a worker may host only RMs that received no task while others did, before it is
    /// reported as idle (log and counter), so the operator can move it to a busy RM.
    public var idleReportSeconds: Double = 30
    /// How capacity-limited workers are moved (Placement.swift, docs/placement.md).
    public var dynamic = DynamicPlacementSettings()

    public init(byWorker: [String: [String]] = [:], byLabel: [String: [String]] = [:], idleReportSeconds: Double = 30) {
        self.byWorker = byWorker
        self.byLabel = byLabel
        self.idleReportSeconds = idleReportSeconds
    }

    /// The RMs a worker serves, in the run's RM order: what placement gives it (`byWorker[id]`, else the
    /// union of `byLabel` over its labels, else every RM), within what it offers when it offers a list.
    public func rewardModels(for hello: Hello, all: [String]) -> [String] {
        var placed: [String]?
        if let listed = byWorker[hello.workerID] {
            placed = listed
        } else {
            let fromLabels = hello.labels.flatMap { byLabel[$0] ?? [] }
            if !fromLabels.isEmpty { placed = fromLabels }
        }
        var wanted = placed ?? all
        if !hello.rewardModels.isEmpty {
            wanted = placed.map { p in hello.rewardModels.filter(p.contains) } ?? hello.rewardModels
        }
        return all.filter { wanted.contains($0) }
    }
}

/// Everything the coordinator core needs to know about a run: the validated config, without files.
public struct RunPlan: Equatable, Sendable {
    public var coordinatorID: String
    public var seed: UInt64
    public var iterations: Int
    public var batchSize: Int
    /// Prompts per score task (a shard of a mini-batch).
    public var shardSize: Int
    /// Selection for batch t may use feedback only from batches <= t - D.
    public var pipelineDepth: Int
    public var strategy: StrategyKind
    public var alpha: Double
    public var lambda: Double
    /// Index into `rewardModels` for the fixed strategy.
    public var fixedArm: Int
    public var rewardModels: [RewardModelDefinition]
    public var pairPolicy: PairPolicy
    public var rewardSource: RewardSource
    public var normalizeRewards: Bool
    public var contextDimension: Int
    public var scheduler: SchedulerSettings
    /// Which workers host which RMs.
    public var placement = Placement()
    /// Exp3's exploration rate.
    public var gamma: Double = 0.1
    /// LinUCB's warm start, tie-breaking and first-reward rule (config section `bandit`).
    public var bandit = BanditOptions()
    /// probe-progress: how many of iteration 1's first prompts every RM scores for the probe.
    public var probeSize = 64
    /// probe-progress: which pairs make the probe (reward.probe_consensus; Coordinator+Probe.swift).
    public var probeConsensus = ProbeConsensus.unanimous
    /// strategy thompson: its scale and per-arm priors.
    public var thompson = ThompsonSettings()
    /// The agreement ensemble keeps a pair when at least this share of the opinionated RMs agree.
    public var agreementThreshold: Double = 0.75
    /// One decision per mini-batch (the paper's default) or one per prompt.
    public var granularity: Granularity = .batch
    /// Preference pairs for training, or best-of-n (one chosen response per prompt, no training).
    public var mode: OutputMode = .pairs
    /// RMs a worker runs only from its own definition (subprocess and HTTP backends): assigned only to
    /// workers that offer them by name in their Hello (docs/security.md).
    public var workerDefinedRMs: Set<String> = []
    /// Trainer losses outside [-maxAbsLoss, maxAbsLoss] are refused (reward.max_abs_loss).
    public var maxAbsLoss: Double = 1e6
    /// Most text bytes one score task carries (from network.max_message_bytes, less room for framing);
    /// a batch's prompts are split over more tasks rather than exceed it.
    public var maxTaskBytes: Int = .max

    public init(
        coordinatorID: String = "coordinator", seed: UInt64 = 0, iterations: Int = 1, batchSize: Int = 16,
        shardSize: Int = 4, pipelineDepth: Int = 1, strategy: StrategyKind = .linucb, alpha: Double = 0.1,
        lambda: Double = 1, fixedArm: Int = 0, rewardModels: [RewardModelDefinition],
        pairPolicy: PairPolicy = PairPolicy(), rewardSource: RewardSource = .labelPairAccuracy,
        normalizeRewards: Bool = true, contextDimension: Int = 256,
        scheduler: SchedulerSettings = SchedulerSettings(), granularity: Granularity = .batch,
        mode: OutputMode = .pairs,
        gamma: Double = 0.1, agreementThreshold: Double = 0.75, placement: Placement = Placement(),
        maxAbsLoss: Double = 1e6, maxTaskBytes: Int = .max, bandit: BanditOptions = BanditOptions(),
        probeSize: Int = 64, thompson: ThompsonSettings = ThompsonSettings(),
        workerDefinedRMs: Set<String> = []
    ) {
        self.bandit = bandit
        self.thompson = thompson
        self.probeSize = probeSize
        self.coordinatorID = coordinatorID
        self.seed = seed
        self.iterations = iterations
        self.batchSize = batchSize
        self.shardSize = shardSize
        self.pipelineDepth = pipelineDepth
        self.strategy = strategy
        self.alpha = alpha
        self.lambda = lambda
        self.fixedArm = fixedArm
        self.rewardModels = rewardModels
        self.pairPolicy = pairPolicy
        self.rewardSource = rewardSource
        self.normalizeRewards = normalizeRewards
        self.contextDimension = contextDimension
        self.scheduler = scheduler
        self.granularity = granularity
        self.mode = mode
        self.gamma = gamma
        self.agreementThreshold = agreementThreshold
        self.placement = placement
        self.workerDefinedRMs = workerDefinedRMs
        self.maxAbsLoss = maxAbsLoss
        self.maxTaskBytes = maxTaskBytes
    }

    public var armNames: [String] { rewardModels.map(\.name) }
}

/// Something that happened, fed into `Coordinator.handle`.
public enum CoordinatorEvent: Sendable {
    /// The shell is ready; the core asks for the first iteration.
    case start
    /// The shell validated iteration `iteration`'s input (1-based) as asked by `.loadIteration`: it
    /// holds `prompts` prompts; `digest` identifies its bytes (a resume refuses changed input). The
    /// prompts themselves come batch by batch (`.readPrompts`), so memory does not grow with the input.
    case iterationOpened(iteration: Int, prompts: Int, digest: String)
    /// The prompts `.readPrompts` asked for: the iteration's prompts from index `first` on, in order.
    case promptsRead(iteration: Int, first: Int, prompts: [PromptRecord])
    /// The prompts `.readProbePrompts` asked for.
    case probePromptsRead(iteration: Int, prompts: [PromptRecord])
    /// A decoded message from a peer.
    case message(from: PeerID, WireMessage)
    /// Bytes from a peer that did not decode.
    case undecodable(from: PeerID, reason: String)
    /// A message whose sender's identity (CURVE key) does not have the role it asks for (a worker key
    /// saying TrainerHello, say): refused, never acted on.
    case forbidden(from: PeerID, WireMessage, reason: String)
    /// A peer's outgoing message could not be routed (ROUTER_MANDATORY: it disconnected).
    case unreachable(PeerID)
    /// Time passed.
    case tick
}

/// Something the shell must do, returned by `Coordinator.handle`.
public enum CoordinatorAction: Sendable, Equatable {
    case send(to: PeerID, WireMessage)
    /// Validate iteration `n`'s input (1-based) and answer with `.iterationOpened`.
    case loadIteration(Int)
    /// Read the prompts of `range` (indices within the iteration; always the next ones in order) and
    /// answer with `.promptsRead`.
    case readPrompts(iteration: Int, range: Range<Int>)
    /// reward.source probe-progress: read the first `count` prompts of iteration `iteration` (with their
    /// texts, apart from the batch stream) and answer with `.probePromptsRead`.
    case readProbePrompts(iteration: Int, count: Int)
    /// Write this batch's pairs (atomically) where the trainer will find them.
    case emitBatch(EmittedBatch)
    /// Append this record to the journal (`sync`: make it durable before going on).
    case journal(JournalRecord, sync: Bool)
    /// A log line and its structured fields (`iteration`, `batch`, `task`, `worker`, `rm`, `peer`),
    /// which the shell passes to swift-log as metadata (the JSON log format carries them as fields).
    case log(LogLevel, String, LogFields = [:])
    /// The run completed.
    case finish(RunSummary)
    /// The run cannot complete; the message says why and what to do.
    case fail(CoreFailure)
}

/// How many decisions a mini-batch gets.
public enum Granularity: String, Sendable, Codable, CaseIterable {
    /// One RM per mini-batch, on the mean of its prompts' contexts.
    case batch
    /// One RM per prompt, each on its own context (all made with the same bandit state).
    case instance
}

/// What a run produces.
public enum OutputMode: String, Sendable, Codable, CaseIterable {
    /// Preference pairs per mini-batch, for training.
    case pairs
    /// Best-of-n at inference time: the selected RM picks one response per prompt.
    case bestOfN = "best-of-n"
}

/// Best-of-n output: the response the selected RM ranked first.
public struct BestOfNChoice: Equatable, Sendable {
    public var prompt: String
    /// The prompt's messages in TRL's conversational format, as in `PreferencePair.messagesJSON`.
    public var messagesJSON: String?
    /// The response, kept JSON-escaped as read (see `Candidate.json`).
    public var responseJSON: JSONText
    public var response: String { responseJSON.string }
    public var score: Double
    public var rm: String
    public var promptID: String
    public var iteration: Int
    public var batch: Int
    /// Its correctness label where known.
    public var correct: Bool?
}

extension Array where Element == Double {
    /// The mean, or nil when empty.
    var average: Double? { isEmpty ? nil : reduce(0, +) / Double(count) }
}

/// Log levels of the core's messages (mapped to swift-log by the shell).
public enum LogLevel: String, Sendable, Equatable {
    case debug, info, warning, error
}

/// A completed mini-batch: its pairs and how they were made.
public struct EmittedBatch: Sendable, Equatable {
    public var iteration: Int
    /// 1-based within the iteration.
    public var batch: Int
    /// 0-based over the whole run.
    public var globalIndex: Int
    /// The RM that ranked the batch, "ensemble", or "mixed" (instance-level selection).
    public var rm: String
    public var promptCount: Int
    public var pairs: [PreferencePair]
    /// Best-of-n mode: the chosen response per prompt (empty in pairs mode).
    public var choices: [BestOfNChoice] = []
    /// Label-based pair accuracy of the pairs, when labels exist.
    public var labelAccuracy: Double?
    /// The bandit's raw and normalised reward for this batch (nil: no update, e.g. no labels).
    public var rawReward: Double?
    public var normalizedReward: Double?
}

/// How probe-progress chooses its probe pairs from every RM's scores (reward.probe_consensus).
public enum ProbeConsensus: String, Sendable, Equatable, CaseIterable, Codable {
    /// At least two RMs have an opinion and every RM with one agrees.
    case unanimous
    /// Each RM's vote weighted by its competence estimated from agreement between RMs (no labels):
    /// a pair is kept when the weighted vote makes it at least 90 % likely.
    case weighted
    /// Not a consensus: every RM's own pairs on the probe prompts (the run's pair policy), the same
    /// number from each RM, so the probe's mean loss is the mean over RMs of each RM's loss
    /// (ProbeBalance). Pairs the RMs dispute enter both ways and cancel.
    case balanced
}

/// Why the core stopped a run (the shell reports it and exits; the run is resumable once fixed).
public struct CoreFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// An RM failed a task network.max_attempts times on every worker that serves it.
        case rmFailed = "rm-failed"
        /// The input of an iteration that started changed (its digest differs from the journal's).
        case inputChanged = "input-changed"
        /// An input ended before the prompt count it was validated with.
        case inputShrank = "input-shrank"
        /// The journal's decisions do not fit this config.
        case journalMismatch = "journal-mismatch"
        /// probe-progress found no prompts, or no consensus pair, for its probe.
        case probeImpossible = "probe-impossible"
    }
    public var code: Code
    public var message: String
    public var description: String { message }
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension Dictionary {
    /// The value for a key the core stored itself (a task, a worker, a batch it holds): every caller got
    /// the key from the same state, so a missing one is a broken invariant of the core, not bad input,
    /// and stops with the type and the key named instead of a bare force-unwrap.
    subscript(held key: Key) -> Value {
        get {
            guard let value = self[key] else { Self.missing(key) }
            return value
        }
        _modify {
            guard self[key] != nil else { Self.missing(key) }
            yield &self[key]!
        }
    }

    private static func missing(_ key: Key) -> Never {
        preconditionFailure(
            "internal invariant broken: no \(Value.self) held for key \(key) (the core looks up only keys it stored)")
    }
}

/// Structured fields of a log line (swift-log metadata in the shell).
public typealias LogFields = [String: String]
