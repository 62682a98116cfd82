/// The label-based reward: how often the emitted pairs prefer a correct response over an incorrect one.
///
/// This is NOT the paper's reward (that is the trainer's loss, which arrives with the trainer loop);
/// it is an evaluation signal available wherever candidates carry correctness labels.
/// Credit per pair: 1 if chosen is correct and rejected is not, 0 for the reverse, 0.5 when both
/// labels agree (a tie); pairs with an unknown label do not count.
public struct LabelPairAccuracy: Equatable, Sendable {
    public private(set) var credit: Double = 0
    public private(set) var labelledPairs: Int = 0

    public init() {}

    public mutating func add(chosenCorrect: Bool?, rejectedCorrect: Bool?) {
        guard let c = chosenCorrect, let r = rejectedCorrect else { return }
        labelledPairs += 1
        credit += c == r ? 0.5 : (c ? 1 : 0)
    }

    /// Best-of-n: one chosen response, credit 1 if correct, 0 if not (unknown: not counted).
    public mutating func add(choiceCorrect: Bool?) {
        guard let c = choiceCorrect else { return }
        add(chosenCorrect: c, rejectedCorrect: !c)
    }

    public mutating func add(_ other: LabelPairAccuracy) {
        credit += other.credit
        labelledPairs += other.labelledPairs
    }

    /// Mean credit, or nil when no pair had both labels.
    public var value: Double? { labelledPairs > 0 ? credit / Double(labelledPairs) : nil }
}

/// Where the bandit's reward comes from.
public enum RewardSource: String, Sendable, Codable, CaseIterable {
    /// Label-based pair accuracy of the batch's pairs (evaluation reward, needs labels or references).
    case labelPairAccuracy = "label-pair-accuracy"
    /// The paper's reward: -loss of the trainer on the batch's pairs, reported after its step.
    case trainerLoss = "trainer-loss"
    /// Prediction gain (Graves et al. 2017, "Automated Curriculum Learning for Neural Networks"): the
    /// decrease of the trainer's loss on the batch's own pairs across its step, `loss - loss_after`.
    case predictionGain = "prediction-gain"
    /// Progress on a label-free probe: every RM scores a sample of prompts once; the pairs all RMs with
    /// an opinion agree on go to the trainer, which reports its loss on them before and after each
    /// batch's step; the reward is the decrease (`Coordinator+Probe.swift`).
    case probeProgress = "probe-progress"

    /// Whether the reward comes from a trainer: batches wait for its report, which is journaled.
    public var fromTrainer: Bool { self == .trainerLoss || self == .predictionGain || self == .probeProgress }
}
