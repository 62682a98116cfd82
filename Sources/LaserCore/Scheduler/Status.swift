/// A read-only snapshot of the coordinator for live displays, metrics and `laser status`: workers and
/// their load, the queue, what has been scored, and the bandit's arms. Taking it changes nothing.
public struct CoordinatorStatus: Sendable, Equatable {
    public enum Phase: String, Sendable, Equatable, Codable {
        case idle, running, finished, failed
    }

    public var phase: Phase
    public var strategy: String
    public var iteration: Int
    public var iterations: Int
    public var promptsInIteration: Int
    /// Prompts of the current iteration whose scores are all in (emitted, or complete and waiting
    /// for an earlier batch to be emitted first).
    public var promptsScoredInIteration: Int
    public var batchesInIteration: Int
    public var batchesEmittedInIteration: Int
    /// Over the whole run.
    public var batchesEmitted: Int
    /// Candidates scored per RM over the whole run (RM calls), in the run's RM order.
    public var candidatesScored: [(rm: String, count: Int)]
    /// Score tasks waiting for a worker, per RM (run order).
    public var tasksQueued: [(rm: String, count: Int)]
    /// Score tasks out with a worker, per RM (run order).
    public var tasksInFlight: [(rm: String, count: Int)]
    /// Connected workers, by worker id.
    public var workers: [WorkerStatus]
    /// The bandit's arms, in the run's RM order.
    public var arms: [ArmStatus]
    /// Emitted batches whose trainer loss has not arrived (reward.source: trainer-loss).
    public var batchesAwaitingLoss: Int
    /// The connected trainer's id, if any.
    public var trainer: String?
    public var counters: RunSummary.Counters

    public var totalSlots: Int { workers.reduce(0) { $0 + $1.slots } }
    public var busySlots: Int { workers.reduce(0) { $0 + min($1.slots, $1.inFlight) } }

    public init(
        phase: Phase, strategy: String, iteration: Int, iterations: Int, promptsInIteration: Int,
        promptsScoredInIteration: Int,
        batchesInIteration: Int, batchesEmittedInIteration: Int, batchesEmitted: Int,
        candidatesScored: [(rm: String, count: Int)],
        tasksQueued: [(rm: String, count: Int)], tasksInFlight: [(rm: String, count: Int)], workers: [WorkerStatus],
        arms: [ArmStatus], batchesAwaitingLoss: Int, trainer: String?, counters: RunSummary.Counters
    ) {
        self.phase = phase
        self.strategy = strategy
        self.iteration = iteration
        self.iterations = iterations
        self.promptsInIteration = promptsInIteration
        self.promptsScoredInIteration = promptsScoredInIteration
        self.batchesInIteration = batchesInIteration
        self.batchesEmittedInIteration = batchesEmittedInIteration
        self.batchesEmitted = batchesEmitted
        self.candidatesScored = candidatesScored
        self.tasksQueued = tasksQueued
        self.tasksInFlight = tasksInFlight
        self.workers = workers
        self.arms = arms
        self.batchesAwaitingLoss = batchesAwaitingLoss
        self.trainer = trainer
        self.counters = counters
    }
    public var totalCandidatesScored: Int { candidatesScored.reduce(0) { $0 + $1.count } }
    public var totalTasksQueued: Int { tasksQueued.reduce(0) { $0 + $1.count } }
    public var totalTasksInFlight: Int { tasksInFlight.reduce(0) { $0 + $1.count } }

    public static func == (a: CoordinatorStatus, b: CoordinatorStatus) -> Bool {
        a.phase == b.phase && a.strategy == b.strategy && a.iteration == b.iteration && a.iterations == b.iterations
            && a.promptsInIteration == b.promptsInIteration && a.promptsScoredInIteration == b.promptsScoredInIteration
            && a.batchesInIteration == b.batchesInIteration
            && a.batchesEmittedInIteration == b.batchesEmittedInIteration
            && a.batchesEmitted == b.batchesEmitted
            && a.candidatesScored.map(\.rm) == b.candidatesScored.map(\.rm)
            && a.candidatesScored.map(\.count) == b.candidatesScored.map(\.count)
            && a.tasksQueued.map(\.count) == b.tasksQueued.map(\.count)
            && a.tasksInFlight.map(\.count) == b.tasksInFlight.map(\.count)
            && a.workers == b.workers && a.arms == b.arms && a.batchesAwaitingLoss == b.batchesAwaitingLoss
            && a.trainer == b.trainer && a.counters == b.counters
    }
}

/// One connected worker.
public struct WorkerStatus: Sendable, Equatable {
    public var workerID: String
    /// The RMs it hosts, in the run's RM order.
    public var rewardModels: [String]
    public var slots: Int
    /// Tasks it holds now.
    public var inFlight: Int
    /// Seconds since the coordinator last heard from it (a heartbeat or a result).
    public var secondsSinceHeard: Double
    /// Seconds since it registered.
    public var secondsConnected: Double
    /// A capacity-limited worker (docs/placement.md): the RMs loaded now, and those it is loading; nil for
    /// a static worker (it holds all of `rewardModels`).
    public var loaded: [String]?
    public var loading: [String] = []

    public init(
        workerID: String, rewardModels: [String], slots: Int, inFlight: Int, secondsSinceHeard: Double,
        secondsConnected: Double, loaded: [String]? = nil, loading: [String] = []
    ) {
        self.loaded = loaded
        self.loading = loading
        self.workerID = workerID
        self.rewardModels = rewardModels
        self.slots = slots
        self.inFlight = inFlight
        self.secondsSinceHeard = secondsSinceHeard
        self.secondsConnected = secondsConnected
    }

    /// Share of its slots in use, 0...1.
    public var utilisation: Double { slots > 0 ? min(1, Double(inFlight) / Double(slots)) : 0 }
}

/// One bandit arm (RM).
public struct ArmStatus: Sendable, Equatable {
    public var name: String
    /// Decisions that chose it (batches, or prompts with instance-level selection).
    public var selections: Int
    /// Rewards it received, and their mean (raw, before normalisation).
    public var rewards: Int
    public var meanRawReward: Double?
    /// LinUCB's upper confidence bound for the most recent decision's context (nil for other strategies
    /// or before the first decision).
    public var upperConfidenceBound: Double?
    /// Exp3's current probability of choosing it (nil for other strategies).
    public var probability: Double?

    public init(
        name: String, selections: Int, rewards: Int, meanRawReward: Double?, upperConfidenceBound: Double?,
        probability: Double?
    ) {
        self.name = name
        self.selections = selections
        self.rewards = rewards
        self.meanRawReward = meanRawReward
        self.upperConfidenceBound = upperConfidenceBound
        self.probability = probability
    }
}

extension Coordinator {
    /// A snapshot for live displays; `now` turns the workers' timestamps into ages.
    public func status(now: Instant) -> CoordinatorStatus {
        let phaseNow: CoordinatorStatus.Phase
        switch phase {
        case .idle: phaseNow = .idle
        case .running: phaseNow = .running
        case .finished: phaseNow = .finished
        case .failed: phaseNow = .failed
        }
        // Prompts of open batches whose every assigned RM has delivered their scores.
        var scored = 0
        for global in nextToEmit..<nextGlobal {
            guard let batch = batches[global] else { continue }
            for unit in batch.units {
                let rms: [String]
                switch unit.selection {
                case .arm(let k): rms = [plan.rewardModels[k].name]
                case .ensemble: rms = plan.armNames
                }
                for offset in unit.offsets where rms.allSatisfy({ batch.scores[$0]?[offset] != nil }) { scored += 1 }
            }
        }
        let emittedPrompts = batchRanges.prefix(max(0, nextToEmit - firstGlobalOfIteration)).reduce(0) { $0 + $1.count }
        var calls: [String: Int] = [:]
        for it in summary.iterations { for (rm, n) in it.summary.rmCalls { calls[rm, default: 0] += n } }
        var queued: [String: Int] = [:], out: [String: Int] = [:]
        for task in tasks.values {
            if task.queued { queued[task.rm, default: 0] += 1 } else { out[task.rm, default: 0] += 1 }
        }
        let ucb = lastContext.flatMap { x in selector.linucb.map { $0.upperConfidenceBounds(x) } }
        let probabilities = selector.exp3?.probabilities
        let arms = plan.armNames.enumerated().map { k, name in
            ArmStatus(
                name: name, selections: summary.arms[k].batches, rewards: summary.arms[k].rewardedBatches,
                meanRawReward: summary.arms[k].meanRawReward, upperConfidenceBound: ucb?[k],
                probability: probabilities?[k])
        }
        let workerList = workers.values.map { w in
            WorkerStatus(
                workerID: w.workerID, rewardModels: plan.armNames.filter { w.rewardModels.contains($0) },
                slots: w.slots,
                inFlight: w.inFlight.count, secondsSinceHeard: max(0, now.milliseconds(since: w.lastHeard) / 1000),
                secondsConnected: max(0, now.milliseconds(since: w.joined) / 1000),
                loaded: w.capacity > 0 ? plan.armNames.filter { w.ready($0) } : nil,
                loading: w.pendingLoad.map { p in plan.armNames.filter { p.load.contains($0) } } ?? [])
        }.sorted { $0.workerID < $1.workerID }
        return CoordinatorStatus(
            phase: phaseNow, strategy: plan.strategy.rawValue, iteration: iteration, iterations: plan.iterations,
            promptsInIteration: promptCount, promptsScoredInIteration: min(promptCount, emittedPrompts + scored),
            batchesInIteration: batchRanges.count, batchesEmittedInIteration: nextToEmit - firstGlobalOfIteration,
            batchesEmitted: nextToEmit,
            candidatesScored: plan.armNames.map { ($0, calls[$0] ?? 0) },
            tasksQueued: plan.armNames.map { ($0, queued[$0] ?? 0) },
            tasksInFlight: plan.armNames.map { ($0, out[$0] ?? 0) },
            workers: workerList, arms: arms, batchesAwaitingLoss: awaitingLoss.count,
            trainer: trainer?.trainerID, counters: summary.counters)
    }
}
