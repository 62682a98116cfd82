import StableRandom

/// How a learning strategy starts and breaks ties (config section `bandit`, docs/configuration.md).
/// The defaults are the paper's code: no warm start, ties to the lowest arm, the first raw reward kept.
public struct BanditOptions: Equatable, Sendable {
    public enum WarmStart: String, CaseIterable, Sendable {
        /// LinUCB from the first decision (the paper).
        case none
        /// Every arm is tried once, in a seeded order, before LinUCB takes over: global batches 0..<K
        /// get one arm each. With `granularity: instance`, the prompts of the run's first batch cycle
        /// through the arms in that order (every arm is tried when the batch holds at least K prompts).
        case roundRobin = "round-robin"
    }

    public enum Ties: String, CaseIterable, Sendable {
        /// Equal bounds go to the lowest arm index (the paper's `argmax`): arm 0 wins every tie.
        case first
        /// Equal bounds go to the arm that comes first in a permutation seeded by (seed, batch, unit):
        /// no arm is favoured by its place in the config.
        case seeded
    }

    public enum FirstReward: String, CaseIterable, Sendable {
        /// The paper's code: the first reward goes to the bandit raw (the normaliser has no history yet).
        case paper
        /// The first reward counts as 0.5, the middle of the normalised range.
        case neutral
    }

    public enum Record: String, CaseIterable, Sendable {
        /// selections.jsonl holds the batch's RM only.
        case none
        /// Each decision's context digest (FNV-1a of its numbers) and every arm's bound (LinUCB's
        /// upper confidence bound, Exp3's probability) when it was made.
        case bounds
        /// `bounds` and the context vector itself, enough to replay every decision independently.
        case full
    }

    public var warmStart = WarmStart.none
    public var ties = Ties.first
    public var firstReward = FirstReward.paper
    /// What selections.jsonl records of each decision (`bandit.record_decisions`).
    public var record = Record.none

    public init(
        warmStart: WarmStart = .none, ties: Ties = .first, firstReward: FirstReward = .paper, record: Record = .none
    ) {
        self.warmStart = warmStart
        self.ties = ties
        self.firstReward = firstReward
        self.record = record
    }

    /// A permutation of 0..<n drawn from the stream (seed, tag, a, b): Fisher-Yates with SplitMix64.
    public static func permutation(_ n: Int, seed: UInt64, tag: UInt64, _ a: UInt64, _ b: UInt64) -> [Int] {
        var p = Array(0..<n)
        guard n > 1 else { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let h = SplitMix64.mix(seed, tag, a, b &* 1_000_003 &+ UInt64(i))
            p.swapAt(i, Int(h % UInt64(i + 1)))
        }
        return p
    }
}
