import LaserSync
import Foundation
import LaserCore
import Logging

/// Carries out the coordinator's file output on a thread of its own, in the order the core asked for
/// it: batch files (temp, fsync, rename, fsync dir) and every journal record. The core's ordering rule
/// holds because there is one queue: a batch's `emitted` record follows its file, so it is appended
/// only once the file is durable. The coordinator's main thread then never waits for a disk (batch
/// files and journal syncs were a fifth of its time). After the first failure (a full disk) nothing
/// more is written, as before: no record may claim a batch whose file did not make it.
final class OutputWriter: @unchecked Sendable {  // the journal and run directory (not Sendable) are used by its thread only; the queue is Locked
    enum Job {
        case batch(EmittedBatch)
        case journal(JournalRecord, sync: Bool)

        /// A batch file, or a record that must be durable: the thread is woken for it at once. Other
        /// records (scores, selections) wait for the next such job, `wakeAfter` queued jobs, or the
        /// thread's next look (`maxDelay`): a wake-up per score record was most of the thread's
        /// context switches (27,655 in a 100,000-prompt run).
        var isUrgent: Bool {
            switch self {
            case .batch: return true
            case .journal(_, let sync): return sync
            }
        }
    }

    private let runDirectory: RunDirectory
    private let journal: JournalFile
    private let logger: Logger
    private struct Queue {
        var jobs: [Job] = []
        /// Jobs before `head` are taken by the thread.
        var head = 0
        var busy = false
        var stopped = false
        var failure: Error?
        /// (seconds, sync) of each journal write (one or more records) since the last `takeJournalTimings`.
        var timings: [(Double, Bool)] = []
        var queued: Int { jobs.count - head }
    }
    private let queue = Locked(Queue())
    /// Jobs queued before `submit` waits for the thread (a disk slower than the run).
    static let maxQueued = 256
    /// Queued jobs that wake the thread even when none is urgent.
    static let wakeAfter = 64
    /// The longest a queued record waits for the thread (it looks this often while idle).
    static let maxDelay: TimeInterval = 0.1

    init(runDirectory: RunDirectory, journal: JournalFile, logger: Logger) {
        self.runDirectory = runDirectory
        self.journal = journal
        self.logger = logger
        startThread(named: "laser-output") { [self] in run() }
    }

    /// Queues a job (waits while `maxQueued` are queued). False once a job failed: see `error`.
    @discardableResult
    func submit(_ job: Job) -> Bool {
        let max = Self.maxQueued
        let outcome = queue.wait(until: { $0.queued < max || $0.failure != nil }) { q -> (accepted: Bool, wake: Bool) in
            guard q.failure == nil else { return (false, false) }
            q.jobs.append(job)
            return (true, job.isUrgent || q.queued >= Self.wakeAfter)
        }
        // Only urgent work (or a long queue) wakes the thread; other records wait for its next look.
        if outcome?.wake == true { queue.notifyAll() }
        return outcome?.accepted ?? false
    }

    /// The first failure, if any.
    var error: Error? { queue.withLock { $0.failure } }

    /// Waits until every queued job is carried out (or one failed); returns the failure, if any.
    func flush() -> Error? {
        queue.notifyAll()  // the thread may be waiting out `maxDelay` with records queued
        return queue.wait(until: { ($0.queued == 0 && !$0.busy) || $0.failure != nil }) { $0.failure } ?? nil
    }

    /// Ends the thread once the queue is empty.
    func stop() { queue.update { $0.stopped = true } }

    func takeJournalTimings() -> [(seconds: Double, sync: Bool)] {
        queue.withLock { q in
            defer { q.timings.removeAll(keepingCapacity: true) }
            return q.timings.map { (seconds: $0.0, sync: $0.1) }
        }
    }

    /// Takes every queued job at once and carries them out in order. Journal records are framed into
    /// the journal's pending buffer and written together: before the next batch file (so a batch's
    /// selections and scores reach the file first, as they did one write at a time), at a record that
    /// must be durable (`sync`), and at the end of the group. A batch's `emitted` record is queued
    /// after the batch, so it is written only once the file is durable.
    private func run() {
        var group: [Job] = []
        while true {
            // Look at least every `maxDelay`: records that are not urgent do not wake this thread.
            var taken: Bool??
            repeat {
                taken = queue.wait(
                    until: { $0.queued > 0 || $0.stopped }, deadline: Date(timeIntervalSinceNow: Self.maxDelay),
                    notify: true
                ) { q -> Bool? in
                    if q.queued == 0 || q.failure != nil { return nil }
                    group.removeAll(keepingCapacity: true)
                    group.append(contentsOf: q.jobs[q.head...])
                    q.head = q.jobs.count
                    if q.head > 1024 && q.head * 2 > q.jobs.count {
                        q.jobs.removeFirst(q.head)
                        q.head = 0
                    }
                    q.busy = true
                    return true
                }
            } while taken == nil
            guard taken! != nil else { return }
            var written: [(Double, Bool)] = []
            var caught: Error?
            do {
                var started: UInt64?
                func writeJournal(sync: Bool) throws {
                    guard let t0 = started else { return }
                    try journal.writePending(sync: sync)
                    written.append((Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, sync))
                    started = nil
                }
                for job in group {
                    switch job {
                    case .batch(let batch):
                        try writeJournal(sync: false)
                        if try !runDirectory.write(batch) {
                            logger.info(
                                "batch \(batch.iteration)/\(batch.batch) was already written before the restart; kept as is"
                            )
                        }
                    case .journal(let record, let sync):
                        if started == nil { started = DispatchTime.now().uptimeNanoseconds }
                        try journal.enqueue(record)
                        if sync { try writeJournal(sync: true) }
                    }
                }
                try writeJournal(sync: false)
            } catch {
                caught = error
            }
            let failed = queue.update { q -> Bool in
                q.busy = false
                q.timings.append(contentsOf: written)
                if let caught, q.failure == nil { q.failure = caught }
                return q.failure != nil
            }
            if failed { return }
        }
    }
}
