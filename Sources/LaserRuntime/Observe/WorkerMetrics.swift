import Foundation
import LaserWire
import Prometheus

/// A worker's own Prometheus metrics (`laser worker --metrics-port`): what its RMs cost and how busy
/// it is, seen from the worker (the coordinator's metrics add the round trip). Updated on the
/// worker's socket thread; the registry is thread-safe for the HTTP thread.
public final class WorkerMetrics: @unchecked Sendable {  // used from the worker's socket thread only; the metrics registry is thread-safe for scrapes
    public let registry = PrometheusCollectorRegistry()
    private let slots: Int
    private var outstanding: [UInt64: (rm: String, candidates: Int)] = [:]

    public init(workerID: String, slots: Int) {
        self.slots = slots
        gauge(
            "worker_info", "Constant 1, labelled with the worker's id and laser version.",
            [("worker", workerID), ("version", laserVersion)]
        ).set(1.0)
        gauge("worker_slots", "Score tasks the worker accepts at once.").set(Double(slots))
        gauge("worker_busy_slots", "Score tasks being scored now.").set(0.0)
        gauge("worker_registered", "1 while registered with a coordinator.").set(0.0)
    }

    private func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "laser", metricName: name, unitName: unit, helpText: help)
    }

    @discardableResult
    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name, "", help), labels: labels)
    }

    func taskStarted(_ task: ScoreTask) {
        outstanding[task.taskID] = (task.rewardModel, task.items.reduce(0) { $0 + $1.candidateCount })
        gauge("worker_busy_slots", "Score tasks being scored now.").set(Double(min(outstanding.count, slots)))
    }

    func taskFinished(_ result: ScoreResult) {
        guard let (rm, candidates) = outstanding.removeValue(forKey: result.taskID) else { return }
        gauge("worker_busy_slots", "Score tasks being scored now.").set(Double(min(outstanding.count, slots)))
        let labels = [("rm", rm)]
        registry.makeValueHistogram(
            descriptor: descriptor("worker_rm_call", "seconds", "Time the RM took per score task, on this worker."),
            labels: labels, buckets: LaserMetrics.latencyBuckets
        )
        .record(Double(result.elapsedMicros) / 1e6)
        switch result.outcome {
        case .success:
            registry.makeCounter(
                descriptor: descriptor("worker_tasks_scored", "total", "Score tasks this worker completed, per RM."),
                labels: labels
            ).increment()
            registry.makeCounter(
                descriptor: descriptor("worker_candidates_scored", "total", "Candidates this worker scored, per RM."),
                labels: labels
            ).increment(by: Int64(candidates))
        case .failure:
            registry.makeCounter(
                descriptor: descriptor(
                    "worker_task_failures", "total", "Score tasks whose RM failed on this worker, per RM."),
                labels: labels
            ).increment()
        }
    }

    func registered(_ on: Bool) {
        gauge("worker_registered", "1 while registered with a coordinator.").set(on ? 1.0 : 0.0)
        if !on { outstanding.removeAll() }
    }

    public func render() -> [UInt8] { registry.emitToBuffer() }
}
