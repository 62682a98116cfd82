import LaserWire

/// Registration, results and retries: how the coordinator deals with its workers.
extension Coordinator {

    mutating func receive(_ message: WireMessage, from peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction])
    {
        if phase == .finished || phase == .failed {
            actions.append(.send(to: peer, .shutdown(reason: phase == .finished ? "run complete" : "run failed")))
            return
        }
        switch message {
        case .hello(let hello):
            register(hello, peer: peer, now: now, &actions)
            return
        case .trainerHello(let hello):
            registerTrainer(hello, peer: peer, now: now, &actions)
            return
        case .batchFeedback(let f):
            if trainer?.peer == peer { trainer!.lastHeard = now }
            receiveLoss(f, from: peer, &actions)
            return
        case .disconnect where trainer?.peer == peer:
            // The trainer gives the role back (laser feedback does when done): the next one need not wait.
            actions.append(
                .log(
                    .info,
                    "trainer \(PeerText.printable(trainer!.trainerID)) left; its \(trainer!.sent.count) batch(es) without a loss go to the next trainer"
                ))
            trainer = nil
            return
        default:
            if trainer?.peer == peer {
                trainer!.lastHeard = now
                if message != .heartbeat {
                    summary.counters.malformedMessages += 1
                    logLimited(
                        .warning, "trainer-sent-other",
                        "trainer \(PeerText.printable(trainer!.trainerID)) sent \(message.kind), which a trainer does not send; ignored",
                        &actions)
                }
                return
            }
        }
        guard workers[peer] != nil else {
            // After a coordinator restart workers are unknown: tell them to say Hello again.
            summary.counters.unknownPeerMessages += 1
            if case .scoreResult = message {
                logLimited(
                    .info, "unknown-peer-result",
                    "a result from unknown peer \(peer) (not registered, or registered with an earlier coordinator); dropped",
                    &actions)
            }
            actions.append(.send(to: peer, .disconnect(reason: "unknown peer: send Hello first")))
            return
        }
        workers[held: peer].lastHeard = now
        workers[held: peer].answered = true
        switch message {
        case .heartbeat:
            break
        case .scoreResult(let result):
            handle(result, from: peer, now: now, &actions)
        case .rmState(let state):
            receive(state, from: peer, now: now, &actions)
        default:
            summary.counters.malformedMessages += 1
            logLimited(
                .warning, "coordinator-only",
                "worker \(PeerText.printable(workers[held: peer].workerID)) sent \(message.kind), which only a coordinator sends; ignored",
                &actions)
        }
    }

    /// Limits on what a Hello may carry (docs/protocol.md): a stranger's Hello costs bounded memory.
    static let maxIDBytes = 128
    static let maxLabels = 32
    static let maxOfferedRMs = 256

    /// Why a Hello is refused outright (before any state changes), or nil.
    func helloProblem(_ hello: Hello) -> String? {
        if hello.workerID.isEmpty { return "worker_id is empty; start the worker with --id NAME" }
        if let p = PeerText.identifierProblem(hello.workerID, what: "worker_id", maxBytes: Self.maxIDBytes) { return p }
        let id = PeerText.printable(hello.workerID)
        if hello.slots == 0 { return "worker '\(id)' declared 0 slots; use --slots 1 or more" }
        if hello.labels.count > Self.maxLabels {
            return "worker '\(id)' sent \(hello.labels.count) labels; at most \(Self.maxLabels) are allowed"
        }
        for label in hello.labels {
            if let p = PeerText.identifierProblem(label, what: "label", maxBytes: Self.maxIDBytes) {
                return "worker '\(id)': \(p)"
            }
        }
        if hello.rmCapacity > 0 && hello.loaded.count > Int(hello.rmCapacity) {
            return "worker '\(id)' says it has \(hello.loaded.count) RMs loaded but a capacity of \(hello.rmCapacity)"
        }
        if hello.memoryBudget != 0 || !hello.rmMemory.isEmpty {
            guard hello.rmCapacity > 0 else {
                return
                    "worker '\(id)' sent a memory budget without rm_capacity; a budget applies to capacity-limited workers only"
            }
            guard hello.memoryBudget.isFinite, hello.memoryBudget >= 0 else {
                return "worker '\(id)' declared memory budget \(hello.memoryBudget); it must be a finite number >= 0"
            }
            if hello.rmMemory.count > Self.maxOfferedRMs {
                return
                    "worker '\(id)' sent \(hello.rmMemory.count) RM weights; at most \(Self.maxOfferedRMs) are allowed"
            }
            if let bad = hello.rmMemory.first(where: { !$0.value.isFinite || $0.value < 0 }) {
                return
                    "worker '\(id)' gave RM \(PeerText.printable(bad.key)) the weight \(bad.value); weights must be finite numbers >= 0"
            }
            if hello.memoryBudget > 0,
                hello.loaded.reduce(0.0, { $0 + (hello.rmMemory[$1] ?? 0) }) > hello.memoryBudget + 1e-9
            {
                return "worker '\(id)' says its loaded RMs weigh more than its memory budget \(hello.memoryBudget)"
            }
        }
        if hello.loaded.count > Self.maxOfferedRMs {
            return "worker '\(id)' lists \(hello.loaded.count) loaded RMs; at most \(Self.maxOfferedRMs) are allowed"
        }
        if hello.rewardModels.count > Self.maxOfferedRMs {
            return "worker '\(id)' offers \(hello.rewardModels.count) RMs; at most \(Self.maxOfferedRMs) are allowed"
        }
        let known = Set(plan.armNames)
        let unknown = hello.rewardModels.filter { !known.contains($0) }
        if !unknown.isEmpty {
            return
                "worker '\(id)' offers reward model(s) \(unknown.prefix(5).map { PeerText.printable($0) }.joined(separator: ", ")) that this run does not define; the run defines \(plan.armNames.joined(separator: ", ")). Start it with --rm NAME for those, or without --rm to serve all."
        }
        return nil
    }

    /// Refuses a Hello or TrainerHello: counted, logged sparingly, answered with Reject.
    mutating func refuseHello(
        _ peer: PeerID, _ problem: String, retryAfterMs: UInt32 = 0, _ actions: inout [CoordinatorAction]
    ) {
        summary.counters.hellosRefused += 1
        logLimited(.warning, "hello-refused", "refused \(peer): \(problem)", &actions)
        actions.append(.send(to: peer, .reject(reason: problem, retryAfterMs: retryAfterMs)))
    }

    mutating func register(_ hello: Hello, peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        if let problem = helloProblem(hello) {
            refuseHello(peer, problem, &actions)
            return
        }
        let id = PeerText.printable(hello.workerID)
        // A re-registration is a protocol reset, not a failure of its tasks: they go back to the queue
        // without using up an attempt (otherwise a peer repeating Hello could fail any task).
        if workers[peer] != nil {
            forget(peer, reason: "it said Hello again", countsAsAttempt: false, now: now, &actions)
        }
        if let old = peerByWorkerID[hello.workerID], old != peer, let holder = workers[old] {
            // The id is held by another connection. It is taken over only once the holder is gone: silent
            // for the liveness window (or unreachable, which forgets it). Until then the newcomer is refused
            // for now and retries: a second worker with the same id, or a peer trying to take over a live
            // worker's id (and its tasks), never gets in while the holder lives.
            if now.milliseconds(since: holder.lastHeard) <= Double(plan.scheduler.deadAfterMs) {
                summary.counters.duplicateWorkerIDs += 1
                // An unanswered holder is most likely a stale socket of this same worker: the heartbeat
                // the coordinator sends it within one interval finds it gone, so retry soon.
                let retry = holder.answered ? plan.scheduler.deadAfterMs : plan.scheduler.heartbeatIntervalMs
                logLimited(
                    .warning, "duplicate-id",
                    "a second connection says it is worker '\(id)' while that worker is connected and alive; refused for now (give each worker a unique --id)",
                    &actions)
                summary.counters.hellosRefused += 1
                actions.append(
                    .send(
                        to: peer,
                        .reject(
                            reason:
                                "worker id '\(id)' is in use by a live connection; give each worker a unique --id (retrying in \(retry) ms)",
                            retryAfterMs: UInt32(clamping: retry))))
                return
            }
            forget(
                old,
                reason:
                    "it re-registered from a new connection after \(Int(now.milliseconds(since: holder.lastHeard))) ms of silence",
                countsAsAttempt: true, now: now, &actions)
        }
        var served = plan.placement.rewardModels(for: hello, all: plan.armNames)
        if hello.rewardModels.isEmpty {
            // A worker that offers nothing by name builds what the Welcome defines, which for subprocess
            // and HTTP RMs it never does: those go only to workers that offer them (--rm-config).
            served = served.filter { !plan.workerDefinedRMs.contains($0) }
        }
        guard !served.isEmpty else {
            let backends = plan.armNames.filter { plan.workerDefinedRMs.contains($0) }
            let problem =
                hello.rewardModels.isEmpty && !backends.isEmpty
                ? "worker '\(id)' would serve no RM: \(backends.joined(separator: ", ")) are subprocess/http RMs, which a worker runs only from its own definition; start it with --rm-config FILE (the run's config will do)"
                : "worker '\(id)' would serve no RM: its placement lists none of this run's RMs (\(plan.armNames.joined(separator: ", ")))"
            refuseHello(peer, problem, &actions)
            return
        }
        var slots = hello.slots
        if slots > plan.scheduler.maxSlotsPerWorker {
            summary.counters.slotsCapped += 1
            logLimited(
                .warning, "slots-capped",
                "worker \(id) declared \(slots) slots; it gets at most \(plan.scheduler.maxSlotsPerWorker) (network.max_slots_per_worker)",
                &actions)
            slots = plan.scheduler.maxSlotsPerWorker
        }
        var worker = Worker(
            workerID: hello.workerID, rewardModels: Set(served), slots: Int(slots), lastHeard: now, lastSent: now,
            joined: now,
            acceptsJSONCandidates: hello.acceptsJSONCandidates)
        if hello.rmCapacity > 0 {
            // Capacity-limited: placement decides what it loads; what it kept across a reconnect counts
            // as loaded just now (its residency starts again).
            worker.capacity = Int(min(hello.rmCapacity, UInt32(Self.maxOfferedRMs)))
            worker.memoryBudget = hello.memoryBudget
            worker.memory = hello.rmMemory.filter { served.contains($0.key) }
            worker.loaded = Set(hello.loaded).intersection(served)
            for rm in worker.loaded { worker.loadedAt[rm] = now }
        }
        workers[peer] = worker
        placement.dirty = true
        if worker.capacity > 0 { placement.dynamicWorkers += 1 }
        peerByWorkerID[hello.workerID] = peer
        summary.counters.workersRegistered += 1
        logLimited(
            .info, "joined", first: 100,
            "worker \(id) joined: \(slots) slots, RMs \(served.joined(separator: ", "))\(hello.rmCapacity > 0 ? " (capacity \(worker.capacity), loaded: \(plan.armNames.filter(worker.loaded.contains).joined(separator: ", ")))" : "")",
            &actions)
        actions.append(
            .send(
                to: peer,
                .welcome(
                    Welcome(
                        coordinatorID: plan.coordinatorID,
                        heartbeatIntervalMs: UInt32(clamping: plan.scheduler.heartbeatIntervalMs),
                        liveness: plan.scheduler.liveness,
                        rewardModels: plan.rewardModels.filter { served.contains($0.name) },
                        runSeed: plan.seed))))
    }

    /// Drops a worker and puts the tasks it held back in the queue. A worker that died or vanished
    /// uses up an attempt of each task it held (a task that kills workers must not loop forever).
    mutating func forget(
        _ peer: PeerID, reason: String, countsAsAttempt: Bool = true, now: Instant,
        _ actions: inout [CoordinatorAction]
    ) {
        guard let worker = workers.removeValue(forKey: peer) else { return }
        placement.dirty = true
        if worker.capacity > 0 { placement.dynamicWorkers -= 1 }
        if peerByWorkerID[worker.workerID] == peer { peerByWorkerID[worker.workerID] = nil }
        summary.counters.workersLost += 1
        logLimited(
            .warning, "removed", first: 100,
            "worker \(PeerText.printable(worker.workerID)) removed: \(reason); \(worker.inFlight.count) task(s) go back to the queue",
            &actions)
        for id in worker.inFlight.sorted() {
            guard tasks[id] != nil else { continue }
            tasks[held: id].holders[peer] = nil
            if countsAsAttempt {
                tasks[held: id].charge(peer, workerID: worker.workerID)
            }
            let task = tasks[held: id]
            if task.holders.isEmpty && !task.queued {
                if countsAsAttempt {
                    retry(
                        id, error: "worker \(PeerText.printable(worker.workerID)) was lost (\(reason))",
                        culprits: [worker.workerID], &actions)
                } else {
                    requeue(id)
                }
            }
        }
    }

    /// A registered worker sent something that does not decode or validate: it is removed (its tasks go
    /// back to the queue, charged to it) and told to say Hello again, so no slot stays taken by a message
    /// that could not be matched to its task.
    mutating func dropMisbehaving(_ peer: PeerID, why: String, now: Instant, _ actions: inout [CoordinatorAction]) {
        guard workers[peer] != nil else { return }
        forget(peer, reason: why, countsAsAttempt: true, now: now, &actions)
        actions.append(.send(to: peer, .disconnect(reason: "\(why); say Hello again")))
    }

    mutating func handle(_ result: ScoreResult, from peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        let workerID = workers[held: peer].workerID
        let id = PeerText.printable(workerID)
        guard let task = tasks[result.taskID] else {
            if workers[held: peer].inFlight.remove(result.taskID) != nil {
                // It held the task, which another worker's result completed first.
                summary.counters.duplicateResults += 1
                actions.append(.log(.debug, "dropped late or duplicate result for task \(result.taskID) from \(id)"))
            } else {
                refuseForeign(result, from: id, "task \(result.taskID) is not out with this worker", &actions)
            }
            return
        }
        // A peer's result counts only for a task it holds, for the attempt it was given: a registered
        // peer that guesses another worker's task id changes nothing.
        guard let given = task.holders[peer] else {
            refuseForeign(result, from: id, "task \(result.taskID) is held by another worker", &actions)
            return
        }
        guard given == result.attempt else {
            refuseForeign(
                result, from: id, "task \(result.taskID) was given to it as attempt \(given), not \(result.attempt)",
                &actions)
            return
        }
        workers[held: peer].inFlight.remove(result.taskID)
        tasks[held: result.taskID].holders[peer] = nil
        switch result.outcome {
        case .failure(let message):
            logLimited(
                .warning, "rm-failed", first: 100,
                "RM \(task.rm) failed task \(task.id) on worker \(id) (attempt \(task.attempt)): \(PeerText.printable(message))",
                &actions)
            charge(task.id, to: peer, error: "worker \(id): \(PeerText.printable(message))", now: now, &actions)
        case .success(let perItem):
            if let problem = validate(perItem, for: task) {
                summary.counters.invalidResults += 1
                logLimited(
                    .error, "invalid-result",
                    "worker \(id) sent an invalid result for task \(task.id) (RM \(task.rm)): \(problem); the task is retried",
                    &actions)
                charge(task.id, to: peer, error: "worker \(id) sent an invalid result: \(problem)", now: now, &actions)
                return
            }
            workers[held: peer].failureStreak = 0
            noteScoringTime(task, elapsedMicros: result.elapsedMicros)
            provenWorkers[task.rm, default: []].insert(workerID)
            complete(tasks[held: result.taskID], scores: perItem, journaled: false, &actions)
        }
    }

    mutating func refuseForeign(
        _ result: ScoreResult, from id: String, _ why: String, _ actions: inout [CoordinatorAction]
    ) {
        summary.counters.foreignResults += 1
        logLimited(.warning, "foreign-result", "worker \(id) sent a result it may not send: \(why); dropped", &actions)
    }

    /// A failure (an RM error or an invalid result) charged to the worker that sent it: the task avoids
    /// that worker, and the worker is quarantined after `quarantineAfter` failures in a row.
    mutating func charge(
        _ taskID: UInt64, to peer: PeerID, error: String, now: Instant, _ actions: inout [CoordinatorAction]
    ) {
        guard let worker = workers[peer] else { return }
        if tasks[taskID] != nil {
            tasks[held: taskID].charge(peer, workerID: worker.workerID)
        }
        workers[held: peer].failureStreak += 1
        quarantineIfFailing(peer, now: now, &actions)
        retry(taskID, error: error, culprits: [worker.workerID], &actions)
    }

    /// Quarantines a worker that failed `quarantineAfter` tasks in a row, unless it is the last worker
    /// that serves one of its RMs (then the failures are evidence against the RM, and attempts decide).
    mutating func quarantineIfFailing(_ peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        let limit = plan.scheduler.quarantineAfter
        guard limit > 0, let w = workers[peer], w.quarantinedUntil == nil, w.failureStreak >= limit else { return }
        let others = workers.filter { $0.key != peer && $0.value.quarantinedUntil == nil }
        guard w.rewardModels.allSatisfy({ rm in others.values.contains { $0.rewardModels.contains(rm) } }) else {
            return
        }
        workers[held: peer].quarantinedUntil = now.adding(milliseconds: UInt64(plan.scheduler.quarantineSeconds * 1000))
        summary.counters.workersQuarantined += 1
        logLimited(
            .warning, "quarantined",
            "worker \(PeerText.printable(w.workerID)) failed \(w.failureStreak) tasks in a row; it gets no tasks for \(plan.scheduler.quarantineSeconds) s (network.quarantine_after, quarantine_seconds)",
            &actions)
    }

    func validate(_ perItem: [[Double]], for task: ScoreTaskState) -> String? {
        guard perItem.count == task.indices.count else {
            return "\(perItem.count) score lists for \(task.indices.count) prompts"
        }
        guard let batch = batches[task.batch] else { return "task \(task.id) belongs to no open batch" }
        for (offset, index) in task.indices.enumerated() {
            let p = batch.prompts[index - batch.range.lowerBound]
            let expected = p.candidates.count
            let got = perItem[offset]
            if got.count != expected {
                return "prompt \(p.id) has \(expected) candidates but \(got.count) scores"
            }
            if let bad = got.firstIndex(where: { !$0.isFinite }) {
                return "prompt \(p.id) candidate \(bad) scored \(got[bad]) (scores must be finite)"
            }
        }
        return nil
    }

    mutating func complete(
        _ task: ScoreTaskState, scores perItem: [[Double]], journaled: Bool, _ actions: inout [CoordinatorAction]
    ) {
        if !journaled {
            actions.append(
                .journal(
                    .scored(batch: task.batch, rm: task.rm, firstPrompt: task.indices[0], scores: perItem), sync: false)
            )
        }
        tasks[task.id] = nil
        if task.queued { queues[task.rm]?.removeAll { $0 == task.id } }
        guard let base = batches[task.batch]?.range.lowerBound else {
            preconditionFailure("task \(task.id) belongs to no open batch")
        }
        // In place: a copy of the batch taken out of `batches` and written back would copy its score
        // arrays on every result (copy-on-write, as the dictionary still holds the original).
        batches[held: task.batch].record(perItem, of: task.rm, at: task.indices, base: base)
        summary.recordRMCalls(
            rm: task.rm, prompts: batches[held: task.batch].prompts, offsets: task.indices.lazy.map { $0 - base })
        if task.batch == Self.probeBatch {
            if batches[held: task.batch].remainingTasks == 0 { finishProbe(&actions) }
            return
        }
        completeBatches(&actions)
    }

    /// Queues a task again at the front, with the same attempt number.
    mutating func requeue(_ id: UInt64) {
        tasks[held: id].queued = true
        tasks[held: id].deadline = nil
        queues[tasks[held: id].rm, default: []].insert(id, at: 0)
    }

    /// After a failure: queues the task again. While some connected, unquarantined worker that serves its
    /// RM has not failed it, it keeps its attempt (a failure is charged to the worker, not the task, so
    /// peers that fail everything cannot use up its attempts). Once every such worker has failed it, the
    /// failure is evidence against the RM, and the task takes attempt + 1, if it is credible: it comes from
    /// a worker that has scored this RM before, or no worker has, or every connected worker that has is
    /// among those that failed it. Otherwise (strangers failing while the proven workers are away) it waits
    /// for a proven worker. After `maxAttempts` the run fails with the RM's last error.
    mutating func retry(_ id: UInt64, error: String, culprits: [String] = [], _ actions: inout [CoordinatorAction]) {
        guard var task = tasks[id] else { return }
        task.lastError = error
        // Still out with another worker (a lease expired earlier): that one may yet answer.
        if !task.holders.isEmpty || task.queued {
            tasks[id] = task
            return
        }
        let untried = workers.values.contains {
            $0.quarantinedUntil == nil && $0.rewardModels.contains(task.rm) && !task.failedBy.contains($0.workerID)
        }
        let proven = provenWorkers[task.rm] ?? []
        let provenConnected = workers.values.filter {
            proven.contains($0.workerID) && $0.rewardModels.contains(task.rm)
        }
        let credible =
            proven.isEmpty || culprits.contains(where: proven.contains)
            || (!provenConnected.isEmpty && provenConnected.allSatisfy { task.failedBy.contains($0.workerID) })
        if untried || !credible {
            tasks[id] = task
            requeue(id)
            summary.counters.tasksRetried += 1
            return
        }
        task.failedBy = []
        task.attempt += 1
        if task.attempt > plan.scheduler.maxAttempts {
            tasks[id] = task
            let ids = task.indices.map { prompt($0, inBatch: task.batch).id }
            fail(
                .rmFailed,
                "reward model \(task.rm) could not score task \(id) (iteration \(iteration), prompts \(ids.first ?? "")...\(ids.last ?? "")) after \(plan.scheduler.maxAttempts) attempts; last error: \(error). Fix the RM or the worker and resume the run.",
                &actions)
            return
        }
        tasks[id] = task
        requeue(id)
        summary.counters.tasksRetried += 1
    }

    mutating func fail(_ code: CoreFailure.Code, _ message: String, _ actions: inout [CoordinatorAction]) {
        guard phase == .running else { return }
        life = .failed
        for peer in workers.keys.sorted() {
            actions.append(.send(to: peer, .shutdown(reason: "run failed: \(message)")))
        }
        if let t = trainer { actions.append(.send(to: t.peer, .shutdown(reason: "run failed: \(message)"))) }
        actions.append(.fail(CoreFailure(code, message)))
    }
}
