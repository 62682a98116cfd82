import LaserWire

/// One candidate response to a prompt, with its correctness label when the input provides one
/// (or when it can be derived from the prompt's reference answer).
public struct Candidate: Equatable, Sendable {
    /// The text as the coordinator keeps it: JSON-escaped bytes, straight from the input file (see
    /// `JSONText`); workers and batch files get these bytes, nothing on the way decodes them.
    public var json: JSONText
    /// true = correct, false = incorrect, nil = unknown. Never sent to workers: RMs do not see labels.
    public var correct: Bool?

    /// The text, decoded (labels, tests; not the hot path).
    public var text: String {
        get { json.string }
        set { json = JSONText(newValue) }
    }

    public init(text: String, correct: Bool? = nil) {
        self.init(json: JSONText(text), correct: correct)
    }

    public init(json: JSONText, correct: Bool? = nil) {
        self.json = json
        self.correct = correct
    }
}

/// One input line: a prompt, its sampled candidates and optional reference, task family and context.
public struct PromptRecord: Equatable, Sendable {
    public var id: String
    /// The prompt as RMs, the featurizer and the trainer's wire see it: the input's string, or the
    /// rendering of its messages (see `messagesJSON`).
    public var prompt: String
    /// TRL's conversational format: the input's `prompt` messages as one JSON array (laser's escaping,
    /// keys in input order), written back to batch files as the prompt, with chosen and rejected as
    /// assistant messages. Nil for a plain string prompt.
    public var messagesJSON: String?
    public var candidates: [Candidate]
    public var reference: String?
    /// Task family, for reporting only ("default" when the input names none). The bandit never sees it.
    public var task: String
    /// The bandit's context vector for this prompt (from the input, or from the featurizer).
    public var context: [Double]

    public init(
        id: String, prompt: String, candidates: [Candidate], reference: String? = nil,
        task: String = "default", context: [Double], messagesJSON: String? = nil
    ) {
        self.id = id
        self.prompt = prompt
        self.messagesJSON = messagesJSON
        self.candidates = candidates
        self.reference = reference
        self.task = task
        self.context = context
    }
}

extension PromptRecord {
    /// About what the prompt adds to a score task on the wire (texts plus field overhead), an upper
    /// bound for both candidate forms (escaped JSON is never shorter than the text it escapes).
    public var wireBytes: Int {
        id.utf8.count + prompt.utf8.count + (reference?.utf8.count ?? 0) + 32
            + candidates.reduce(0) { $0 + $1.json.escapedCount + 8 }
    }
}

/// One emitted preference pair, in TRL's format plus provenance.
public struct PreferencePair: Equatable, Sendable {
    public var prompt: String
    /// The prompt's messages when the input used TRL's conversational format (`PromptRecord.messagesJSON`):
    /// the batch file then writes prompt, chosen and rejected as message lists.
    public var messagesJSON: String?
    /// The chosen and rejected texts, kept JSON-escaped as read (see `Candidate.json`).
    public var chosenJSON: JSONText
    public var rejectedJSON: JSONText
    public var chosen: String {
        get { chosenJSON.string }
        set { chosenJSON = JSONText(newValue) }
    }
    public var rejected: String {
        get { rejectedJSON.string }
        set { rejectedJSON = JSONText(newValue) }
    }
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

    public init(
        prompt: String, chosen: String, rejected: String, chosenScore: Double, rejectedScore: Double,
        rm: String, promptID: String, iteration: Int, batch: Int,
        chosenCorrect: Bool? = nil, rejectedCorrect: Bool? = nil, messagesJSON: String? = nil
    ) {
        self.init(
            prompt: prompt, chosenJSON: JSONText(chosen), rejectedJSON: JSONText(rejected), chosenScore: chosenScore,
            rejectedScore: rejectedScore, rm: rm, promptID: promptID, iteration: iteration, batch: batch,
            chosenCorrect: chosenCorrect, rejectedCorrect: rejectedCorrect, messagesJSON: messagesJSON)
    }

    public init(
        prompt: String, chosenJSON: JSONText, rejectedJSON: JSONText, chosenScore: Double, rejectedScore: Double,
        rm: String, promptID: String, iteration: Int, batch: Int,
        chosenCorrect: Bool? = nil, rejectedCorrect: Bool? = nil, messagesJSON: String? = nil
    ) {
        self.prompt = prompt
        self.messagesJSON = messagesJSON
        self.chosenJSON = chosenJSON
        self.rejectedJSON = rejectedJSON
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
