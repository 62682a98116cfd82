import Foundation
import LaserCore

/// What a running coordinator looks like from outside: written as RUN_DIR/status.json once a second,
/// rebuilt by `laser status` from that file or from the /metrics endpoint, shown by the progress line.
public struct LiveStatus: Codable, Equatable, Sendable {
    /// Format version of status.json.
    public var format = 1
    /// Unix time of the snapshot.
    public var updatedAt: Double
    /// idle, running, finished, failed.
    public var phase: String
    public var strategy: String
    /// The coordinator's ZeroMQ endpoint and its metrics URL, when known.
    public var endpoint: String?
    public var metricsAddress: String?
    /// Seconds since this coordinator process started the run.
    public var elapsedSeconds: Double
    public var iteration: Int
    public var iterations: Int
    public var promptsInIteration: Int
    public var promptsScoredInIteration: Int
    public var batchesInIteration: Int
    public var batchesEmittedInIteration: Int
    public var batchesEmitted: Int
    /// Over the run, and per second over the last 10 s.
    public var candidatesScored: Int
    public var candidatesPerSecond: Double
    public var queue: [QueueEntry]
    public var workers: [Worker]
    public var arms: [Arm]
    public var batchesAwaitingLoss: Int
    public var trainer: String?
    public var tasksRetried: Int
    /// Results that were an RM error or invalid.
    public var tasksFailed: Int
    /// How the run ended when it did not finish (failed, interrupted, a bad input, a full disk), and the
    /// command that continues it; absent while it runs and after it finished.
    public var stopReason: String? = nil
    public var resumeCommand: String? = nil
    /// While an on-policy run waits for the next iteration's file: "iteration N input (PATH ...)".
    public var waitingForInput: String? = nil

    public struct QueueEntry: Codable, Equatable, Sendable {
        public var rm: String
        public var queued: Int
        public var inFlight: Int
        public var candidatesScored: Int
    }

    public struct Worker: Codable, Equatable, Sendable {
        public var id: String
        public var rewardModels: [String]
        public var slots: Int
        public var inFlight: Int
        public var secondsSinceHeard: Double
        /// Capacity-limited workers (docs/placement.md): the RMs loaded, and being loaded; absent for a
        /// static worker, which holds all of `reward_models`.
        public var loaded: [String]? = nil
        public var loading: [String]? = nil

        /// The RMs it can score now.
        public var ready: [String] { loaded ?? rewardModels }
    }

    public struct Arm: Codable, Equatable, Sendable {
        public var name: String
        public var selections: Int
        public var rewards: Int
        public var meanReward: Double?
        /// LinUCB's bound for the last decision's context.
        public var ucb: Double?
        /// Exp3's current probability.
        public var probability: Double?
    }

    public var totalSlots: Int { workers.reduce(0) { $0 + $1.slots } }
    public var busySlots: Int { workers.reduce(0) { $0 + min($1.slots, $1.inFlight) } }
    public var tasksQueued: Int { queue.reduce(0) { $0 + $1.queued } }
    public var tasksInFlight: Int { queue.reduce(0) { $0 + $1.inFlight } }
}

extension LiveStatus {
    public init(
        _ s: CoordinatorStatus, updatedAt: Double, elapsedSeconds: Double, candidatesPerSecond: Double,
        endpoint: String?, metricsAddress: String?, tasksFailed: Int
    ) {
        self.init(
            updatedAt: updatedAt, phase: s.phase.rawValue, strategy: s.strategy, endpoint: endpoint,
            metricsAddress: metricsAddress,
            elapsedSeconds: elapsedSeconds, iteration: s.iteration, iterations: s.iterations,
            promptsInIteration: s.promptsInIteration, promptsScoredInIteration: s.promptsScoredInIteration,
            batchesInIteration: s.batchesInIteration, batchesEmittedInIteration: s.batchesEmittedInIteration,
            batchesEmitted: s.batchesEmitted, candidatesScored: s.totalCandidatesScored,
            candidatesPerSecond: candidatesPerSecond,
            queue: s.candidatesScored.indices.map {
                QueueEntry(
                    rm: s.candidatesScored[$0].rm, queued: s.tasksQueued[$0].count, inFlight: s.tasksInFlight[$0].count,
                    candidatesScored: s.candidatesScored[$0].count)
            },
            workers: s.workers.map {
                Worker(
                    id: $0.workerID, rewardModels: $0.rewardModels, slots: $0.slots, inFlight: $0.inFlight,
                    secondsSinceHeard: ($0.secondsSinceHeard * 10).rounded() / 10, loaded: $0.loaded,
                    loading: $0.loading.isEmpty ? nil : $0.loading)
            },
            arms: s.arms.map {
                // A non-finite number has no JSON form: shown as absent rather than failing the whole file.
                Arm(
                    name: $0.name, selections: $0.selections, rewards: $0.rewards,
                    meanReward: $0.meanRawReward.flatMap(\.finite),
                    ucb: $0.upperConfidenceBound.flatMap(\.finite), probability: $0.probability.flatMap(\.finite))
            },
            batchesAwaitingLoss: s.batchesAwaitingLoss, trainer: s.trainer, tasksRetried: s.counters.tasksRetried,
            tasksFailed: tasksFailed)
    }

    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        return e
    }

    /// The status as JSON. Throws rather than return nothing, so status.json keeps its last content.
    public func json() throws -> [UInt8] { try Array(Self.encoder.encode(self)) + [0x0A] }

    /// Reads RUN_DIR/status.json, with a message that says what is wrong and what to do.
    public static func read(runDirectory: String) throws -> LiveStatus {
        let path = runDirectory + "/status.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            if !FileManager.default.fileExists(atPath: runDirectory + "/config.yaml") {
                throw StorageError(
                    "\(runDirectory) is not a laser run directory (no config.yaml); give the folder a run writes into, or the coordinator's metrics address (host:port)"
                )
            }
            throw StorageError(
                "\(path) does not exist: the run has not started yet, or was made by a laser version without live status. Try again in a second, or ask the coordinator's metrics endpoint (laser status host:port)"
            )
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(LiveStatus.self, from: data) } catch {
            throw StorageError(
                "\(path) is not a status file this laser version understands (\(error)); was it written by another version?"
            )
        }
    }
}

extension Double {
    /// The value when finite, else nil (JSON has no form for NaN or infinity).
    var finite: Double? { isFinite ? self : nil }
}
