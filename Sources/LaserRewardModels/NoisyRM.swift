import StableRandom
import Foundation

/// Wraps another RM and adds Gaussian noise N(0, sigma^2) to its scores: the paper's robustness test
/// for reward selection under unreliable RMs.
///
/// The noise of candidate i is a pure function of (seed, run seed, this RM's name, iteration,
/// prompt id, i), so every worker that scores the same request produces the same scores.
public struct NoisyRM: RewardModel {
    public let name: String
    /// The RM whose scores are perturbed.
    public let base: any RewardModel
    /// Standard deviation of the added noise.
    public let sigma: Double
    /// This RM's own seed, so two noisy RMs of a run draw different noise.
    public let seed: UInt64
    /// The run's seed, so a run replays exactly and another run draws afresh.
    public let runSeed: UInt64

    /// A noisy wrapper around `base`.
    ///
    /// - Precondition: `sigma` is finite and >= 0 (the catalog reports bad values as errors instead).
    public init(name: String, base: any RewardModel, sigma: Double, seed: UInt64 = 0, runSeed: UInt64 = 0) {
        precondition(sigma.isFinite && sigma >= 0, "NoisyRM sigma must be finite and >= 0, got \(sigma)")
        self.name = name
        self.base = base
        self.sigma = sigma
        self.seed = seed
        self.runSeed = runSeed
    }

    /// Builds the RM from catalog params: `base` (kind of the wrapped RM, required), `sigma`
    /// (Double >= 0, required), `seed` (UInt64, default 0); every other param goes to the base RM.
    public init(name: String, params: [String: String], runSeed: UInt64) throws {
        var reader = ParamReader(rm: name, kind: "noisy", params: params)
        let baseKind = try reader.requiredString(
            "base", expected: "the kind of the wrapped RM, one of \(RewardModelCatalog.kinds.joined(separator: ", "))")
        let sigmaText = try reader.requiredString("sigma", expected: "a number >= 0")
        guard let sigma = Double(sigmaText), sigma.isFinite, sigma >= 0 else {
            throw reader.invalid("sigma", sigmaText, expected: "a finite number >= 0")
        }
        var seed: UInt64 = 0
        if let seedText = reader.string("seed") {
            guard let parsed = UInt64(seedText) else {
                throw reader.invalid("seed", seedText, expected: "an unsigned 64-bit integer")
            }
            seed = parsed
        }
        let baseParams = params.filter { !["base", "sigma", "seed"].contains($0.key) }
        reader.markUsed(baseParams.keys)
        let base = try RewardModelCatalog.make(
            RewardModelSpec(name: name, kind: baseKind, params: baseParams), runSeed: runSeed)
        self.init(name: name, base: base, sigma: sigma, seed: seed, runSeed: runSeed)
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        try perturb(base.score(request), of: request)
    }

    /// The base's batch (one call, so a batching backend stays batched) with the same noise as ``score(_:)``.
    public func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
        let batch = try base.scoreBatch(requests)
        guard batch.count == requests.count else {
            throw RewardModelError(
                "reward model '\(name)': base returned \(batch.count) score lists for \(requests.count) prompts")
        }
        return try zip(batch, requests).map { try perturb($0, of: $1) }
    }

    public func close() { base.close() }

    private func perturb(_ scores: [Double], of request: ScoringRequest) throws -> [Double] {
        guard scores.count == request.candidates.count else {
            throw RewardModelError(
                "reward model '\(name)': base returned \(scores.count) scores for \(request.candidates.count) candidates"
            )
        }
        guard sigma > 0 else { return scores }
        var prefix = StableHash()
        prefix.combine(seed)
        prefix.combine(runSeed)
        prefix.combine(name)
        prefix.combine(UInt64(request.iteration))
        prefix.combine(request.promptID)
        return scores.enumerated().map { index, score in
            var hash = prefix
            hash.combine(UInt64(index))
            var generator = SplitMix64(seed: hash.finalize())
            return score + sigma * generator.nextGaussian()
        }
    }
}
