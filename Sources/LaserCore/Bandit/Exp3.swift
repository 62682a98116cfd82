#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Exp3 (Auer et al. 2002), the adversarial bandit of the paper's robustness study; not contextual.
///
/// Probabilities `p_k = (1 - gamma) w_k / sum_j w_j + gamma / K`; the arm is drawn from p with a
/// uniform number that the caller derives from (seed, batch, unit), so the draw is replayable. After
/// a reward `r` in [0, 1] for arm k drawn with probability `p_k`: `w_k *= exp(gamma * (r / p_k) / K)`.
/// Weights are kept as logarithms (they grow without bound otherwise), and `p_k` is the probability
/// at selection time, also when feedback is delayed (pipeline depth > 1).
public struct Exp3: Equatable, Sendable {
    public let armCount: Int
    public let gamma: Double
    public private(set) var logWeights: [Double]

    public init(armCount: Int, gamma: Double = 0.1) {
        precondition(armCount > 0 && gamma > 0 && gamma <= 1)
        self.armCount = armCount
        self.gamma = gamma
        logWeights = Array(repeating: 0, count: armCount)
    }

    public var probabilities: [Double] {
        let m = logWeights.max()!
        let w = logWeights.map { exp($0 - m) }
        let total = w.reduce(0, +)
        return w.map { (1 - gamma) * $0 / total + gamma / Double(armCount) }
    }

    /// The arm for a uniform number `u` in [0, 1), and its probability.
    public func draw(_ u: Double) -> (arm: Int, probability: Double) {
        let p = probabilities
        var cumulative = 0.0
        for k in 0..<armCount {
            cumulative += p[k]
            if u < cumulative { return (k, p[k]) }
        }
        return (armCount - 1, p[armCount - 1])
    }

    public mutating func update(arm k: Int, reward r: Double, probability p: Double) {
        precondition(p > 0 && (0..<armCount).contains(k))
        logWeights[k] += gamma * (r / p) / Double(armCount)
    }
}
