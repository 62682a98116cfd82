/// The machine-readable account of a run (written as summary.json): what was selected for which
/// task family, how many pairs came out, their label-based accuracy, RM cost and wall time.
public struct RunSummary: Equatable, Sendable, Codable {
    public var strategy: String
    public var rewardModels: [String]
    public var iterations: [IterationSummary]
    public var arms: [ArmSummary]
    public var counters: Counters
    /// reward.source probe-progress: the probe (absent for other reward sources).
    public var probe: ProbeSummary?

    public init(
        strategy: String, rewardModels: [String], iterations: [IterationSummary], arms: [ArmSummary],
        counters: Counters,
        probe: ProbeSummary? = nil
    ) {
        self.strategy = strategy
        self.rewardModels = rewardModels
        self.iterations = iterations
        self.arms = arms
        self.counters = counters
        self.probe = probe
    }

    /// The label-free probe of probe-progress: prompts every RM scored once, and the consensus pairs.
    public struct ProbeSummary: Equatable, Sendable, Codable {
        public var prompts: Int
        public var pairs: Int
        /// Candidates scored for the probe, all RMs together (also counted in iteration 1's rm_calls).
        public var rmCalls: Int
    }

    /// Operational counters of the scheduler.
    public struct Counters: Equatable, Sendable, Codable {
        public var tasksDispatched = 0
        public var tasksRetried = 0
        public var duplicateResults = 0
        public var invalidResults = 0
        public var malformedMessages = 0
        /// Trainer losses accepted, and refused (unknown or already rewarded batch, loss not finite, ...).
        public var lossesAccepted = 0
        public var lossesRejected = 0
        /// Messages from peers that never said Hello (answered with Disconnect).
        public var unknownPeerMessages = 0
        /// Messages that could not be handed to a peer (gone, or not reading).
        public var undeliverable = 0
        public var workersRegistered = 0
        public var workersLost = 0
        /// Times a worker was reported idle because it hosts only RMs the bandit is not using.
        public var idleWorkerReports = 0
        /// Hellos refused because a live worker already had that worker id.
        public var duplicateWorkerIDs = 0
        /// Score results for a task the sender does not hold (or for another attempt than it was given).
        public var foreignResults = 0
        /// Hellos that declared more slots than network.max_slots_per_worker (clamped to it).
        public var slotsCapped = 0
        /// Times a worker was quarantined for failing network.quarantine_after tasks in a row.
        public var workersQuarantined = 0
        /// Hellos and TrainerHellos refused (malformed ids, unknown RMs, a live trainer already connected, ...).
        public var hellosRefused = 0
        /// Dynamic placement: RMs loaded on capacity-limited workers, loads of an RM a worker had held
        /// before (reloads, included in loads), unloads, and loads that failed or timed out.
        public var rmLoads = 0
        public var rmReloads = 0
        public var rmUnloads = 0
        public var rmLoadFailures = 0
        public init() {}

        /// Snake-case names as in summary.json (the encoder's conversion would write "duplicate_worker_i_ds").
        enum CodingKeys: String, CodingKey {
            case tasksDispatched = "tasks_dispatched", tasksRetried = "tasks_retried"
            case duplicateResults = "duplicate_results", invalidResults = "invalid_results"
            case malformedMessages = "malformed_messages", lossesAccepted = "losses_accepted"
            case lossesRejected = "losses_rejected", unknownPeerMessages = "unknown_peer_messages"
            case undeliverable, workersRegistered = "workers_registered", workersLost = "workers_lost"
            case idleWorkerReports = "idle_worker_reports", duplicateWorkerIDs = "duplicate_worker_ids"
            case foreignResults = "foreign_results", slotsCapped = "slots_capped"
            case workersQuarantined = "workers_quarantined", hellosRefused = "hellos_refused"
            case rmLoads = "rm_loads", rmReloads = "rm_reloads", rmUnloads = "rm_unloads"
            case rmLoadFailures = "rm_load_failures"
        }
    }
}

/// One iteration of a run.
public struct IterationSummary: Equatable, Sendable, Codable {
    public var iteration: Int
    public var prompts = 0
    public var batches = 0
    public var pairs = 0
    public var labelledPairs = 0
    public var labelAccuracy: Double?
    /// Candidates scored per RM: the RM compute the iteration cost.
    public var rmCalls: [String: Int] = [:]
    public var wallSeconds: Double = 0
    public var tasks: [TaskFamilySummary] = []

    public init(iteration: Int) { self.iteration = iteration }
}

/// One task family within an iteration.
public struct TaskFamilySummary: Equatable, Sendable, Codable {
    public var task: String
    public var prompts = 0
    /// Prompts ranked by each RM ("ensemble" for the score ensemble).
    public var selections: [String: Int] = [:]
    public var pairs = 0
    public var labelledPairs = 0
    public var labelAccuracy: Double?
    /// Candidates of this family scored per RM (the ensemble scores each with every RM).
    public var rmCalls: [String: Int] = [:]

    public init(task: String) { self.task = task }
}

/// One bandit arm (RM) over the whole run.
public struct ArmSummary: Equatable, Sendable, Codable {
    public var name: String
    public var batches = 0
    public var rewardedBatches = 0
    public var meanRawReward: Double?

    public init(name: String) { self.name = name }
}

/// What the prompts of one emitted batch gave, prompt by prompt, for `SummaryBuilder.recordBatch`.
/// Consecutive prompts of one family ranked by one RM (the usual case) are merged into one run, so
/// the summary's dictionaries are updated per run, not per prompt.
struct BatchTally {
    struct Run {
        var task: String
        var rm: String
        var prompts: Int
        /// Pairs (or best-of-n choices) the run's prompts gave, and their label accuracy.
        var outputs: Int
        var accuracy: LabelPairAccuracy
    }
    private(set) var runs: [Run] = []

    mutating func add(task: String, rm: String, outputs: Int, accuracy: LabelPairAccuracy) {
        if let last = runs.indices.last, runs[last].task == task, runs[last].rm == rm {
            runs[last].prompts += 1
            runs[last].outputs += outputs
            runs[last].accuracy.add(accuracy)
        } else {
            runs.append(Run(task: task, rm: rm, prompts: 1, outputs: outputs, accuracy: accuracy))
        }
    }
}

/// Accumulates a `RunSummary` as batches are emitted.
struct SummaryBuilder: Equatable, Sendable {
    struct FamilyAccumulator: Equatable, Sendable {
        var summary: TaskFamilySummary
        var accuracy = LabelPairAccuracy()
    }
    struct IterationAccumulator: Equatable, Sendable {
        var summary: IterationSummary
        var accuracy = LabelPairAccuracy()
        var families: [String: FamilyAccumulator] = [:]
        var familyOrder: [String] = []

        /// Families are listed in the order they first appear.
        mutating func ensureFamily(_ task: String) {
            guard families.index(forKey: task) == nil else { return }
            families[task] = FamilyAccumulator(summary: TaskFamilySummary(task: task))
            familyOrder.append(task)
        }
    }

    var strategy: String
    var armNames: [String]
    var iterations: [IterationAccumulator] = []
    var arms: [ArmSummary]
    var rewardSums: [Double]
    var counters = RunSummary.Counters()
    var probe: RunSummary.ProbeSummary?

    init(strategy: String, armNames: [String]) {
        self.strategy = strategy
        self.armNames = armNames
        arms = armNames.map(ArmSummary.init(name:))
        rewardSums = Array(repeating: 0, count: armNames.count)
    }

    mutating func beginIteration(_ n: Int, prompts: Int) {
        var acc = IterationAccumulator(summary: IterationSummary(iteration: n))
        acc.summary.prompts = prompts
        iterations.append(acc)
    }

    mutating func setWallSeconds(_ s: Double) { iterations[iterations.count - 1].summary.wallSeconds = s }

    /// An emitted batch: `tally` holds what each of its prompts gave (see `BatchTally`); `arms`: every
    /// decision's arm.
    mutating func recordBatch(_ tally: BatchTally, arms: [Int]) {
        var it = iterations.removeLast()
        it.summary.batches += 1
        for run in tally.runs {
            it.ensureFamily(run.task)
            it.summary.pairs += run.outputs
            it.accuracy.add(run.accuracy)
            it.families[held: run.task].summary.prompts += run.prompts
            it.families[held: run.task].summary.selections[run.rm, default: 0] += run.prompts
            it.families[held: run.task].summary.pairs += run.outputs
            it.families[held: run.task].accuracy.add(run.accuracy)
        }
        iterations.append(it)
        for arm in arms { self.arms[arm].batches += 1 }
    }

    mutating func recordReward(arm: Int, raw: Double) {
        arms[arm].rewardedBatches += 1
        rewardSums[arm] += raw
        arms[arm].meanRawReward = rewardSums[arm] / Double(arms[arm].rewardedBatches)
    }

    /// RM `rm` scored the candidates of `prompts[offsets]`. Consecutive prompts of one family are
    /// counted together: one dictionary update per family run, not per prompt.
    mutating func recordRMCalls(rm: String, prompts: [PromptRecord], offsets: some Sequence<Int>) {
        var it = iterations.removeLast()
        var total = 0
        var run: (task: String, candidates: Int)?
        func flush() {
            guard let (task, n) = run else { return }
            it.ensureFamily(task)
            it.families[held: task].summary.rmCalls[rm, default: 0] += n
        }
        for offset in offsets {
            let n = prompts[offset].candidates.count
            total += n
            if run?.task == prompts[offset].task {
                run!.candidates += n
            } else {
                flush()
                run = (prompts[offset].task, n)
            }
        }
        flush()
        if total > 0 { it.summary.rmCalls[rm, default: 0] += total }
        iterations.append(it)
    }

    func build() -> RunSummary {
        RunSummary(
            strategy: strategy, rewardModels: armNames,
            iterations: iterations.map { acc in
                var s = acc.summary
                s.labelledPairs = acc.accuracy.labelledPairs
                s.labelAccuracy = acc.accuracy.value
                s.tasks = acc.familyOrder.map { name in
                    var f = acc.families[held: name].summary
                    f.labelledPairs = acc.families[held: name].accuracy.labelledPairs
                    f.labelAccuracy = acc.families[held: name].accuracy.value
                    return f
                }
                return s
            },
            arms: arms, counters: counters, probe: probe)
    }
}
