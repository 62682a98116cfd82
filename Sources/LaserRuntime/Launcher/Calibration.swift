import Foundation
import LaserCore
import LaserRewardModels

/// `laser calibrate`: every RM of a config on a small labelled set, run here (the user's own config
/// and machine: its subprocess and HTTP RMs start from this side), giving each RM a Gaussian prior of
/// its reward for Thompson sampling (`thompson.priors`): the mean and sample variance over mini-batches
/// of the label-based pair accuracy of the pairs the RM would make (the `label-pair-accuracy` reward).
/// BayesianRouter (arXiv 2510.02850) learns such priors offline; laser uses them to start the bandit.
public enum Calibration {
    public struct Result: Equatable, Sendable {
        public var priors: [String: ArmPrior]
        /// Batches with at least one labelled pair, per RM.
        public var batches: [String: Int]
        public var prompts: Int
        public var batchSize: Int
    }

    public static func run(config: RunConfig, input: String, batchSize: Int? = nil) throws -> Result {
        let size = batchSize ?? config.batchSize
        let prompts = try PromptReader(contextDimension: config.contextDimension, ngrams: config.contextNgrams).read(
            path: input)
        guard prompts.contains(where: { $0.candidates.contains { $0.correct != nil } }) else {
            throw InputError(
                "\(input): no prompt has labels (a reference, or candidates with \"correct\"); calibration measures each RM against labels, so give it a small labelled set (for example 50 prompts with references)"
            )
        }
        var priors: [String: ArmPrior] = [:], counts: [String: Int] = [:]
        for spec in config.rewardModels {
            let rm = try RewardModelCatalog.make(spec, runSeed: config.seed)
            defer { rm.close() }
            var rewards: [Double] = []
            for start in stride(from: 0, to: prompts.count, by: size) {
                let chunk = Array(prompts[start..<min(start + size, prompts.count)])
                let scores: [[Double]]
                do {
                    scores = try rm.scoreBatch(
                        chunk.map {
                            ScoringRequest(
                                promptID: $0.id, prompt: $0.prompt, candidates: $0.candidates.map(\.text),
                                reference: $0.reference)
                        })
                } catch {
                    throw RunFailure("RM \(spec.name) failed on \(input): \(error)")
                }
                var accuracy = LabelPairAccuracy()
                for (p, s) in zip(chunk, scores) {
                    guard s.count == p.candidates.count, s.allSatisfy(\.isFinite) else {
                        throw RunFailure(
                            "RM \(spec.name) returned \(s.count) scores for prompt \(p.id)'s \(p.candidates.count) candidates (or a non-finite one)"
                        )
                    }
                    for (c, r) in config.pairs.pairs(scores: s) {
                        accuracy.add(chosenCorrect: p.candidates[c].correct, rejectedCorrect: p.candidates[r].correct)
                    }
                }
                if let value = accuracy.value { rewards.append(value) }
            }
            counts[spec.name] = rewards.count
            guard !rewards.isEmpty else {
                // No labelled pair at all: an uninformative prior (the middle, with the widest spread a
                // reward in [0, 1] can have).
                priors[spec.name] = ArmPrior(mean: 0.5, variance: 0.25)
                continue
            }
            let mean = rewards.reduce(0, +) / Double(rewards.count)
            let variance =
                rewards.count > 1
                ? rewards.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rewards.count - 1) : 0.25
            // A floor, so that one lucky calibration set cannot make a prior certain.
            priors[spec.name] = ArmPrior(mean: mean, variance: max(variance, 1e-4))
        }
        return Result(priors: priors, batches: counts, prompts: prompts.count, batchSize: size)
    }

    /// The priors file `thompson.priors` reads: one line per RM, in the config's order.
    public static func yaml(_ r: Result, rms: [String], input: String) -> String {
        var y = "# laser calibrate: priors of each RM's reward (label pair accuracy per mini-batch) from\n"
        y += "# \(r.prompts) labelled prompts of \(input), in batches of \(r.batchSize). Use as thompson.priors.\n"
        for name in rms {
            let p = r.priors[name]!
            y +=
                "\(JSONLines.quoted(name)): {mean: \(p.mean), variance: \(p.variance), batches: \(r.batches[name] ?? 0)}\n"
        }
        return y
    }
}
