import LaserWire

/// The coordinator's logic as a deterministic state machine: events in, actions out, no I/O, no clock
/// and no randomness of its own. The process shell (LaserRuntime) owns sockets and files and carries
/// the actions out; the tests drive it directly.
///
/// Determinism: batch t is selected with the bandit state after exactly the feedback of batches
/// 0...t-D (D = pipeline depth) and feedback is applied in batch order, so neither worker count nor
/// message timing changes any decision or any emitted byte.
public struct Coordinator: Sendable {
    public let plan: RunPlan
    public private(set) var selector: Selector
    var normalizer = RewardNormalizer()
    var summary: SummaryBuilder

    enum Phase: Equatable { case idle, running, finished, failed }
    /// The run's life, with the data only a running run has: where the current iteration's input stands.
    enum Life: Sendable {
        case idle
        case running(InputState)
        case finished
        case failed
    }
    var life = Life.idle
    var phase: Phase {
        switch life {
        case .idle: return .idle
        case .running: return .running
        case .finished: return .finished
        case .failed: return .failed
        }
    }

    // Workers, by the ROUTER identity of their connection.
    struct Worker: Sendable {
        var workerID: String
        var rewardModels: Set<String>
        var slots: Int
        var inFlight: Set<UInt64> = []
        var lastHeard: Instant
        var lastSent: Instant
        var joined: Instant
        /// Whether it sent anything after its Welcome (see `.unreachable` in `handle`).
        var answered = false
        /// When it was last reported idle (placement), to report once per window.
        var reportedIdle: Instant?
        /// Its Hello said it reads candidates as JSON-escaped bytes.
        var acceptsJSONCandidates = false
        /// Failures (RM errors, invalid results) since its last valid result.
        var failureStreak = 0
        /// Gets no tasks until then (it failed too many in a row); nil: not quarantined.
        var quarantinedUntil: Instant?
        /// Dynamic placement (Placement.swift): 0 for a static worker, which serves all of `rewardModels`;
        /// M > 0: it holds at most M RMs, `loaded`, and `rewardModels` is what it may load.
        var capacity = 0
        /// Optional: a memory budget (0: none) and each RM's weight against it (Hello.memory_budget).
        var memoryBudget = 0.0
        var memory: [String: Double] = [:]
        var loaded: Set<String> = []
        /// When each loaded RM was loaded (minimum residency).
        var loadedAt: [String: Instant] = [:]
        /// RMs whose load failed on this connection: not asked again.
        var cannotLoad: Set<String> = []
        var pendingLoad: PendingLoad?
        var free: Int { slots - inFlight.count }

        /// Whether `set` may be loaded at once: at most `capacity` RMs, their weights within the budget.
        func fits(_ set: Set<String>) -> Bool {
            PlacementRule.fits(set, capacity: capacity, budget: memoryBudget, memory: memory)
        }

        /// Whether a task for `rm` may go to it now: a static worker that serves it, or a capacity-limited
        /// one that has it loaded and is not about to unload it.
        func ready(_ rm: String) -> Bool {
            capacity == 0
                ? rewardModels.contains(rm) : loaded.contains(rm) && !(pendingLoad?.unload.contains(rm) ?? false)
        }
    }
    /// When each RM last had a task dispatched (for the idle-worker report).
    var lastDispatch: [String: Instant] = [:]
    var workers: [PeerID: Worker] = [:]
    var peerByWorkerID: [String: PeerID] = [:]

    // The iteration being worked on.
    var iteration = 0
    /// Where the iteration's input stands (one state instead of four flags).
    enum InputState: Sendable {
        /// `.loadIteration` was sent; waiting for `.iterationOpened`.
        case loading
        /// The iteration is open; the next batch's prompts are not asked for, asked for, or read.
        case open(NextBatch)
        /// Every batch of the last iteration is emitted (the run ends once all feedback is applied).
        case done
    }
    enum NextBatch: Sendable {
        case notAsked
        case reading
        case staged(first: Int, prompts: [PromptRecord])
    }
    /// The input's state while the run runs (`life`'s payload). Before the start it reads as nothing asked
    /// yet, after the end as done; it is set only while running (the run's end cannot be undone by an input
    /// event).
    var input: InputState {
        get {
            switch life {
            case .running(let state): return state
            case .idle: return .open(.notAsked)
            case .finished, .failed: return .done
            }
        }
        set {
            guard case .running = life else { return }
            life = .running(newValue)
        }
    }
    var isLoading: Bool { if case .loading = input { return true } else { return false } }
    var isOpen: Bool { if case .open = input { return true } else { return false } }
    /// Prompts in the iteration (they are read a batch at a time, see `.readPrompts`).
    var promptCount = 0
    var iterationStart = Instant(nanoseconds: 0)
    var batchRanges: [Range<Int>] = []
    var nextBatchInIteration = 0
    var firstGlobalOfIteration = 0

    // Batches, by global index (0-based over the run).
    struct Batch: Sendable {
        var indexInIteration: Int
        var range: Range<Int>
        /// The batch's prompts, held from its selection until it is emitted.
        var prompts: [PromptRecord]
        /// What was selected: one unit for batch-level selection, one per prompt for instance-level.
        var units: [SelectionUnit]
        var scores: [String: [[Double]?]]
        var remainingTasks: Int

        /// A score task's results (`perItem[i]` for prompt `indices[i]` of the iteration), stored in
        /// place with one look-up of the RM's list, and the task counted as done.
        mutating func record(_ perItem: [[Double]], of rm: String, at indices: [Int], base: Int) {
            Self.store(perItem, at: indices, base: base, into: &scores[held: rm])
            remainingTasks -= 1
        }

        private static func store(_ perItem: [[Double]], at indices: [Int], base: Int, into list: inout [[Double]?]) {
            for (offset, index) in indices.enumerated() { list[index - base] = perItem[offset] }
        }
    }
    /// The prompts (offsets within the batch) that one decision covers, with its context.
    struct SelectionUnit: Sendable {
        var offsets: Range<Int>
        var selection: Selection
        var context: [Double]
        /// The probability the selection had (Exp3's importance weight; 1 otherwise).
        var probability: Double = 1
        /// Every arm's bound when it was decided (`bandit.record_decisions`).
        var bounds: [Double]?
    }
    /// One bandit update, applied in batch order.
    enum Feedback: Sendable {
        case reward(raw: Double, arm: Int, context: [Double], probability: Double)
        /// The unit gave the trainer nothing (no pairs): the lowest reward, outside the normaliser.
        case penalty(arm: Int, context: [Double], probability: Double)
    }

    // The trainer endpoint (Coordinator+Trainer.swift).
    struct Trainer: Sendable {
        var peer: PeerID
        var trainerID: String
        var window: Int
        var lastHeard: Instant
        var lastSent: Instant
        /// Batches sent and still waiting for their loss.
        var sent: Set<Int> = []
    }
    var trainer: Trainer?
    /// When this incarnation started (the core's clock).
    var startedAt: Instant?
    /// When the coordinator last said that losses wait and no trainer is connected.
    var lastNoTrainerWarning: Instant?
    /// Emitted batches waiting for the trainer's loss (reward.source: trainer-loss), with what the
    /// bandit update needs once it arrives.
    struct AwaitingLoss: Sendable {
        var batch: EmittedBatch
        /// The (arm, context) of every unit that produced pairs: each gets -loss.
        var updates: [(arm: Int, context: [Double], probability: Double)]
    }
    var awaitingLoss: [Int: AwaitingLoss] = [:]
    /// Updates of a batch known at emission (penalties of units without pairs) that wait for its loss.
    var pendingUpdates: [Int: [Feedback]] = [:]
    var batches: [Int: Batch] = [:]
    /// A batch's updates, once known (empty: nothing to learn from it).
    var feedback: [Int: [Feedback]] = [:]
    var nextGlobal = 0
    var nextToEmit = 0
    var applied = 0
    /// probe-progress's probe (Coordinator+Probe.swift).
    var probe = ProbeState.none

    // Score tasks.
    struct ScoreTaskState: Sendable {
        var id: UInt64
        var batch: Int
        var rm: String
        /// Prompt indices within the iteration, ascending (contiguous for batch-level selection).
        var indices: [Int]
        var attempt: UInt32 = 1
        /// The workers it is out with, and the attempt each was given: only they may answer, for that attempt.
        var holders: [PeerID: UInt32] = [:]
        /// Workers (by id) that failed this attempt round; the attempt goes up once every worker serving
        /// the RM is in here (see `retry`).
        var failedBy: Set<String> = []
        var queued = true
        var deadline: Instant?
        var lastError: String?
        /// Workers that failed this task or let its lease expire: a retry prefers any other worker.
        var avoid: Set<PeerID> = []

        /// A failure, a lost worker or an expired lease, charged to the worker: the task avoids its
        /// connection and counts the worker among those that failed it this round (see `retry`).
        mutating func charge(_ peer: PeerID, workerID: String?) {
            avoid.insert(peer)
            if let workerID { failedBy.insert(workerID) }
        }
    }
    var tasks: [UInt64: ScoreTaskState] = [:]
    var queues: [String: [UInt64]] = [:]
    var nextTaskID: UInt64 = 1

    // What the journal of an interrupted run says; consumed while the run replays.
    var recovery: Recovery
    /// Emitted batches without their pairs (selections.jsonl), including those replayed.
    public internal(set) var batchLog: [BatchOutcome] = []
    var starvationWarned: [String: Instant] = [:]
    /// Worker ids that have delivered a valid result, per RM: whose failures count as evidence against it.
    var provenWorkers: [String: Set<String>] = [:]
    /// Peer-driven log lines are rate-limited per kind.
    var logLimiter = LogLimiter()
    /// Dynamic placement's bookkeeping (Placement.swift).
    var placement = PlacementState()
    /// The context of the most recent decision (for status displays: the arms' current UCB).
    var lastContext: [Double]?

    /// A coordinator for `plan`; `journal` holds the records of an interrupted run to resume (empty for
    /// a new run).
    public init(plan: RunPlan, journal: [JournalRecord] = []) {
        precondition(!plan.rewardModels.isEmpty, "a run needs at least one reward model")
        precondition(plan.batchSize >= 1 && plan.shardSize >= 1 && plan.pipelineDepth >= 1 && plan.iterations >= 1)
        self.plan = plan
        selector = Selector(
            kind: plan.strategy, armCount: plan.rewardModels.count, dimension: plan.contextDimension,
            seed: plan.seed, alpha: plan.alpha, lambda: plan.lambda, fixedArm: plan.fixedArm, gamma: plan.gamma,
            options: plan.bandit, perPrompt: plan.granularity == .instance, thompson: plan.thompson)
        summary = SummaryBuilder(strategy: plan.strategy.rawValue, armNames: plan.armNames)
        for name in plan.armNames { queues[name] = [] }
        recovery = Recovery(journal)
        if plan.rewardSource == .probeProgress { probe = .waiting }
    }

    /// The single state-changing entry point.
    public mutating func handle(_ event: CoordinatorEvent, now: Instant) -> [CoordinatorAction] {
        var actions = transition(event, now: now)
        // Every log line carries where the run is and whom the event came from, as fields.
        if actions.contains(where: { if case .log = $0 { return true } else { return false } }) {
            let context = logContext(for: event)
            for i in actions.indices {
                if case .log(let level, let text, let fields) = actions[i] {
                    actions[i] = .log(level, text, context.merging(fields) { $1 })
                }
            }
        }
        return actions
    }

    /// The fields every log line of a transition gets: the iteration, and the peer, worker or trainer
    /// and task the event is about.
    func logContext(for event: CoordinatorEvent) -> LogFields {
        var fields: LogFields = [:]
        if iteration > 0 { fields["iteration"] = String(iteration) }
        if case .message(let peer, let message) = event {
            if let w = workers[peer] {
                fields["worker"] = PeerText.printable(w.workerID)
            } else if let t = trainer, t.peer == peer {
                fields["trainer"] = PeerText.printable(t.trainerID)
            } else {
                fields["peer"] = "\(peer)"
            }
            if case .scoreResult(let result) = message {
                fields["task"] = String(result.taskID)
                if let task = tasks[result.taskID] {
                    fields["rm"] = task.rm
                    fields["batch"] = String(task.batch)
                }
            }
        }
        return fields
    }

    mutating func transition(_ event: CoordinatorEvent, now: Instant) -> [CoordinatorAction] {
        var actions: [CoordinatorAction] = []
        switch event {
        case .start:
            guard phase == .idle else { break }
            life = .running(.loading)
            startedAt = now
            let epoch = recovery.epochs
            // Task ids carry the incarnation, so results addressed to an earlier one never match.
            nextTaskID = UInt64(epoch) << 32 | 1
            actions.append(.journal(.started(epoch: epoch), sync: true))
            if epoch > 0 {
                actions.append(
                    .log(
                        .info,
                        "resuming (incarnation \(epoch)): \(recovery.selections.count) selections, \(recovery.scores.count) scored shards and \(recovery.emitted.count) emitted batches in the journal"
                    ))
            }
            actions.append(.loadIteration(1))
        case .iterationOpened(let n, let count, let digest):
            guard phase == .running, isLoading, n == iteration + 1 else {
                actions.append(.log(.warning, "ignored iteration \(n): not the one requested"))
                break
            }
            if let recorded = recovery.inputDigests[n] {
                guard recorded == digest else {
                    fail(
                        .inputChanged,
                        "the input of iteration \(n) changed since the run started (digest \(recorded), now \(digest)); restore the original file, or resume with --force to accept the new one",
                        &actions)
                    break
                }
            } else {
                actions.append(
                    .journal(.iterationLoaded(iteration: n, inputDigest: digest, prompts: count), sync: false))
            }
            begin(iteration: n, promptCount: count, now: now, &actions)
        case .promptsRead(let n, let first, let read):
            guard phase == .running, case .open(.reading) = input, n == iteration,
                nextBatchInIteration < batchRanges.count,
                first == batchRanges[nextBatchInIteration].lowerBound
            else {
                actions.append(
                    .log(.warning, "ignored prompts of iteration \(n) from \(first): not the ones requested"))
                break
            }
            input = .open(.notAsked)
            guard read.count == batchRanges[nextBatchInIteration].count else {
                fail(
                    .inputShrank,
                    "the input of iteration \(n) ended after \(first + read.count) prompts, but it held \(promptCount) when it was validated; was it changed during the run? Restore it and resume",
                    &actions)
                break
            }
            input = .open(.staged(first: first, prompts: read))
        case .probePromptsRead(let n, let read):
            guard phase == .running, probe == .reading, n == 1, !read.isEmpty else {
                actions.append(.log(.warning, "ignored probe prompts of iteration \(n): not asked for"))
                break
            }
            startProbe(read, &actions)
        case .message(let peer, let message):
            receive(message, from: peer, now: now, &actions)
        case .undecodable(let peer, let reason):
            summary.counters.malformedMessages += 1
            logLimited(
                .warning, "undecodable",
                "peer \(peer) sent a message that does not decode (\(PeerText.printable(reason))); dropped (\(summary.counters.malformedMessages) so far). Is it a laser worker of the same version?",
                &actions)
            // A registered worker's message that cannot be matched to anything (a result without an
            // outcome, say) must not leave its slot taken: the worker is removed and says Hello again.
            dropMisbehaving(peer, why: "it sent a message that does not decode", now: now, &actions)
        case .forbidden(let peer, let message, let reason):
            switch message {
            case .batchFeedback(let f):
                refuseLoss(f, global: Int(clamping: f.globalBatch), reason, peer, &actions)
            case .hello, .trainerHello:
                refuseHello(peer, reason, &actions)
            default:
                summary.counters.malformedMessages += 1
            }
        case .unreachable(let peer):
            summary.counters.undeliverable += 1
            if trainer?.peer == peer { trainer = nil }
            if let w = workers[peer] {
                // Gone before it said a word after its Welcome: a stale Hello from a socket the worker
                // has already replaced. Its tasks never reached it, so they keep their attempt.
                forget(
                    peer, reason: "its connection is gone or it does not read", countsAsAttempt: w.answered, now: now,
                    &actions)
            }
        case .tick:
            tick(now: now, &actions)
            if phase == .running { trainerTick(now: now, &actions) }
        }
        if phase == .running {
            advance(now: now, &actions)
            place(now: now, &actions)
            dispatch(now: now, &actions)
        }
        return actions
    }

    // MARK: iterations and batches

    mutating func begin(iteration n: Int, promptCount count: Int, now: Instant, _ actions: inout [CoordinatorAction]) {
        input = .open(.notAsked)
        iteration = n
        promptCount = count
        iterationStart = now
        firstGlobalOfIteration = nextGlobal
        nextBatchInIteration = 0
        batchRanges = stride(from: 0, to: count, by: plan.batchSize).map { $0..<min($0 + plan.batchSize, count) }
        summary.beginIteration(n, prompts: count)
        if count == 0 { actions.append(.log(.warning, "iteration \(n) has no prompts")) }
        actions.append(
            .log(.info, "iteration \(n)/\(plan.iterations): \(count) prompts in \(batchRanges.count) mini-batches"))
        requestProbe(promptCount: count, &actions)
    }

    var selectionsExhausted: Bool {
        iteration == plan.iterations && !isLoading && nextBatchInIteration == batchRanges.count
    }

    mutating func advance(now: Instant, _ actions: inout [CoordinatorAction]) {
        var progressed = true
        while progressed && phase == .running {
            progressed = false
            // Select batch t only once the feedback of exactly batches 0...t-D has been applied.
            while phase == .running, !isLoading, iteration > 0, !probePending, nextBatchInIteration < batchRanges.count,
                applied >= nextGlobal - plan.pipelineDepth + 1
            {
                guard select(now: now, &actions) else { break }
                progressed = true
            }
            // Apply feedback s only after every batch that must not see it (s+1...s+D-1) is selected.
            while let updates = feedback[applied], nextGlobal >= applied + plan.pipelineDepth || selectionsExhausted {
                for f in updates { apply(f, batch: applied, &actions) }
                feedback[applied] = nil
                applied += 1
                progressed = true
            }
        }
        if phase == .running, iteration > 0, isOpen, nextBatchInIteration == batchRanges.count, nextToEmit == nextGlobal
        {
            input = .done
            let seconds = now.milliseconds(since: iterationStart) / 1000
            summary.setWallSeconds(seconds)
            actions.append(
                .log(
                    .info,
                    "iteration \(iteration) complete: \(batchRanges.count) batches in \(String(format2(seconds))) s"))
            if iteration < plan.iterations {
                input = .loading
                actions.append(.loadIteration(iteration + 1))
            }
        }
        // The run ends when the last iteration is emitted and every feedback (trainer losses too) applied.
        if phase == .running, case .done = input, iteration == plan.iterations, applied == nextGlobal {
            life = .finished
            for peer in workers.keys.sorted() { actions.append(.send(to: peer, .shutdown(reason: "run complete"))) }
            if let t = trainer { actions.append(.send(to: t.peer, .shutdown(reason: "run complete"))) }
            actions.append(.finish(summary.build()))
        }
    }

    /// Splits a batch's prompt indices into score tasks: at most `size` prompts each, and a new task
    /// before one would carry more than `maxBytes` of text (so every task fits in one message; the input
    /// scan refuses a prompt too large for a task of its own). Deterministic in the prompts, as resume needs.
    static func shards(_ indices: [Int], of prompts: [PromptRecord], base: Int, size: Int, maxBytes: Int) -> [[Int]] {
        var out: [[Int]] = []
        var current: [Int] = []
        var bytes = 0
        for index in indices {
            let p = prompts[index - base]
            let cost = maxBytes == .max ? 0 : p.wireBytes
            if !current.isEmpty && (current.count == size || bytes + cost > maxBytes) {
                out.append(current)
                current = []
                bytes = 0
            }
            current.append(index)
            bytes += cost
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Selects the next batch; false while its prompts are still being read.
    mutating func select(now: Instant, _ actions: inout [CoordinatorAction]) -> Bool {
        let range = batchRanges[nextBatchInIteration]
        guard case .open(.staged(let first, let prompts)) = input, first == range.lowerBound else {
            if case .open(.reading) = input { return false }
            input = .open(.reading)
            actions.append(.readPrompts(iteration: iteration, range: range))
            return false
        }
        input = .open(.notAsked)
        let global = nextGlobal
        var units = selectionUnits(prompts, count: range.count)
        lastContext = units.last?.context
        guard decide(&units, global: global, &actions) else { return false }
        var batch = Batch(
            indexInIteration: nextBatchInIteration + 1, range: range, prompts: prompts, units: units, scores: [:],
            remainingTasks: 0)
        let (promptsByRM, created) = makeScoreTasks(for: &batch, global: global)
        noteSelected(plan.armNames.filter { promptsByRM[$0] != nil }, prompts: prompts)
        batches[global] = batch
        nextGlobal += 1
        nextBatchInIteration += 1
        actions.append(
            .log(
                .debug,
                "iteration \(iteration) batch \(batch.indexInIteration): \(promptsByRM.keys.sorted().joined(separator: ", ")) selected"
            ))
        for id in created {
            let task = tasks[held: id]
            let key = Recovery.ShardKey(batch: global, rm: task.rm, firstPrompt: task.indices[0])
            if let scores = recovery.scores.removeValue(forKey: key), validate(scores, for: task) == nil {
                complete(task, scores: scores, journaled: true, &actions)
            } else {
                queues[task.rm, default: []].append(id)
            }
        }
        if batch.remainingTasks == 0 { completeBatches(&actions) }
        return true
    }

    /// Step 1 of `select`: the decisions to make. Batch-level: one on the mean context; instance-level:
    /// one per prompt, all made with the same bandit state (feedback of batches <= t - D only).
    func selectionUnits(_ prompts: [PromptRecord], count: Int) -> [SelectionUnit] {
        let units: [SelectionUnit]
        switch plan.granularity {
        case .batch:
            let context = HashingFeaturizerMean.mean(prompts.map(\.context), dimension: plan.contextDimension)
            units = [SelectionUnit(offsets: 0..<count, selection: .ensemble, context: context)]
        case .instance:
            units = prompts.enumerated().map {
                SelectionUnit(offsets: $0.offset..<($0.offset + 1), selection: .ensemble, context: $0.element.context)
            }
        }
        return units
    }

    /// Step 2 of `select`: the bandit's choice per unit, or the journal's where the batch was selected
    /// before a restart (selections already made stay made). False when the journal does not fit.
    mutating func decide(_ units: inout [SelectionUnit], global: Int, _ actions: inout [CoordinatorAction]) -> Bool {
        let drawn = units.enumerated().map {
            selector.selectWithProbability(context: $0.element.context, batch: global, unit: $0.offset)
        }
        let computed = drawn.map(\.selection)
        var chosen = computed
        if let recorded = recovery.selections[global] {
            // Selections already made stay made, even if the reward signal was not reproducible.
            guard recorded.count == units.count,
                recorded.allSatisfy({
                    if case .arm(let k) = $0 { return (0..<plan.rewardModels.count).contains(k) } else { return true }
                })
            else {
                fail(
                    .journalMismatch,
                    "the journal's selection for batch \(global) does not fit this config (\(recorded.count) decisions for \(units.count) units, or an RM index beyond \(plan.rewardModels.count)); resume with the config the run started with",
                    &actions)
                return false
            }
            if recorded != computed {
                actions.append(
                    .log(
                        .warning,
                        "batch \(global): the journal's selection differs from a fresh one (was a reward nondeterministic?); keeping the journal's"
                    ))
            }
            chosen = recorded
        } else {
            actions.append(.journal(.selected(batch: global, selections: chosen), sync: false))
        }
        for i in units.indices {
            units[i].selection = chosen[i]
            if case .arm(let k) = chosen[i] { units[i].probability = selector.probability(of: k) }
            if plan.bandit.record != .none { units[i].bounds = selector.bounds(context: units[i].context) }
        }
        return true
    }

    /// Step 3 of `select`: the score tasks of a selected batch, one per shard of each RM's prompts;
    /// returns which prompts each RM scores and the new tasks' ids.
    mutating func makeScoreTasks(
        for batch: inout Batch, global: Int
    ) -> (promptsByRM: [String: [Int]], created: [UInt64]) {
        let units = batch.units
        let range = batch.range
        let prompts = batch.prompts
        // Which prompts each RM scores.
        var promptsByRM: [String: [Int]] = [:]
        for unit in units {
            let rms: [String]
            switch unit.selection {
            case .arm(let k): rms = [plan.rewardModels[k].name]
            case .ensemble: rms = plan.armNames
            }
            for rm in rms {
                promptsByRM[rm, default: []].append(contentsOf: unit.offsets.map { range.lowerBound + $0 })
            }
        }
        var created: [UInt64] = []
        for rm in plan.armNames {
            guard let indices = promptsByRM[rm]?.sorted() else { continue }
            batch.scores[rm] = Array(repeating: nil, count: range.count)
            for shard in Self.shards(
                indices, of: prompts, base: range.lowerBound, size: plan.shardSize, maxBytes: plan.maxTaskBytes)
            {
                let id = nextTaskID
                nextTaskID += 1
                tasks[id] = ScoreTaskState(id: id, batch: global, rm: rm, indices: shard)
                created.append(id)
                batch.remainingTasks += 1
            }
        }
        return (promptsByRM, created)
    }

    /// Prompt `index` (within the iteration) of open batch `global`.
    func prompt(_ index: Int, inBatch global: Int) -> PromptRecord {
        let b = batches[held: global]
        return b.prompts[index - b.range.lowerBound]
    }

    mutating func apply(_ f: Feedback, batch: Int, _ actions: inout [CoordinatorAction]) {
        switch f {
        case .penalty(let arm, let context, let probability):
            guard selector.learns else { return }
            let reward = plan.normalizeRewards ? 0 : (normalizer.sortedHistory.first ?? 0)
            selector.update(arm: arm, context: context, reward: reward, probability: probability)
            actions.append(
                .log(
                    .debug,
                    "bandit update: batch \(batch) arm \(plan.armNames[arm]) gave no pairs, reward \(format4(reward))"))
        case .reward(let raw, let arm, let context, let probability):
            summary.recordReward(arm: arm, raw: raw)
            guard selector.learns else { return }
            var reward = plan.normalizeRewards ? normalizer.normalize(raw) : raw
            // The normaliser passes the first reward through raw (the paper's code); `neutral` makes it 0.5.
            if plan.normalizeRewards && plan.bandit.firstReward == .neutral && normalizer.sortedHistory.count == 1 {
                reward = 0.5
            }
            selector.update(arm: arm, context: context, reward: reward, probability: probability)
            actions.append(
                .log(
                    .debug,
                    "bandit update: batch \(batch) arm \(plan.armNames[arm]) raw \(format4(raw)) reward \(format4(reward))"
                ))
        }
    }

    /// Emits completed batches in batch order.
    mutating func completeBatches(_ actions: inout [CoordinatorAction]) {
        while let batch = batches[nextToEmit], batch.remainingTasks == 0 {
            batches[nextToEmit] = nil
            emit(batch, global: nextToEmit, &actions)
            nextToEmit += 1
        }
    }

    /// What a batch's units give: pairs or best-of-n choices, label accuracy, and the bandit's updates
    /// (rewards now, or units that wait for the trainer's loss). Reads the plan and the batch only.
    struct BatchOutputs {
        var pairs: [PreferencePair] = []
        var choices: [BestOfNChoice] = []
        var accuracy = LabelPairAccuracy()
        var updates: [Feedback] = []
        var lossUnits: [(arm: Int, context: [Double], probability: Double)] = []
        var tally = BatchTally()
        var distinctRMs: Set<String> = []
    }

    /// Step 1 of `emit`: pairs (or choices) per unit from its RM's scores, and what the bandit learns.
    func outputs(of batch: Batch) -> BatchOutputs {
        var out = BatchOutputs()
        let prompts = batch.prompts
        if plan.mode == .pairs {
            out.pairs.reserveCapacity(prompts.count)
        } else {
            out.choices.reserveCapacity(prompts.count)
        }
        for unit in batch.units {
            var arm: Int?
            let rmName: String
            switch unit.selection {
            case .arm(let k): rmName = plan.rewardModels[k].name; arm = k
            case .ensemble: rmName = "ensemble"
            }
            if !unit.offsets.isEmpty { out.distinctRMs.insert(rmName) }
            // The unit's score lists, looked up once (not per prompt): the selected RM's, or every RM's.
            let lists = arm != nil ? [batch.scores[held: rmName]] : plan.armNames.map { batch.scores[held: $0] }
            let agreement = plan.strategy == .agreement && arm == nil
            let threshold = plan.agreementThreshold
            var unitAccuracy = LabelPairAccuracy()
            var labelled = false
            var unitOutput = 0
            for offset in unit.offsets {
                let perRM = lists.map { $0[offset]! }
                let scores = arm != nil ? perRM[0] : ScoreEnsemble.combine(perRM)
                let candidates = prompts[offset].candidates
                if !labelled && candidates.contains(where: { $0.correct != nil }) { labelled = true }
                var promptAccuracy = LabelPairAccuracy()
                var promptOutput = 0
                switch plan.mode {
                case .pairs:
                    let chosen =
                        agreement
                        ? plan.pairPolicy.pairs(scores: scores) {
                            (AgreementFilter.agreement(perRM, chosen: $0, rejected: $1) ?? 0) >= threshold
                        }
                        : plan.pairPolicy.pairs(scores: scores)
                    for (c, r) in chosen {
                        let pair = PreferencePair(
                            prompt: prompts[offset].prompt, chosenJSON: candidates[c].json,
                            rejectedJSON: candidates[r].json,
                            chosenScore: scores[c], rejectedScore: scores[r], rm: rmName, promptID: prompts[offset].id,
                            iteration: iteration, batch: batch.indexInIteration,
                            chosenCorrect: candidates[c].correct, rejectedCorrect: candidates[r].correct,
                            messagesJSON: prompts[offset].messagesJSON)
                        promptAccuracy.add(chosenCorrect: pair.chosenCorrect, rejectedCorrect: pair.rejectedCorrect)
                        out.pairs.append(pair)
                        promptOutput += 1
                    }
                case .bestOfN:
                    // The best candidate; ties go to the earliest.
                    let best = scores.indices.max { scores[$0] < scores[$1] || (scores[$0] == scores[$1] && $0 > $1) }!
                    out.choices.append(
                        BestOfNChoice(
                            prompt: prompts[offset].prompt, messagesJSON: prompts[offset].messagesJSON,
                            responseJSON: candidates[best].json, score: scores[best],
                            rm: rmName, promptID: prompts[offset].id, iteration: iteration,
                            batch: batch.indexInIteration,
                            correct: candidates[best].correct))
                    promptAccuracy.add(choiceCorrect: candidates[best].correct)
                    promptOutput += 1
                }
                out.tally.add(task: prompts[offset].task, rm: rmName, outputs: promptOutput, accuracy: promptAccuracy)
                unitAccuracy.add(promptAccuracy)
                unitOutput += promptOutput
            }
            out.accuracy.add(unitAccuracy)
            guard let arm else { continue }
            switch plan.rewardSource {
            case .labelPairAccuracy:
                // Labels exist but the RM produced no labelled pair: it gave the trainer nothing, reward 0.
                if labelled {
                    out.updates.append(
                        .reward(
                            raw: unitAccuracy.value ?? 0, arm: arm, context: unit.context, probability: unit.probability
                        ))
                }
            case .trainerLoss, .predictionGain, .probeProgress:
                if unitOutput == 0 {
                    out.updates.append(.penalty(arm: arm, context: unit.context, probability: unit.probability))
                } else {
                    out.lossUnits.append((arm, unit.context, unit.probability))
                }
            }
        }
        return out
    }

    /// Step 2 of `emit`: the texts the batch keeps, copied out of its input lines (about 2 KiB per
    /// prompt out of 8), so that a batch waiting for the disk or a trainer does not hold all of them.
    static func compactTexts(_ pairs: inout [PreferencePair], _ choices: inout [BestOfNChoice]) {
        var texts: [JSONText] = []
        texts.reserveCapacity(2 * pairs.count + choices.count)
        for pair in pairs { texts.append(pair.chosenJSON); texts.append(pair.rejectedJSON) }
        for choice in choices { texts.append(choice.responseJSON) }
        let kept = JSONText.packed(texts)
        for i in pairs.indices { (pairs[i].chosenJSON, pairs[i].rejectedJSON) = (kept[2 * i], kept[2 * i + 1]) }
        for i in choices.indices { choices[i].responseJSON = kept[2 * pairs.count + i] }
    }

    mutating func emit(_ batch: Batch, global: Int, _ actions: inout [CoordinatorAction]) {
        var out = outputs(of: batch)
        Self.compactTexts(&out.pairs, &out.choices)
        let (pairs, choices, accuracy, updates, lossUnits, tally, distinctRMs) =
            (out.pairs, out.choices, out.accuracy, out.updates, out.lossUnits, out.tally, out.distinctRMs)
        let rmLabel = distinctRMs.count == 1 ? distinctRMs.first! : "mixed"
        let raw: Double? =
            plan.rewardSource == .labelPairAccuracy
            ? updates.compactMap { if case .reward(let r, _, _, _) = $0 { return r } else { return nil } }.average : nil
        summary.recordBatch(
            tally, arms: batch.units.compactMap { if case .arm(let k) = $0.selection { return k } else { return nil } })
        let emitted = EmittedBatch(
            iteration: iteration, batch: batch.indexInIteration, globalIndex: global, rm: rmLabel,
            promptCount: batch.range.count, pairs: pairs, choices: choices, labelAccuracy: accuracy.value,
            rawReward: raw)
        var outcome = BatchOutcome(emitted)
        if plan.bandit.record != .none {
            outcome.decisions = batch.units.map { u in
                DecisionRecord(
                    contextDigest: DecisionRecord.digest(u.context), bounds: u.bounds,
                    context: plan.bandit.record == .full ? u.context : nil,
                    arm: { if case .arm(let k) = u.selection { return k } else { return nil } }())
            }
        }
        batchLog.append(outcome)
        let replayed = recovery.emitted.remove(global) != nil
        if replayed {
            actions.append(.log(.debug, "batch \(global) was emitted before the restart; not emitted again"))
        } else {
            actions.append(.emitBatch(emitted))
            actions.append(.journal(.emitted(batch: global), sync: true))
        }
        if plan.rewardSource.fromTrainer && !pairs.isEmpty {
            awaitingLoss[global] = AwaitingLoss(batch: emitted, updates: lossUnits)
            feedback[global] = nil
            pendingUpdates[global] = updates
            if let loss = recovery.losses.removeValue(forKey: global) {
                acceptLoss(loss, batch: global, journaled: true, &actions)
            }
        } else {
            feedback[global] = updates
        }
        deliverToTrainer(&actions)
        // Label-reward runs stream each batch once, when it is emitted (its file is the record).
        if !replayed { streamToTrainer(emitted, &actions) }
    }

    /// The global index the next selected batch gets (at an iteration's start: its first batch's).
    public var nextBatchIndex: Int { nextGlobal }

    /// Whether batch `global` needs its candidate texts: false only for a batch the journal says was
    /// emitted and that will not go to a trainer again (label reward, or its loss is recorded). A
    /// resume replays such batches without emitting them, so the shell may leave their texts empty.
    public func textsNeeded(forBatch global: Int) -> Bool {
        !(recovery.emitted.contains(global) && (!plan.rewardSource.fromTrainer || recovery.losses[global] != nil))
    }

    // MARK: observation

    /// A snapshot for progress displays.
    public var progress: CoordinatorProgress {
        CoordinatorProgress(
            iteration: iteration, iterations: plan.iterations,
            promptsInIteration: promptCount,
            batchesInIteration: batchRanges.count,
            batchesEmittedInIteration: nextToEmit - firstGlobalOfIteration,
            batchesEmitted: nextToEmit,
            workers: workers.count,
            slots: workers.values.reduce(0) { $0 + $1.slots },
            tasksQueued: queues.values.reduce(0) { $0 + $1.count },
            tasksInFlight: tasks.values.filter { !$0.queued }.count,
            selections: summary.arms.map { ($0.name, $0.batches) })
    }

    /// The run summary so far.
    public var currentSummary: RunSummary { summary.build() }

    /// The summary so far, with the wall time of an unfinished iteration up to `now` (a stopped run).
    public func summary(now: Instant) -> RunSummary {
        var s = summary.build()
        if phase == .running, iteration > 0, isOpen, let last = s.iterations.indices.last {
            s.iterations[last].wallSeconds = now.milliseconds(since: iterationStart) / 1000
        }
        return s
    }
}
