/// One candidate response to a prompt, with its correctness label when the input provides one
/// (or when it can be derived from the prompt's reference answer).
public struct Candidate: Equatable, Sendable {
    public var text: String
    /// true = correct, false = incorrect, nil = unknown. Never sent to workers: RMs do not see labels.
    public var correct: Bool?

    public init(text: String, correct: Bool? = nil) {
        self.text = text
        self.correct = correct
    }
}

/// One input line: a prompt, its sampled candidates and optional reference, task family and context.
public struct PromptRecord: Equatable, Sendable {
    public var id: String
    public var prompt: String
    public var candidates: [Candidate]
    public var reference: String?
    /// Task family, for reporting only ("default" when the input names none). The bandit never sees it.
    public var task: String
    /// The bandit's context vector for this prompt (from the input, or from the featurizer).
    public var context: [Double]

    public init(id: String, prompt: String, candidates: [Candidate], reference: String? = nil,
                task: String = "default", context: [Double]) {
        self.id = id
        self.prompt = prompt
        self.candidates = candidates
        self.reference = reference
        self.task = task
        self.context = context
    }
}

/// One emitted preference pair, in TRL's format plus provenance.
public struct PreferencePair: Equatable, Sendable {
    public var prompt: String
    public var chosen: String
    public var rejected: String
    public var chosenScore: Double
    public var rejectedScore: Double
    /// The RM (arm) that ranked the candidates, or "ensemble".
    public var rm: String
    public var promptID: String
    public var iteration: Int
    public var batch: Int
    /// Correctness labels of the two candidates where known (for label-based evaluation).
    public var chosenCorrect: Bool?
    public var rejectedCorrect: Bool?

    public init(prompt: String, chosen: String, rejected: String, chosenScore: Double, rejectedScore: Double,
                rm: String, promptID: String, iteration: Int, batch: Int,
                chosenCorrect: Bool? = nil, rejectedCorrect: Bool? = nil) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.chosenScore = chosenScore
        self.rejectedScore = rejectedScore
        self.rm = rm
        self.promptID = promptID
        self.iteration = iteration
        self.batch = batch
        self.chosenCorrect = chosenCorrect
        self.rejectedCorrect = rejectedCorrect
    }
}
