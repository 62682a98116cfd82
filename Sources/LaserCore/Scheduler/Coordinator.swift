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
    private var normalizer = RewardNormalizer()
    private var summary: SummaryBuilder

    private enum Phase: Equatable { case idle, running, finished, failed }
    private var phase = Phase.idle

    // Workers, by the ROUTER identity of their connection.
    private struct Worker: Sendable {
        var workerID: String
        var rewardModels: Set<String>
        var slots: Int
        var inFlight: Set<UInt64> = []
        var lastHeard: Instant
        var lastSent: Instant
        var free: Int { slots - inFlight.count }
    }
    private var workers: [PeerID: Worker] = [:]
    private var peerByWorkerID: [String: PeerID] = [:]

    // The iteration being worked on.
    private var iteration = 0
    private var loading = false
    private var iterationDone = false
    private var prompts: [PromptRecord] = []
    private var iterationStart = Instant(nanoseconds: 0)
    private var batchRanges: [Range<Int>] = []
    private var nextBatchInIteration = 0
    private var firstGlobalOfIteration = 0

    // Batches, by global index (0-based over the run).
    private struct Batch: Sendable {
        var indexInIteration: Int
        var range: Range<Int>
        var selection: Selection
        var context: [Double]
        var scores: [String: [[Double]?]]
        var remainingTasks: Int
    }
    private enum Feedback: Sendable {
        case reward(raw: Double, arm: Int, context: [Double])
        case none
    }
    private var batches: [Int: Batch] = [:]
    private var feedback: [Int: Feedback] = [:]
    private var nextGlobal = 0
    private var nextToEmit = 0
    private var applied = 0

    // Score tasks.
    private struct ScoreTaskState: Sendable {
        var id: UInt64
        var batch: Int
        var rm: String
        var range: Range<Int>
        var attempt: UInt32 = 1
        var holders: Set<PeerID> = []
        var queued = true
        var deadline: Instant?
        var lastError: String?
        /// Workers that failed this task or let its lease expire: a retry prefers any other worker.
        var avoid: Set<PeerID> = []
    }
    private var tasks: [UInt64: ScoreTaskState] = [:]
    private var queues: [String: [UInt64]] = [:]
    private var nextTaskID: UInt64 = 1

    // What the journal of an interrupted run says; consumed while the run replays.
    private var recovery: Recovery
    /// Emitted batches without their pairs (selections.jsonl), including those replayed.
    public private(set) var batchLog: [BatchOutcome] = []
    private var starvationWarned: [String: Instant] = [:]

    /// A coordinator for `plan`; `journal` holds the records of an interrupted run to resume (empty for
    /// a new run).
    public init(plan: RunPlan, journal: [JournalRecord] = []) {
        precondition(!plan.rewardModels.isEmpty, "a run needs at least one reward model")
        precondition(plan.batchSize >= 1 && plan.shardSize >= 1 && plan.pipelineDepth >= 1 && plan.iterations >= 1)
        self.plan = plan
        selector = Selector(kind: plan.strategy, armCount: plan.rewardModels.count, dimension: plan.contextDimension,
                            seed: plan.seed, alpha: plan.alpha, lambda: plan.lambda, fixedArm: plan.fixedArm)
        summary = SummaryBuilder(strategy: plan.strategy.rawValue, armNames: plan.armNames)
        for name in plan.armNames { queues[name] = [] }
        recovery = Recovery(journal)
    }

    /// The single state-changing entry point.
    public mutating func handle(_ event: CoordinatorEvent, now: Instant) -> [CoordinatorAction] {
        var actions: [CoordinatorAction] = []
        switch event {
        case .start:
            guard phase == .idle else { break }
            phase = .running
            loading = true
            let epoch = recovery.epochs
            // Task ids carry the incarnation, so results addressed to an earlier one never match.
            nextTaskID = UInt64(epoch) << 32 | 1
            actions.append(.journal(.started(epoch: epoch), sync: true))
            if epoch > 0 {
                actions.append(.log(.info, "resuming (incarnation \(epoch)): \(recovery.selections.count) selections, \(recovery.scores.count) scored shards and \(recovery.emitted.count) emitted batches in the journal"))
            }
            actions.append(.loadIteration(1))
        case .iterationLoaded(let n, let loaded, let digest):
            guard phase == .running, loading, n == iteration + 1 else {
                actions.append(.log(.warning, "ignored iteration \(n): not the one requested"))
                break
            }
            if let recorded = recovery.inputDigests[n] {
                guard recorded == digest else {
                    fail("the input of iteration \(n) changed since the run started (digest \(recorded), now \(digest)); restore the original file, or resume with --force to accept the new one", &actions)
                    break
                }
            } else {
                actions.append(.journal(.iterationLoaded(iteration: n, inputDigest: digest, prompts: loaded.count), sync: false))
            }
            begin(iteration: n, prompts: loaded, now: now, &actions)
        case .message(let peer, let message):
            receive(message, from: peer, now: now, &actions)
        case .undecodable(let peer, let reason):
            summary.counters.malformedMessages += 1
            if Self.worthLogging(summary.counters.malformedMessages) {
                actions.append(.log(.warning, "peer \(peer) sent a message that does not decode (\(reason)); dropped (\(summary.counters.malformedMessages) so far). Is it a laser worker of the same version?"))
            }
            if workers[peer] != nil { workers[peer]!.lastHeard = now }
        case .unreachable(let peer):
            summary.counters.undeliverable += 1
            if workers[peer] != nil { forget(peer, reason: "its connection is gone or it does not read", now: now, &actions) }
        case .tick:
            tick(now: now, &actions)
        }
        if phase == .running {
            advance(now: now, &actions)
            dispatch(now: now, &actions)
        }
        return actions
    }

    // MARK: iterations and batches

    private mutating func begin(iteration n: Int, prompts loaded: [PromptRecord], now: Instant, _ actions: inout [CoordinatorAction]) {
        loading = false
        iterationDone = false
        iteration = n
        prompts = loaded
        iterationStart = now
        firstGlobalOfIteration = nextGlobal
        nextBatchInIteration = 0
        batchRanges = stride(from: 0, to: loaded.count, by: plan.batchSize).map { $0..<min($0 + plan.batchSize, loaded.count) }
        summary.beginIteration(n, prompts: loaded.count)
        if loaded.isEmpty { actions.append(.log(.warning, "iteration \(n) has no prompts")) }
        actions.append(.log(.info, "iteration \(n)/\(plan.iterations): \(loaded.count) prompts in \(batchRanges.count) mini-batches"))
    }

    private var selectionsExhausted: Bool {
        iteration == plan.iterations && !loading && nextBatchInIteration == batchRanges.count
    }

    private mutating func advance(now: Instant, _ actions: inout [CoordinatorAction]) {
        var progressed = true
        while progressed && phase == .running {
            progressed = false
            // Select batch t only once the feedback of exactly batches 0...t-D has been applied.
            while phase == .running, !loading, iteration > 0, nextBatchInIteration < batchRanges.count,
                  applied >= nextGlobal - plan.pipelineDepth + 1 {
                select(now: now, &actions)
                progressed = true
            }
            // Apply feedback s only after every batch that must not see it (s+1...s+D-1) is selected.
            while let f = feedback[applied], nextGlobal >= applied + plan.pipelineDepth || selectionsExhausted {
                apply(f, batch: applied, &actions)
                feedback[applied] = nil
                applied += 1
                progressed = true
            }
        }
        guard phase == .running, iteration > 0, !loading, !iterationDone,
              nextBatchInIteration == batchRanges.count, nextToEmit == nextGlobal else { return }
        iterationDone = true
        let seconds = now.milliseconds(since: iterationStart) / 1000
        summary.setWallSeconds(seconds)
        actions.append(.log(.info, "iteration \(iteration) complete: \(batchRanges.count) batches in \(String(format2(seconds))) s"))
        if iteration < plan.iterations {
            loading = true
            actions.append(.loadIteration(iteration + 1))
        } else if applied == nextGlobal {
            phase = .finished
            for peer in workers.keys.sorted() { actions.append(.send(to: peer, .shutdown(reason: "run complete"))) }
            actions.append(.finish(summary.build()))
        }
    }

    private mutating func select(now: Instant, _ actions: inout [CoordinatorAction]) {
        let range = batchRanges[nextBatchInIteration]
        let context = HashingFeaturizerMean.mean(prompts[range].map(\.context), dimension: plan.contextDimension)
        let global = nextGlobal
        let computed = selector.select(context: context, batch: global)
        var selection = computed
        if let recorded = recovery.selections[global] {
            // Selections already made stay made, even if the reward signal was not reproducible.
            if case .arm(let k) = recorded, !(0..<plan.rewardModels.count).contains(k) {
                fail("the journal selects RM #\(k) for batch \(global) but the config defines \(plan.rewardModels.count) RMs; resume with the config the run started with", &actions)
                return
            }
            if recorded != computed {
                actions.append(.log(.warning, "batch \(global): the journal's selection \(recorded) differs from a fresh one \(computed) (was a reward nondeterministic?); keeping the journal's"))
            }
            selection = recorded
        } else {
            actions.append(.journal(.selected(batch: global, selection: selection), sync: false))
        }
        let rms: [String]
        switch selection {
        case .arm(let k): rms = [plan.rewardModels[k].name]
        case .ensemble: rms = plan.armNames
        }
        var batch = Batch(indexInIteration: nextBatchInIteration + 1, range: range, selection: selection,
                          context: context, scores: [:], remainingTasks: 0)
        var created: [UInt64] = []
        for rm in rms {
            batch.scores[rm] = Array(repeating: nil, count: range.count)
            for start in stride(from: range.lowerBound, to: range.upperBound, by: plan.shardSize) {
                let id = nextTaskID
                nextTaskID += 1
                tasks[id] = ScoreTaskState(id: id, batch: global, rm: rm, range: start..<min(start + plan.shardSize, range.upperBound))
                created.append(id)
                batch.remainingTasks += 1
            }
        }
        batches[global] = batch
        nextGlobal += 1
        nextBatchInIteration += 1
        actions.append(.log(.debug, "iteration \(iteration) batch \(batch.indexInIteration): \(rms.count == 1 ? rms[0] : "ensemble") selected"))
        for id in created {
            let task = tasks[id]!
            let key = Recovery.ShardKey(batch: global, rm: task.rm, firstPrompt: task.range.lowerBound)
            if let scores = recovery.scores.removeValue(forKey: key), validate(scores, for: task) == nil {
                complete(task, scores: scores, journaled: true, &actions)
            } else {
                queues[task.rm, default: []].append(id)
            }
        }
        if batch.remainingTasks == 0 { completeBatches(&actions) }
    }

    private mutating func apply(_ f: Feedback, batch: Int, _ actions: inout [CoordinatorAction]) {
        guard case .reward(let raw, let arm, let context) = f, selector.learns else { return }
        let reward = plan.normalizeRewards ? normalizer.normalize(raw) : raw
        selector.update(arm: arm, context: context, reward: reward)
        actions.append(.log(.debug, "bandit update: batch \(batch) arm \(plan.armNames[arm]) raw \(format4(raw)) reward \(format4(reward))"))
    }

    /// Emits completed batches in batch order.
    private mutating func completeBatches(_ actions: inout [CoordinatorAction]) {
        while let batch = batches[nextToEmit], batch.remainingTasks == 0 {
            batches[nextToEmit] = nil
            emit(batch, global: nextToEmit, &actions)
            nextToEmit += 1
        }
    }

    private mutating func emit(_ batch: Batch, global: Int, _ actions: inout [CoordinatorAction]) {
        let rmName: String
        var arm: Int?
        switch batch.selection {
        case .arm(let k): rmName = plan.rewardModels[k].name; arm = k
        case .ensemble: rmName = "ensemble"
        }
        var pairs: [PreferencePair] = []
        var accuracy = LabelPairAccuracy()
        var labelled = false
        for (offset, index) in batch.range.enumerated() {
            let p = prompts[index]
            let scores: [Double]
            if arm != nil {
                scores = batch.scores[rmName]![offset]!
            } else {
                scores = ScoreEnsemble.combine(plan.armNames.map { batch.scores[$0]![offset]! })
            }
            if p.candidates.contains(where: { $0.correct != nil }) { labelled = true }
            for (c, r) in plan.pairPolicy.pairs(scores: scores) {
                let pair = PreferencePair(
                    prompt: p.prompt, chosen: p.candidates[c].text, rejected: p.candidates[r].text,
                    chosenScore: scores[c], rejectedScore: scores[r], rm: rmName, promptID: p.id,
                    iteration: iteration, batch: batch.indexInIteration,
                    chosenCorrect: p.candidates[c].correct, rejectedCorrect: p.candidates[r].correct)
                accuracy.add(chosenCorrect: pair.chosenCorrect, rejectedCorrect: pair.rejectedCorrect)
                pairs.append(pair)
            }
        }
        // Labels exist but the RM produced no labelled pair: it gave the trainer nothing, reward 0.
        let raw: Double? = labelled ? (accuracy.value ?? 0) : nil
        if let arm, let raw {
            feedback[global] = .reward(raw: raw, arm: arm, context: batch.context)
        } else {
            feedback[global] = Feedback.none
        }
        summary.recordBatch(prompts: prompts[batch.range], rm: rmName, pairs: pairs, arm: arm, rawReward: raw)
        let emitted = EmittedBatch(
            iteration: iteration, batch: batch.indexInIteration, globalIndex: global, rm: rmName,
            promptCount: batch.range.count, pairs: pairs, labelAccuracy: accuracy.value, rawReward: raw)
        batchLog.append(BatchOutcome(emitted))
        if recovery.emitted.remove(global) != nil {
            actions.append(.log(.debug, "batch \(global) was emitted before the restart; not emitted again"))
        } else {
            actions.append(.emitBatch(emitted))
            actions.append(.journal(.emitted(batch: global), sync: true))
        }
    }

    // MARK: peers

    private mutating func receive(_ message: WireMessage, from peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        if phase == .finished || phase == .failed {
            actions.append(.send(to: peer, .shutdown(reason: phase == .finished ? "run complete" : "run failed")))
            return
        }
        if case .hello(let hello) = message {
            register(hello, peer: peer, now: now, &actions)
            return
        }
        guard workers[peer] != nil else {
            // After a coordinator restart workers are unknown: tell them to say Hello again.
            summary.counters.unknownPeerMessages += 1
            actions.append(.send(to: peer, .disconnect(reason: "unknown peer: send Hello first")))
            return
        }
        workers[peer]!.lastHeard = now
        switch message {
        case .heartbeat:
            break
        case .scoreResult(let result):
            handle(result, from: peer, now: now, &actions)
        default:
            summary.counters.malformedMessages += 1
            actions.append(.log(.warning, "worker \(workers[peer]!.workerID) sent \(message.kind), which only a coordinator sends; ignored"))
        }
    }

    private mutating func register(_ hello: Hello, peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        let known = Set(plan.armNames)
        let unknown = hello.rewardModels.filter { !known.contains($0) }
        var problem: String?
        if hello.workerID.isEmpty { problem = "worker_id is empty; start the worker with --id NAME" }
        else if hello.slots == 0 { problem = "worker '\(hello.workerID)' declared 0 slots; use --slots 1 or more" }
        else if !unknown.isEmpty {
            problem = "worker '\(hello.workerID)' offers reward model(s) \(unknown.joined(separator: ", ")) that this run does not define; the run defines \(plan.armNames.joined(separator: ", ")). Start it with --rm NAME for those, or without --rm to serve all."
        }
        if let problem {
            actions.append(.log(.warning, "rejected \(peer): \(problem)"))
            actions.append(.send(to: peer, .reject(reason: problem)))
            return
        }
        // A re-registration is a protocol reset, not a failure of its tasks: they go back to the queue
        // without using up an attempt (otherwise a peer repeating Hello could fail any task).
        if workers[peer] != nil { forget(peer, reason: "it said Hello again", countsAsAttempt: false, now: now, &actions) }
        if let old = peerByWorkerID[hello.workerID], old != peer, workers[old] != nil {
            forget(old, reason: "it re-registered from a new connection", countsAsAttempt: false, now: now, &actions)
        }
        let served = hello.rewardModels.isEmpty ? plan.armNames : plan.armNames.filter { hello.rewardModels.contains($0) }
        workers[peer] = Worker(workerID: hello.workerID, rewardModels: Set(served), slots: Int(hello.slots), lastHeard: now, lastSent: now)
        peerByWorkerID[hello.workerID] = peer
        summary.counters.workersRegistered += 1
        actions.append(.log(.info, "worker \(hello.workerID) joined: \(hello.slots) slots, RMs \(served.joined(separator: ", "))"))
        actions.append(.send(to: peer, .welcome(Welcome(
            coordinatorID: plan.coordinatorID,
            heartbeatIntervalMs: UInt32(clamping: plan.scheduler.heartbeatIntervalMs),
            liveness: plan.scheduler.liveness,
            rewardModels: plan.rewardModels.filter { served.contains($0.name) },
            runSeed: plan.seed))))
    }

    /// Drops a worker and puts the tasks it held back in the queue. A worker that died or vanished
    /// uses up an attempt of each task it held (a task that kills workers must not loop forever).
    private mutating func forget(_ peer: PeerID, reason: String, countsAsAttempt: Bool = true, now: Instant,
                                 _ actions: inout [CoordinatorAction]) {
        guard let worker = workers.removeValue(forKey: peer) else { return }
        if peerByWorkerID[worker.workerID] == peer { peerByWorkerID[worker.workerID] = nil }
        summary.counters.workersLost += 1
        actions.append(.log(.warning, "worker \(worker.workerID) removed: \(reason); \(worker.inFlight.count) task(s) go back to the queue"))
        for id in worker.inFlight.sorted() {
            guard var task = tasks[id] else { continue }
            task.holders.remove(peer)
            tasks[id] = task
            if task.holders.isEmpty && !task.queued {
                if countsAsAttempt {
                    retry(id, error: "worker \(worker.workerID) was lost (\(reason))", &actions)
                } else {
                    requeue(id)
                }
            }
        }
    }

    private mutating func handle(_ result: ScoreResult, from peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        let workerID = workers[peer]!.workerID
        workers[peer]!.inFlight.remove(result.taskID)
        guard var task = tasks[result.taskID] else {
            summary.counters.duplicateResults += 1
            actions.append(.log(.debug, "dropped late or duplicate result for task \(result.taskID) from \(workerID)"))
            return
        }
        task.holders.remove(peer)
        tasks[result.taskID] = task
        switch result.outcome {
        case .failure(let message):
            actions.append(.log(.warning, "RM \(task.rm) failed task \(task.id) on worker \(workerID) (attempt \(task.attempt)): \(message)"))
            tasks[task.id]!.avoid.insert(peer)
            retry(task.id, error: "worker \(workerID): \(message)", &actions)
        case .success(let perItem):
            if let problem = validate(perItem, for: task) {
                summary.counters.invalidResults += 1
                if Self.worthLogging(summary.counters.invalidResults) { actions.append(.log(.error, "worker \(workerID) sent an invalid result for task \(task.id) (RM \(task.rm)): \(problem); the task is retried")) }
                tasks[task.id]!.avoid.insert(peer)
                retry(task.id, error: "worker \(workerID) sent an invalid result: \(problem)", &actions)
                return
            }
            complete(task, scores: perItem, journaled: false, &actions)
        }
    }

    private func validate(_ perItem: [[Double]], for task: ScoreTaskState) -> String? {
        guard perItem.count == task.range.count else {
            return "\(perItem.count) score lists for \(task.range.count) prompts"
        }
        for (offset, index) in task.range.enumerated() {
            let expected = prompts[index].candidates.count
            let got = perItem[offset]
            if got.count != expected {
                return "prompt \(prompts[index].id) has \(expected) candidates but \(got.count) scores"
            }
            if let bad = got.firstIndex(where: { !$0.isFinite }) {
                return "prompt \(prompts[index].id) candidate \(bad) scored \(got[bad]) (scores must be finite)"
            }
        }
        return nil
    }

    private mutating func complete(_ task: ScoreTaskState, scores perItem: [[Double]], journaled: Bool, _ actions: inout [CoordinatorAction]) {
        if !journaled {
            actions.append(.journal(.scored(batch: task.batch, rm: task.rm, firstPrompt: task.range.lowerBound, scores: perItem), sync: false))
        }
        tasks[task.id] = nil
        if task.queued { queues[task.rm]?.removeAll { $0 == task.id } }
        guard var batch = batches[task.batch] else { preconditionFailure("task \(task.id) belongs to no open batch") }
        let base = batch.range.lowerBound
        for (offset, index) in task.range.enumerated() { batch.scores[task.rm]![index - base] = perItem[offset] }
        batch.remainingTasks -= 1
        batches[task.batch] = batch
        summary.recordRMCalls(rm: task.rm, prompts: prompts[task.range])
        completeBatches(&actions)
    }

    /// Queues a task again at the front, with the same attempt number.
    private mutating func requeue(_ id: UInt64) {
        tasks[id]!.queued = true
        tasks[id]!.deadline = nil
        queues[tasks[id]!.rm, default: []].insert(id, at: 0)
    }

    /// Queues a task again with attempt + 1, or fails the run once its attempts are used up.
    private mutating func retry(_ id: UInt64, error: String, _ actions: inout [CoordinatorAction]) {
        guard var task = tasks[id] else { return }
        task.lastError = error
        // Still out with another worker (a lease expired earlier): that one may yet answer.
        if !task.holders.isEmpty || task.queued {
            tasks[id] = task
            return
        }
        task.attempt += 1
        if task.attempt > plan.scheduler.maxAttempts {
            tasks[id] = task
            let ids = prompts[task.range].map(\.id)
            fail("reward model \(task.rm) could not score task \(id) (iteration \(iteration), prompts \(ids.first ?? "")...\(ids.last ?? "")) after \(plan.scheduler.maxAttempts) attempts; last error: \(error). Fix the RM or the worker and resume the run.", &actions)
            return
        }
        tasks[id] = task
        requeue(id)
        summary.counters.tasksRetried += 1
    }

    private mutating func fail(_ message: String, _ actions: inout [CoordinatorAction]) {
        guard phase == .running else { return }
        phase = .failed
        for peer in workers.keys.sorted() { actions.append(.send(to: peer, .shutdown(reason: "run failed: \(message)"))) }
        actions.append(.fail(message))
    }

    // MARK: scheduling

    private mutating func dispatch(now: Instant, _ actions: inout [CoordinatorAction]) {
        for rm in plan.armNames {
            while let id = queues[rm]?.first {
                // A worker that has not failed this task, then the most free slots, then the lowest
                // worker id (for reproducible logs).
                let avoid = tasks[id]!.avoid
                // Wait for another worker rather than hand a task back to one that failed it, unless
                // no other worker serves this RM at all.
                let alternativeExists = workers.contains { !avoid.contains($0.key) && $0.value.rewardModels.contains(rm) }
                var best: PeerID?
                func better(_ p: PeerID, than q: PeerID) -> Bool {
                    let a = workers[p]!, b = workers[q]!
                    let (pa, pb) = (!avoid.contains(p), !avoid.contains(q))
                    if pa != pb { return pa }
                    if a.free != b.free { return a.free > b.free }
                    return a.workerID < b.workerID
                }
                for (peer, w) in workers where w.free > 0 && w.rewardModels.contains(rm) && !(alternativeExists && avoid.contains(peer)) {
                    if best == nil || better(peer, than: best!) { best = peer }
                }
                guard let peer = best else { break }
                queues[rm]!.removeFirst()
                var task = tasks[id]!
                task.queued = false
                task.holders.insert(peer)
                task.deadline = now.adding(milliseconds: plan.scheduler.leaseMs)
                tasks[id] = task
                workers[peer]!.inFlight.insert(id)
                workers[peer]!.lastSent = now
                summary.counters.tasksDispatched += 1
                let items = prompts[task.range].map {
                    ScoreItem(promptID: $0.id, prompt: $0.prompt, candidates: $0.candidates.map(\.text), reference: $0.reference)
                }
                actions.append(.send(to: peer, .scoreTask(ScoreTask(
                    taskID: id, attempt: task.attempt, rewardModel: rm, iteration: UInt32(iteration), items: items))))
            }
        }
    }

    private mutating func tick(now: Instant, _ actions: inout [CoordinatorAction]) {
        guard phase == .running else { return }
        let interval = plan.scheduler.heartbeatIntervalMs
        let deadAfter = interval * UInt64(plan.scheduler.liveness)
        for peer in workers.keys.sorted() {
            let w = workers[peer]!
            if now.milliseconds(since: w.lastHeard) > Double(deadAfter) {
                forget(peer, reason: "silent for more than \(deadAfter) ms", now: now, &actions)
                actions.append(.send(to: peer, .disconnect(reason: "no heartbeat for \(deadAfter) ms")))
            } else if now.milliseconds(since: w.lastSent) >= Double(interval) {
                workers[peer]!.lastSent = now
                actions.append(.send(to: peer, .heartbeat))
            }
        }
        for id in tasks.keys.sorted() {
            guard let task = tasks[id], !task.queued, let deadline = task.deadline, deadline < now else { continue }
            actions.append(.log(.warning, "task \(id) (RM \(task.rm)) got no result within its \(plan.scheduler.leaseMs) ms lease; queued again"))
            tasks[id]!.deadline = nil
            // Its holders keep the credit until they answer or die; a late answer is still accepted if first.
            var t = tasks[id]!
            let holders = t.holders
            t.avoid.formUnion(holders)
            t.holders = []
            tasks[id] = t
            retry(id, error: "no result within the lease", &actions)
            if tasks[id] != nil { tasks[id]!.holders = holders }
            if phase != .running { return }
        }
        for rm in plan.armNames where !(queues[rm] ?? []).isEmpty {
            let served = workers.values.contains { $0.rewardModels.contains(rm) }
            if !served, starvationWarned[rm].map({ now.milliseconds(since: $0) > 10_000 }) ?? true {
                starvationWarned[rm] = now
                actions.append(.log(.warning, "\(queues[rm]!.count) task(s) for RM \(rm) are waiting: no connected worker serves it. Start a worker with --rm \(rm) (or without --rm)."))
            }
        }
    }

    /// Floods of bad input are counted in full but logged sparingly: the first ten, then every 10,000th.
    static func worthLogging(_ count: Int) -> Bool { count <= 10 || count % 10_000 == 0 }

    // MARK: observation

    /// A snapshot for progress displays.
    public var progress: CoordinatorProgress {
        CoordinatorProgress(
            iteration: iteration, iterations: plan.iterations,
            promptsInIteration: prompts.count,
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
}

/// One emitted batch without its pairs: a line of selections.jsonl.
public struct BatchOutcome: Sendable, Equatable {
    public var iteration: Int
    public var batch: Int
    public var globalIndex: Int
    public var rm: String
    public var prompts: Int
    public var pairs: Int
    public var labelAccuracy: Double?
    public var rawReward: Double?

    init(_ b: EmittedBatch) {
        iteration = b.iteration
        batch = b.batch
        globalIndex = b.globalIndex
        rm = b.rm
        prompts = b.promptCount
        pairs = b.pairs.count
        labelAccuracy = b.labelAccuracy
        rawReward = b.rawReward
    }
}

/// What a progress line shows.
public struct CoordinatorProgress: Sendable {
    public var iteration: Int
    public var iterations: Int
    public var promptsInIteration: Int
    public var batchesInIteration: Int
    public var batchesEmittedInIteration: Int
    public var batchesEmitted: Int
    public var workers: Int
    public var slots: Int
    public var tasksQueued: Int
    public var tasksInFlight: Int
    public var selections: [(String, Int)]
}

enum HashingFeaturizerMean {
    static func mean(_ vectors: [[Double]], dimension: Int) -> [Double] {
        vectors.isEmpty ? [Double](repeating: 0, count: dimension) : HashingFeaturizer.mean(vectors)
    }
}

func format2(_ x: Double) -> String { formatFixed(x, 2) }
func format4(_ x: Double) -> String { formatFixed(x, 4) }

/// Fixed-point formatting without Foundation (the core does not import it).
func formatFixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    let whole = Int(scaled / scale)
    let frac = Int(scaled) - whole * Int(scale)
    let sign = x < 0 && scaled > 0 ? "-" : ""
    return digits == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(String(frac).leftPadded(digits))"
}
