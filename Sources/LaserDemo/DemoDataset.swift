import Foundation

/// One demo prompt with its sampled candidate responses and their correctness labels.
public struct DemoPrompt: Sendable, Equatable {
    /// Unique within a run, e.g. "it2-arith-0007".
    public var id: String
    /// The text the policy answers.
    public var prompt: String
    /// The sampled responses, in sampling order.
    public var candidates: [DemoCandidate]
    /// The reference answer where the task has one (trivia); `nil` otherwise.
    public var reference: String?
    /// One of ``DemoDataset/tasks``.
    public var task: String

    /// A prompt with its candidates.
    public init(id: String, prompt: String, candidates: [DemoCandidate], reference: String?, task: String) {
        self.id = id
        self.prompt = prompt
        self.candidates = candidates
        self.reference = reference
        self.task = task
    }
}

/// One candidate response of a demo prompt, labelled with whether it is actually right.
public struct DemoCandidate: Sendable, Equatable {
    /// The response as the policy wrote it.
    public var text: String
    /// Ground truth: whether the response is right (used to evaluate, never shown to the RMs).
    public var correct: Bool

    /// A labelled candidate.
    public init(text: String, correct: Bool) {
        self.text = text
        self.correct = correct
    }
}

/// A synthetic dataset for running LASeR without downloads: three task families on which different
/// built-in RMs are best, so choosing the RM per context visibly matters.
///
/// - `arithmetic`: GSM8K-style word problems with `<<a*b=c>>` annotations and no reference
///   (arithmetic-check is best; self-consistency helps; answer-match has nothing to go on).
/// - `instructions`: IFEval-style prompts with 2-3 verifiable instructions (instruction-following is best).
/// - `trivia`: short factual questions with a reference whose wrong candidates mostly agree on one
///   popular wrong answer (answer-match is best; self-consistency misleads).
///
/// Everything is a pure function of (seed, iteration): candidates are re-sampled each iteration, as a
/// policy would, and the lengths of right and wrong candidates are kept alike so that length is no proxy.
public enum DemoDataset {
    /// The task families, in the order of their index in the random streams.
    public static let tasks: [String] = ["arithmetic", "instructions", "trivia"]

    /// Most prompts per task one call generates (ids have four digits up to here; memory stays small).
    public static let maxPromptsPerTask = 10_000
    /// Most candidates per prompt (the paper samples 30).
    public static let maxCandidatesPerPrompt = 256

    private static let idPrefixes = ["arith", "instr", "trivia"]

    /// The prompts of one iteration, `promptsPerTask` per task.
    ///
    /// Prompts come in runs of `batchSize` consecutive prompts of one task, the runs in an order
    /// shuffled per iteration, so that mini-batches of `batchSize` are homogeneous. When
    /// `promptsPerTask` is not a multiple of `batchSize`, the shorter last run of each task is put
    /// at the end of the list (those last batches may mix tasks).
    ///
    /// - Precondition: `iteration >= 0`, `0 <= promptsPerTask <= maxPromptsPerTask`,
    ///   `2 <= candidatesPerPrompt <= maxCandidatesPerPrompt`, `batchSize >= 1`; callers validate user input first.
    public static func generate(
        iteration: Int, seed: UInt64, promptsPerTask: Int, candidatesPerPrompt: Int, batchSize: Int
    ) -> [DemoPrompt] {
        precondition(iteration >= 0, "iteration must be >= 0, got \(iteration)")
        precondition(
            (0...maxPromptsPerTask).contains(promptsPerTask),
            "promptsPerTask must be in 0...\(maxPromptsPerTask), got \(promptsPerTask)")
        precondition(
            (2...maxCandidatesPerPrompt).contains(candidatesPerPrompt),
            "candidatesPerPrompt must be in 2...\(maxCandidatesPerPrompt), got \(candidatesPerPrompt)")
        precondition(batchSize >= 1, "batchSize must be >= 1, got \(batchSize)")

        var fullRuns: [[DemoPrompt]] = []
        var shortRuns: [[DemoPrompt]] = []
        for taskIndex in tasks.indices {
            let prompts = (0..<promptsPerTask).map { index in
                makePrompt(
                    task: taskIndex, index: index, iteration: iteration, seed: seed,
                    candidates: candidatesPerPrompt)
            }
            for start in stride(from: 0, to: prompts.count, by: batchSize) {
                let run = Array(prompts[start..<min(start + batchSize, prompts.count)])
                if run.count == batchSize { fullRuns.append(run) } else { shortRuns.append(run) }
            }
        }
        var order = DemoRandom(seed: seed, UInt64(iteration), 0x6F72_6465_72)  // "order"
        order.shuffle(&fullRuns)
        order.shuffle(&shortRuns)
        return (fullRuns + shortRuns).flatMap { $0 }
    }

    private static func makePrompt(task: Int, index: Int, iteration: Int, seed: UInt64, candidates: Int) -> DemoPrompt {
        var rng = DemoRandom(seed: seed, UInt64(iteration), UInt64(task), UInt64(index))
        let labels = correctnessLabels(count: candidates, rng: &rng)
        let id = "it\(iteration)-\(idPrefixes[task])-" + String(format: "%04d", index)
        let sample: DemoSample
        switch tasks[task] {
        case "arithmetic":
            sample = ArithmeticFamily.sample(labels: labels, rng: &rng)
        case "instructions":
            sample = InstructionFamily.sample(labels: labels, rng: &rng)
        case "trivia":
            sample = TriviaFamily.sample(
                fact: TriviaFamily.fact(at: index, iteration: iteration, seed: seed), labels: labels, rng: &rng)
        default:
            preconditionFailure("unknown demo task \(tasks[task])")
        }
        return DemoPrompt(
            id: id, prompt: sample.prompt, candidates: sample.candidates,
            reference: sample.reference, task: tasks[task])
    }

    /// Which candidates are right: mostly 20-60% per prompt, sometimes none or all, as from a policy
    /// that finds some prompts easy and others impossible.
    private static func correctnessLabels(count: Int, rng: inout DemoRandom) -> [Bool] {
        let draw = rng.unit()
        let rate = draw < 0.07 ? 0 : draw < 0.12 ? 1 : 0.2 + 0.4 * rng.unit()
        return (0..<count).map { _ in rng.chance(rate) }
    }
}

/// What a task family produces for one prompt.
struct DemoSample {
    var prompt: String
    var candidates: [DemoCandidate]
    var reference: String?
}
