import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole job on this machine: coordinator plus local worker processes.",
        discussion: "Without CONFIG, runs the built-in demo (generated data, five rule-based RMs, no download).")

    @Argument(help: "A run config (YAML). Omit for the built-in demo (or, with --resume, to use the run's own config).")
    var config: String?

    @Option(help: "Local worker processes to start (overrides workers.local).")
    var workers: Int?

    @Option(
        help: ArgumentHelp(
            "Selection strategy (overrides the config): \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")) (fixed needs --fixed-rm)."
        ))
    var strategy: StrategyKind?

    @Option(help: "RM for --strategy fixed.")
    var fixedRm: String?

    @Option(help: "Seed (overrides the config; for the demo it also seeds the data).")
    var seed: UInt64?

    @Flag(help: "Run every strategy (and every single RM) on the same data and compare pair accuracy.")
    var compare = false

    @Flag(help: "No live progress line.")
    var noProgress = false

    @Flag(help: "Do not write RUN_DIR/report.html at the end.")
    var noReport = false

    @Flag(help: "Check the config and every input file, print what would run, and stop (creates nothing).")
    var dryRun = false

    @Option(
        help:
            "With reward.source: trainer-loss, start a SIMULATED trainer taking this many ms per step (a stand-in loss, no model)."
    )
    var simulateTrainer: Double?

    @OptionGroup var runDirectory: RunDirectoryOptions

    @OptionGroup var metrics: MetricsOptions

    @OptionGroup var keyFiles: KeyFileOptions

    @OptionGroup var logging: LoggingOptions

    mutating func run() throws {
        ignoreFatalSignals()
        StopSignal.install()
        let logger = try logging.logger("laser", default: .warning)
        if runDirectory.resume != nil && compare {
            throw ValidationError("--resume names the run directory; it does not go with --compare")
        }
        // `laser stauts` would be read as the config path of the default command: suggest the command.
        if let config, !FileManager.default.fileExists(atPath: config), !config.contains("/"), !config.contains("."),
            let near = Laser.configuration.subcommands.compactMap({ $0.configuration.commandName }).min(by: {
                editDistance($0, config) < editDistance($1, config)
            }),
            editDistance(near, config) <= 2
        {
            throw ValidationError("'\(config)' is neither a command nor a config file; did you mean: laser \(near)?")
        }
        var created: String?
        do {
            try metrics.checkPortIsFree()
            // The config and every input it names are checked before a run directory is made, so a typo
            // or a bad line leaves nothing behind (laser validate does only this).
            var loaded: RunConfig?
            if let resume = runDirectory.resume, config == nil {
                loaded = try RunConfig.load(path: RunDirectory.existing(path: resume).configPath)
            } else if let config {
                loaded = try RunConfig.load(path: config)
            }
            var validated: ValidatedInputs?
            if loaded != nil {
                try applyOverrides(&loaded!)
                validated = try ValidatedInputs.check(loaded!)
                if dryRun {
                    print(validated!.plan(loaded!))
                    return
                }
            }
            if dryRun && loaded == nil {
                // The demo's data is generated: into a temporary folder, removed again.
                let temp = NSTemporaryDirectory() + "laser-dry-run-\(getpid())"
                defer { try? FileManager.default.removeItem(atPath: temp) }
                var demo = try DemoJob.prepare(in: temp, seed: seed ?? 0)
                try applyOverrides(&demo)
                print(try ValidatedInputs.check(demo).plan(demo))
                return
            }
            let (dir, made) = try runDirectory.directory()
            // One writer per run directory: before anything is written into it (demo data, config).
            if !compare { try RunDirectoryLock.acquire(dir.path) }
            created = made
            if loaded == nil {
                print("laser: no config given, running the built-in demo (3 task families, 5 rule-based RMs)")
                loaded = try DemoJob.prepare(in: dir.path, seed: seed ?? 0)
                try applyOverrides(&loaded!)
                validated = try ValidatedInputs.check(loaded!)
                if dryRun {
                    print(validated!.plan(loaded!))
                    return
                }
            }
            let base = loaded!
            if let warning = validated?.unrewardedWarning {
                FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
            }
            if compare {
                try runComparison(base, dir, logger)
            } else {
                print("run directory: \(dir.path)")
                do {
                    var local = LocalRun(
                        config: base, runDirectory: dir, executable: LocalRun.currentExecutable(),
                        logger: logger, showProgress: !noProgress, resume: runDirectory.resume != nil,
                        force: runDirectory.force)
                    local.validated = validated
                    local.simulatedTrainerStepMs = simulateTrainer
                    local.workerArguments = logging.forwarded
                    local.onStart = { service in
                        if let url = service.observer.metricsAddress { print("metrics: \(url)") }
                        fflush(nil)
                    }
                    let summary: RunSummary
                    do { summary = try local.run() } catch {
                        if !noReport { writeReport(dir, quietly: true) }
                        throw error
                    }
                    print(SummaryTable.render(summary))
                    print("batches: \(dir.path)/iterations   summary: \(dir.summaryPath)")
                    if !noReport { writeReport(dir, quietly: false) }
                } catch let e as ConfigError {
                    throw e
                } catch let e as RunInterrupted {
                    throw e
                } catch {
                    throw RunFailure(
                        "\(error)\nEverything done so far is kept in \(dir.path); continue with: laser run --resume \(dir.path)"
                    )
                }
            }
        } catch let e as ValidationError {
            if let created { removeIfUntouched(created) }
            throw e
        } catch {
            if let created { removeIfUntouched(created) }
            throw fail(error)
        }
    }

    /// The command line's overrides of the config.
    func applyOverrides(_ c: inout RunConfig) throws {
        if let workers { c.localWorkers = workers }
        c.security.allowInsecureKeyPermissions = keyFiles.allowInsecureKeyPermissions
        if let seed { c.seed = seed }
        try metrics.apply(to: &c)
        if let strategy { c.strategy = strategy }
        if let f = fixedRm {
            guard c.rewardModels.contains(where: { $0.name == f }) else {
                throw ValidationError(
                    "--fixed-rm \(f) is not one of \(c.rewardModels.map(\.name).joined(separator: ", "))")
            }
            c.fixedRM = f
            if strategy == nil { c.strategy = .fixed }
        }
        if c.strategy == .fixed && c.fixedRM == nil {
            throw ValidationError("strategy fixed needs --fixed-rm NAME")
        }
    }

    /// The run report; after a failed run only when there is something to show, and never an error of its own.
    func writeReport(_ dir: RunDirectory, quietly: Bool) {
        do {
            let path = try RunReport.write(runDirectory: dir.path)
            print("report: \(path)")
        } catch {
            if !quietly { FileHandle.standardError.write(Data("warning: no report written: \(error)\n".utf8)) }
        }
    }

    func runComparison(_ base: RunConfig, _ dir: RunDirectory, _ logger: Logger) throws {
        var variants: [(String, RunConfig)] = []
        for kind in [StrategyKind.linucb, .thompson, .exp3, .random, .sequential, .ensemble, .agreement] {
            var c = base
            c.strategy = kind
            variants.append((kind.rawValue, c))
        }
        for rm in base.rewardModels {
            var c = base
            c.strategy = .fixed
            c.fixedRM = rm.name
            variants.append(("fixed:\(rm.name)", c))
        }
        var rows: [[String]] = [["strategy", "pairs", "pair accuracy", "last iteration", "RM calls", "wall s"]]
        for (label, c) in variants {
            let sub = try RunDirectory(path: dir.path + "/" + label.replacingOccurrences(of: ":", with: "-"))
            FileHandle.standardError.write(Data("running \(label) ...\n".utf8))
            let s = try LocalRun(
                config: c, runDirectory: sub, executable: LocalRun.currentExecutable(),
                logger: logger, showProgress: false
            ).run()
            let calls = s.iterations.reduce(0) { $0 + $1.rmCalls.values.reduce(0, +) }
            let wall = s.iterations.reduce(0) { $0 + $1.wallSeconds }
            rows.append([
                label, "\(s.iterations.reduce(0) { $0 + $1.pairs })",
                SummaryTable.pairAccuracy(s).map { String(format: "%.3f", $0) } ?? "n/a",
                SummaryTable.pairAccuracy(s, lastIterationOnly: true).map { String(format: "%.3f", $0) } ?? "n/a",
                "\(calls)", String(format: "%.2f", wall),
            ])
            if label == "linucb" { print(SummaryTable.render(s)) }
        }
        print("Label-based pair accuracy per strategy (same data, same seed). A single rule-based RM abstains")
        print("(emits no pairs) where it has no signal, so compare pairs as well as accuracy:")
        print(SummaryTable.grid(rows))
        print("run directories: \(dir.path)/<strategy>")
    }
}
