import LaserSync
import Foundation
import LaserRewardModels
import LaserWire

/// The worker's scoring threads: one per slot, so a slow RM call (a GPU, a subprocess, an HTTP
/// server) never holds up the socket thread, which keeps heartbeats flowing.
///
/// The socket thread ``submit(_:model:served:)``s tasks; a scoring thread takes one, scores it with
/// `scoreBatch`, appends the result to a lock-protected list and writes a byte to a pipe that the
/// socket thread polls together with its DEALER socket. The socket thread then ``takeResults()``
/// and sends them. Only the socket thread touches the socket.
final class ScoringPool: Sendable {
    private struct Job {
        var task: ScoreTask
        var model: (any RewardModel)?
        var served: [String]
    }
    private struct State {
        var queue: [Job] = []
        var results: [ScoreResult] = []
        /// Jobs taken by a thread and not finished.
        var scoring = 0
        var stopped = false
        var finishedThreads = 0
    }

    let workerID: String
    /// Readable when results are waiting (poll it with the socket).
    let wakeFD: Int32
    private let wakeWriteFD: Int32
    private let state = Locked(State())
    private let threadCount: Int

    init(threads: Int, workerID: String) throws {
        self.workerID = workerID
        threadCount = max(1, threads)
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw RunFailure("cannot create the scoring pool's wake pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // subprocess RMs must not inherit it
        }
        wakeFD = fds[0]
        wakeWriteFD = fds[1]
        for i in 0..<threadCount {
            startThread(named: "scoring-\(i + 1)") { [self] in runThread() }
        }
    }

    /// Queues a task. `model` nil: the worker does not serve that RM (`served` says what it does).
    func submit(_ task: ScoreTask, model: (any RewardModel)?, served: [String]) {
        state.update { $0.queue.append(Job(task: task, model: model, served: served)) }
    }

    /// Finished results, oldest first; empties the wake pipe.
    func takeResults() -> [ScoreResult] {
        var sink = [UInt8](repeating: 0, count: 256)
        while sink.withUnsafeMutableBytes({ read(wakeFD, $0.baseAddress!, $0.count) }) > 0 {}
        return state.withLock { s in
            defer { s.results.removeAll() }
            return s.results
        }
    }

    /// Tasks queued or being scored.
    var inFlight: Int { state.withLock { $0.queue.count + $0.scoring } }

    /// Stops the threads: queued tasks are dropped, idle threads exit. Waits up to `timeout`
    /// seconds for threads busy in an RM call (close the RMs first so those calls return).
    func stop(timeout: Double) {
        state.update {
            $0.stopped = true
            $0.queue.removeAll()
        }
        let count = threadCount
        _ = state.wait(until: { $0.finishedThreads >= count }, deadline: Date().addingTimeInterval(timeout)) { _ in }
    }

    private func runThread() {
        while true {
            let taken = state.wait(until: { !$0.queue.isEmpty || $0.stopped }, notify: true) { s -> [Job]? in
                if s.stopped {
                    s.finishedThreads += 1
                    return nil
                }
                let jobs = Self.takeJobs(&s.queue)
                s.scoring += jobs.count
                return jobs
            }
            guard let jobs = taken ?? nil else { return }

            let scored = ScoringPool.score(jobs.map { ($0.task, $0.model, $0.served) }, workerID: workerID)

            state.withLock { s in
                s.scoring -= jobs.count
                if !s.stopped { s.results.append(contentsOf: scored) }
            }
            var byte: UInt8 = 1
            _ = write(wakeWriteFD, &byte, 1)  // EAGAIN: the pipe is full, the socket thread is awake anyway
        }
    }

    /// The oldest queued job, plus (for an RM with a `maxBatchCandidates`, such as an HTTP RM's
    /// `max_batch`) later queued jobs for the same RM while their candidates fit, oldest first, so a
    /// GPU server gets full batches. Called with the lock held and the queue not empty.
    private static func takeJobs(_ queue: inout [Job]) -> [Job] {
        let first = queue.removeFirst()
        guard let limit = first.model?.maxBatchCandidates else { return [first] }
        var jobs = [first]
        var candidates = first.task.items.reduce(0) { $0 + $1.candidateCount }
        var i = 0
        while i < queue.count && candidates < limit {
            let next = queue[i]
            let count = next.task.items.reduce(0) { $0 + $1.candidateCount }
            if next.task.rewardModel == first.task.rewardModel && next.model != nil && candidates + count <= limit {
                jobs.append(queue.remove(at: i))
                candidates += count
            } else {
                i += 1
            }
        }
        return jobs
    }

    /// Scores tasks for one RM with one `scoreBatch` call (all their items), one result per task;
    /// an RM error fails every task of the call.
    static func score(
        _ jobs: [(task: ScoreTask, model: (any RewardModel)?, served: [String])], workerID: String
    ) -> [ScoreResult] {
        guard jobs.count > 1, let model = jobs[0].model else {
            return jobs.map { score($0.task, model: $0.model, served: $0.served, workerID: workerID) }
        }
        var requests: [ScoringRequest] = []
        for job in jobs {
            for item in job.task.items {
                requests.append(
                    ScoringRequest(
                        promptID: item.promptID, prompt: item.prompt, candidates: item.candidates,
                        reference: item.reference, iteration: job.task.iteration))
            }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let outcome = Result { try model.scoreBatch(requests) }
        let us = UInt32(clamping: (DispatchTime.now().uptimeNanoseconds - start) / 1000)
        var offset = 0
        return jobs.map { job in
            let count = job.task.items.count
            defer { offset += count }
            let one: Result<[[Double]], Error> = outcome.flatMap { batch in
                guard batch.count == requests.count else {
                    return .failure(
                        RewardModelError(
                            "returned \(batch.count) score lists for \(requests.count) prompts of \(jobs.count) tasks"))
                }
                return .success(Array(batch[offset..<offset + count]))
            }
            return result(job.task, one, elapsedMicros: us)
        }
    }

    /// Scores a task with `scoreBatch` (all its items in one call); any RM error becomes a failure
    /// result, so the coordinator can retry it or fail loudly.
    static func score(_ task: ScoreTask, model: (any RewardModel)?, served: [String], workerID: String) -> ScoreResult {
        guard let model else {
            let failure = ScoreResult.Outcome.failure(
                "worker \(workerID) does not serve RM \(task.rewardModel) (it serves \(served.sorted().joined(separator: ", ")))"
            )
            return ScoreResult(taskID: task.taskID, attempt: task.attempt, outcome: failure, elapsedMicros: 0)
        }
        let requests = task.items.map { item in
            ScoringRequest(
                promptID: item.promptID, prompt: item.prompt, candidates: item.candidates,
                reference: item.reference, iteration: task.iteration)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let outcome = Result { try model.scoreBatch(requests) }
        return result(
            task, outcome, elapsedMicros: UInt32(clamping: (DispatchTime.now().uptimeNanoseconds - start) / 1000))
    }

    /// A task's result from its RM call's outcome: the scores when there is one finite score per
    /// candidate, else a failure naming the prompts.
    private static func result(
        _ task: ScoreTask, _ outcome: Result<[[Double]], Error>, elapsedMicros: UInt32
    ) -> ScoreResult {
        func result(_ outcome: ScoreResult.Outcome) -> ScoreResult {
            ScoreResult(taskID: task.taskID, attempt: task.attempt, outcome: outcome, elapsedMicros: elapsedMicros)
        }
        let batch: [[Double]]
        switch outcome {
        case .success(let scores): batch = scores
        case .failure(let error):
            let prompts = task.items.map(\.promptID)
            let which =
                prompts.count == 1
                ? "prompt \(prompts[0])"
                : "prompts \(prompts.prefix(5).joined(separator: ", "))\(prompts.count > 5 ? ", ..." : "")"
            return result(.failure("RM \(task.rewardModel) failed on \(which): \(error)"))
        }
        guard batch.count == task.items.count else {
            return result(
                .failure("RM \(task.rewardModel) returned \(batch.count) score lists for \(task.items.count) prompts"))
        }
        for (scores, item) in zip(batch, task.items) {
            guard scores.count == item.candidateCount, scores.allSatisfy(\.isFinite) else {
                return result(
                    .failure(
                        "RM \(task.rewardModel) returned \(scores.count) scores (some not finite?) for \(item.candidateCount) candidates of prompt \(item.promptID)"
                    ))
            }
        }
        return result(.success(batch))
    }

    deinit {
        close(wakeFD)
        close(wakeWriteFD)
    }
}
