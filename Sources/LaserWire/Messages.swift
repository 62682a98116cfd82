@_exported import LaserJSON
import LaserErrors
/// The protocol version this build speaks (Envelope.protocol_version).
public let laserProtocolVersion: UInt32 = 1

/// One decoded laser wire message. Mirrors the oneof of `laser.v1.Envelope` in proto/laser.proto.
public enum WireMessage: Equatable, Sendable {
    case hello(Hello)
    case welcome(Welcome)
    /// `retryAfterMs > 0`: a temporary refusal; say Hello again after that long.
    case reject(reason: String, retryAfterMs: UInt32 = 0)
    case heartbeat
    case scoreTask(ScoreTask)
    case scoreResult(ScoreResult)
    case disconnect(reason: String)
    case shutdown(reason: String)
    case trainerHello(TrainerHello)
    case trainerWelcome(TrainerWelcome)
    case preferenceBatch(PreferenceBatch)
    case batchFeedback(BatchFeedback)
    case feedbackAck(FeedbackAck)
    case probeSet(ProbeSet)
    /// coordinator -> worker with `Hello.rmCapacity > 0`: change the loaded RMs (docs/placement.md).
    case loadRM(LoadRM)
    /// worker -> coordinator: the loaded RMs after a ``LoadRM`` (or unprompted, request id 0).
    case rmState(RMState)

    /// The message's name as in the proto file, for logs and errors.
    public var kind: String {
        switch self {
        case .hello: return "Hello"
        case .welcome: return "Welcome"
        case .reject: return "Reject"
        case .heartbeat: return "Heartbeat"
        case .scoreTask: return "ScoreTask"
        case .scoreResult: return "ScoreResult"
        case .disconnect: return "Disconnect"
        case .shutdown: return "Shutdown"
        case .trainerHello: return "TrainerHello"
        case .trainerWelcome: return "TrainerWelcome"
        case .preferenceBatch: return "PreferenceBatch"
        case .batchFeedback: return "BatchFeedback"
        case .feedbackAck: return "FeedbackAck"
        case .probeSet: return "ProbeSet"
        case .loadRM: return "LoadRM"
        case .rmState: return "RMState"
        }
    }
}

/// worker -> coordinator: registration.
public struct Hello: Equatable, Sendable {
    public var workerID: String
    /// Empty: the worker serves every RM of the run.
    public var rewardModels: [String]
    public var slots: UInt32
    public var softwareVersion: String
    /// Labels (for example the GPU type) that the run's placement maps to RMs.
    public var labels: [String]
    /// The worker reads candidates sent as JSON-escaped bytes (`ScoreItem.candidates_json`).
    public var acceptsJSONCandidates: Bool
    /// 0: a static worker (every offered RM loaded). M > 0: at most M RMs loaded at once, moved by
    /// ``LoadRM`` (docs/placement.md); `rewardModels` then lists what it can load.
    public var rmCapacity: UInt32
    /// With `rmCapacity > 0`: the RMs loaded now.
    public var loaded: [String]
    /// Optional: a memory budget (0: none) and each RM's weight against it.
    public var memoryBudget: Double = 0
    public var rmMemory: [String: Double] = [:]

    public init(
        workerID: String, rewardModels: [String], slots: UInt32, softwareVersion: String, labels: [String] = [],
        acceptsJSONCandidates: Bool = false, rmCapacity: UInt32 = 0, loaded: [String] = [],
        memoryBudget: Double = 0, rmMemory: [String: Double] = [:]
    ) {
        self.memoryBudget = memoryBudget
        self.rmMemory = rmMemory
        self.rmCapacity = rmCapacity
        self.loaded = loaded
        self.workerID = workerID
        self.rewardModels = rewardModels
        self.slots = slots
        self.softwareVersion = softwareVersion
        self.labels = labels
        self.acceptsJSONCandidates = acceptsJSONCandidates
    }
}

/// A reward model definition carried from the coordinator's config to a worker.
public struct RewardModelDefinition: Equatable, Sendable {
    public var name: String
    public var kind: String
    public var params: [String: String]

    public init(name: String, kind: String, params: [String: String]) {
        self.name = name
        self.kind = kind
        self.params = params
    }
}

/// coordinator -> worker: registration accepted.
public struct Welcome: Equatable, Sendable {
    public var coordinatorID: String
    public var heartbeatIntervalMs: UInt32
    public var liveness: UInt32
    public var rewardModels: [RewardModelDefinition]
    public var runSeed: UInt64

    public init(
        coordinatorID: String, heartbeatIntervalMs: UInt32, liveness: UInt32,
        rewardModels: [RewardModelDefinition], runSeed: UInt64
    ) {
        self.coordinatorID = coordinatorID
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.liveness = liveness
        self.rewardModels = rewardModels
        self.runSeed = runSeed
    }
}

/// One prompt and its candidates inside a score task.
public struct ScoreItem: Equatable, Sendable {
    public var promptID: String
    public var prompt: String
    public var reference: String?
    /// The candidates as the coordinator keeps them (JSON-escaped, see `JSONText`), or nil where they
    /// are held decoded (`decoded`, as a worker gets them off the wire): each side keeps the form it
    /// has and converts only on demand.
    private var escaped: [JSONText]?
    private var decoded: [String]?

    /// The candidates, decoded (what an RM reads).
    public var candidates: [String] {
        get { decoded ?? escaped!.map(\.string) }
        set { decoded = newValue; escaped = nil }
    }

    /// The candidates, escaped (what the coordinator sends as candidates_json).
    public var candidateTexts: [JSONText] { escaped ?? decoded!.map { JSONText($0) } }

    public var candidateCount: Int { escaped?.count ?? decoded!.count }

    public init(promptID: String, prompt: String, candidates: [String], reference: String?) {
        self.promptID = promptID
        self.prompt = prompt
        self.reference = reference
        self.decoded = candidates
    }

    public init(promptID: String, prompt: String, candidateTexts: [JSONText], reference: String?) {
        self.promptID = promptID
        self.prompt = prompt
        self.reference = reference
        self.escaped = candidateTexts
    }

    /// Equal when the texts are equal, whichever form each side holds.
    public static func == (a: ScoreItem, b: ScoreItem) -> Bool {
        a.promptID == b.promptID && a.prompt == b.prompt && a.reference == b.reference && a.candidates == b.candidates
    }
}

/// coordinator -> worker: score these items with one RM.
public struct ScoreTask: Equatable, Sendable {
    public var taskID: UInt64
    public var attempt: UInt32
    public var rewardModel: String
    public var iteration: UInt32
    public var items: [ScoreItem]
    /// How the candidates travel: as JSON-escaped bytes (`candidates_json`, for a worker whose Hello
    /// accepts them) or as text (`candidates`). The same task either way once decoded.
    public var candidatesAsJSON: Bool

    public init(
        taskID: UInt64, attempt: UInt32, rewardModel: String, iteration: UInt32, items: [ScoreItem],
        candidatesAsJSON: Bool = false
    ) {
        self.taskID = taskID
        self.attempt = attempt
        self.rewardModel = rewardModel
        self.iteration = iteration
        self.items = items
        self.candidatesAsJSON = candidatesAsJSON
    }
}

/// worker -> coordinator: the outcome of a score task.
public struct ScoreResult: Equatable, Sendable {
    /// Scores per item (per candidate inside), or the RM's error.
    public enum Outcome: Equatable, Sendable {
        case success([[Double]])
        case failure(String)
    }

    public var taskID: UInt64
    public var attempt: UInt32
    public var outcome: Outcome
    public var elapsedMicros: UInt32

    public init(taskID: UInt64, attempt: UInt32, outcome: Outcome, elapsedMicros: UInt32) {
        self.taskID = taskID
        self.attempt = attempt
        self.outcome = outcome
        self.elapsedMicros = elapsedMicros
    }
}

/// trainer -> coordinator: a trainer connects; `window` bounds the batches it holds without a loss.
public struct TrainerHello: Equatable, Sendable {
    public var trainerID: String
    public var window: UInt32
    public var softwareVersion: String

    public init(trainerID: String, window: UInt32, softwareVersion: String) {
        self.trainerID = trainerID
        self.window = window
        self.softwareVersion = softwareVersion
    }
}

/// coordinator -> trainer: accepted; batches follow in order.
public struct TrainerWelcome: Equatable, Sendable {
    public var coordinatorID: String
    public var heartbeatIntervalMs: UInt32
    public var liveness: UInt32
    /// Whether the coordinator waits for the trainer's losses (reward.source: trainer-loss or prediction-gain).
    public var wantsLoss: Bool
    /// Whether each loss must come with the loss on the same pairs after the step (prediction-gain).
    public var wantsLossAfter: Bool
    /// Whether each loss must come with the probe's loss before and after the step (probe-progress).
    public var wantsProbeLosses: Bool

    public init(
        coordinatorID: String, heartbeatIntervalMs: UInt32, liveness: UInt32, wantsLoss: Bool,
        wantsLossAfter: Bool = false,
        wantsProbeLosses: Bool = false
    ) {
        self.wantsProbeLosses = wantsProbeLosses
        self.coordinatorID = coordinatorID
        self.heartbeatIntervalMs = heartbeatIntervalMs
        self.liveness = liveness
        self.wantsLoss = wantsLoss
        self.wantsLossAfter = wantsLossAfter
    }
}

/// One preference pair as a trainer receives it.
public struct TrainerPair: Equatable, Sendable {
    public var prompt: String
    public var chosen: String
    public var rejected: String
    public var chosenScore: Double
    public var rejectedScore: Double
    public var promptID: String

    public init(
        prompt: String, chosen: String, rejected: String, chosenScore: Double, rejectedScore: Double, promptID: String
    ) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.chosenScore = chosenScore
        self.rejectedScore = rejectedScore
        self.promptID = promptID
    }
}

/// coordinator -> trainer: one mini-batch of pairs.
public struct PreferenceBatch: Equatable, Sendable {
    public var globalBatch: UInt64
    public var iteration: UInt32
    public var batch: UInt32
    public var rewardModel: String
    public var pairs: [TrainerPair]
    public var path: String

    public init(
        globalBatch: UInt64, iteration: UInt32, batch: UInt32, rewardModel: String, pairs: [TrainerPair], path: String
    ) {
        self.globalBatch = globalBatch
        self.iteration = iteration
        self.batch = batch
        self.rewardModel = rewardModel
        self.pairs = pairs
        self.path = path
    }
}

/// trainer -> coordinator: the loss on a batch. `iteration > 0` addresses it by iteration and batch
/// (as in its file name) instead of `globalBatch`.
public struct BatchFeedback: Equatable, Sendable {
    public var globalBatch: UInt64
    /// The loss on the batch's pairs before (or at) the trainer's step.
    public var loss: Double
    public var iteration: UInt32
    public var batch: UInt32
    /// The loss on the same pairs after the step (prediction-gain); nil when not reported.
    public var lossAfter: Double?
    /// The mean loss on the probe's pairs before and after the step (probe-progress); nil when not reported.
    public var probeLosses: (before: Double, after: Double)?

    public static func == (a: BatchFeedback, b: BatchFeedback) -> Bool {
        a.globalBatch == b.globalBatch && a.loss == b.loss && a.iteration == b.iteration && a.batch == b.batch
            && a.lossAfter == b.lossAfter && a.probeLosses?.before == b.probeLosses?.before
            && a.probeLosses?.after == b.probeLosses?.after
            && (a.probeLosses == nil) == (b.probeLosses == nil)
    }

    public init(
        globalBatch: UInt64, loss: Double, iteration: UInt32 = 0, batch: UInt32 = 0, lossAfter: Double? = nil,
        probeLosses: (before: Double, after: Double)? = nil
    ) {
        self.probeLosses = probeLosses
        self.globalBatch = globalBatch
        self.loss = loss
        self.iteration = iteration
        self.batch = batch
        self.lossAfter = lossAfter
    }
}

/// coordinator -> trainer (probe-progress): the label-free probe's consensus pairs, once per session.
public struct ProbeSet: Equatable, Sendable {
    public var pairs: [TrainerPair]
    public var prompts: UInt32

    public init(pairs: [TrainerPair], prompts: UInt32) {
        self.pairs = pairs
        self.prompts = prompts
    }
}

/// coordinator -> worker: make the loaded set `loaded - unload + load` (unload first), then answer
/// with an ``RMState`` that echoes `requestID`.
public struct LoadRM: Equatable, Sendable {
    public var requestID: UInt64
    public var load: [String]
    public var unload: [String]

    public init(requestID: UInt64, load: [String], unload: [String]) {
        self.requestID = requestID
        self.load = load
        self.unload = unload
    }
}

/// worker -> coordinator: the RMs loaded now, and how each requested load went.
public struct RMState: Equatable, Sendable {
    /// One requested load: its time, or why it failed (`error` non-empty: not loaded).
    public struct Load: Equatable, Sendable {
        public var name: String
        public var loadMs: UInt32
        public var error: String

        public init(name: String, loadMs: UInt32, error: String = "") {
            self.name = name
            self.loadMs = loadMs
            self.error = error
        }
    }

    public var requestID: UInt64
    public var loaded: [String]
    public var loads: [Load]

    public init(requestID: UInt64, loaded: [String], loads: [Load] = []) {
        self.requestID = requestID
        self.loaded = loaded
        self.loads = loads
    }
}

/// coordinator -> sender of a BatchFeedback.
public struct FeedbackAck: Equatable, Sendable {
    public var globalBatch: UInt64
    public var accepted: Bool
    public var reason: String

    public init(globalBatch: UInt64, accepted: Bool, reason: String) {
        self.globalBatch = globalBatch
        self.accepted = accepted
        self.reason = reason
    }
}

/// Why bytes could not be turned into a `WireMessage`.
/// Bytes that are not a valid laser message (exit status 7 when it stops a command).
public typealias WireError = CodedError<WireErrorCode>

/// The codes of ``WireError``.
public enum WireErrorCode: String, ErrorCode {
    /// Not a protobuf Envelope, or fields out of range.
    case malformed
    /// A protocol_version this side does not speak.
    case version

    public static var unspecified: Self { .malformed }
}
