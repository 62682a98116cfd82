import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Show a running job: workers, their RMs, load and health, the queue, throughput, and the bandit's arms.",
        discussion: """
            SOURCE is a run directory (reads its status.json, rewritten every second by the coordinator) or a \
            coordinator's metrics address host:port (needs --metrics-port / metrics.port; works from another machine).
            """)

    @Argument(help: "A run directory, or the metrics address host:port (or http://host:port/metrics).")
    var source: String

    @Flag(help: "Refresh until the run ends (Ctrl-C to stop).")
    var watch = false

    @Option(help: "Seconds between refreshes with --watch.")
    var interval: Double = 1

    @Option(help: "Seconds to wait for a metrics endpoint to answer.")
    var timeout: Double = 5

    mutating func run() throws {
        guard interval >= 0.1, timeout > 0 else {
            throw ValidationError("--interval must be at least 0.1 and --timeout above 0")
        }
        do {
            let from = try StatusSource.parse(source)
            let terminal = isatty(STDOUT_FILENO) == 1
            var first = true
            while true {
                let status = try from.read(timeoutSeconds: timeout)
                let text = StatusTable.render(status, source: from.description)
                if watch && terminal {
                    print("\u{1B}[H\u{1B}[2J" + text, terminator: "")
                } else {
                    if !first { print("") }
                    print(text, terminator: "")
                }
                fflush(nil)
                first = false
                guard watch, status.phase == "running" || status.phase == "idle" else { break }
                usleep(UInt32(interval * 1_000_000))
            }
        } catch {
            throw fail(error)
        }
    }
}
