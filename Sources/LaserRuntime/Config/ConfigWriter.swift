import LaserCore
import LaserRewardModels

extension RunConfig {
    /// A digest of everything that shapes the run's output (network and local-worker settings left
    /// out): a resume with a config of another digest would not reproduce the interrupted run.
    public var semanticDigest: String { contentDigest(semanticYAML.utf8) }

    /// The top-level keys (and reward_models entries) in which this config's output-shaping part differs
    /// from `other`'s, for a refusal that says what changed.
    public func differingKeys(from other: RunConfig) -> [String] {
        func sections(_ yaml: String) -> [String: String] {
            var out: [String: String] = [:]
            var key = ""
            for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
                if let first = line.first, first != " ", first != "#", let colon = line.firstIndex(of: ":") {
                    key = String(line[..<colon])
                }
                if !key.isEmpty { out[key, default: ""] += line + "\n" }
            }
            return out
        }
        let a = sections(semanticYAML), b = sections(other.semanticYAML)
        return Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
    }

    /// The config with everything that does not shape the output (network, workers, security, metrics,
    /// placement, shard size) set to defaults: what the digest covers.
    var semanticYAML: String {
        var c = self
        let defaults = RunConfig(inputs: inputs, iterations: iterations, rewardModels: rewardModels)
        c.bind = defaults.bind
        c.scheduler = defaults.scheduler
        c.maxMessageBytes = defaults.maxMessageBytes
        c.localWorkers = defaults.localWorkers
        c.workerSlots = defaults.workerSlots
        c.shardSize = defaults.shardSize
        c.security = defaults.security
        c.placement = defaults.placement
        c.metrics = defaults.metrics
        c.inputPattern?.waitTimeoutSeconds = InputPattern(directory: "", pattern: "").waitTimeoutSeconds
        c.allowUnrewarded = defaults.allowUnrewarded
        return c.yaml()
    }

    /// The config as YAML, every key spelled out (the run directory's config.yaml).
    public func yaml() -> String {
        func q(_ s: String) -> String { JSONLines.quoted(s) }  // JSON strings are valid YAML scalars
        var y = "# laser run configuration (every key: docs/configuration.md)\n"
        if let p = inputPattern {
            y +=
                "input:\n  dir: \(q(p.directory))\n  pattern: \(q(p.pattern))\n  ready: \(p.ready.rawValue)\n  wait_timeout_s: \(p.waitTimeoutSeconds)\n"
        } else {
            y += "input:\n" + inputs.map { "  - \(q($0))\n" }.joined()
        }
        y += "iterations: \(iterations)\n"
        y += "seed: \(seed)\n"
        y += "strategy: \(strategy.rawValue)\n"
        if let f = fixedRM { y += "fixed_rm: \(q(f))\n" }
        if let preset { y += "preset: \(preset)\n" }
        y += "linucb:\n  alpha: \(alpha)\n  lambda: \(lambda)\n"
        // Only when changed, so the digest of a config from before the section existed stays the same.
        if bandit != BanditOptions() {
            y +=
                "bandit:\n  warm_start: \(bandit.warmStart.rawValue)\n  ties: \(bandit.ties.rawValue)\n  first_reward: \(bandit.firstReward.rawValue)\n"
            y += "  record_decisions: \(bandit.record.rawValue)\n"
        }
        y += "exp3:\n  gamma: \(gamma)\n"
        // Only when used; priors inline, so the run's config.yaml (and its digest) holds their values.
        if strategy == .thompson || !priors.isEmpty || thompsonV != 0.5 {
            y += "thompson:\n  v: \(thompsonV)\n"
            if !priors.isEmpty {
                y +=
                    "  priors:\n"
                    + rewardModels.compactMap { rm in
                        priors[rm.name].map { "    \(q(rm.name)): {mean: \($0.mean), variance: \($0.variance)}\n" }
                    }.joined()
            }
        }
        y += "agreement:\n  threshold: \(agreementThreshold)\n"
        y += "batch_size: \(batchSize)\nshard_size: \(shardSize)\npipeline_depth: \(pipelineDepth)\n"
        y += "mode: \(mode.rawValue)\ngranularity: \(granularity.rawValue)\n"
        y += "context:\n  dimension: \(contextDimension)\n  ngrams: \(contextNgrams)\n"
        y += "pairs:\n  mode: \(pairs.mode.rawValue)\n  max_pairs: \(pairs.maxPairs)\n  margin: \(pairs.margin)\n"
        y += "reward:\n  source: \(rewardSource.rawValue)\n  normalize: \(normalizeRewards)\n"
        // Only when changed, so the digest of a config from before the key existed stays the same.
        let defaults = RunConfig(inputs: inputs, iterations: iterations, rewardModels: rewardModels)
        if maxAbsLoss != defaults.maxAbsLoss { y += "  max_abs_loss: \(maxAbsLoss)\n" }
        if probeSize != defaults.probeSize { y += "  probe_size: \(probeSize)\n" }
        if probeConsensus != defaults.probeConsensus { y += "  probe_consensus: \(probeConsensus.rawValue)\n" }
        // Not output-shaping, but a resume (which reads this file) must start the same way.
        if allowUnrewarded { y += "  allow_unrewarded: true\n" }
        y += "reward_models:\n"
        for rm in rewardModels {
            y += "  - name: \(q(rm.name))\n    kind: \(q(rm.kind))\n"
            if !rm.params.isEmpty {
                y += "    params:\n" + rm.params.keys.sorted().map { "      \($0): \(q(rm.params[$0]!))\n" }.joined()
            }
        }
        if placement != Placement() {
            y += "placement:\n  idle_report_s: \(placement.idleReportSeconds)\n"
            let d = placement.dynamic
            if d != DynamicPlacementSettings() {
                y += "  dynamic:\n"
                if let m = d.minResidencySeconds { y += "    min_residency_s: \(m)\n" }
                y += "    recent_selections: \(d.recentSelections)\n    assumed_load_s: \(d.assumedLoadSeconds)\n"
                y += "    load_timeout_s: \(d.loadTimeoutSeconds)\n"
            }
            for (key, table) in [("by_worker", placement.byWorker), ("by_label", placement.byLabel)]
            where !table.isEmpty {
                y +=
                    "  \(key):\n"
                    + table.keys.sorted().map { "    \(q($0)): [\(table[$0]!.map(q).joined(separator: ", "))]\n" }
                    .joined()
            }
        }
        y +=
            "network:\n  bind: \(q(bind))\n  heartbeat_ms: \(scheduler.heartbeatIntervalMs)\n  liveness: \(scheduler.liveness)\n"
        y +=
            "  lease_ms: \(scheduler.leaseMs)\n  max_attempts: \(scheduler.maxAttempts)\n  max_message_bytes: \(maxMessageBytes)\n"
        y +=
            "  max_slots_per_worker: \(scheduler.maxSlotsPerWorker)\n  quarantine_after: \(scheduler.quarantineAfter)\n"
        y += "  quarantine_seconds: \(scheduler.quarantineSeconds)\n"
        y += "workers:\n  local: \(localWorkers)\n  slots: \(workerSlots)\n"
        if workerRMCapacity > 0 { y += "  rm_capacity: \(workerRMCapacity)\n" }
        if workerMemoryBudget > 0 { y += "  memory_budget: \(workerMemoryBudget)\n" }
        if !workerRMMemory.isEmpty {
            y += "  rm_memory: {\(workerRMMemory.keys.sorted().map { "\(q($0)): \(workerRMMemory[$0]!)" }.joined(separator: ", "))}\n"
        }
        // Only when set: an unsecured config stays as before, and a user can append a security section.
        if security != SecuritySettings() {
            y += "security:\n  curve: \(security.curve)\n"
            if let k = security.serverKey { y += "  server_key: \(q(k))\n" }
            if let d = security.allowedClients { y += "  allowed_workers: \(q(d))\n" }
            if let d = security.allowedTrainers { y += "  allowed_trainers: \(q(d))\n" }
        }
        if let port = metrics.port { y += "metrics:\n  port: \(port)\n  bind: \(q(metrics.bind))\n" }
        return y
    }
}
