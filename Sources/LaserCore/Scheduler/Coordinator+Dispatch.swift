import LaserWire

/// Credit-based dispatch of score tasks, and the periodic tick (heartbeats, liveness, leases).
extension Coordinator {

    mutating func dispatch(now: Instant, _ actions: inout [CoordinatorAction]) {
        for rm in plan.armNames {
            // A task that no free worker may take (its only candidates hold it or failed it) is stepped
            // over, so it does not hold up the tasks behind it; at most `maxSkipped`, to bound the work.
            var position = 0, skipped = 0
            let maxSkipped = 64
            while let queue = queues[rm], position < queue.count, skipped < maxSkipped,
                workers.values.contains(where: {
                    $0.free > 0 && $0.quarantinedUntil == nil && $0.ready(rm)
                })
            {
                let id = queue[position]
                // A worker that has not failed this task, then the most free slots, then the lowest
                // worker id (for reproducible logs).
                let avoid = tasks[held: id].avoid
                // Wait for another worker rather than hand a task back to one that failed it, unless
                // no other worker serves this RM at all.
                let holders = tasks[held: id].holders
                let alternativeExists = workers.contains {
                    !avoid.contains($0.key) && $0.value.ready(rm) && $0.value.quarantinedUntil == nil
                        && holders[$0.key] == nil
                }
                var best: PeerID?
                let failedBy = tasks[held: id].failedBy
                func better(_ p: PeerID, than q: PeerID) -> Bool {
                    let a = workers[held: p], b = workers[held: q]
                    // First a worker that has not failed it in this round of attempts, then one that has
                    // never failed it (on this connection), then the most free slots.
                    let (fa, fb) = (!failedBy.contains(a.workerID), !failedBy.contains(b.workerID))
                    if fa != fb { return fa }
                    let (pa, pb) = (!avoid.contains(p), !avoid.contains(q))
                    if pa != pb { return pa }
                    if a.free != b.free { return a.free > b.free }
                    return a.workerID < b.workerID
                }
                // Never to a worker that still holds it (an expired lease), nor to a quarantined one.
                for (peer, w) in workers
                where w.free > 0 && w.ready(rm) && w.quarantinedUntil == nil
                    && holders[peer] == nil && !(alternativeExists && avoid.contains(peer))
                {
                    if best == nil || better(peer, than: best!) { best = peer }
                }
                guard let peer = best else {
                    position += 1
                    skipped += 1
                    continue
                }
                queues[held: rm].remove(at: position)
                // In place (a copy written back would copy `holders` on insert).
                tasks[held: id].queued = false
                tasks[held: id].holders[peer] = tasks[held: id].attempt
                tasks[held: id].deadline = now.adding(milliseconds: plan.scheduler.leaseMs)
                let task = tasks[held: id]
                workers[held: peer].inFlight.insert(id)
                lastDispatch[rm] = now
                workers[held: peer].lastSent = now
                summary.counters.tasksDispatched += 1
                let batch = batches[held: task.batch]
                let items = task.indices.map { batch.prompts[$0 - batch.range.lowerBound] }.map {
                    ScoreItem(
                        promptID: $0.id, prompt: $0.prompt, candidateTexts: $0.candidates.map(\.json),
                        reference: $0.reference)
                }
                actions.append(
                    .send(
                        to: peer,
                        .scoreTask(
                            ScoreTask(
                                taskID: id, attempt: task.attempt, rewardModel: rm, iteration: UInt32(iteration),
                                items: items,
                                candidatesAsJSON: workers[held: peer].acceptsJSONCandidates))))
            }
        }
    }

    mutating func tick(now: Instant, _ actions: inout [CoordinatorAction]) {
        guard phase == .running else { return }
        let interval = plan.scheduler.heartbeatIntervalMs
        let deadAfter = interval * UInt64(plan.scheduler.liveness)
        for peer in workers.keys.sorted() {
            let w = workers[held: peer]
            if now.milliseconds(since: w.lastHeard) > Double(deadAfter) {
                forget(peer, reason: "silent for more than \(deadAfter) ms", now: now, &actions)
                actions.append(.send(to: peer, .disconnect(reason: "no heartbeat for \(deadAfter) ms")))
                continue
            } else if now.milliseconds(since: w.lastSent) >= Double(interval) {
                workers[held: peer].lastSent = now
                actions.append(.send(to: peer, .heartbeat))
            }
            if let until = w.quarantinedUntil, until <= now {
                workers[held: peer].quarantinedUntil = nil
                workers[held: peer].failureStreak = 0
                actions.append(.log(.info, "worker \(PeerText.printable(w.workerID)) is out of quarantine"))
            }
        }
        for id in tasks.keys.sorted() {
            guard let task = tasks[id], !task.queued, let deadline = task.deadline, deadline < now else { continue }
            actions.append(
                .log(
                    .warning,
                    "task \(id) (RM \(task.rm)) got no result within its \(plan.scheduler.leaseMs) ms lease; queued again"
                ))
            tasks[held: id].deadline = nil
            // Its holders keep the credit until they answer or die; a late answer is still accepted if first.
            var t = tasks[held: id]
            let holders = t.holders
            // A lease that ran out is charged to its holders like a failure (see `retry`).
            for peer in holders.keys { t.charge(peer, workerID: workers[peer]?.workerID) }
            t.holders = [:]
            tasks[id] = t
            retry(
                id, error: "no result within the lease", culprits: holders.keys.compactMap { workers[$0]?.workerID },
                &actions)
            if tasks[id] != nil { tasks[held: id].holders = holders }
            if phase != .running { return }
        }
        placementTick(now: now, &actions)
        reportIdleWorkers(now: now, &actions)
        for rm in plan.armNames where !(queues[rm] ?? []).isEmpty {
            // Served: a static worker that hosts it, or a capacity-limited one that holds it or may still
            // load it (not one whose load of it failed).
            let served = workers.values.contains {
                $0.capacity == 0
                    ? $0.rewardModels.contains(rm)
                    : $0.ready(rm) || $0.rewardModels.contains(rm) && !$0.cannotLoad.contains(rm)
            }
            // Not in the first seconds of a run: workers need a moment to connect.
            let settled = startedAt.map { now.milliseconds(since: $0) > 10_000 } ?? true
            if !served, settled, starvationWarned[rm].map({ now.milliseconds(since: $0) > 10_000 }) ?? true {
                starvationWarned[rm] = now
                let failedLoads = workers.values.filter { $0.cannotLoad.contains(rm) }.map(\.workerID).sorted()
                actions.append(
                    .log(
                        .warning,
                        failedLoads.isEmpty
                            ? "\(queues[held: rm].count) task(s) for RM \(rm) are waiting: no connected worker serves it. Start a worker with --rm \(rm) (or without --rm)."
                            : "\(queues[held: rm].count) task(s) for RM \(rm) are waiting: no connected worker serves it, and its load failed on \(failedLoads.prefix(5).map { PeerText.printable($0) }.joined(separator: ", "))\(failedLoads.count > 5 ? " and \(failedLoads.count - 5) more" : "") (see their logs). Fix the RM's definition on those workers, or start a worker that can load it."
                    ))
            }
        }
    }

    /// When the bandit concentrates on some RMs, workers that host only the others sit idle. Report
    /// each such worker once per window (log and counter), so the operator can restart it with busy RMs.
    mutating func reportIdleWorkers(now: Instant, _ actions: inout [CoordinatorAction]) {
        let window = plan.placement.idleReportSeconds * 1000
        guard window > 0 else { return }
        let busy = plan.armNames.filter { rm in lastDispatch[rm].map { now.milliseconds(since: $0) <= window } ?? false
        }
        guard !busy.isEmpty else { return }
        for peer in workers.keys.sorted() {
            let w = workers[held: peer]
            // Capacity-limited workers are moved by placement, not reported.
            guard w.capacity == 0, now.milliseconds(since: w.joined) > window, w.inFlight.isEmpty,
                w.rewardModels.isDisjoint(with: busy),
                w.reportedIdle.map({ now.milliseconds(since: $0) > window }) ?? true
            else { continue }
            workers[held: peer].reportedIdle = now
            summary.counters.idleWorkerReports += 1
            actions.append(
                .log(
                    .warning,
                    "worker \(w.workerID) hosts only RMs that got no task in the last \(Int(plan.placement.idleReportSeconds)) s (\(w.rewardModels.sorted().joined(separator: ", "))) while \(busy.joined(separator: ", ")) are busy; restart it with --rm \(busy[0]) (or change placement) to put it to work"
                ))
        }
    }
}

extension Coordinator {
    /// Logs `text` if the limiter lets this kind through (the first `first`, then every 10,000th), with
    /// the limiter's note once it starts to apply. The caller builds the text either way: these are
    /// joins, removals and refusals, rare next to the messages that carry work.
    mutating func logLimited(
        _ level: LogLevel, _ kind: String, first: Int = 10, _ text: String, _ actions: inout [CoordinatorAction]
    ) {
        guard logLimiter.allow(kind, first: first) else { return }
        actions.append(.log(level, text + logLimiter.suffix(kind)))
    }
}

/// Floods of one kind of peer-driven message are counted in full but logged sparingly: the first ten of a
/// kind (or `first`), then every 10,000th. Kinds are fixed strings, so the table stays small.
struct LogLimiter: Sendable {
    private var counts: [String: Int] = [:]
    private var firsts: [String: Int] = [:]

    mutating func allow(_ kind: String, first: Int = 10) -> Bool {
        let n = counts[kind, default: 0] + 1
        counts[kind] = n
        firsts[kind] = first
        return n <= first || n % 10_000 == 0
    }

    /// What to add to a line that `allow` let through: a note once the limit starts to apply.
    func suffix(_ kind: String) -> String {
        let n = counts[kind, default: 0], first = firsts[kind, default: 10]
        if n == first { return " (further messages of this kind: one in 10,000)" }
        if n > first { return " (\(n) so far)" }
        return ""
    }
}
