import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write RUN_DIR/report.html: one self-contained page with charts of a run (opens offline).",
        discussion:
            "RM chosen per task family over the run, reward per arm, pair accuracy per iteration, throughput and worker utilisation, and the agreement matrix between RMs (ensemble runs). laser run writes it at the end of every run."
    )

    @Argument(help: "The run directory.")
    var runDirectory: String

    @Option(help: "Where to write the HTML (default: RUN_DIR/report.html).")
    var out: String?

    mutating func run() throws {
        do {
            let path = try RunReport.write(runDirectory: runDirectory, to: out)
            print("report: \(path)")
        } catch {
            throw fail(error)
        }
    }
}
