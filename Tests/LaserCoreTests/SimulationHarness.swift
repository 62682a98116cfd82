import StableRandom
import Foundation
import LaserWire
import Testing
@testable import LaserCore

struct SimulationDidNotFinish: Error {}

/// How a simulated worker misbehaves (the real workers are tested in IntegrationTests).
enum SimBehaviour: Equatable {
    case good
    /// Answers its first `n` tasks with NaN scores, then behaves.
    case nanFirst(Int)
    /// Answers every task with one score too few.
    case wrongCount
    /// Reports an RM error for every task.
    case failing
    /// Takes tasks and never answers them (but keeps heartbeating).
    case blackHole
    /// Answers every task twice.
    case duplicates
    /// Goes silent (dies) after answering `n` tasks.
    case diesAfter(Int)
    /// A hostile peer: fails or garbles every task it gets, and on every message it receives also sends
    /// results for task ids it guesses (held by others), undecodable bytes, Hellos claiming another
    /// worker's id, and losses it was never asked for.
    case rogue
}

/// A seeded, single-threaded simulation of the coordinator core with fake workers and a fake clock.
struct Simulation {
    struct SimWorker {
        var peer: PeerID
        var id: String
        var slots: UInt32
        var behaviour: SimBehaviour
        var rms: [String] = []
        var labels: [String] = []
        /// Its Hello says it reads candidates as JSON-escaped bytes.
        var json = false
        var answered = 0
        var dead = false
        var outstanding = 0
        var lastHeartbeat = Instant(nanoseconds: 0)
        /// Dynamic placement: 0 static; M > 0 holds at most M RMs, moved by LoadRM.
        var capacity: UInt32 = 0
        var loaded: Set<String> = []
        /// Loads of these RMs fail; the worker dies on receiving its `diesOnLoad`-th LoadRM (mid-load).
        var failLoads: Set<String> = []
        var diesOnLoad: Int?
        /// Optional memory budget (0: none) and RM weights, sent in its Hello and kept by its loads.
        var memoryBudget = 0.0
        var rmMemory: [String: Double] = [:]
        var loadsSeen = 0
    }

    /// Worker -> coordinator messages that take time (a load), delivered once `now` reaches their time.
    var later: [(due: Instant, peer: PeerID, message: WireMessage)] = []
    /// Score tasks that reached a capacity-limited worker for an RM it had not loaded (must stay 0).
    var tasksForUnloadedRMs = 0
    /// Loads a worker refused because they would exceed its memory budget (the coordinator must not ask).
    var overBudgetLoads = 0

    func hello(_ i: Int) -> WireMessage {
        .hello(
            Hello(
                workerID: workers[i].id, rewardModels: workers[i].rms, slots: workers[i].slots,
                softwareVersion: "sim", labels: workers[i].labels, acceptsJSONCandidates: workers[i].json,
                rmCapacity: workers[i].capacity, loaded: workers[i].loaded.sorted(),
                memoryBudget: workers[i].memoryBudget, rmMemory: workers[i].rmMemory))
    }

    var core: Coordinator
    let plan: RunPlan
    var now = Instant(nanoseconds: 1_000_000_000)
    /// The journal as written; `durable` records survive a crash for sure, later ones maybe.
    var journal: [JournalRecord] = []
    var durable = 0
    /// Batch files by (iteration, batch): what a trainer would find on disk.
    var files: [[Int]: [PreferencePair]] = [:]
    /// The latest emitted version of every batch, by (iteration, batch).
    var latest: [[Int]: EmittedBatch] = [:]
    /// A batch file about to be written with other content than it already has (must never happen).
    var conflicts = 0
    var failureCode: CoreFailure.Code?
    /// The core's log lines, in order.
    var logs: [String] = []
    /// The structured fields of each log line (same order as `logs`).
    var logFields: [LogFields] = []
    /// As the shell does on a resume: batches the core says need no candidate texts get them empty.
    var blankSettledTexts = true
    /// PreferenceBatches that reached the trainer with an empty text (must stay 0).
    var blankTextsSent = 0
    /// Batches whose identical file was already on disk after a crash (the shell skips those).
    var reEmitted = 0
    var crashes = 0
    /// Chance per step that the coordinator crashes (and is resumed from its journal).
    var crashRate: UInt64 = 0
    var maxCrashes = 0
    /// A simulated trainer (reward.source: trainer-loss): answers each batch with a stand-in loss.
    var trainerPeer: PeerID?
    var trainerWindow: UInt32 = 1
    /// Losses the trainer reported, by global batch, as often as it reported them.
    var lossesSent: [Int: Int] = [:]
    var lossesAccepted = 0
    /// The probe the trainer was sent (probe-progress), and how often one came.
    var probeSeen: ProbeSet?
    var probeSetsReceived = 0
    var rng: SplitMix64
    var workers: [SimWorker]
    var iterations: [[PromptRecord]]
    /// Messages on their way to workers, delivered in a seeded random order.
    var toWorkers: [(PeerID, WireMessage)] = []
    var emitted: [EmittedBatch] = []
    var finished: RunSummary?
    var failure: String?
    var sentToPeers: [(PeerID, WireMessage)] = []
    /// Score tasks sent with candidates as JSON bytes (true) or as text (false); and how many went in a
    /// form the receiving worker's Hello did not ask for.
    var tasksByCandidateForm: [Bool: Int] = [:]
    var wrongCandidateForm = 0
    var maxOutstandingSeen: [String: Int] = [:]

    init(plan: RunPlan, iterations: [[PromptRecord]], workers: [(String, UInt32, SimBehaviour)], seed: UInt64) {
        core = Coordinator(plan: plan)
        self.plan = plan
        rng = SplitMix64(seed: seed)
        self.iterations = iterations
        self.workers = workers.enumerated().map { i, w in
            SimWorker(peer: PeerID([0, UInt8(i)]), id: w.0, slots: w.1, behaviour: w.2)
        }
    }

    /// Deterministic scores: a function of RM name, prompt and candidate text only.
    static func score(rm: String, item: ScoreItem) -> [Double] {
        item.candidates.enumerated().map { i, text in
            let h = FNV1a.hash(rm + "|" + item.promptID + "|" + text)
            return Double(h % 1000) / 1000 + (rm.hasPrefix("oracle") && text.hasPrefix("right") ? 10 : 0)
        }
    }

    mutating func feed(_ event: CoordinatorEvent) {
        for action in core.handle(event, now: now) {
            switch action {
            case .send(let peer, let message):
                sentToPeers.append((peer, message))
                toWorkers.append((peer, message))
            case .loadIteration(let n):
                feed(.iterationOpened(iteration: n, prompts: iterations[n - 1].count, digest: "input-\(n)"))
            case .readPrompts(let n, let range):
                var prompts = Array(iterations[n - 1][range])
                if blankSettledTexts && !core.textsNeeded(forBatch: core.nextBatchIndex) {
                    prompts = prompts.map { p in
                        var p = p
                        p.candidates = p.candidates.map { Candidate(text: "", correct: $0.correct) }
                        return p
                    }
                }
                feed(.promptsRead(iteration: n, first: range.lowerBound, prompts: prompts))
            case .readProbePrompts(let n, let count):
                feed(.probePromptsRead(iteration: n, prompts: Array(iterations[n - 1].prefix(count))))
            case .emitBatch(let b):
                emitted.append(b)
                let key = [b.iteration, b.batch]
                if let old = latest[key], old.choices != b.choices { conflicts += 1 }
                latest[key] = b
                if let existing = files[key] {
                    // The shell leaves an identical file alone (no second emission); a different one is a bug.
                    if existing != b.pairs { conflicts += 1 } else { reEmitted += 1 }
                }
                files[key] = b.pairs
            case .journal(let record, let sync):
                journal.append(record)
                if sync { durable = journal.count }
            case .log(_, let text, let fields):
                logs.append(text)
                logFields.append(fields)
            case .finish(let s): finished = s
            case .fail(let f):
                failure = f.message
                failureCode = f.code
            }
        }
    }

    mutating func run(maxSteps: Int = 200_000) {
        feed(.start)
        for i in workers.indices { feed(.message(from: workers[i].peer, hello(i))) }
        if let t = trainerPeer {
            feed(
                .message(
                    from: t,
                    .trainerHello(TrainerHello(trainerID: "sim-trainer", window: trainerWindow, softwareVersion: "sim"))
                ))
        }
        var steps = 0
        while finished == nil && failure == nil && steps < maxSteps {
            steps += 1
            if crashRate > 0 && crashes < maxCrashes && rng.next() % crashRate == 0 {
                crashAndResume()
                continue
            }
            now = now.adding(milliseconds: rng.next() % 20)
            while let next = later.indices.first(where: { later[$0].due <= now }) {
                let (_, peer, message) = later.remove(at: next)
                if let i = workers.firstIndex(where: { $0.peer == peer }), !workers[i].dead {
                    feed(.message(from: peer, message))
                }
            }
            if !toWorkers.isEmpty && rng.next() % 8 != 0 {
                var pick = Int(rng.next() % UInt64(toWorkers.count))
                // One connection delivers in order (ZeroMQ keeps a pipe's order): the trainer gets its
                // messages as sent (the ProbeSet before any batch). Workers' messages are mixed freely.
                if toWorkers[pick].0 == trainerPeer { pick = toWorkers.firstIndex { $0.0 == trainerPeer }! }
                let (peer, message) = toWorkers.remove(at: pick)
                deliver(message, to: peer)
            } else {
                feed(.tick)
                if let t = trainerPeer { feed(.message(from: t, .heartbeat)) }
            }
            // Live workers heartbeat about every 50 ms (the interval is 100 ms), on their own clock: a
            // flood of messages to others does not silence them.
            for i in workers.indices where !workers[i].dead && now.milliseconds(since: workers[i].lastHeartbeat) >= 50 {
                workers[i].lastHeartbeat = now
                feed(.message(from: workers[i].peer, .heartbeat))
            }
        }
    }

    /// The coordinator dies: messages in flight are lost, and so is any journal suffix that was not
    /// yet synced (a random part of it). A new coordinator replays what survived.
    mutating func crashAndResume() {
        crashes += 1
        var kept = durable + Int(rng.next() % UInt64(journal.count - durable + 1))
        // Sometimes the crash falls between a batch file's rename and its journal record.
        if kept > 0, case .emitted = journal[kept - 1], rng.next() % 2 == 0 { kept -= 1 }
        journal = Array(journal.prefix(kept))
        durable = kept
        toWorkers.removeAll()
        for i in workers.indices { workers[i].outstanding = 0 }
        emitted.removeAll()
        core = Coordinator(plan: plan, journal: journal)
        feed(.start)
    }

    /// The stand-in loss: a deterministic function of the batch's pairs (the mean logistic loss on the
    /// score margins), so runs with the same decisions get the same rewards.
    static func standInLoss(_ b: PreferenceBatch) -> Double {
        b.pairs.reduce(0.0) { $0 + log1p(exp(-($1.chosenScore - $1.rejectedScore))) } / Double(max(1, b.pairs.count))
    }

    /// probe-progress's losses on the probe before and after a batch's step: deterministic in the probe
    /// and the batch (the share of the batch's pairs whose prompt is one of the probe's counts for more).
    static func probeLosses(_ b: PreferenceBatch, probe: ProbeSet?) -> (before: Double, after: Double) {
        let pairs = probe?.pairs ?? []
        let before =
            pairs.reduce(0.0) { $0 + log1p(exp(-($1.chosenScore - $1.rejectedScore))) } / Double(max(1, pairs.count))
        let probeIDs = Set(pairs.map(\.promptID))
        let overlap = Double(b.pairs.filter { probeIDs.contains($0.promptID) }.count) / Double(max(1, b.pairs.count))
        return (before, before * (0.9 - 0.2 * overlap))
    }

    /// prediction-gain's loss after the step: a deterministic share of the loss, different per batch.
    static func lossAfter(_ b: PreferenceBatch, _ loss: Double) -> Double {
        loss * (0.5 + 0.4 * Double(SplitMix64.mix(0x1055, b.globalBatch) % 1000) / 1000)
    }

    mutating func deliver(_ message: WireMessage, to peer: PeerID) {
        if peer == trainerPeer {
            switch message {
            case .disconnect:
                feed(
                    .message(
                        from: peer,
                        .trainerHello(
                            TrainerHello(trainerID: "sim-trainer", window: trainerWindow, softwareVersion: "sim"))))
            case .preferenceBatch(let b):
                if b.pairs.contains(where: { $0.chosen.isEmpty || $0.rejected.isEmpty }) { blankTextsSent += 1 }
                lossesSent[Int(b.globalBatch), default: 0] += 1
                let loss = Self.standInLoss(b)
                let probe = plan.rewardSource == .probeProgress ? Self.probeLosses(b, probe: probeSeen) : nil
                feed(
                    .message(
                        from: peer,
                        .batchFeedback(
                            BatchFeedback(
                                globalBatch: b.globalBatch, loss: loss,
                                lossAfter: plan.rewardSource == .predictionGain ? Self.lossAfter(b, loss) : nil,
                                probeLosses: probe))))
            case .probeSet(let set):
                probeSeen = set
                probeSetsReceived += 1
            case .feedbackAck(let a):
                if a.accepted { lossesAccepted += 1 }
            default: break
            }
            return
        }
        guard let i = workers.firstIndex(where: { $0.peer == peer }), !workers[i].dead else { return }
        if workers[i].behaviour == .rogue { forge(from: i) }
        // A real worker says Hello again when the coordinator no longer knows it (Disconnect), or after
        // `retry` ms when it was refused for now (its id looks taken).
        var helloAgain = false
        if case .disconnect = message { helloAgain = true }
        if case .reject(_, let retry) = message, retry > 0 { helloAgain = true }
        if helloAgain {
            feed(.message(from: peer, hello(i)))
            return
        }
        if case .loadRM(let request) = message {
            load(request, worker: i)
            return
        }
        guard case .scoreTask(let task) = message else { return }
        if workers[i].capacity > 0 && !workers[i].loaded.contains(task.rewardModel) {
            tasksForUnloadedRMs += 1
            feed(
                .message(
                    from: peer,
                    .scoreResult(
                        ScoreResult(
                            taskID: task.taskID, attempt: task.attempt, outcome: .failure("RM not loaded"),
                            elapsedMicros: 5))))
            return
        }
        tasksByCandidateForm[task.candidatesAsJSON, default: 0] += 1
        if task.candidatesAsJSON != workers[i].json { wrongCandidateForm += 1 }
        workers[i].outstanding += 1
        maxOutstandingSeen[workers[i].id] = max(maxOutstandingSeen[workers[i].id] ?? 0, workers[i].outstanding)
        var scores = task.items.map { Self.score(rm: task.rewardModel, item: $0) }
        var outcome = ScoreResult.Outcome.success(scores)
        var times = 1
        switch workers[i].behaviour {
        case .good: break
        case .nanFirst(let n):
            if workers[i].answered < n { scores[0][0] = .nan; outcome = .success(scores) }
        case .wrongCount:
            scores[0].removeLast(); outcome = .success(scores)
        case .failing:
            outcome = .failure("CUDA out of memory (simulated)")
        case .blackHole:
            return
        case .duplicates:
            times = 2
        case .diesAfter(let n):
            if workers[i].answered >= n { workers[i].dead = true; return }
        case .rogue:
            // (A well-formed wrong answer to a task it holds is within its power: no coordinator can tell.
            // What it must not do is anything beyond that.)
            switch rng.next() % 4 {
            case 0: outcome = .failure("rogue says no")
            case 1: scores[0].append(1); outcome = .success(scores)
            case 2: return  // keeps it (until its lease runs out)
            default: scores[0][0] = .infinity; outcome = .success(scores)
            }
        }
        workers[i].answered += 1
        workers[i].outstanding -= 1
        for _ in 0..<times {
            feed(
                .message(
                    from: peer,
                    .scoreResult(
                        ScoreResult(taskID: task.taskID, attempt: task.attempt, outcome: outcome, elapsedMicros: 5))))
        }
    }

    /// A capacity-limited worker's LoadRM: unload at once, load over 50-300 ms of simulated time (loads in
    /// `failLoads` fail), then RMState; or it dies here when this is its `diesOnLoad`-th LoadRM.
    mutating func load(_ request: LoadRM, worker i: Int) {
        workers[i].loadsSeen += 1
        if workers[i].diesOnLoad == workers[i].loadsSeen {
            workers[i].dead = true
            return
        }
        workers[i].loaded.subtract(request.unload)
        var loads: [RMState.Load] = []
        for rm in request.load where !workers[i].loaded.contains(rm) {
            let used = workers[i].loaded.reduce(0.0) { $0 + (workers[i].rmMemory[$1] ?? 0) }
            let overBudget = workers[i].memoryBudget > 0 && used + (workers[i].rmMemory[rm] ?? 0) > workers[i].memoryBudget
            if workers[i].failLoads.contains(rm) || workers[i].loaded.count >= Int(workers[i].capacity) || overBudget {
                overBudgetLoads += overBudget ? 1 : 0
                loads.append(RMState.Load(name: rm, loadMs: 0, error: "simulated load failure"))
            } else {
                workers[i].loaded.insert(rm)
                loads.append(RMState.Load(name: rm, loadMs: 120))
            }
        }
        let state = RMState(requestID: request.requestID, loaded: workers[i].loaded.sorted(), loads: loads)
        later.append((now.adding(milliseconds: 50 + rng.next() % 250), workers[i].peer, .rmState(state)))
    }

    /// What a rogue sends besides its answers: results for task ids it guesses (this incarnation's ids
    /// are (epoch << 32) | n), attempts it guesses, undecodable bytes, a Hello claiming another worker's
    /// id, and losses. None of it may change the output.
    mutating func forge(from i: Int) {
        let peer = workers[i].peer
        for _ in 0..<Int(rng.next() % 4) {
            let epoch = UInt64(crashes)
            let id = epoch << 32 | (1 + rng.next() % 300)
            let attempt = UInt32(1 + rng.next() % 3)
            let width = 2 + Int(rng.next() % 4)
            let outcome: ScoreResult.Outcome =
                rng.next() % 3 == 0
                ? .failure("forged failure")
                : .success((0..<3).map { _ in (0..<width).map { _ in Double(rng.next() % 1000) / 100 } })
            feed(
                .message(
                    from: peer,
                    .scoreResult(ScoreResult(taskID: id, attempt: attempt, outcome: outcome, elapsedMicros: 1))))
        }
        switch rng.next() % 8 {
        case 0: feed(.undecodable(from: peer, reason: "forged garbage"))
        case 1:
            if let victim = workers.first(where: { $0.behaviour != .rogue }) {
                feed(
                    .message(
                        from: PeerID(peer.bytes + [0xEE]),
                        .hello(Hello(workerID: victim.id, rewardModels: [], slots: 9, softwareVersion: "rogue"))))
            }
        case 2: feed(.message(from: peer, .batchFeedback(BatchFeedback(globalBatch: rng.next() % 20, loss: -1e308))))
        case 3:
            feed(
                .message(
                    from: peer,
                    .trainerHello(TrainerHello(trainerID: "rogue-trainer", window: 1000, softwareVersion: "rogue"))))
        default: break
        }
    }

    /// The summary of a finished run; fails the test (without dumping the whole simulation) otherwise.
    func requireSummary(sourceLocation: SourceLocation = #_sourceLocation) throws -> RunSummary {
        guard let finished else {
            Issue.record(
                "run did not finish: \(failure ?? "no failure either (step limit)")", sourceLocation: sourceLocation)
            throw SimulationDidNotFinish()
        }
        return finished
    }

    var finishedArms: [ArmSummary]? { finished?.arms }

    var emittedByKey: [EmittedBatch] { latest.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { latest[$0]! } }

    /// The batch files in a comparable form.
    var output: [[PreferencePair]] { files.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { files[$0]! } }
}

enum Fixtures {
    static let rms = ["noise-a", "oracle", "noise-b"].map { RewardModelDefinition(name: $0, kind: "sim", params: [:]) }

    /// Two task families with distinct vocabularies; "right..." candidates are correct.
    static func iterations(_ count: Int, prompts: Int, seed: UInt64) -> [[PromptRecord]] {
        let f = HashingFeaturizer(dimension: 16)
        var rng = SplitMix64(seed: seed)
        return (1...count).map { it in
            (0..<prompts).map { p in
                let family = (p / 4) % 2 == 0 ? "math" : "poetry"
                let text =
                    family == "math"
                    ? "compute the sum of \(rng.next() % 100) apples"
                    : "write a haiku about \(rng.next() % 100) autumn leaves"
                let n = 2 + Int(rng.next() % 4)
                let candidates = (0..<n).map { c in
                    let right = rng.next() % 3 == 0
                    return Candidate(text: "\(right ? "right" : "wrong") answer \(c) to \(p)", correct: right)
                }
                return PromptRecord(
                    id: "it\(it)-p\(p)", prompt: text, candidates: candidates, task: family, context: f.features(text))
            }
        }
    }

    static func plan(
        strategy: StrategyKind = .linucb, iterations: Int = 2, depth: Int = 1, maxAttempts: UInt32 = 3,
        leaseMs: UInt64 = 60_000
    ) -> RunPlan {
        RunPlan(
            seed: 3, iterations: iterations, batchSize: 8, shardSize: 3, pipelineDepth: depth, strategy: strategy,
            alpha: 1, rewardModels: rms, contextDimension: 16,
            scheduler: SchedulerSettings(
                heartbeatIntervalMs: 100, liveness: 5, leaseMs: leaseMs, maxAttempts: maxAttempts))
    }
}

extension Coordinator {
    /// Handles `event` and answers the core's `.readPrompts` from `input` (one array per iteration), as
    /// the shell does from the input files; returns every other action.
    mutating func handle(_ event: CoordinatorEvent, input: [[PromptRecord]], now: Instant) -> [CoordinatorAction] {
        var out: [CoordinatorAction] = []
        var queue = [event]
        while !queue.isEmpty {
            for action in handle(queue.removeFirst(), now: now) {
                if case .readPrompts(let n, let range) = action {
                    queue.append(
                        .promptsRead(iteration: n, first: range.lowerBound, prompts: Array(input[n - 1][range])))
                } else {
                    out.append(action)
                }
            }
        }
        return out
    }
}
