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
    /// `bandit.record_decisions`: each decision of the batch, as it was made.
    public var decisions: [DecisionRecord]?

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

/// One decision as selections.jsonl records it (`bandit.record_decisions`).
public struct DecisionRecord: Sendable, Equatable {
    /// FNV-1a over the context's numbers (their IEEE 754 bits, little-endian), as 16 hex digits.
    public var contextDigest: String
    /// Every arm's bound when the decision was made (LinUCB: upper confidence bound; Exp3: probability).
    public var bounds: [Double]?
    /// The context itself (`full`).
    public var context: [Double]?
    /// The arm chosen (nil: ensemble).
    public var arm: Int?

    static func digest(_ x: [Double]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for v in x {
            var bits = v.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { for b in $0 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 } }
        }
        return String(h, radix: 16).leftPadded(16, with: "0")
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
