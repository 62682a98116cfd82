import Foundation
import LaserCore
import Logging

/// Carries out the coordinator's file output on a thread of its own, in the order the core asked for
/// it: batch files (temp, fsync, rename, fsync dir) and every journal record. The core's ordering rule
/// holds because there is one queue: a batch's `emitted` record follows its file, so it is appended
/// only once the file is durable. The coordinator's main thread then never waits for a disk (batch
/// files and journal syncs were a fifth of its time). After the first failure (a full disk) nothing
/// more is written, as before: no record may claim a batch whose file did not make it.
final class OutputWriter: @unchecked Sendable {
    enum Job {
        case batch(EmittedBatch)
        case journal(JournalRecord, sync: Bool)
    }

    private let runDirectory: RunDirectory
    private let journal: JournalFile
    private let logger: Logger
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var busy = false
    private var stopped = false
    private var failure: Error?
    /// (seconds, sync) of each journal append since the last `takeJournalTimings`.
    private var timings: [(Double, Bool)] = []
    /// Jobs queued before `submit` waits for the thread (a disk slower than the run).
    static let maxQueued = 256

    init(runDirectory: RunDirectory, journal: JournalFile, logger: Logger) {
        self.runDirectory = runDirectory
        self.journal = journal
        self.logger = logger
        let thread = Thread { [self] in
            nameThisThread("laser-output")
            run()
        }
        thread.name = "laser-output"
        thread.start()
    }

    /// Queues a job (waits while `maxQueued` are queued). False once a job failed: see `error`.
    @discardableResult
    func submit(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count - head >= Self.maxQueued && failure == nil { condition.wait() }
        guard failure == nil else { return false }
        queue.append(job)
        condition.broadcast()
        return true
    }

    /// The first failure, if any.
    var error: Error? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// Waits until every queued job is carried out (or one failed); returns the failure, if any.
    func flush() -> Error? {
        condition.lock()
        defer { condition.unlock() }
        while (head < queue.count || busy) && failure == nil { condition.wait() }
        return failure
    }

    /// Ends the thread once the queue is empty.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    func takeJournalTimings() -> [(seconds: Double, sync: Bool)] {
        condition.lock()
        defer { condition.unlock() }
        let t = timings
        timings.removeAll(keepingCapacity: true)
        return t.map { (seconds: $0.0, sync: $0.1) }
    }

    private func run() {
        while true {
            condition.lock()
            while head == queue.count && !stopped { condition.wait() }
            if head == queue.count || failure != nil { condition.unlock(); return }
            let job = queue[head]
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            busy = true
            condition.broadcast()
            condition.unlock()
            var timing: (Double, Bool)?
            var caught: Error?
            do {
                switch job {
                case .batch(let batch):
                    if try !runDirectory.write(batch) {
                        logger.info("batch \(batch.iteration)/\(batch.batch) was already written before the restart; kept as is")
                    }
                case .journal(let record, let sync):
                    let started = DispatchTime.now().uptimeNanoseconds
                    try journal.append(record, sync: sync)
                    timing = (Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9, sync)
                }
            } catch {
                caught = error
            }
            condition.lock()
            busy = false
            if let timing { timings.append(timing) }
            if let caught, failure == nil { failure = caught }
            condition.broadcast()
            let failed = failure != nil
            condition.unlock()
            if failed { return }
        }
    }
}
