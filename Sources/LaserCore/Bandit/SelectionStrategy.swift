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
    /// Exp3, the paper's non-contextual adversarial bandit (robustness study).
    case exp3
    /// Every RM scores every candidate; a pair of the score ensemble's ranking is kept only where the
    /// RMs agree on its direction (see `AgreementFilter`). K times the RM cost.
    case agreement
    /// Linear Thompson sampling (Agrawal & Goyal 2013) on LinUCB's ridge posterior per arm, with optional
    /// Gaussian priors per arm (`laser calibrate`): see `ThompsonSampling`.
    case thompson
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
    public private(set) var exp3: Exp3?
    /// Warm start and tie-breaking of LinUCB.
    public let options: BanditOptions
    /// The order in which a warm start tries the arms (a permutation seeded by the run's seed).
    public let warmOrder: [Int]
    /// One decision per prompt (`granularity: instance`): a warm start covers the first batch's prompts.
    public let perPrompt: Bool
    /// Thompson sampling's scale and priors (`thompson` section).
    public let thompson: ThompsonSettings

    public init(
        kind: StrategyKind, armCount: Int, dimension: Int, seed: UInt64,
        alpha: Double = 0.1, lambda: Double = 1.0, fixedArm: Int = 0, gamma: Double = 0.1,
        options: BanditOptions = BanditOptions(), perPrompt: Bool = false,
        thompson: ThompsonSettings = ThompsonSettings()
    ) {
        precondition(armCount > 0)
        precondition(thompson.priors.isEmpty || thompson.priors.count == armCount)
        self.thompson = thompson
        self.options = options
        self.perPrompt = perPrompt
        warmOrder = BanditOptions.permutation(armCount, seed: seed, tag: 0x3A53, 0, 0)
        self.kind = kind
        self.armCount = armCount
        self.seed = seed
        self.fixedArm = fixedArm
        linucb =
            kind == .linucb || kind == .thompson
            ? LinUCB(armCount: armCount, dimension: dimension, alpha: alpha, lambda: lambda) : nil
        exp3 = kind == .exp3 ? Exp3(armCount: armCount, gamma: gamma) : nil
    }

    /// The decision for decision unit `unit` (0 for batch-level selection, the prompt's position for
    /// instance-level) of global batch number `batch` (0-based over the whole run), with context `x`.
    /// Sequential, instance-level: prompt i of batch t uses RM (t + i) mod K.
    public func select(context x: [Double], batch: Int, unit: Int = 0) -> Selection {
        selectWithProbability(context: x, batch: batch, unit: unit).selection
    }

    /// The decision and the probability it had (1 for deterministic strategies; Exp3's `p_k`).
    public func selectWithProbability(
        context x: [Double], batch: Int, unit: Int = 0
    ) -> (selection: Selection, probability: Double) {
        if kind == .exp3 {
            let u = Double(SplitMix64.mix(seed, 0xE3, UInt64(batch), UInt64(unit)) >> 11) * 0x1.0p-53
            let (arm, p) = exp3!.draw(u)
            return (.arm(arm), p)
        }
        return (selectDeterministic(context: x, batch: batch, unit: unit), 1)
    }

    /// The probability Exp3 gives `arm` now (1 for the other strategies): for a replayed decision.
    public func probability(of arm: Int) -> Double { kind == .exp3 ? exp3!.probabilities[arm] : 1 }

    private func selectDeterministic(context x: [Double], batch: Int, unit: Int) -> Selection {
        switch kind {
        case .linucb:
            if let arm = warmStartArm(batch: batch, unit: unit) { return .arm(arm) }
            guard options.ties == .seeded else { return .arm(linucb!.select(x)) }
            return .arm(
                Self.best(
                    linucb!.upperConfidenceBounds(x),
                    order: BanditOptions.permutation(armCount, seed: seed, tag: 0x71E5, UInt64(batch), UInt64(unit))))
        case .random:
            let h =
                unit == 0
                ? SplitMix64.mix(seed, 0xBA7C4, UInt64(batch))
                : SplitMix64.mix(seed, 0xBA7C4, UInt64(batch), UInt64(unit))
            return .arm(Int(h % UInt64(armCount)))
        case .sequential: return .arm((batch + unit) % armCount)
        case .thompson:
            if let arm = warmStartArm(batch: batch, unit: unit) { return .arm(arm) }
            let samples = ThompsonSampling.samples(
                linucb!.posterior(x), settings: thompson, seed: seed, batch: batch, unit: unit)
            return .arm(Self.best(samples, order: Array(0..<armCount)))
        case .ensemble, .agreement: return .ensemble
        case .fixed: return .arm(fixedArm)
        case .exp3: preconditionFailure("exp3 draws in selectWithProbability")
        }
    }

    /// Every arm's bound for context x as the strategy sees it now: LinUCB's upper confidence bound,
    /// Exp3's probability; nil for strategies without one (for the decision record).
    public func bounds(context x: [Double]) -> [Double]? {
        switch kind {
        case .linucb: return linucb!.upperConfidenceBounds(x)
        case .thompson: return linucb!.posterior(x).map(\.mean)
        case .exp3: return exp3!.probabilities
        default: return nil
        }
    }

    /// The arm a warm start gives this decision, if it is one of the warm start's.
    func warmStartArm(batch: Int, unit: Int) -> Int? {
        guard options.warmStart == .roundRobin else { return nil }
        if perPrompt { return batch == 0 ? warmOrder[unit % armCount] : nil }
        return batch < armCount ? warmOrder[batch] : nil
    }

    /// The arm with the highest bound; among equal ones, the one that comes first in `order`.
    static func best(_ bounds: [Double], order: [Int]) -> Int {
        var best = order[0]
        for k in order.dropFirst() where bounds[k] > bounds[best] { best = k }
        return best
    }

    /// Whether this strategy learns from rewards at all.
    public var learns: Bool { kind == .linucb || kind == .exp3 || kind == .thompson }

    /// `probability`: what the arm had when it was selected (Exp3's importance weight).
    public mutating func update(arm: Int, context x: [Double], reward: Double, probability: Double = 1) {
        switch kind {
        case .linucb, .thompson: linucb!.update(arm: arm, context: x, reward: reward)
        case .exp3: exp3!.update(arm: arm, reward: min(1, max(0, reward)), probability: probability)
        default: break
        }
    }
}
