import LaserErrors
/// What a reward model is asked to score: one prompt and its candidate responses.
public struct ScoringRequest: Sendable, Equatable {
    /// Stable id of the prompt within the run (used, for example, to seed noise deterministically).
    public var promptID: String
    public var prompt: String
    public var candidates: [String]
    /// Reference answer when the input has one. RMs that need it treat `nil` as "no information".
    public var reference: String?
    /// 1-based iteration number of the run.
    public var iteration: UInt32

    public init(promptID: String, prompt: String, candidates: [String], reference: String? = nil, iteration: UInt32 = 1)
    {
        self.promptID = promptID
        self.prompt = prompt
        self.candidates = candidates
        self.reference = reference
        self.iteration = iteration
    }
}

/// A reward model: scores every candidate of a prompt. Higher is better.
///
/// Implementations must be deterministic functions of the request (and of their configuration),
/// so that any worker produces the same scores for the same request, and must return exactly one
/// finite score per candidate or throw.
///
/// A worker may call one RM instance from several threads at once (one per slot), so
/// implementations must be thread-safe.
public protocol RewardModel: Sendable {
    /// The configured name of this RM (the bandit's arm name).
    var name: String { get }
    func score(_ request: ScoringRequest) throws -> [Double]
    /// Scores several prompts in one call: one score list per request, in request order. Backends
    /// that batch (a subprocess, an HTTP server, a GPU) override this; the default calls
    /// ``score(_:)`` per request. The worker calls this with all items of a score task.
    func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]]
    /// Releases what the RM holds (child processes, connections). The worker calls it when it
    /// exits or replaces its RMs. The default does nothing.
    func close()
    /// Makes the RM ready to score (a capacity-limited worker calls it when the coordinator's placement
    /// asks it to load this RM, docs/placement.md); it may take minutes. The default does nothing: the
    /// RM is ready once built. ``close()`` is its unload.
    func load() throws
    /// The opposite of ``load()`` (a capacity-limited worker calls it before releasing the RM with
    /// ``close()``): hand the GPU back, for example a server's sleep endpoint. The default does nothing.
    func unload() throws
    /// How many candidates one backend call should carry at most, for backends that batch on a GPU
    /// server (`max_batch`): the worker then hands queued tasks for this RM to one ``scoreBatch(_:)``
    /// call up to this many candidates. nil (the default): one call per task.
    var maxBatchCandidates: Int? { get }
}

extension RewardModel {
    public func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
        try requests.map { try score($0) }
    }

    public func close() {}

    public func load() throws {}

    public func unload() throws {}

    public var maxBatchCandidates: Int? { nil }
}

/// A reward model definition: a configured name, a kind (which implementation) and its parameters.
public struct RewardModelSpec: Sendable, Equatable, Hashable, Codable {
    public var name: String
    public var kind: String
    public var params: [String: String]

    public init(name: String, kind: String, params: [String: String] = [:]) {
        self.name = name
        self.kind = kind
        self.params = params
    }
}

/// Why a reward model could not be built or could not score a request.
public typealias RewardModelError = CodedError<RewardModelErrorCode>

/// The codes of ``RewardModelError``.
public enum RewardModelErrorCode: String, ErrorCode {
    /// A definition that cannot be built (a kind, a param; exit status 6 at start).
    case definition
    /// A call that failed: a server's answer, a child process, a score that is not finite.
    case scoring

    public static var unspecified: Self { .scoring }
}
