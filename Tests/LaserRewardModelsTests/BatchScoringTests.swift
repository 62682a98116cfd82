import Foundation
import LaserRewardModels
import Testing

/// `scoreBatch`: the default is `score` per request; wrappers hand the whole batch to their base.
@Suite struct BatchScoringTests {
    /// Records how it was called; scores = candidate lengths.
    final class CountingRM: RewardModel, @unchecked Sendable {
        let name = "counting"
        private let lock = NSLock()
        private(set) var singleCalls = 0
        private(set) var batchCalls: [Int] = []
        private(set) var closed = false
        func score(_ request: ScoringRequest) throws -> [Double] {
            lock.lock(); singleCalls += 1; lock.unlock()
            return request.candidates.map { Double($0.count) }
        }
        func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
            lock.lock(); batchCalls.append(requests.count); lock.unlock()
            return requests.map { $0.candidates.map { Double($0.count) } }
        }
        func close() { closed = true }
    }

    let requests = (1...5).map { i in
        ScoringRequest(
            promptID: "p\(i)", prompt: "What is \(i) + \(i)?",
            candidates: ["A: \(2 * i)", "A: \(i)", "<<\(i)+\(i)=\(2 * i)>> A: \(2 * i)"],
            reference: "\(2 * i)", iteration: 2)
    }

    @Test func defaultBatchIsScorePerRequestForEveryBuiltInKind() throws {
        for kind in RewardModelCatalog.kinds where !["subprocess", "http"].contains(kind) {
            let params =
                kind == "noisy"
                ? ["base": "answer-match", "sigma": "0.5"]
                : kind == "simulated-latency" ? ["base": "length", "ms": "0"]
                    : kind == "simulated-load" ? ["base": "length", "load_ms": "0"] : [:]
            let rm = try RewardModelCatalog.make(RewardModelSpec(name: kind, kind: kind, params: params), runSeed: 3)
            #expect(try rm.scoreBatch(requests) == requests.map { try rm.score($0) }, "\(kind)")
            #expect(try rm.scoreBatch([]) == [])
        }
    }

    @Test func wrappersPassTheWholeBatchOnAndTheSameScoresComeOut() throws {
        let base = CountingRM()
        let noisy = NoisyRM(name: "n", base: base, sigma: 0.7, seed: 4, runSeed: 9)
        let batched = try noisy.scoreBatch(requests)
        #expect(base.batchCalls == [5] && base.singleCalls == 0)
        #expect(try batched == requests.map { try noisy.score($0) }, "noise is per request, however it is called")
        let slow = SimulatedLatencyRM(name: "s", base: base, milliseconds: 1)
        #expect(try slow.scoreBatch(requests) == requests.map { $0.candidates.map { Double($0.count) } })
        #expect(base.batchCalls == [5, 5])
        slow.close()
        #expect(base.closed)
    }
}
