#if canImport(Glibc)
import Glibc
#endif

/// A SIMULATION for scaling and chaos tests, not a reward model of its own: it sleeps `ms`
/// milliseconds per prompt and then returns the scores of the wrapped RM, so a run of built-in RMs
/// takes as long as one with a slow RM on a GPU. Params: `base` (a kind), `ms` (>= 0), plus the base's.
public struct SimulatedLatencyRM: RewardModel {
    public let name: String
    public let base: any RewardModel
    public let milliseconds: Double

    public init(name: String, base: any RewardModel, milliseconds: Double) {
        precondition(milliseconds >= 0 && milliseconds.isFinite)
        self.name = name
        self.base = base
        self.milliseconds = milliseconds
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        if milliseconds > 0 { usleep(useconds_t(milliseconds * 1000)) }
        return try base.score(request)
    }

    /// Sleeps `ms` per prompt, then hands the whole batch to the base in one call.
    public func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
        if milliseconds > 0 { for _ in requests { usleep(useconds_t(milliseconds * 1000)) } }
        return try base.scoreBatch(requests)
    }

    public func close() { base.close() }
}

extension SimulatedLatencyRM {
    /// Builds the wrapper from config params: `base`, `ms`, and the base's own params.
    public init(name: String, params: [String: String], runSeed: UInt64) throws {
        var reader = ParamReader(rm: name, kind: "simulated-latency", params: params)
        let baseKind = try reader.requiredString("base", expected: "the kind of the wrapped RM")
        let msText = try reader.requiredString("ms", expected: "milliseconds per prompt, >= 0")
        guard let ms = Double(msText), ms.isFinite, ms >= 0, ms <= 600_000 else {
            throw reader.invalid("ms", msText, expected: "a number of milliseconds between 0 and 600000")
        }
        let baseParams = params.filter { !["base", "ms"].contains($0.key) }
        reader.markUsed(baseParams.keys)
        let base = try RewardModelCatalog.make(
            RewardModelSpec(name: name, kind: baseKind, params: baseParams), runSeed: runSeed)
        self.init(name: name, base: base, milliseconds: ms)
    }
}
