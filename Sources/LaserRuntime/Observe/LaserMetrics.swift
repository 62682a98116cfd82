import Foundation
import LaserCore
import LaserWire
import Prometheus

/// The coordinator's Prometheus metrics (every name: docs/user-guide.md#metrics). Updated only on the
/// coordinator's thread, from the core's events and a once-a-second status snapshot; the registry is
/// thread-safe, so the HTTP thread can render it at any time.
public final class LaserMetrics: @unchecked Sendable {  // swift-prometheus metrics are thread-safe; updated from the coordinator thread only
    public let registry = PrometheusCollectorRegistry()

    /// Latency buckets (seconds) for RM calls: sub-millisecond rule-based RMs up to minutes for a big judge.
    static let latencyBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
    ]
    static let journalBuckets: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
    ]

    private var lastCounts: [String: Int] = [:]
    private var workerGauges: [String: [Gauge]] = [:]
    /// Per-worker histograms (rm_call), by worker id: unregistered with its gauges when it leaves, so
    /// worker churn does not grow /metrics.
    private var workerHistograms: [String: [ValueHistogram]] = [:]
    private var phaseGauges: [String: Gauge] = [:]

    public init(strategy: String, rewardModels: [String]) {
        gauge(
            "info", "Constant 1, labelled with the run's strategy and laser version.",
            [("strategy", strategy), ("version", laserVersion)]
        ).set(1.0)
        for phase in ["idle", "running", "finished", "failed"] {
            phaseGauges[phase] = gauge(
                "run_phase", "1 for the run's current phase, 0 for the others.", [("phase", phase)])
        }
        // Series that exist from the start, so a scrape before the first task already lists every RM.
        for (i, rm) in rewardModels.enumerated() {
            gauge("reward_model", "The run's RMs; the value is the RM's position (its bandit arm).", [("rm", rm)]).set(
                Double(i))
            _ = counter("task_failures", "Score results that were an RM error, per RM.", [("rm", rm)])
            _ = counter("candidates_scored", "Candidates scored (RM calls), per RM.", [("rm", rm)])
            _ = counter(
                "bandit_selections", "Decisions that chose the RM (batches, or prompts with instance-level selection).",
                [("rm", rm)])
            _ = counter("bandit_rewards", "Rewards the RM's arm received.", [("rm", rm)])
            gauge("tasks_queued", "Score tasks waiting for a worker, per RM.", [("rm", rm)]).set(0.0)
            gauge("tasks_in_flight", "Score tasks out with a worker, per RM.", [("rm", rm)]).set(0.0)
        }
        // Every counter exists at 0 from the start (docs/user-guide.md#metrics): a rate() over a scrape
        // before the first event works, and an alert on a counter that never moved can fire.
        _ = counter("batches_emitted", "Mini-batches emitted over the run.")
        _ = counter("tasks_dispatched", "Score tasks sent to workers (retries included).")
        _ = counter("tasks_retried", "Score tasks queued again after a failure, a lost worker or an expired lease.")
        _ = counter("invalid_results", "Score results rejected as invalid (wrong counts, non-finite scores).")
        _ = counter("duplicate_results", "Late or duplicate score results dropped.")
        _ = counter("malformed_messages", "Messages that did not decode.")
        _ = counter("unknown_peer_messages", "Messages from peers that never said Hello.")
        _ = counter("workers_registered", "Worker registrations.")
        _ = counter("workers_lost", "Workers removed (dead, silent, gone).")
        _ = counter("losses_accepted", "Trainer losses accepted.")
        _ = counter("losses_rejected", "Trainer losses refused.")
        _ = counter(
            "foreign_results", "Score results for a task the sender does not hold (or another attempt), dropped.")
        _ = counter("workers_quarantined", "Times a worker was quarantined for failing tasks in a row.")
        _ = counter(
            "hellos_refused",
            "Hellos and TrainerHellos refused (bad ids, unknown RMs, a live holder, a key without the role).")
    }

    func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "laser", metricName: name, unitName: unit, helpText: help)
    }

    func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name, "", help), labels: labels)
    }

    func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
        registry.makeCounter(descriptor: descriptor(name, "total", help), labels: labels)
    }

    func histogram(_ name: String, _ help: String, _ labels: [(String, String)], buckets: [Double]) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: descriptor(name, "seconds", help), labels: labels, buckets: buckets)
    }

    /// Counters fed from cumulative values of the core: increment by what is new since the last call.
    private func advance(_ name: String, _ help: String, _ labels: [(String, String)] = [], to value: Int) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta = value - (lastCounts[key] ?? 0)
        lastCounts[key] = value
        if delta > 0 { counter(name, help, labels).increment(by: Int64(delta)) }
    }

    /// A score result arrived for a task dispatched to `worker`: RM time as the worker measured it
    /// (ScoreResult.elapsed_us) and the round trip as the coordinator saw it.
    func recordResult(rm: String, worker: String, elapsedMicros: UInt32, roundTripSeconds: Double, failed: Bool) {
        let h = histogram(
            "rm_call", "RM time per score task as the worker measured it (ScoreResult.elapsed_us), per RM and worker.",
            [("rm", rm), ("worker", worker)], buckets: Self.latencyBuckets)
        h.record(Double(elapsedMicros) / 1e6)
        if !(workerHistograms[worker]?.contains { $0 === h } ?? false) {
            workerHistograms[worker, default: []].append(h)
        }
        histogram(
            "task_round_trip", "From dispatch to result at the coordinator, per RM.", [("rm", rm)],
            buckets: Self.latencyBuckets
        )
        .record(roundTripSeconds)
        if failed { counter("task_failures", "Score results that were an RM error, per RM.", [("rm", rm)]).increment() }
    }

    func recordJournalWrite(seconds: Double, sync: Bool) {
        histogram(
            "journal_write", "Time to append one journal record (sync: with fsync).",
            [("sync", sync ? "true" : "false")],
            buckets: Self.journalBuckets
        ).record(seconds)
    }

    /// The once-a-second view of the core.
    func update(_ s: CoordinatorStatus, candidatesPerSecond: Double) {
        for (phase, g) in phaseGauges { g.set(phase == s.phase.rawValue ? 1.0 : 0.0) }
        gauge("iteration", "The iteration being worked on (1-based).").set(Double(s.iteration))
        gauge("iterations", "Iterations of the run.").set(Double(s.iterations))
        gauge("prompts_in_iteration", "Prompts of the current iteration.").set(Double(s.promptsInIteration))
        gauge("prompts_scored_in_iteration", "Prompts of the current iteration whose scores are all in.").set(
            Double(s.promptsScoredInIteration))
        gauge("batches_in_iteration", "Mini-batches of the current iteration.").set(Double(s.batchesInIteration))
        gauge("batches_emitted_in_iteration", "Mini-batches of the current iteration emitted.").set(
            Double(s.batchesEmittedInIteration))
        advance("batches_emitted", "Mini-batches emitted over the run.", to: s.batchesEmitted)
        gauge("candidates_per_second", "Candidates scored per second over the last 10 s.").set(candidatesPerSecond)
        for (rm, n) in s.candidatesScored {
            advance("candidates_scored", "Candidates scored (RM calls), per RM.", [("rm", rm)], to: n)
        }
        for (rm, n) in s.tasksQueued {
            gauge("tasks_queued", "Score tasks waiting for a worker, per RM.", [("rm", rm)]).set(Double(n))
        }
        for (rm, n) in s.tasksInFlight {
            gauge("tasks_in_flight", "Score tasks out with a worker, per RM.", [("rm", rm)]).set(Double(n))
        }
        let c = s.counters
        advance("tasks_dispatched", "Score tasks sent to workers (retries included).", to: c.tasksDispatched)
        advance(
            "tasks_retried", "Score tasks queued again after a failure, a lost worker or an expired lease.",
            to: c.tasksRetried)
        advance(
            "invalid_results", "Score results rejected as invalid (wrong counts, non-finite scores).",
            to: c.invalidResults)
        advance("duplicate_results", "Late or duplicate score results dropped.", to: c.duplicateResults)
        advance("malformed_messages", "Messages that did not decode.", to: c.malformedMessages)
        advance("unknown_peer_messages", "Messages from peers that never said Hello.", to: c.unknownPeerMessages)
        advance("workers_registered", "Worker registrations.", to: c.workersRegistered)
        advance("workers_lost", "Workers removed (dead, silent, gone).", to: c.workersLost)
        advance("losses_accepted", "Trainer losses accepted.", to: c.lossesAccepted)
        advance("losses_rejected", "Trainer losses refused.", to: c.lossesRejected)
        advance(
            "foreign_results", "Score results for a task the sender does not hold (or another attempt), dropped.",
            to: c.foreignResults)
        advance(
            "workers_quarantined", "Times a worker was quarantined for failing tasks in a row.",
            to: c.workersQuarantined)
        advance(
            "hellos_refused",
            "Hellos and TrainerHellos refused (bad ids, unknown RMs, a live holder, a key without the role).",
            to: c.hellosRefused)
        gauge("feedback_awaiting_batches", "Emitted batches waiting for the trainer's loss (feedback lag).").set(
            Double(s.batchesAwaitingLoss))
        gauge("trainer_connected", "1 while a trainer is connected.").set(s.trainer == nil ? 0.0 : 1.0)

        // Workers: slots and load; series of workers that left are removed.
        gauge("workers", "Connected workers.").set(Double(s.workers.count))
        gauge("slots", "Slots (concurrent tasks) of all connected workers.").set(Double(s.totalSlots))
        gauge("slots_busy", "Slots holding a task.").set(Double(s.busySlots))
        gauge("slot_utilisation", "Busy slots / slots (0 without workers).").set(
            s.totalSlots > 0 ? Double(s.busySlots) / Double(s.totalSlots) : 0)
        let present = Set(s.workers.map(\.workerID))
        for (id, gauges) in workerGauges where !present.contains(id) {
            for g in gauges { registry.unregisterGauge(g) }
            workerGauges[id] = nil
        }
        for (id, histograms) in workerHistograms where !present.contains(id) {
            for h in histograms { registry.unregisterValueHistogram(h) }
            workerHistograms[id] = nil
        }
        for w in s.workers {
            let l = [("worker", w.workerID)]
            var gauges = [
                gauge("worker_slots", "Slots the worker declared.", l),
                gauge("worker_tasks_in_flight", "Tasks the worker holds.", l),
                gauge("worker_utilisation", "Tasks held / slots.", l),
                gauge("worker_last_heard_seconds", "Seconds since the coordinator heard from the worker.", l),
            ]
            gauges[0].set(Double(w.slots))
            gauges[1].set(Double(w.inFlight))
            gauges[2].set(w.utilisation)
            gauges[3].set(w.secondsSinceHeard)
            for rm in w.rewardModels {
                let g = gauge("worker_rm", "1 for each RM the worker hosts.", [("worker", w.workerID), ("rm", rm)])
                g.set(1.0)
                gauges.append(g)
            }
            workerGauges[w.workerID] = gauges
        }

        // The bandit.
        for arm in s.arms {
            let l = [("rm", arm.name)]
            advance(
                "bandit_selections", "Decisions that chose the RM (batches, or prompts with instance-level selection).",
                l, to: arm.selections)
            advance("bandit_rewards", "Rewards the RM's arm received.", l, to: arm.rewards)
            if let m = arm.meanRawReward {
                gauge("bandit_mean_reward", "Mean raw reward of the arm (before normalisation).", l).set(m)
            }
            if let u = arm.upperConfidenceBound {
                gauge("bandit_ucb", "LinUCB's upper confidence bound for the last decision's context.", l).set(u)
            }
            if let p = arm.probability {
                gauge("bandit_probability", "Exp3's current probability of the arm.", l).set(p)
            }
        }
    }

    /// The Prometheus text exposition of everything.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}
