import LaserWire

/// Dynamic placement (docs/placement.md): workers that hold at most `rm_capacity` RMs at once, and a
/// pure rule that decides which RM each of them loads. Placement changes when a task runs, never what is
/// emitted: tasks go only to a worker that has their RM loaded, and nothing else depends on where.

/// The config section `placement`'s dynamic part.
public struct DynamicPlacementSettings: Equatable, Sendable {
    /// An RM loaded on a worker stays at least this long before it may be unloaded; nil: three times its
    /// (measured or assumed) load time.
    public var minResidencySeconds: Double?
    /// How many recent selections count as "recent": the last replica of an RM picked among them is
    /// unloaded only for an RM that has no replica at all.
    public var recentSelections = 32
    /// An RM's load time before a worker has reported one (seconds).
    public var assumedLoadSeconds: Double = 30
    /// A LoadRM not answered within this long counts as failed.
    public var loadTimeoutSeconds: Double = 900

    public init(
        minResidencySeconds: Double? = nil, recentSelections: Int = 32, assumedLoadSeconds: Double = 30,
        loadTimeoutSeconds: Double = 900
    ) {
        self.minResidencySeconds = minResidencySeconds
        self.recentSelections = recentSelections
        self.assumedLoadSeconds = assumedLoadSeconds
        self.loadTimeoutSeconds = loadTimeoutSeconds
    }
}

/// What the planner sees: per RM its backlog and costs, per capacity-limited worker what it holds.
struct PlacementInput: Sendable {
    struct RM: Sendable {
        var name: String
        /// Candidates queued or out with workers.
        var backlogCandidates: Int
        /// Candidates it is expected to get from prompts not selected yet: its share of the recent
        /// selections times the candidates still to come (the bandit's recent choices predict its next).
        var expectedCandidates: Double = 0
        /// Seconds one slot takes per candidate (measured from results); nil: not measured yet.
        var secondsPerCandidate: Double?
        var loadSeconds: Double
        var minResidencySeconds: Double
        /// Picked within the last `recentSelections` selections.
        var recent: Bool
    }
    struct Worker: Sendable {
        var peer: PeerID
        var workerID: String
        var capacity: Int
        var slots: Int
        var loadable: Set<String>
        var loaded: Set<String>
        /// Seconds each loaded RM has been loaded.
        var residency: [String: Double]
        /// Optional memory budget (0: none) and the RMs' weights.
        var memoryBudget = 0.0
        var memory: [String: Double] = [:]
    }
    var rms: [RM]
    /// Slots of static workers (and of capacity-limited ones with a LoadRM out) per RM that serve it.
    var fixedSlots: [String: Int]
    /// Capacity-limited workers free to move (no LoadRM out, not quarantined), in worker-id order.
    var workers: [Worker]
}

/// One move: a worker unloads `unload` (if any) and loads `load`.
struct PlacementMove: Equatable, Sendable {
    var peer: PeerID
    var load: String
    var unload: String?
}

/// The placement rule, a pure function of its input (docs/placement.md#the-rule):
/// 1. an RM's drain time is its demand (backlog plus expected) x seconds per candidate / the slots
///    serving it (infinite for an RM with a backlog and no slot: it is cold);
/// 2. the RM with the longest drain time that pays for a load (no replica at all, or a drain time longer
///    than its load time) gets one more replica, on the worker where that costs least: a free capacity
///    spot, else the RM whose removal hurts least: idle and not picked recently; then idle but recent,
///    and then busy, where it keeps another replica and its drain time after the move plus the load
///    stays below the target's drain time (the last replica of a recent RM goes only to a cold RM);
/// 3. an RM stays at least its minimum residency; repeat while a move pays.
enum PlacementRule {
    /// How much longer the target's drain time must be than the source's after the move plus the load.
    static let margin = 1.5

    /// Whether `set` may be loaded at once on a worker: at most `capacity` RMs and, with a budget, their
    /// weights adding up to no more than it (an RM without a weight weighs 0).
    static func fits(_ set: Set<String>, capacity: Int, budget: Double, memory: [String: Double]) -> Bool {
        guard set.count <= capacity else { return false }
        guard budget > 0 else { return true }
        return set.reduce(0.0) { $0 + (memory[$1] ?? 0) } <= budget + 1e-9
    }

    static func plan(_ input: PlacementInput) -> [PlacementMove] {
        var service = input.fixedSlots
        for w in input.workers { for rm in w.loaded { service[rm, default: 0] += w.slots } }
        let byName = Dictionary(uniqueKeysWithValues: input.rms.map { ($0.name, $0) })
        func drain(_ rm: String, slots: Int) -> Double {
            guard let r = byName[rm] else { return 0 }
            let demand = Double(r.backlogCandidates) + r.expectedCandidates
            guard demand > 0 else { return 0 }
            if slots <= 0 && r.backlogCandidates > 0 { return .infinity }
            return demand * (r.secondsPerCandidate ?? 0) / Double(max(1, slots))
        }
        var free = input.workers
        var moves: [PlacementMove] = []
        var blocked: Set<String> = []
        while !free.isEmpty {
            // The neediest RM that a load pays for.
            let wanting = input.rms.enumerated().compactMap { (order, r) -> (Double, Int, PlacementInput.RM)? in
                guard !blocked.contains(r.name), r.backlogCandidates > 0 || r.expectedCandidates > 0 else {
                    return nil
                }
                let d = drain(r.name, slots: service[r.name, default: 0])
                guard d == .infinity || d > r.loadSeconds else { return nil }
                return (d, order, r)
            }.sorted { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
            guard let (need, _, target) = wanting.first else { break }
            let cold = need == .infinity
            // The cheapest worker for it: (class, drain left behind, worker id).
            var best: (rank: (Int, Double, String), index: Int, unload: String?)?
            for (i, w) in free.enumerated() where w.loadable.contains(target.name) && !w.loaded.contains(target.name) {
                var options: [((Int, Double, String), String?)] = []
                func fits(_ set: Set<String>) -> Bool {
                    PlacementRule.fits(set, capacity: w.capacity, budget: w.memoryBudget, memory: w.memory)
                }
                if fits(w.loaded.union([target.name])) { options.append(((0, 0, w.workerID), nil)) }
                for e in w.loaded.sorted() {
                    guard let r = byName[e], (w.residency[e] ?? 0) >= r.minResidencySeconds,
                        fits(w.loaded.subtracting([e]).union([target.name]))
                    else { continue }
                    let left = service[e, default: 0] - w.slots
                    let after = drain(e, slots: left)
                    // Taking a replica from an RM that is in use pays only by a clear margin (half again
                    // its drain time after the move plus the load): estimates of demand are noisy, and a
                    // move on noise is a reload later.
                    let pays = PlacementRule.margin * (after + target.loadSeconds) < need
                    if r.backlogCandidates == 0 && !r.recent {
                        options.append(((1, 0, w.workerID), e))
                    } else if r.backlogCandidates == 0 && (cold || (left > 0 && pays)) {
                        options.append(((2, after, w.workerID), e))
                    } else if r.backlogCandidates > 0, left > 0, pays {
                        options.append(((3, after, w.workerID), e))
                    }
                }
                for (rank, unload) in options where best == nil || rank < best!.rank {
                    best = (rank, i, unload)
                }
            }
            guard let choice = best else {
                blocked.insert(target.name)
                continue
            }
            let w = free.remove(at: choice.index)
            service[target.name, default: 0] += w.slots
            if let e = choice.unload { service[e, default: 0] -= w.slots }
            moves.append(PlacementMove(peer: w.peer, load: target.name, unload: choice.unload))
        }
        return moves
    }
}

/// The coordinator's placement bookkeeping (none of it is journaled: a restarted coordinator learns
/// what is loaded from the workers' Hellos and plans again).
struct PlacementState: Sendable {
    var nextRequestID: UInt64 = 1
    /// Longest load time reported per RM (seconds).
    var loadSeconds: [String: Double] = [:]
    /// Seconds per candidate per slot, per RM (moving average of results).
    var secondsPerCandidate: [String: Double] = [:]
    /// The RMs of each of the most recent selected batches, oldest first.
    var recent: [[String]] = []
    /// Candidates per prompt, on average over the batches selected so far.
    var candidatesPerPrompt: Double = 0
    var promptsSeen = 0
    /// RMs each worker (by id) has loaded at some point in this incarnation: a load of one again is a reload.
    var everLoaded: [String: Set<String>] = [:]
    /// The rule runs when something it reads changed in kind (a selection, a worker's loaded set, a
    /// worker joining or leaving) or `replanAfterMs` after its last run (backlogs drain continuously),
    /// not on every result: its cost grows with tasks and workers.
    var dirty = true
    var lastPlanned: Instant?
    /// Connected capacity-limited workers.
    var dynamicWorkers = 0
    static let replanAfterMs = 50.0
}

/// A LoadRM that is out with a worker (or waiting until the worker's tasks for `unload` are done).
struct PendingLoad: Sendable {
    var requestID: UInt64
    var load: [String]
    var unload: [String]
    /// When it was sent; nil while it waits for the worker's tasks of `unload` to finish.
    var sent: Instant?
}

extension Coordinator {
    /// Whether any connected worker is capacity-limited (only then does placement run). A count kept
    /// where workers join and leave, so static runs pay nothing per result.
    var hasDynamicWorkers: Bool { placement.dynamicWorkers > 0 }

    func loadSeconds(_ rm: String) -> Double {
        placement.loadSeconds[rm] ?? plan.placement.dynamic.assumedLoadSeconds
    }

    /// Plans moves for the free capacity-limited workers and sends the LoadRMs that can go now.
    mutating func place(now: Instant, _ actions: inout [CoordinatorAction]) {
        guard hasDynamicWorkers else { return }
        if placement.dirty
            || placement.lastPlanned.map({ now.milliseconds(since: $0) >= PlacementState.replanAfterMs }) ?? true
        {
            placement.dirty = false
            placement.lastPlanned = now
            plan(now: now)
        }
        sendPendingLoads(now: now, &actions)
    }

    /// Runs the rule and records its moves as pending LoadRMs.
    mutating func plan(now: Instant) {
        var backlog: [String: Int] = [:]
        for task in tasks.values {
            backlog[task.rm, default: 0] += candidateCount(of: task)
        }
        let recent = Set(placement.recent.joined())
        // Candidates still to come: the iteration's unselected prompts and, as an estimate, later
        // iterations of the same size.
        let selected =
            nextBatchInIteration < batchRanges.count ? batchRanges[nextBatchInIteration].lowerBound : promptCount
        let promptsLeft = max(0, promptCount - selected) + max(0, plan.iterations - iteration) * promptCount
        let candidatesLeft = Double(promptsLeft) * placement.candidatesPerPrompt
        let window = Double(max(1, placement.recent.count))
        // Before an RM's first result: the mean of the others' (one kind of GPU), or before any result a
        // nominal second per candidate, so that every load pays and workers spread by demand at once.
        let measured = placement.secondsPerCandidate.values
        let fallback = measured.isEmpty ? 1.0 : measured.reduce(0, +) / Double(measured.count)
        let rms = plan.armNames.map { name in
            PlacementInput.RM(
                name: name, backlogCandidates: backlog[name] ?? 0,
                expectedCandidates: candidatesLeft * Double(placement.recent.filter { $0.contains(name) }.count)
                    / window,
                secondsPerCandidate: placement.secondsPerCandidate[name] ?? fallback, loadSeconds: loadSeconds(name),
                minResidencySeconds: plan.placement.dynamic.minResidencySeconds ?? 3 * loadSeconds(name),
                recent: recent.contains(name))
        }
        var fixed: [String: Int] = [:]
        var movable: [PlacementInput.Worker] = []
        for peer in workers.keys.sorted(by: { workers[held: $0].workerID < workers[held: $1].workerID }) {
            let w = workers[held: peer]
            guard w.quarantinedUntil == nil else { continue }
            if w.capacity == 0 || w.pendingLoad != nil {
                for rm in w.capacity == 0 ? w.rewardModels : w.loaded.union(w.pendingLoad!.load) {
                    fixed[rm, default: 0] += w.slots
                }
                continue
            }
            movable.append(
                PlacementInput.Worker(
                    peer: peer, workerID: w.workerID, capacity: w.capacity, slots: w.slots,
                    loadable: w.rewardModels.subtracting(w.cannotLoad), loaded: w.loaded,
                    residency: w.loadedAt.mapValues { now.milliseconds(since: $0) / 1000 },
                    memoryBudget: w.memoryBudget, memory: w.memory))
        }
        for move in PlacementRule.plan(PlacementInput(rms: rms, fixedSlots: fixed, workers: movable)) {
            let id = placement.nextRequestID
            placement.nextRequestID += 1
            workers[held: move.peer].pendingLoad = PendingLoad(
                requestID: id, load: [move.load], unload: move.unload.map { [$0] } ?? [], sent: nil)
        }
    }

    /// Sends what can go: a LoadRM waits until the worker has no task of an RM it unloads.
    mutating func sendPendingLoads(now: Instant, _ actions: inout [CoordinatorAction]) {
        for peer in workers.keys.sorted() {
            guard let pending = workers[held: peer].pendingLoad, pending.sent == nil else { continue }
            let busy = workers[held: peer].inFlight.contains {
                tasks[$0].map { pending.unload.contains($0.rm) } ?? false
            }
            if busy { continue }
            workers[held: peer].pendingLoad!.sent = now
            workers[held: peer].lastSent = now
            let w = workers[held: peer]
            actions.append(
                .log(
                    .info,
                    "placement: worker \(PeerText.printable(w.workerID)) loads \(pending.load.joined(separator: ", "))\(pending.unload.isEmpty ? "" : " (unloading \(pending.unload.joined(separator: ", ")))")",
                    ["rm": pending.load.joined(separator: ",")]))
            actions.append(
                .send(
                    to: peer, .loadRM(LoadRM(requestID: pending.requestID, load: pending.load, unload: pending.unload)))
            )
        }
    }

    func candidateCount(of task: ScoreTaskState) -> Int {
        guard let batch = batches[task.batch] else { return 0 }
        return task.indices.reduce(0) { $0 + batch.prompts[$1 - batch.range.lowerBound].candidates.count }
    }

    /// A worker's RMState: its loaded set is what it says (within what it may load and its capacity).
    mutating func receive(_ state: RMState, from peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        var w = workers[held: peer]
        let id = PeerText.printable(w.workerID)
        guard w.capacity > 0 else {
            summary.counters.malformedMessages += 1
            logLimited(
                .warning, "rmstate-static",
                "worker \(id) sent RMState but declared no rm_capacity (a static worker); ignored", &actions)
            return
        }
        let loaded = Set(state.loaded)
        guard loaded.isSubset(of: w.rewardModels), w.fits(loaded) else {
            dropMisbehaving(
                peer,
                why:
                    "its RMState lists \(loaded.count) loaded RM(s) (\(state.loaded.prefix(8).map { PeerText.printable($0) }.joined(separator: ", "))), beyond its capacity \(w.capacity)\(w.memoryBudget > 0 ? " or memory budget \(w.memoryBudget)" : "") or what it may load",
                now: now, &actions)
            return
        }
        let asked = w.pendingLoad.map { $0.requestID == state.requestID && $0.sent != nil } ?? false
        for load in state.loads where asked && w.pendingLoad!.load.contains(load.name) {
            if load.error.isEmpty && loaded.contains(load.name) {
                summary.counters.rmLoads += 1
                if placement.everLoaded[w.workerID, default: []].contains(load.name) { summary.counters.rmReloads += 1 }
                placement.everLoaded[w.workerID, default: []].insert(load.name)
                placement.loadSeconds[load.name] = max(
                    placement.loadSeconds[load.name] ?? 0, Double(load.loadMs) / 1000)
            } else {
                summary.counters.rmLoadFailures += 1
                w.cannotLoad.insert(load.name)
                actions.append(
                    .log(
                        .warning,
                        "worker \(id) could not load RM \(load.name): \(PeerText.printable(load.error.isEmpty ? "not loaded after the request" : load.error)); it is not asked to load it again on this connection",
                        ["rm": load.name]))
            }
        }
        summary.counters.rmUnloads += w.loaded.subtracting(loaded).count
        for rm in loaded.subtracting(w.loaded) { w.loadedAt[rm] = now }
        for rm in w.loaded.subtracting(loaded) { w.loadedAt[rm] = nil }
        w.loaded = loaded
        if asked { w.pendingLoad = nil }
        workers[peer] = w
        placement.dirty = true
    }

    /// LoadRMs that got no answer within `load_timeout_s` count as failed loads.
    mutating func placementTick(now: Instant, _ actions: inout [CoordinatorAction]) {
        let limit = plan.placement.dynamic.loadTimeoutSeconds * 1000
        for peer in workers.keys.sorted() {
            guard let pending = workers[held: peer].pendingLoad, let sent = pending.sent,
                now.milliseconds(since: sent) > limit
            else { continue }
            summary.counters.rmLoadFailures += pending.load.count
            workers[held: peer].cannotLoad.formUnion(pending.load)
            workers[held: peer].loaded.subtract(pending.unload)
            workers[held: peer].pendingLoad = nil
            placement.dirty = true
            actions.append(
                .log(
                    .warning,
                    "worker \(PeerText.printable(workers[held: peer].workerID)) did not answer its LoadRM (\(pending.load.joined(separator: ", "))) within \(Int(plan.placement.dynamic.loadTimeoutSeconds)) s (placement.load_timeout_s); counted as a failed load"
                ))
        }
    }

    /// A result's time per candidate feeds the RM's moving average (placement's drain estimate).
    mutating func noteScoringTime(_ task: ScoreTaskState, elapsedMicros: UInt32) {
        guard hasDynamicWorkers, elapsedMicros > 0 else { return }
        let n = candidateCount(of: task)
        guard n > 0 else { return }
        let x = Double(elapsedMicros) / 1e6 / Double(n)
        placement.secondsPerCandidate[task.rm] = placement.secondsPerCandidate[task.rm].map { 0.8 * $0 + 0.2 * x } ?? x
    }

    /// The RMs a batch was selected for join the recent-selection window; its prompts, the average.
    mutating func noteSelected(_ rms: [String], prompts: [PromptRecord]) {
        placement.recent.append(rms)
        placement.dirty = true
        let keep = max(0, plan.placement.dynamic.recentSelections)
        if placement.recent.count > keep { placement.recent.removeFirst(placement.recent.count - keep) }
        let n = prompts.count
        guard n > 0 else { return }
        let mean = Double(prompts.reduce(0) { $0 + $1.candidates.count }) / Double(n)
        let total = placement.promptsSeen + n
        placement.candidatesPerPrompt =
            (placement.candidatesPerPrompt * Double(placement.promptsSeen) + mean * Double(n)) / Double(total)
        placement.promptsSeen = total
    }
}
