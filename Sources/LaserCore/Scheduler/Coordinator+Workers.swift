import LaserWire

/// Registration, results and retries: how the coordinator deals with its workers.
extension Coordinator {

    mutating func receive(_ message: WireMessage, from peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
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
        default:
            if trainer?.peer == peer {
                trainer!.lastHeard = now
                if message != .heartbeat {
                    summary.counters.malformedMessages += 1
                    actions.append(.log(.warning, "trainer \(trainer!.trainerID) sent \(message.kind), which a trainer does not send; ignored"))
                }
                return
            }
        }
        guard workers[peer] != nil else {
            // After a coordinator restart workers are unknown: tell them to say Hello again.
            summary.counters.unknownPeerMessages += 1
            actions.append(.send(to: peer, .disconnect(reason: "unknown peer: send Hello first")))
            return
        }
        workers[peer]!.lastHeard = now
        workers[peer]!.answered = true
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

    mutating func register(_ hello: Hello, peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
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
        if let old = peerByWorkerID[hello.workerID], old != peer, let holder = workers[old] {
            // The id is held by a connection that is still talking: two workers share an id. Refuse the
            // newcomer for now (it retries); if the holder is a dead predecessor, it falls silent and
            // the id frees up. Swapping them would bounce every task between the two.
            let window = plan.scheduler.heartbeatIntervalMs * 2
            if holder.answered && now.milliseconds(since: holder.lastHeard) <= Double(window) {
                summary.counters.duplicateWorkerIDs += 1
                let retry = plan.scheduler.heartbeatIntervalMs * UInt64(plan.scheduler.liveness)
                if Self.worthLogging(summary.counters.duplicateWorkerIDs) {
                    actions.append(.log(.warning, "a second worker says it is '\(hello.workerID)' while that worker is connected and alive; refused for now (give each worker a unique --id)"))
                }
                actions.append(.send(to: peer, .reject(reason: "worker id '\(hello.workerID)' is in use by a live connection; give each worker a unique --id (retrying in \(retry) ms)", retryAfterMs: UInt32(clamping: retry))))
                return
            }
            forget(old, reason: "it re-registered from a new connection", countsAsAttempt: false, now: now, &actions)
        }
        let served = plan.placement.rewardModels(for: hello, all: plan.armNames)
        guard !served.isEmpty else {
            let problem = "worker '\(hello.workerID)' would serve no RM: its placement lists none of this run's RMs (\(plan.armNames.joined(separator: ", ")))"
            actions.append(.log(.warning, "rejected \(peer): \(problem)"))
            actions.append(.send(to: peer, .reject(reason: problem)))
            return
        }
        workers[peer] = Worker(workerID: hello.workerID, rewardModels: Set(served), slots: Int(hello.slots), lastHeard: now, lastSent: now, joined: now,
                               acceptsJSONCandidates: hello.acceptsJSONCandidates)
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
    mutating func forget(_ peer: PeerID, reason: String, countsAsAttempt: Bool = true, now: Instant,
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

    mutating func handle(_ result: ScoreResult, from peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
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

    mutating func complete(_ task: ScoreTaskState, scores perItem: [[Double]], journaled: Bool, _ actions: inout [CoordinatorAction]) {
        if !journaled {
            actions.append(.journal(.scored(batch: task.batch, rm: task.rm, firstPrompt: task.indices[0], scores: perItem), sync: false))
        }
        tasks[task.id] = nil
        if task.queued { queues[task.rm]?.removeAll { $0 == task.id } }
        guard let base = batches[task.batch]?.range.lowerBound else { preconditionFailure("task \(task.id) belongs to no open batch") }
        // In place: a copy of the batch taken out of `batches` and written back would copy its score
        // arrays on every result (copy-on-write, as the dictionary still holds the original).
        batches[task.batch]!.record(perItem, of: task.rm, at: task.indices, base: base)
        summary.recordRMCalls(rm: task.rm, prompts: batches[task.batch]!.prompts, offsets: task.indices.lazy.map { $0 - base })
        completeBatches(&actions)
    }

    /// Queues a task again at the front, with the same attempt number.
    mutating func requeue(_ id: UInt64) {
        tasks[id]!.queued = true
        tasks[id]!.deadline = nil
        queues[tasks[id]!.rm, default: []].insert(id, at: 0)
    }

    /// Queues a task again with attempt + 1, or fails the run once its attempts are used up.
    mutating func retry(_ id: UInt64, error: String, _ actions: inout [CoordinatorAction]) {
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
            let ids = task.indices.map { prompt($0, inBatch: task.batch).id }
            fail("reward model \(task.rm) could not score task \(id) (iteration \(iteration), prompts \(ids.first ?? "")...\(ids.last ?? "")) after \(plan.scheduler.maxAttempts) attempts; last error: \(error). Fix the RM or the worker and resume the run.", &actions)
            return
        }
        tasks[id] = task
        requeue(id)
        summary.counters.tasksRetried += 1
    }

    mutating func fail(_ message: String, _ actions: inout [CoordinatorAction]) {
        guard phase == .running else { return }
        phase = .failed
        for peer in workers.keys.sorted() { actions.append(.send(to: peer, .shutdown(reason: "run failed: \(message)"))) }
        if let t = trainer { actions.append(.send(to: t.peer, .shutdown(reason: "run failed: \(message)"))) }
        actions.append(.fail(message))
    }
}
