/// The reward models by kind (built-in rule-based ones and the `subprocess` and `http` backends): builds a configured RM from its ``RewardModelSpec``.
public enum RewardModelCatalog {
    /// Every kind ``make(_:runSeed:)`` accepts.
    public static let kinds: [String] = [
        "answer-match", "self-consistency", "arithmetic-check", "length", "instruction-following", "noisy",
        "simulated-latency", "simulated-load", "null-rm", "subprocess", "http",
    ]

    /// Kinds that only compute on the text they are given: no process, no network, no file. A worker
    /// builds these from the definition the coordinator sends; every other kind (``backendKinds``) it
    /// builds only from its own `--rm-config` (docs/security.md).
    public static let builtInKinds: Set<String> = [
        "answer-match", "self-consistency", "arithmetic-check", "length", "instruction-following", "noisy",
        "simulated-latency", "simulated-load", "null-rm",
    ]
    /// Kinds that start processes or call servers: defined on the worker's side only.
    public static let backendKinds: Set<String> = ["subprocess", "http"]

    /// Whether a definition is side-effect free as a whole: a built-in kind, and for the wrappers
    /// (`noisy`, `simulated-latency`, any kind with a `base` param) a built-in base too: their other
    /// params go to the base, so a wrapper over `subprocess` would start a process.
    public static func isBuiltIn(_ spec: RewardModelSpec) -> Bool {
        guard builtInKinds.contains(spec.kind) else { return false }
        if let base = spec.params["base"] ?? (wrapperKinds.contains(spec.kind) ? "" : nil) {
            return builtInKinds.contains(base) && !wrapperKinds.contains(base)
        }
        return true
    }

    /// Kinds that wrap another kind named by their `base` param.
    static let wrapperKinds: Set<String> = ["noisy", "simulated-latency", "simulated-load"]

    /// Builds the RM a spec describes. `runSeed` seeds RMs with randomness (``NoisyRM``) so that a
    /// run replays exactly. Throws for an unknown kind and for missing, malformed or unknown params.
    public static func make(_ spec: RewardModelSpec, runSeed: UInt64) throws -> any RewardModel {
        switch spec.kind {
        case "answer-match":
            try rejectParams(spec)
            return AnswerMatchRM(name: spec.name)
        case "self-consistency":
            try rejectParams(spec)
            return SelfConsistencyRM(name: spec.name)
        case "arithmetic-check":
            try rejectParams(spec)
            return ArithmeticCheckRM(name: spec.name)
        case "length":
            return try LengthRM(name: spec.name, params: spec.params)
        case "instruction-following":
            try rejectParams(spec)
            return InstructionFollowingRM(name: spec.name)
        case "noisy":
            return try NoisyRM(name: spec.name, params: spec.params, runSeed: runSeed)
        case "simulated-latency", "simulated-load":
            return try SimulatedLatencyRM(name: spec.name, params: spec.params, runSeed: runSeed, kind: spec.kind)
        case "null-rm":
            try rejectParams(spec)
            return NullRM(name: spec.name)
        case "subprocess":
            // Starts nothing here: the child starts on the first request (docs/rm-backends.md).
            return try SubprocessRM(name: spec.name, params: spec.params)
        case "http":
            if spec.params["api"]?.trimmingWhitespace() == "loglik" {
                return try LogLikelihoodRM(name: spec.name, params: spec.params)
            }
            return try HTTPRM(name: spec.name, params: spec.params)
        default:
            throw RewardModelError(
                "reward model '\(spec.name)': unknown kind '\(spec.kind)' (known kinds: \(kinds.joined(separator: ", ")))",
                code: .definition)
        }
    }

    /// Kinds without params still reject them: a param there is most likely meant for another RM.
    private static func rejectParams(_ spec: RewardModelSpec) throws {
        try ParamReader(rm: spec.name, kind: spec.kind, params: spec.params).rejectUnused()
    }
}
