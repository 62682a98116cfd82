import Foundation
import LaserCore
import LaserDemo
import LaserRewardModels

/// The embedded default job: demo data generated from a seed into the run directory, and a config
/// that ranks it with the five built-in rule-based RMs.
public enum DemoJob {
    public static let iterations = 5
    public static let promptsPerTask = 96
    public static let candidatesPerPrompt = 6

    /// The demo's RMs. Arm 0 is what LinUCB tries first; `length` goes first so that learning shows.
    public static let rewardModels: [RewardModelSpec] = [
        RewardModelSpec(name: "length", kind: "length", params: ["prefer": "shorter"]),
        RewardModelSpec(name: "self-consistency", kind: "self-consistency"),
        RewardModelSpec(name: "arithmetic-check", kind: "arithmetic-check"),
        RewardModelSpec(name: "instruction-following", kind: "instruction-following"),
        RewardModelSpec(name: "answer-match", kind: "answer-match"),
    ]

    /// Writes `input/iteration-N.jsonl` and `config.yaml` into `directory` and returns the config.
    public static func prepare(
        in directory: String, seed: UInt64, strategy: StrategyKind = .linucb,
        fixedRM: String? = nil, iterations: Int = iterations,
        promptsPerTask: Int = promptsPerTask
    ) throws -> RunConfig {
        // Absolute: the returned config's inputs are used from wherever laser runs.
        let directory = CLIPath.absolute(directory)
        try AtomicFile.makeDirectory(directory + "/input")
        var inputs: [String] = []
        let batchSize = 8
        for it in 1...iterations {
            let prompts = DemoDataset.generate(
                iteration: it, seed: seed, promptsPerTask: promptsPerTask,
                candidatesPerPrompt: candidatesPerPrompt, batchSize: batchSize)
            let path = directory + "/input/iteration-\(it).jsonl"
            try AtomicFile.write(prompts.map(line).joined(separator: "\n") + "\n", to: path)
            inputs.append(path)
        }
        var config = RunConfig(inputs: inputs, iterations: iterations, rewardModels: rewardModels)
        config.seed = seed
        config.strategy = strategy
        config.fixedRM = fixedRM
        config.batchSize = batchSize
        config.contextDimension = 128
        // The paper's alpha = 0.1 never leaves arm 0 on this data within a few hundred batches (see
        // docs/architecture.md); 2.0 explores enough to find each family's RM within the demo.
        config.alpha = 2.0
        // The file names its inputs relative to itself (a config's `input:` entries are read relative to
        // the config's folder), so the folder can be moved or copied to another machine as a whole.
        var written = config
        written.inputs = (1...iterations).map { "input/iteration-\($0).jsonl" }
        try AtomicFile.write(written.yaml(), to: directory + "/config.yaml")
        return config
    }

    static func line(_ p: DemoPrompt) -> String {
        var s =
            "{\"id\":\(JSONLines.quoted(p.id)),\"task\":\(JSONLines.quoted(p.task)),\"prompt\":\(JSONLines.quoted(p.prompt))"
        if let r = p.reference { s += ",\"reference\":\(JSONLines.quoted(r))" }
        s += ",\"candidates\":["
        s += p.candidates.map { "{\"text\":\(JSONLines.quoted($0.text)),\"correct\":\($0.correct)}" }.joined(
            separator: ",")
        return s + "]}"
    }
}
