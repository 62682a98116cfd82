import StableRandom

/// Gaussian prior of one arm's (normalised) reward: what `laser calibrate` measures on a small
/// labelled set (BayesianRouter's offline priors, arXiv 2510.02850, used online here).
public struct ArmPrior: Equatable, Sendable, Codable {
    public var mean: Double
    public var variance: Double

    public init(mean: Double, variance: Double) {
        self.mean = mean
        self.variance = variance
    }
}

/// `thompson` section: the posterior's scale v and the arms' priors (empty: uninformative).
public struct ThompsonSettings: Equatable, Sendable {
    /// Scale of the sampled spread: samples are drawn with standard deviation v * sqrt(x^T A^-1 x).
    public var v = 0.5
    /// One prior per arm, in arm order, or none.
    public var priors: [ArmPrior] = []

    public init(v: Double = 0.5, priors: [ArmPrior] = []) {
        self.v = v
        self.priors = priors
    }
}

/// Linear Thompson sampling (Agrawal & Goyal 2013, "Thompson Sampling for Contextual Bandits with
/// Linear Payoffs"): arm k's parameter has the Gaussian posterior N(theta_k, v^2 A_k^-1) of ridge
/// regression (the same A_k = lambda I + sum x x^T and b_k = sum r x as LinUCB), so its predicted reward
/// for context x is N(theta_k . x, v^2 x^T A_k^-1 x); one draw per arm, the highest wins.
///
/// With a prior N(m_k, s_k^2) on the arm's reward (from `laser calibrate`), the draw is from the
/// precision-weighted combination of prior and ridge prediction:
/// `var = 1 / (1/s^2 + 1/(v^2 x^T A^-1 x))`, `mean = var * (m/s^2 + theta.x / (v^2 x^T A^-1 x))`.
/// Early on (A = lambda I) the prior dominates; as the arm is tried, the data does.
///
/// The standard normal draws come from SplitMix64 seeded by (run seed, batch, prompt, arm) with the
/// Box-Muller transform: a decision is a deterministic function of the bandit state and its position,
/// so a run replays and resumes to the same choices.
public enum ThompsonSampling {
    public static func samples(
        _ posterior: [(mean: Double, variance: Double)], settings: ThompsonSettings,
        seed: UInt64, batch: Int, unit: Int
    ) -> [Double] {
        posterior.enumerated().map { k, p in
            var mean = p.mean, variance = settings.v * settings.v * max(p.variance, 1e-300)
            if k < settings.priors.count, settings.priors[k].variance > 0 {
                let prior = settings.priors[k]
                let precision = 1 / prior.variance + 1 / variance
                mean = (prior.mean / prior.variance + mean / variance) / precision
                variance = 1 / precision
            }
            return mean + variance.squareRoot() * standardNormal(seed: seed, batch: batch, unit: unit, arm: k)
        }
    }

    /// One N(0, 1) draw for (seed, batch, unit, arm): Box-Muller on two uniforms in (0, 1].
    public static func standardNormal(seed: UInt64, batch: Int, unit: Int, arm: Int) -> Double {
        let h1 = SplitMix64.mix(seed, 0x7507, UInt64(batch), UInt64(unit) &* 1_000_003 &+ UInt64(arm))
        let h2 = SplitMix64.mix(seed, 0x7508, UInt64(batch), UInt64(unit) &* 1_000_003 &+ UInt64(arm))
        let u1 = (Double(h1 >> 11) + 1) * 0x1.0p-53, u2 = Double(h2 >> 11) * 0x1.0p-53
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
