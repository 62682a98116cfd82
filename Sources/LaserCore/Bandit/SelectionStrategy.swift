import StableRandom
/// How RMs are chosen for a mini-batch: LASeR's bandit or one of the paper's baselines.
public enum StrategyKind: String, CaseIterable, Sendable, Codable {
    /// Disjoint LinUCB over the batch's mean context (LASeR).
    case linucb
    /// A uniformly random RM per batch, seeded by (run seed, batch number).
    case random
    /// Round-robin per batch: batch t (counted over the whole run, across iterations) uses RM t mod K.
    case sequential
    /// Every RM scores every candidate; per-prompt z-scored scores are averaged. K times the RM cost.
    case ensemble
    /// Always the configured RM ("Best RM" baseline).
    case fixed
}

/// What a strategy decided for one mini-batch.
public enum Selection: Equatable, Sendable, Codable {
    case arm(Int)
    case ensemble
}

/// The strategy with its state. A value type: copying it snapshots the bandit.
public struct Selector: Equatable, Sendable {
    public let kind: StrategyKind
    public let armCount: Int
    public let seed: UInt64
    public let fixedArm: Int
    public private(set) var linucb: LinUCB?

    public init(kind: StrategyKind, armCount: Int, dimension: Int, seed: UInt64,
                alpha: Double = 0.1, lambda: Double = 1.0, fixedArm: Int = 0) {
        precondition(armCount > 0)
        self.kind = kind
        self.armCount = armCount
        self.seed = seed
        self.fixedArm = fixedArm
        linucb = kind == .linucb ? LinUCB(armCount: armCount, dimension: dimension, alpha: alpha, lambda: lambda) : nil
    }

    /// The decision for decision unit `unit` (0 for batch-level selection, the prompt's position for
    /// instance-level) of global batch number `batch` (0-based over the whole run), with context `x`.
    /// Sequential, instance-level: prompt i of batch t uses RM (t + i) mod K.
    public func select(context x: [Double], batch: Int, unit: Int = 0) -> Selection {
        switch kind {
        case .linucb: return .arm(linucb!.select(x))
        case .random:
            let h = unit == 0 ? SplitMix64.mix(seed, 0xBA7C4, UInt64(batch)) : SplitMix64.mix(seed, 0xBA7C4, UInt64(batch), UInt64(unit))
            return .arm(Int(h % UInt64(armCount)))
        case .sequential: return .arm((batch + unit) % armCount)
        case .ensemble: return .ensemble
        case .fixed: return .arm(fixedArm)
        }
    }

    /// Whether this strategy learns from rewards at all.
    public var learns: Bool { kind == .linucb }

    public mutating func update(arm: Int, context x: [Double], reward: Double) {
        guard kind == .linucb else { return }
        linucb!.update(arm: arm, context: x, reward: reward)
    }
}
