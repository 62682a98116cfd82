import Foundation
import LaserRewardModels
@testable import LaserRuntime
import LaserWire
import Testing

/// The worker's scoring threads: tasks scored in parallel, results handed back through a lock and a
/// wake pipe the socket thread polls.
@Suite struct ScoringPoolTests {
    func task(_ id: UInt64, rm: String = "slow", prompts: Int = 1) -> ScoreTask {
        ScoreTask(
            taskID: id, attempt: 1, rewardModel: rm, iteration: 1,
            items: (0..<prompts).map {
                ScoreItem(promptID: "p\($0)", prompt: "q", candidates: ["a", "bbb"], reference: nil)
            })
    }

    func waitForResults(_ pool: ScoringPool, count: Int, timeout: Double = 10) -> [ScoreResult] {
        var results: [ScoreResult] = []
        let deadline = Date().addingTimeInterval(timeout)
        while results.count < count && Date() < deadline {
            var fd = pollfd(fd: pool.wakeFD, events: Int16(POLLIN), revents: 0)
            _ = poll(&fd, 1, 100)
            results += pool.takeResults()
        }
        return results
    }

    @Test func slotsScoreInParallelAndWakeTheSocketThread() throws {
        let pool = try ScoringPool(threads: 3, workerID: "w")
        defer { pool.stop(timeout: 2) }
        let slow = SimulatedLatencyRM(name: "slow", base: LengthRM(name: "len", prefer: .longer), milliseconds: 300)
        let start = Date()
        for id in UInt64(1)...3 { pool.submit(task(id, prompts: 1), model: slow, served: ["slow"]) }
        let results = waitForResults(pool, count: 3)
        let elapsed = Date().timeIntervalSince(start)
        #expect(results.map(\.taskID).sorted() == [1, 2, 3])
        #expect(elapsed < 0.8, "3 tasks of 300 ms on 3 threads took \(elapsed) s")
        let expected = try LengthRM(name: "len", prefer: .longer).score(
            ScoringRequest(promptID: "p0", prompt: "q", candidates: ["a", "bbb"]))
        for result in results { #expect(result.outcome == .success([expected])) }
        #expect(pool.inFlight == 0)
    }

    @Test func unknownRMAndRMErrorsBecomeFailureResults() throws {
        struct Failing: RewardModel {
            let name = "bad";
            func score(_ r: ScoringRequest) throws -> [Double] { throw RewardModelError("GPU on fire") }
        }
        struct Short: RewardModel { let name = "short"; func score(_ r: ScoringRequest) throws -> [Double] { [1] } }
        let pool = try ScoringPool(threads: 1, workerID: "w7")
        defer { pool.stop(timeout: 2) }
        pool.submit(task(1, rm: "nope"), model: nil, served: ["slow", "bad"])
        pool.submit(task(2, rm: "bad", prompts: 2), model: Failing(), served: [])
        pool.submit(task(3, rm: "short"), model: Short(), served: [])
        let results = waitForResults(pool, count: 3).sorted { $0.taskID < $1.taskID }
        #expect(
            results.map(\.outcome) == [
                .failure("worker w7 does not serve RM nope (it serves bad, slow)"),
                .failure("RM bad failed on prompts p0, p1: GPU on fire"),
                .failure("RM short returned 1 scores (some not finite?) for 2 candidates of prompt p0"),
            ])
    }

    /// An RM with `maxBatchCandidates` (an HTTP RM's `max_batch`) gets queued tasks for it in one
    /// call while they fit; each task still gets its own result, and other RMs' tasks are not mixed in.
    @Test func queuedTasksForABatchingRMShareOneCall() throws {
        final class Batching: RewardModel, @unchecked Sendable {
            let name = "gpu"
            let lock = NSLock()
            var calls: [Int] = []
            var maxBatchCandidates: Int? { 6 }
            func score(_ r: ScoringRequest) throws -> [Double] { r.candidates.map { Double($0.count) } }
            func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
                lock.lock(); calls.append(requests.count); lock.unlock()
                usleep(200_000)
                return try requests.map { try score($0) }
            }
        }
        let gpu = Batching()
        let pool = try ScoringPool(threads: 1, workerID: "w")
        defer { pool.stop(timeout: 2) }
        pool.submit(task(1, rm: "gpu"), model: gpu, served: [])  // taken alone: the queue is empty
        usleep(50_000)
        for id in UInt64(2)...6 { pool.submit(task(id, rm: "gpu"), model: gpu, served: []) }  // 2 candidates each
        pool.submit(task(7, rm: "other"), model: LengthRM(name: "other", prefer: .longer), served: [])
        let results = waitForResults(pool, count: 7)
        #expect(results.map(\.taskID).sorted() == Array(1...7))
        for result in results where result.taskID != 7 { #expect(result.outcome == .success([[1, 3]])) }
        #expect(gpu.calls == [1, 3, 2], "task 1 alone, then 3 tasks (6 candidates), then the last 2")
    }
}
