/// One emitted batch without its pairs: a line of selections.jsonl.
public struct BatchOutcome: Sendable, Equatable {
    public var iteration: Int
    public var batch: Int
    public var globalIndex: Int
    public var rm: String
    public var prompts: Int
    public var pairs: Int
    public var labelAccuracy: Double?
    public var rawReward: Double?
    /// The trainer's loss on the batch (reward.source: trainer-loss).
    public var loss: Double?

    init(_ b: EmittedBatch) {
        iteration = b.iteration
        batch = b.batch
        globalIndex = b.globalIndex
        rm = b.rm
        prompts = b.promptCount
        pairs = b.pairs.count
        labelAccuracy = b.labelAccuracy
        rawReward = b.rawReward
    }
}

/// What a progress line shows.
public struct CoordinatorProgress: Sendable {
    public var iteration: Int
    public var iterations: Int
    public var promptsInIteration: Int
    public var batchesInIteration: Int
    public var batchesEmittedInIteration: Int
    public var batchesEmitted: Int
    public var workers: Int
    public var slots: Int
    public var tasksQueued: Int
    public var tasksInFlight: Int
    public var selections: [(String, Int)]
}

enum HashingFeaturizerMean {
    static func mean(_ vectors: [[Double]], dimension: Int) -> [Double] {
        vectors.isEmpty ? [Double](repeating: 0, count: dimension) : HashingFeaturizer.mean(vectors)
    }
}

func format2(_ x: Double) -> String { formatFixed(x, 2) }
func format4(_ x: Double) -> String { formatFixed(x, 4) }

/// Fixed-point formatting without Foundation (the core does not import it).
func formatFixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    let whole = Int(scaled / scale)
    let frac = Int(scaled) - whole * Int(scale)
    let sign = x < 0 && scaled > 0 ? "-" : ""
    return digits == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(String(frac).leftPadded(digits))"
}
