import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct TrainerSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trainer-sim",
        abstract: "A SIMULATED trainer for tests and benchmarks: takes batches, sleeps, reports a stand-in loss.",
        discussion:
            "The stand-in loss is the mean of log(1 + exp(-(chosen_score - rejected_score))) over the batch's pairs: no model is trained. For a real trainer see clients/python."
    )

    @Option(help: "The coordinator's endpoint.")
    var connect: String

    @Option(help: "Milliseconds per simulated training step.")
    var stepMs: Double = 0

    @Option(help: "Batches accepted before their losses are reported.")
    var window: UInt32 = 1

    @Option(help: "Exit when no coordinator answers for this many seconds.")
    var giveUpAfter: Double = 60

    @Option(help: .hidden)
    var parentPid: Int32?

    @OptionGroup var logging: LoggingOptions

    mutating func run() throws {
        ignoreFatalSignals()
        let logger = try logging.logger("laser.trainer-sim", default: .info)
        guard window >= 1 else { throw ValidationError("--window must be at least 1") }
        var options = SimulatedTrainer.Options(endpoint: connect)
        options.stepMs = stepMs
        options.window = window
        options.giveUpAfterSeconds = giveUpAfter
        options.parentPID = parentPid
        do {
            let trainer = try SimulatedTrainer(options: options, logger: logger)
            try trainer.run()
            logger.info("done after \(trainer.stepsTaken) simulated steps")
        } catch {
            throw fail(error)
        }
    }
}
