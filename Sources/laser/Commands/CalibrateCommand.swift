import ArgumentParser
import Foundation
import LaserRuntime

/// `laser calibrate`: priors for Thompson sampling from a small labelled set (Launcher/Calibration.swift).
struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract:
            "Score a small labelled set with every RM of a config and write per-RM reward priors for strategy: thompson.",
        discussion: """
            Each RM ranks the candidates of INPUT (JSONL with references or correct labels, for example 50 \
            prompts) in mini-batches; its prior is the mean and variance over batches of the label pair \
            accuracy of its pairs. Use the file as thompson.priors in the run config. RMs run here, in this \
            process: subprocess and http RMs start from this machine.
            """)

    @Argument(help: "The run config (YAML) whose reward_models to calibrate.")
    var config: String

    @Option(help: "The labelled JSONL input (the run's input format).")
    var input: String

    @Option(help: "Where to write the priors (YAML).")
    var out: String

    @Option(help: "Prompts per mini-batch (default: the config's batch_size).")
    var batchSize: Int?

    mutating func run() throws {
        if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be at least 1") }
        do {
            let c = try RunConfig.load(path: config)
            let path = CLIPath.absolute(input)
            let result = try Calibration.run(config: c, input: path, batchSize: batchSize)
            try AtomicFile.write(
                Calibration.yaml(result, rms: c.rewardModels.map(\.name), input: input), to: CLIPath.absolute(out))
            for rm in c.rewardModels {
                let p = result.priors[rm.name]!
                print(
                    String(
                        format: "%@: mean %.3f, sd %.3f over %d batches", rm.name, p.mean, p.variance.squareRoot(),
                        result.batches[rm.name] ?? 0))
            }
            print("wrote \(out): use it as thompson.priors (strategy: thompson)")
        } catch {
            throw fail(error)
        }
    }
}
