#if canImport(Glibc)
import Glibc
#endif

/// A SIMULATION for scaling and chaos tests, not a reward model of its own: it sleeps `ms`
/// milliseconds per prompt and then returns the scores of the wrapped RM, so a run of built-in RMs
/// takes as long as one with a slow RM on a GPU. Params: `base` (a kind), `ms` (>= 0), plus the base's.
///
/// Kind `simulated-load` is the same SIMULATION with a load time too: ``load()`` sleeps `load_ms`, as a
/// capacity-limited worker's load of a 70B RM onto a GPU would take (docs/placement.md). Its `ms` is
/// optional (default 0). Set `load_fail: "yes"` to make every load fail (fault tests).
public struct SimulatedLatencyRM: RewardModel {
    public let name: String
    public let base: any RewardModel
    public let milliseconds: Double
    public var loadMilliseconds: Double = 0
    public var loadFails = false

    public init(name: String, base: any RewardModel, milliseconds: Double) {
        precondition(milliseconds >= 0 && milliseconds.isFinite)
        self.name = name
        self.base = base
        self.milliseconds = milliseconds
    }

    public func load() throws {
        if loadMilliseconds > 0 { usleep(useconds_t(loadMilliseconds * 1000)) }
        if loadFails {
            throw RewardModelError("simulated-load RM \(name): load failed (load_fail: yes, a SIMULATION)")
        }
        try base.load()
    }

    public func unload() throws { try base.unload() }

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
    public init(name: String, params: [String: String], runSeed: UInt64, kind: String = "simulated-latency") throws {
        var reader = ParamReader(rm: name, kind: kind, params: params)
        let loads = kind == "simulated-load"
        let baseKind = try reader.requiredString("base", expected: "the kind of the wrapped RM")
        func milliseconds(_ key: String, _ text: String) throws -> Double {
            guard let ms = Double(text), ms.isFinite, ms >= 0, ms <= 600_000 else {
                throw reader.invalid(key, text, expected: "a number of milliseconds between 0 and 600000")
            }
            return ms
        }
        let msText =
            loads
            ? (params["ms"] ?? "0") : try reader.requiredString("ms", expected: "milliseconds per prompt, >= 0")
        let ms = try milliseconds("ms", msText)
        var own = ["base", "ms"]
        var loadMs = 0.0
        var fails = false
        if loads {
            loadMs = try milliseconds(
                "load_ms", try reader.requiredString("load_ms", expected: "milliseconds one load takes, >= 0"))
            fails = params["load_fail"] == "yes"
            own += ["load_ms", "load_fail"]
        }
        let baseParams = params.filter { !own.contains($0.key) }
        reader.markUsed(params.keys.filter { own.contains($0) })
        reader.markUsed(baseParams.keys)
        let base = try RewardModelCatalog.make(
            RewardModelSpec(name: name, kind: baseKind, params: baseParams), runSeed: runSeed)
        self.init(name: name, base: base, milliseconds: ms)
        loadMilliseconds = loadMs
        loadFails = fails
    }
}
