import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract:
            "Check a run config and every input file it names (a streaming pass), print what would run, and create nothing."
    )

    @Argument(help: "The run config (YAML).")
    var config: String

    mutating func run() throws {
        do {
            let c = try RunConfig.load(path: config)
            print(try ValidatedInputs.check(c).plan(c))
        } catch {
            throw fail(error)
        }
    }
}
