import LaserErrors
import Foundation
import LaserCore
import LaserRewardModels
import LaserWire
import Yams

/// A run's configuration, as read from YAML (see docs/configuration.md for every key).
public struct RunConfig: Equatable, Sendable {
    /// One JSONL file per iteration (absolute paths once loaded). With `inputPattern`, the pattern's
    /// path for each iteration.
    public var inputs: [String]
    /// `input: {dir, pattern, ...}`: on-policy iterations whose files are written while the run goes
    /// (docs/on-policy.md); the coordinator waits for each one.
    public var inputPattern: InputPattern?
    public var iterations: Int
    public var seed: UInt64 = 0
    public var strategy: StrategyKind = .linucb
    public var fixedRM: String?
    public var alpha: Double = 0.1
    public var lambda: Double = 1.0
    public var batchSize = 16
    public var shardSize = 4
    public var pipelineDepth = 1
    public var granularity = Granularity.batch
    public var gamma = 0.1
    public var placement = Placement()
    public var agreementThreshold = 0.75
    public var mode = OutputMode.pairs
    public var contextDimension = 256
    public var contextNgrams = 2
    public var pairs = PairPolicy()
    public var rewardSource = RewardSource.labelPairAccuracy
    public var normalizeRewards = true
    /// LinUCB's warm start, tie-breaking and first-reward rule (section `bandit`).
    public var bandit = BanditOptions()
    /// reward.probe_size: prompts every RM scores once for probe-progress's probe.
    public var probeSize = 64
    /// reward.probe_consensus: unanimous (default), weighted or balanced.
    public var probeConsensus = ProbeConsensus.unanimous
    /// strategy thompson: `thompson.v` and per-RM priors (by RM name; from `laser calibrate`).
    public var thompsonV = 0.5
    public var priors: [String: ArmPrior] = [:]
    /// `preset: paper`, when the config asked for it (written back so the run's config.yaml says so).
    public var preset: String?
    public var rewardModels: [RewardModelSpec]
    /// Any free loopback port by default; a cluster sets tcp://0.0.0.0:PORT.
    public var bind = "tcp://127.0.0.1:*"
    public var scheduler = SchedulerSettings()
    public var maxMessageBytes: Int64 = 64 << 20
    /// Trainer losses outside [-maxAbsLoss, maxAbsLoss] are refused (`reward.max_abs_loss`).
    public var maxAbsLoss: Double = 1e6
    /// Start even when the reward can never arrive (label reward on unlabelled input): a warning instead
    /// of an error (`reward.allow_unrewarded`).
    public var allowUnrewarded = false

    /// Room left in a message for everything but the texts (envelope, ids, numbers).
    public static let messageOverheadBytes = 64 << 10
    /// Most text one score task may carry; one input line longer than this is an input error.
    public var maxTaskBytes: Int { Int(maxMessageBytes) - min(Self.messageOverheadBytes, Int(maxMessageBytes) / 4) }
    /// Local worker processes `laser run` starts (0: only external workers).
    public var localWorkers = 3
    public var workerSlots = 2
    /// Local workers' `--rm-capacity` (0: static, every RM loaded; docs/placement.md).
    public var workerRMCapacity = 0
    /// Local workers' `--memory-budget` and `--rm-memory` weights (0 / empty: none).
    public var workerMemoryBudget = 0.0
    public var workerRMMemory: [String: Double] = [:]
    /// CurveZMQ between coordinator and workers (`security:`; off by default).
    public var security = SecuritySettings()
    /// The Prometheus /metrics endpoint (`metrics:`; off unless a port is given).
    public var metrics = MetricsSettings()

    public init(inputs: [String], iterations: Int, rewardModels: [RewardModelSpec]) {
        self.inputs = inputs
        self.iterations = iterations
        self.rewardModels = rewardModels
    }

    /// The core's view of this config.
    public func plan(coordinatorID: String) -> RunPlan {
        var plan = RunPlan(
            coordinatorID: coordinatorID, seed: seed, iterations: iterations, batchSize: batchSize,
            shardSize: shardSize, pipelineDepth: pipelineDepth, strategy: strategy, alpha: alpha, lambda: lambda,
            fixedArm: fixedRM.flatMap { name in rewardModels.firstIndex { $0.name == name } } ?? 0,
            // A backend RM (subprocess, http) travels by name and kind only: its command, URL and key
            // stay on this side, and a worker runs it only from its own --rm-config (docs/security.md).
            rewardModels: rewardModels.map {
                RewardModelDefinition(
                    name: $0.name, kind: $0.kind, params: RewardModelCatalog.isBuiltIn($0) ? $0.params : [:])
            },
            pairPolicy: pairs, rewardSource: rewardSource, normalizeRewards: normalizeRewards,
            contextDimension: contextDimension, scheduler: scheduler, granularity: granularity, mode: mode,
            gamma: gamma, agreementThreshold: agreementThreshold, placement: placement,
            maxAbsLoss: maxAbsLoss, maxTaskBytes: maxTaskBytes, bandit: bandit, probeSize: probeSize,
            thompson: ThompsonSettings(
                v: thompsonV, priors: priors.isEmpty ? [] : rewardModels.map { priors[$0.name]! }),
            workerDefinedRMs: Set(rewardModels.filter { !RewardModelCatalog.isBuiltIn($0) }.map(\.name)))
        plan.probeConsensus = probeConsensus
        return plan
    }

    /// The input file for a 1-based iteration: the n-th file, or the last one when fewer files than
    /// iterations are listed (the same candidates re-ranked each iteration).
    public func input(forIteration n: Int) -> String { inputs[min(n, inputs.count) - 1] }

    /// Whether iteration n's input may be read now: always for listed files; for a pattern, when the
    /// file is complete by the pattern's `ready` rule.
    public func inputReady(forIteration n: Int) -> Bool { inputPattern?.isReady(n) ?? true }

    /// `preset: NAME`: defaults a config starts from before its own keys apply.
    /// `paper`: the LASeR paper's code (arXiv 2410.01735): LinUCB with alpha 0.1, ties to arm 0, the
    /// first raw reward kept, no warm start, the trainer's loss as the reward.
    public static let presets: [String: @Sendable (inout RunConfig) -> Void] = [
        "paper": { c in
            c.strategy = .linucb
            c.alpha = 0.1
            c.bandit = BanditOptions(warmStart: .none, ties: .first, firstReward: .paper)
            c.rewardSource = .trainerLoss
            c.normalizeRewards = true
        }
    ]
}

/// A config, a CLI flag or a run directory's state that stops a run from starting (exit status 2).
public typealias ConfigError = CodedError<ConfigErrorCode>

/// The codes of ``ConfigError``.
public enum ConfigErrorCode: String, ErrorCode {
    /// A key, a value or a flag is wrong (the message names it).
    case invalid
    /// The run directory holds a run and --resume was not given.
    case runExists = "run-exists"
    /// A resume with a config that differs in what shapes the output.
    case configChanged = "config-changed"
    /// A resume whose input of a started iteration changed.
    case inputChanged = "input-changed"
    /// The reward source can never deliver a reward for this input.
    case rewardUnavailable = "reward-unavailable"

    public static var unspecified: Self { .invalid }
}

extension RunConfig {
    /// Reads and validates a YAML config. Relative input paths are resolved against the file's folder.
    public static func load(path: String) throws -> RunConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(
                "\(path): cannot read the config file (\(error.localizedDescription)); check the path (laser demo-data --out DIR writes an example config)"
            )
        }
        let base = URL(fileURLWithPath: CLIPath.absolute(path)).deletingLastPathComponent().path
        return try parse(yaml: text, source: path, baseDirectory: base)
    }

    /// The `reward_models` list of a config (or of a worker's `--rm-config`), each definition checked by
    /// building it once (nothing starts: backends start on their first request).
    fileprivate static func parseRewardModels(_ r: Section, source: String) throws -> [RewardModelSpec] {
        guard let rmList = r.map["reward_models"] as? [Any], !rmList.isEmpty else {
            throw r.error("reward_models", "is missing or empty: list at least one {name, kind, params}")
        }
        var specs: [RewardModelSpec] = []
        for (i, item) in rmList.enumerated() {
            guard let m = item as? [String: Any] else {
                throw r.error("reward_models[\(i)]", "must be a mapping with name and kind")
            }
            let s = Section(m, path: "reward_models[\(i)]", source: source)
            try s.allow(["name", "kind", "params"])
            guard let kind = try s.string("kind") else {
                throw s.error("kind", "is missing; one of \(RewardModelCatalog.kinds.joined(separator: ", "))")
            }
            let name = try s.string("name") ?? kind
            var params: [String: String] = [:]
            if let p = s.map["params"] {
                guard let pm = p as? [String: Any] else { throw s.error("params", "must be a mapping") }
                for (k, v) in pm { params[k] = paramText(v) }
            }
            guard !specs.contains(where: { $0.name == name }) else {
                throw s.error("name", "'\(name)' is used twice; RM names must be unique")
            }
            let spec = RewardModelSpec(name: name, kind: kind, params: params)
            do { _ = try RewardModelCatalog.make(spec, runSeed: 0) } catch {
                throw ConfigError("\(source): reward_models[\(i)] (\(name)): \(error)")
            }
            specs.append(spec)
        }
        return specs
    }

    /// A worker's own RM definitions (`laser worker --rm-config FILE`): the `reward_models` list of a YAML
    /// file, which may be a whole run config (its other keys are ignored). Subprocess and HTTP RMs run
    /// only from such a file, never from what a coordinator sends (docs/security.md).
    public static func loadRewardModels(path: String) throws -> [RewardModelSpec] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(
                "\(path): cannot read the RM definitions (\(error.localizedDescription)); --rm-config takes a YAML file with a reward_models list (a run config will do)"
            )
        }
        let map = try yamlMapping(text, source: path, expected: "a mapping with a reward_models list")
        return try parseRewardModels(Section(map, path: "", source: path), source: path)
    }

    /// A YAML document's top-level mapping; duplicate keys are refused (YAML lets a later one silently
    /// win, which in a config hides a mistake).
    private static func yamlMapping(_ text: String, source: String, expected: String) throws -> [String: Any] {
        let root: Any?
        do {
            if let node = try Yams.compose(yaml: text) { try rejectDuplicateKeys(node, source: source, path: "") }
            root = try Yams.load(yaml: text)
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError("\(source): not valid YAML: \(error)")
        }
        guard let map = root as? [String: Any] else {
            throw ConfigError("\(source): the top level must be \(expected)")
        }
        return map
    }

    public static func parse(yaml: String, source: String, baseDirectory: String) throws -> RunConfig {
        let map = try yamlMapping(
            yaml, source: source, expected: "a mapping of keys (iterations, input, reward_models, ...)")
        let r = Section(map, path: "", source: source)
        try r.allow([
            "input", "iterations", "seed", "preset", "strategy", "fixed_rm", "linucb", "bandit", "thompson",
            "batch_size", "shard_size", "granularity", "mode", "exp3", "agreement", "placement",
            "pipeline_depth", "context", "pairs", "reward", "reward_models", "network", "workers", "security",
            "metrics",
        ])

        var resolved: [String]
        var pattern: InputPattern?
        var iterations = try r.int("iterations", min: 1)
        if map["input"] is [String: Any], let p = try r.section("input") {
            pattern = try InputPattern.parse(p, base: baseDirectory)
            if let n = try p.int("iterations", min: 1) {
                if let top = iterations, top != n {
                    throw r.error("iterations", "is \(top) but input.iterations is \(n); give one")
                }
                iterations = n
            }
            guard let n = iterations else {
                throw p.error(
                    "iterations",
                    "is missing: how many iterations the pattern names (iteration-{n} for n = 1...iterations)")
            }
            resolved = (1...n).map { pattern!.path(forIteration: $0) }
        } else {
            let inputs: [String]
            if let one = try r.string("input") { inputs = [one] } else { inputs = try r.strings("input") ?? [] }
            guard !inputs.isEmpty else {
                throw r.error(
                    "input",
                    "is missing: list one JSONL file per iteration, or give {dir, pattern, iterations} for on-policy iterations"
                )
            }
            resolved = inputs.map { CLIPath.absolute($0, base: baseDirectory) }
        }

        let specs = try parseRewardModels(r, source: source)

        var c = RunConfig(inputs: resolved, iterations: iterations ?? resolved.count, rewardModels: specs)
        c.inputPattern = pattern
        c.seed = UInt64(try r.int("seed", min: 0) ?? 0)
        try parseSelection(r, into: &c, specs: specs, baseDirectory: baseDirectory)
        try parsePlacement(r, into: &c, specs: specs, baseDirectory: baseDirectory)
        try parseBatching(r, into: &c, specs: specs, baseDirectory: baseDirectory)
        try parseReward(r, into: &c, specs: specs, baseDirectory: baseDirectory)
        try parseDeployment(r, into: &c, specs: specs, baseDirectory: baseDirectory)
        if c.mode == .bestOfN && c.rewardSource.fromTrainer {
            throw r.error(
                "reward.source",
                "\(c.rewardSource.rawValue) does not go with mode: best-of-n (nothing is trained); use label-pair-accuracy"
            )
        }
        return c
    }

    /// `parse`, the selection strategy and its bandit: preset, strategy, fixed_rm, linucb, bandit, thompson, exp3, agreement.
    fileprivate static func parseSelection(
        _ r: Section, into c: inout RunConfig, specs: [RewardModelSpec], baseDirectory: String
    ) throws {
        // A preset sets defaults; keys given beside it override them.
        if let p = try r.string("preset") {
            guard let preset = RunConfig.presets[p] else {
                throw r.error(
                    "preset",
                    "'\(p)' is not a preset; choose one of \(RunConfig.presets.keys.sorted().joined(separator: ", "))")
            }
            preset(&c)
            c.preset = p
        }
        if let s = try r.string("strategy") {
            guard let k = StrategyKind(rawValue: s) else {
                throw r.error(
                    "strategy",
                    "'\(s)' is not a strategy; choose one of \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            c.strategy = k
        }
        c.fixedRM = try r.string("fixed_rm")
        if let f = c.fixedRM, !specs.contains(where: { $0.name == f }) {
            throw r.error(
                "fixed_rm", "'\(f)' is not one of the reward_models (\(specs.map(\.name).joined(separator: ", ")))")
        }
        if c.strategy == .fixed && c.fixedRM == nil { throw r.error("fixed_rm", "is required with strategy: fixed") }
        if let l = try r.section("linucb") {
            try l.allow(["alpha", "lambda"])
            c.alpha = try l.double("alpha", min: 0) ?? c.alpha
            c.lambda = try l.double("lambda", min: 1e-12) ?? c.lambda
        }
        if let b = try r.section("bandit") {
            try b.allow(["warm_start", "ties", "first_reward", "record_decisions"])
            func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) throws -> T?
            where T.RawValue == String {
                guard let s = try b.string(key) else { return nil }
                guard let v = T(rawValue: s) else {
                    throw b.error(key, "'\(s)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return v
            }
            c.bandit.warmStart = try choice("warm_start", BanditOptions.WarmStart.self) ?? c.bandit.warmStart
            c.bandit.ties = try choice("ties", BanditOptions.Ties.self) ?? c.bandit.ties
            c.bandit.firstReward = try choice("first_reward", BanditOptions.FirstReward.self) ?? c.bandit.firstReward
            c.bandit.record = try choice("record_decisions", BanditOptions.Record.self) ?? c.bandit.record
        }
        if let t = try r.section("thompson") {
            try t.allow(["v", "priors"])
            c.thompsonV = try t.double("v", min: 1e-9) ?? c.thompsonV
            // Priors inline (a mapping RM -> {mean, variance}), or a file `laser calibrate` wrote.
            var table: [String: Any]?
            var origin = "thompson.priors"
            if let m = t.map["priors"] as? [String: Any] {
                table = m
            } else if let path = try t.path("priors", base: baseDirectory) {
                origin = path
                let text: String
                do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                    throw t.error(
                        "priors",
                        "cannot be read from \(path): \(error.localizedDescription); write it with laser calibrate CONFIG --input LABELLED.jsonl --out \(path)"
                    )
                }
                table = try yamlMapping(text, source: path, expected: "a mapping of RM names to {mean, variance}")
            }
            if let table {
                for spec in specs {
                    guard let entry = table[spec.name] as? [String: Any] else {
                        throw t.error(
                            "priors",
                            "(\(origin)) has no prior for RM '\(spec.name)'; run laser calibrate again with this config"
                        )
                    }
                    func number(_ key: String) -> Double? {
                        (entry[key] as? Double) ?? (entry[key] as? Int).map(Double.init)
                    }
                    guard let mean = number("mean"), let variance = number("variance"), mean.isFinite,
                        variance.isFinite, variance > 0
                    else {
                        throw t.error(
                            "priors",
                            "(\(origin)): the prior of '\(spec.name)' needs a finite mean and a positive variance")
                    }
                    c.priors[spec.name] = ArmPrior(mean: mean, variance: variance)
                }
            }
        }
        if let e = try r.section("exp3") {
            try e.allow(["gamma"])
            c.gamma = try e.double("gamma", min: 1e-9) ?? c.gamma
            guard c.gamma <= 1 else { throw e.error("gamma", "must be at most 1, got \(c.gamma)") }
        }
        if let a = try r.section("agreement") {
            try a.allow(["threshold"])
            c.agreementThreshold = try a.double("threshold", min: 0) ?? c.agreementThreshold
            guard c.agreementThreshold <= 1 else {
                throw a.error("threshold", "must be at most 1, got \(c.agreementThreshold)")
            }
        }
    }

    /// `parse`, placement: which workers host which RMs.
    fileprivate static func parsePlacement(
        _ r: Section, into c: inout RunConfig, specs: [RewardModelSpec], baseDirectory: String
    ) throws {
        if let p = try r.section("placement") {
            try p.allow(["by_worker", "by_label", "idle_report_s", "dynamic"])
            c.placement.idleReportSeconds = try p.double("idle_report_s", min: 0) ?? c.placement.idleReportSeconds
            if let d = try p.section("dynamic") {
                try d.allow(["min_residency_s", "recent_selections", "assumed_load_s", "load_timeout_s"])
                var s = c.placement.dynamic
                s.minResidencySeconds = try d.double("min_residency_s", min: 0) ?? s.minResidencySeconds
                s.recentSelections = try d.int("recent_selections", min: 0) ?? s.recentSelections
                s.assumedLoadSeconds = try d.double("assumed_load_s", min: 0) ?? s.assumedLoadSeconds
                s.loadTimeoutSeconds = try d.double("load_timeout_s", min: 1) ?? s.loadTimeoutSeconds
                c.placement.dynamic = s
            }
            for (key, target) in [("by_worker", \Placement.byWorker), ("by_label", \Placement.byLabel)]
                as [(String, WritableKeyPath<Placement, [String: [String]]>)]
            {
                guard let raw = p.map[key] else { continue }
                guard let m = raw as? [String: Any] else { throw p.error(key, "must map names to lists of RM names") }
                var out: [String: [String]] = [:]
                for (name, value) in m {
                    guard let list = value as? [Any], list.allSatisfy({ $0 is String }) else {
                        throw p.error("\(key).\(name)", "must be a list of RM names")
                    }
                    let rms = list.map { $0 as! String }
                    if let bad = rms.first(where: { rm in !specs.contains { $0.name == rm } }) {
                        throw p.error(
                            "\(key).\(name)",
                            "names '\(bad)', which is not one of the reward_models (\(specs.map(\.name).joined(separator: ", ")))"
                        )
                    }
                    out[name] = rms
                }
                c.placement[keyPath: target] = out
            }
        }
    }

    /// `parse`, batching and pairs: batch_size, shard_size, pipeline_depth, granularity, mode, context, pairs.
    fileprivate static func parseBatching(
        _ r: Section, into c: inout RunConfig, specs: [RewardModelSpec], baseDirectory: String
    ) throws {
        c.batchSize = try r.int("batch_size", min: 1) ?? c.batchSize
        c.shardSize = try r.int("shard_size", min: 1) ?? c.shardSize
        c.pipelineDepth = try r.int("pipeline_depth", min: 1) ?? c.pipelineDepth
        if let m = try r.string("mode") {
            guard let mode = OutputMode(rawValue: m) else {
                throw r.error(
                    "mode",
                    "'\(m)' is not a mode; choose \(OutputMode.allCases.map(\.rawValue).joined(separator: " or "))")
            }
            c.mode = mode
            // Best-of-n picks per prompt unless told otherwise (the paper's inference-time setting).
            if mode == .bestOfN { c.granularity = .instance }
        }
        if let g = try r.string("granularity") {
            guard let granularity = Granularity(rawValue: g) else {
                throw r.error(
                    "granularity",
                    "'\(g)' is not a granularity; choose \(Granularity.allCases.map(\.rawValue).joined(separator: " or "))"
                )
            }
            c.granularity = granularity
        }
        if let x = try r.section("context") {
            try x.allow(["dimension", "ngrams"])
            c.contextDimension = try x.int("dimension", min: 1) ?? c.contextDimension
            c.contextNgrams = try x.int("ngrams", min: 1) ?? c.contextNgrams
        }
        if let p = try r.section("pairs") {
            try p.allow(["mode", "max_pairs", "margin"])
            if let m = try p.string("mode") {
                guard let mode = PairPolicy.Mode(rawValue: m) else {
                    throw p.error(
                        "mode",
                        "'\(m)' is not a pair mode; choose \(PairPolicy.Mode.allCases.map(\.rawValue).joined(separator: " or "))"
                    )
                }
                c.pairs.mode = mode
            }
            c.pairs.maxPairs = try p.int("max_pairs", min: 1) ?? c.pairs.maxPairs
            c.pairs.margin = try p.double("margin", min: 0) ?? c.pairs.margin
        }
    }

    /// `parse`, reward: the bandit's reward source and its settings.
    fileprivate static func parseReward(
        _ r: Section, into c: inout RunConfig, specs: [RewardModelSpec], baseDirectory: String
    ) throws {
        if let w = try r.section("reward") {
            try w.allow(["source", "normalize", "max_abs_loss", "allow_unrewarded", "probe_size", "probe_consensus"])
            c.probeSize = try w.int("probe_size", min: 1) ?? c.probeSize
            if let text = try w.string("probe_consensus") {
                guard let k = ProbeConsensus(rawValue: text) else {
                    throw w.error(
                        "probe_consensus",
                        "'\(text)' is not one of \(ProbeConsensus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                c.probeConsensus = k
            }
            c.allowUnrewarded = try w.bool("allow_unrewarded") ?? c.allowUnrewarded
            c.maxAbsLoss = try w.double("max_abs_loss", min: 1e-300) ?? c.maxAbsLoss
            // Bounded so that sums and differences of accepted losses stay finite in every statistic.
            guard c.maxAbsLoss <= 1e300 else {
                throw w.error("max_abs_loss", "must be at most 1e300, got \(c.maxAbsLoss)")
            }
            if let s = try w.string("source") {
                guard let src = RewardSource(rawValue: s) else {
                    throw w.error(
                        "source",
                        "'\(s)' is not supported; this version supports \(RewardSource.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                c.rewardSource = src
            }
            c.normalizeRewards = try w.bool("normalize") ?? c.normalizeRewards
        }
    }

    /// `parse`, where it runs: network, workers, security, metrics.
    fileprivate static func parseDeployment(
        _ r: Section, into c: inout RunConfig, specs: [RewardModelSpec], baseDirectory: String
    ) throws {
        if let n = try r.section("network") {
            try n.allow([
                "bind", "heartbeat_ms", "liveness", "lease_ms", "max_attempts", "max_message_bytes",
                "max_slots_per_worker", "quarantine_after", "quarantine_seconds",
            ])
            c.scheduler.maxSlotsPerWorker = UInt32(
                clamping: try n.int("max_slots_per_worker", min: 1) ?? Int(c.scheduler.maxSlotsPerWorker))
            c.scheduler.quarantineAfter = try n.int("quarantine_after", min: 0) ?? c.scheduler.quarantineAfter
            c.scheduler.quarantineSeconds = try n.double("quarantine_seconds", min: 0) ?? c.scheduler.quarantineSeconds
            c.bind = try n.string("bind") ?? c.bind
            if let problem = Endpoint.problem(c.bind, bind: true) { throw n.error("bind", problem) }
            c.scheduler.heartbeatIntervalMs = UInt64(
                try n.int("heartbeat_ms", min: 10) ?? Int(c.scheduler.heartbeatIntervalMs))
            c.scheduler.liveness = UInt32(try n.int("liveness", min: 2) ?? Int(c.scheduler.liveness))
            c.scheduler.leaseMs = UInt64(try n.int("lease_ms", min: 10) ?? Int(c.scheduler.leaseMs))
            c.scheduler.maxAttempts = UInt32(try n.int("max_attempts", min: 1) ?? Int(c.scheduler.maxAttempts))
            c.maxMessageBytes = Int64(try n.int("max_message_bytes", min: 1024) ?? Int(c.maxMessageBytes))
        }
        if let w = try r.section("workers") {
            try w.allow(["local", "slots", "rm_capacity", "memory_budget", "rm_memory"])
            c.localWorkers = try w.int("local", min: 0) ?? c.localWorkers
            c.workerSlots = try w.int("slots", min: 1) ?? c.workerSlots
            c.workerRMCapacity = try w.int("rm_capacity", min: 0) ?? c.workerRMCapacity
            c.workerMemoryBudget = try w.double("memory_budget", min: 0) ?? c.workerMemoryBudget
            if let raw = w.map["rm_memory"] {
                guard let m = raw as? [String: Any] else { throw w.error("rm_memory", "must map RM names to weights") }
                for (name, value) in m {
                    guard let weight = (value as? NSNumber)?.doubleValue ?? (value as? Double), weight.isFinite, weight >= 0
                    else { throw w.error("rm_memory.\(name)", "must be a number >= 0") }
                    guard c.rewardModels.contains(where: { $0.name == name }) else {
                        throw w.error("rm_memory.\(name)", "names no RM of reward_models")
                    }
                    c.workerRMMemory[name] = weight
                }
                guard c.workerMemoryBudget > 0 else {
                    throw w.error("rm_memory", "needs workers.memory_budget (the weights are measured against it)")
                }
            }
        }
        if let s = try r.section("security") {
            try s.allow(["curve", "server_key", "allowed_clients", "allowed_workers", "allowed_trainers"])
            c.security.curve = try s.bool("curve") ?? c.security.curve
            c.security.serverKey = try s.path("server_key", base: baseDirectory)
            // allowed_clients: the earlier spelling of allowed_workers.
            let workers = try s.path("allowed_workers", base: baseDirectory),
                clients = try s.path("allowed_clients", base: baseDirectory)
            if workers != nil && clients != nil {
                throw s.error(
                    "allowed_clients",
                    "and allowed_workers are the same setting (allowed_clients is its earlier name); keep allowed_workers"
                )
            }
            c.security.allowedClients = workers ?? clients
            c.security.allowedTrainers = try s.path("allowed_trainers", base: baseDirectory)
            // Key files are read when the coordinator starts; here only what must be there.
            if c.security.curve && c.security.serverKey == nil {
                throw s.error(
                    "server_key",
                    "is required with curve: true: the coordinator's NAME.key (laser keygen --out DIR --name coordinator)"
                )
            }
            if c.security.curve && c.security.allowedClients == nil {
                throw s.error(
                    "allowed_workers",
                    "is required with curve: true: a folder with the NAME.pub file of every worker to admit")
            }
        }
        if let m = try r.section("metrics") {
            try m.allow(["port", "bind"])
            c.metrics.port = try m.int("port", min: 0)
            if let p = c.metrics.port, p > 65535 {
                throw m.error("port", "must be a TCP port (0-65535; 0 picks a free one), got \(p)")
            }
            c.metrics.bind = try m.string("bind") ?? c.metrics.bind
        }
    }
}

private func rejectDuplicateKeys(_ node: Node, source: String, path: String) throws {
    switch node {
    case .mapping(let mapping):
        var seen: Set<String> = []
        for (key, value) in mapping {
            let name = key.string ?? "\(key)"
            let here = path.isEmpty ? name : path + "." + name
            guard seen.insert(name).inserted else {
                let line = key.mark.map { " (line \($0.line))" } ?? ""
                throw ConfigError(
                    "\(source): \(here) is given twice\(line); YAML would silently keep only the last one. Merge the two."
                )
            }
            try rejectDuplicateKeys(value, source: source, path: here)
        }
    case .sequence(let sequence):
        for (i, item) in sequence.enumerated() { try rejectDuplicateKeys(item, source: source, path: "\(path)[\(i)]") }
    default:
        break
    }
}

/// A mapping in the YAML document with typed, path-aware accessors.
/// RM params travel as strings (the wire's `map<string, string>`). Scalars are written as they
/// read; a YAML list or mapping (a subprocess RM's argv or env) becomes JSON, which the RM parses.
private func paramText(_ value: Any) -> String {
    switch value {
    case let list as [Any]:
        return "[" + list.map(paramJSON).joined(separator: ",") + "]"
    case let map as [String: Any]:
        return paramJSON(map)
    default:
        return "\(value)"
    }
}

private func paramJSON(_ value: Any) -> String {
    switch value {
    case let text as String: return JSONLines.quoted(text)
    case let list as [Any]: return "[" + list.map(paramJSON).joined(separator: ",") + "]"
    case let map as [String: Any]:
        return "{" + map.keys.sorted().map { JSONLines.quoted($0) + ":" + paramJSON(map[$0]!) }.joined(separator: ",")
            + "}"
    case let flag as Bool: return flag ? "true" : "false"
    case is NSNull: return "null"
    case let number as Int: return "\(number)"
    case let number as Double where number.isFinite: return "\(number)"
    default: return JSONLines.quoted("\(value)")
    }
}

private struct Section {
    let map: [String: Any]
    let path: String
    let source: String

    init(_ map: [String: Any], path: String, source: String) {
        self.map = map
        self.path = path
        self.source = source
    }

    func error(_ key: String, _ message: String) -> ConfigError {
        ConfigError("\(source): \(path.isEmpty ? key : path + "." + key) \(message)")
    }

    func allow(_ keys: Set<String>) throws {
        for key in map.keys.sorted() where !keys.contains(key) {
            throw error(key, "is not a known key here; known keys: \(keys.sorted().joined(separator: ", "))")
        }
    }

    func string(_ key: String) throws -> String? {
        guard let v = map[key], !(v is NSNull) else { return nil }
        if v is [Any] { return nil }
        guard let s = v as? String else { throw error(key, "must be a string, got \(v)") }
        return s
    }

    /// One file or folder path, resolved against `base` (the config file's folder) when relative.
    func path(_ key: String, base: String) throws -> String? {
        guard let v = map[key], !(v is NSNull) else { return nil }
        guard let p = v as? String, !p.isEmpty else { throw error(key, "must be a path (a string), got \(v)") }
        return CLIPath.absolute(p, base: base)
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = map[key] else { return nil }
        guard let list = v as? [Any], list.allSatisfy({ $0 is String }) else {
            throw error(key, "must be a list of strings")
        }
        return list.map { $0 as! String }
    }

    func int(_ key: String, min: Int) throws -> Int? {
        guard let v = map[key], !(v is NSNull) else { return nil }
        guard let i = v as? Int else { throw error(key, "must be an integer, got \(v)") }
        guard i >= min else { throw error(key, "must be at least \(min), got \(i)") }
        return i
    }

    func double(_ key: String, min: Double) throws -> Double? {
        guard let v = map[key], !(v is NSNull) else { return nil }
        let d: Double
        if let x = v as? Double {
            d = x
        } else if let i = v as? Int {
            d = Double(i)
        } else {
            throw error(key, "must be a number, got \(v)")
        }
        guard d.isFinite, d >= min else { throw error(key, "must be a finite number >= \(min), got \(d)") }
        return d
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = map[key], !(v is NSNull) else { return nil }
        guard let b = v as? Bool else { throw error(key, "must be true or false, got \(v)") }
        return b
    }

    func section(_ key: String) throws -> Section? {
        guard let v = map[key], !(v is NSNull) else { return nil }
        guard let m = v as? [String: Any] else { throw error(key, "must be a mapping") }
        return Section(m, path: path.isEmpty ? key : path + "." + key, source: source)
    }
}

/// `input: {dir, pattern, iterations, ready, wait_timeout_s}`: one file per iteration, named by a
/// pattern with `{n}` (1-based), written while the run goes (on-policy: sample from the policy trained on
/// the previous iterations, then write the next file). The coordinator waits for each file to be
/// complete: with `ready: done-file` (default) when `FILE.done` exists beside it, with `ready: exists`
/// when the file exists (for writers that rename a finished file into place).
public struct InputPattern: Equatable, Sendable {
    public enum Ready: String, Sendable, CaseIterable {
        case doneFile = "done-file"
        case exists
    }

    /// Absolute.
    public var directory: String
    public var pattern: String
    public var ready = Ready.doneFile
    /// Longest wait for one iteration's input before the run stops (resumable); 0: no limit.
    public var waitTimeoutSeconds: Double = 86_400

    public init(directory: String, pattern: String, ready: Ready = .doneFile, waitTimeoutSeconds: Double = 86_400) {
        self.directory = directory
        self.pattern = pattern
        self.ready = ready
        self.waitTimeoutSeconds = waitTimeoutSeconds
    }

    public func path(forIteration n: Int) -> String {
        let name = pattern.replacingOccurrences(of: "{n}", with: String(n))
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The marker that says the file is complete (`ready: done-file`).
    public func marker(forIteration n: Int) -> String { path(forIteration: n) + ".done" }

    public func isReady(_ n: Int) -> Bool {
        let fm = FileManager.default
        switch ready {
        case .doneFile:
            return fm.fileExists(atPath: marker(forIteration: n)) && fm.fileExists(atPath: path(forIteration: n))
        case .exists: return fm.fileExists(atPath: path(forIteration: n))
        }
    }

    /// What a waiting run says it waits for.
    public func waitingText(forIteration n: Int) -> String {
        ready == .doneFile
            ? "\(path(forIteration: n)) and its marker \(marker(forIteration: n))" : path(forIteration: n)
    }

    fileprivate static func parse(_ s: Section, base: String) throws -> InputPattern {
        try s.allow(["dir", "pattern", "iterations", "ready", "wait_timeout_s"])
        guard let dir = try s.string("dir"), !dir.isEmpty else {
            throw s.error("dir", "is missing: the folder the iteration files are written to")
        }
        guard let pattern = try s.string("pattern"), pattern.contains("{n}"), !pattern.contains("/") else {
            throw s.error(
                "pattern", "must be a file name with {n} for the iteration number, for example \"iteration-{n}.jsonl\"")
        }
        var out = InputPattern(directory: CLIPath.absolute(dir, base: base), pattern: pattern)
        if let ready = try s.string("ready") {
            guard let r = Ready(rawValue: ready) else {
                throw s.error("ready", "'\(ready)' is not one of done-file, exists")
            }
            out.ready = r
        }
        out.waitTimeoutSeconds = try s.double("wait_timeout_s", min: 0) ?? out.waitTimeoutSeconds
        return out
    }
}
