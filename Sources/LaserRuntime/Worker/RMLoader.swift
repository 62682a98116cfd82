import Foundation
import LaserRewardModels
import LaserSync
import LaserWire

/// A capacity-limited worker's loads (docs/placement.md): one background thread builds and loads the
/// RMs a LoadRM asks for, one request after another, so the socket thread keeps heartbeating through a
/// load that takes minutes. The socket thread unloads (cheap) itself, then ``submit``s the loads and
/// collects ``finished()`` requests on each turn of its loop.
final class RMLoader: Sendable {
    struct Request: Sendable {
        var requestID: UInt64
        var specs: [RewardModelSpec]
        /// Names asked for that this worker cannot load (not defined here, over capacity): reported failed.
        var refused: [(name: String, why: String)]
        /// RMs to unload first (already out of the worker's table: no task reaches them).
        var unloading: [(name: String, model: any RewardModel)] = []
    }
    struct Finished: Sendable {
        var requestID: UInt64
        var models: [(name: String, model: any RewardModel)]
        var loads: [RMState.Load]
        /// Unload hooks that failed (logged; the RM is released all the same).
        var unloadErrors: [String] = []
    }
    private struct State {
        var queue: [Request] = []
        var finished: [Finished] = []
        var stopped = false
    }
    private let state = Locked(State())
    private let runSeed: UInt64

    init(runSeed: UInt64) {
        self.runSeed = runSeed
        startThread(named: "rm-loader") { [self] in loop() }
    }

    func submit(_ request: Request) { state.update { $0.queue.append(request) } }

    /// Requests done since the last call, oldest first.
    func finished() -> [Finished] {
        state.withLock { s in
            defer { s.finished.removeAll() }
            return s.finished
        }
    }

    func stop() { state.update { $0.stopped = true } }

    private func loop() {
        while let request = state.wait(until: { !$0.queue.isEmpty || $0.stopped }, { s -> Request? in
            s.stopped ? nil : s.queue.first
        }) ?? nil {
            var done = Finished(requestID: request.requestID, models: [], loads: [])
            for (name, model) in request.unloading {
                do { try model.unload() } catch { done.unloadErrors.append("RM \(name): \(error)") }
                model.close()
            }
            for (name, why) in request.refused { done.loads.append(RMState.Load(name: name, loadMs: 0, error: why)) }
            for spec in request.specs {
                let start = DispatchTime.now().uptimeNanoseconds
                do {
                    let model = try RewardModelCatalog.make(spec, runSeed: runSeed)
                    do { try model.load() } catch {
                        model.close()
                        throw error
                    }
                    let ms = UInt32(clamping: (DispatchTime.now().uptimeNanoseconds - start) / 1_000_000)
                    done.models.append((spec.name, model))
                    done.loads.append(RMState.Load(name: spec.name, loadMs: ms))
                } catch {
                    done.loads.append(RMState.Load(name: spec.name, loadMs: 0, error: "\(error)"))
                }
            }
            let kept = state.update { s -> Bool in
                s.queue.removeFirst()
                if s.stopped { return false }
                s.finished.append(done)
                return true
            }
            if !kept { for (_, model) in done.models { model.close() } }
        }
    }
}
