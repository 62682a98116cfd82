import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct DemoData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-data",
        abstract: "Write the built-in demo's input files and config.yaml to a folder (to run the roles by hand).")

    @Option(help: "Folder to write into.")
    var out: String

    @Option(help: "Seed of the generated data.")
    var seed: UInt64 = 0

    @Option(help: "Iterations (one input file each).")
    var iterations: Int = DemoJob.iterations

    @Option(help: "Prompts per task family per iteration.")
    var promptsPerTask: Int = DemoJob.promptsPerTask

    mutating func run() throws {
        guard iterations >= 1, (1...DemoDataset.maxPromptsPerTask).contains(promptsPerTask) else {
            throw ValidationError(
                "--iterations must be at least 1 and --prompts-per-task between 1 and \(DemoDataset.maxPromptsPerTask)")
        }
        do {
            let c = try DemoJob.prepare(in: out, seed: seed, iterations: iterations, promptsPerTask: promptsPerTask)
            print("wrote \(c.inputs.count) input files and \(out)/config.yaml")
        } catch {
            throw fail(error)
        }
    }
}
