import LaserWire

/// Credit-based dispatch of score tasks, and the periodic tick (heartbeats, liveness, leases).
extension Coordinator {

    mutating func dispatch(now: Instant, _ actions: inout [CoordinatorAction]) {
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
                // In place (a copy written back would copy `holders` on insert).
                tasks[id]!.queued = false
                tasks[id]!.holders.insert(peer)
                tasks[id]!.deadline = now.adding(milliseconds: plan.scheduler.leaseMs)
                let task = tasks[id]!
                workers[peer]!.inFlight.insert(id)
                lastDispatch[rm] = now
                workers[peer]!.lastSent = now
                summary.counters.tasksDispatched += 1
                let batch = batches[task.batch]!
                let items = task.indices.map { batch.prompts[$0 - batch.range.lowerBound] }.map {
                    ScoreItem(promptID: $0.id, prompt: $0.prompt, candidateTexts: $0.candidates.map(\.json), reference: $0.reference)
                }
                actions.append(.send(to: peer, .scoreTask(ScoreTask(
                    taskID: id, attempt: task.attempt, rewardModel: rm, iteration: UInt32(iteration), items: items,
                    candidatesAsJSON: workers[peer]!.acceptsJSONCandidates))))
            }
        }
    }

    mutating func tick(now: Instant, _ actions: inout [CoordinatorAction]) {
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
        reportIdleWorkers(now: now, &actions)
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

    /// When the bandit concentrates on some RMs, workers that host only the others sit idle. Report
    /// each such worker once per window (log and counter), so the operator can restart it with busy RMs.
    mutating func reportIdleWorkers(now: Instant, _ actions: inout [CoordinatorAction]) {
        let window = plan.placement.idleReportSeconds * 1000
        guard window > 0 else { return }
        let busy = plan.armNames.filter { rm in lastDispatch[rm].map { now.milliseconds(since: $0) <= window } ?? false }
        guard !busy.isEmpty else { return }
        for peer in workers.keys.sorted() {
            let w = workers[peer]!
            guard now.milliseconds(since: w.joined) > window, w.inFlight.isEmpty,
                  w.rewardModels.isDisjoint(with: busy),
                  w.reportedIdle.map({ now.milliseconds(since: $0) > window }) ?? true else { continue }
            workers[peer]!.reportedIdle = now
            summary.counters.idleWorkerReports += 1
            actions.append(.log(.warning, "worker \(w.workerID) hosts only RMs that got no task in the last \(Int(plan.placement.idleReportSeconds)) s (\(w.rewardModels.sorted().joined(separator: ", "))) while \(busy.joined(separator: ", ")) are busy; restart it with --rm \(busy[0]) (or change placement) to put it to work"))
        }
    }
}
