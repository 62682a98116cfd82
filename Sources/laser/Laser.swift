import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

@main
struct Laser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laser",
        abstract: "LASeR on a cluster: a coordinator picks one reward model per mini-batch with a bandit; workers score; preference batches come out.",
        version: laserVersion,
        subcommands: [Run.self, CoordinatorCommand.self, WorkerCommand.self, StatusCommand.self, ReportCommand.self, FeedbackCommand.self, TrainerSim.self, DemoData.self, KeyGen.self, ValidateCommand.self, CalibrateCommand.self, ExportCommand.self],
        defaultSubcommand: Run.self)
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String?

    @Option(help: "Log format: text (default) or json (one JSON object per line, for log shippers).")
    var logFormat: String?

    /// The same logging options for child processes (local workers).
    var forwarded: [String] { logFormat.map { ["--log-format", $0] } ?? [] }

    func logger(_ label: String, default level: Logger.Level) throws -> Logger {
        let chosen: Logger.Level
        if let s = logLevel {
            guard let l = Logger.Level(rawValue: s) else {
                throw ValidationError("--log-level \(s) is not one of trace, debug, info, notice, warning, error")
            }
            chosen = l
        } else {
            chosen = level
        }
        let json: Bool
        switch logFormat {
        case nil, "text": json = false
        case "json": json = true
        case let other?: throw ValidationError("--log-format \(other) is not one of text, json")
        }
        var logger = Logger(label: label) { json ? JSONLogHandler(label: $0) as LogHandler : StreamLogHandler.standardError(label: $0) }
        logger.logLevel = chosen
        return logger
    }
}

/// Signals that must not kill a long-running role: a peer closing a pipe (SIGPIPE), and a write past
/// a file-size limit (SIGXFSZ), which should be an error laser reports, with the run resumable.
func ignoreFatalSignals() {
    signal(SIGPIPE, SIG_IGN)
    signal(SIGXFSZ, SIG_IGN)
    // A process started from a thread that blocks signals (a Dispatch worker thread, some job
    // launchers) inherits that mask and would never see SIGTERM or SIGINT: stop, Ctrl-C and Slurm's
    // cancel must work, so start from an empty mask.
    var none = sigset_t()
    sigemptyset(&none)
    sigprocmask(SIG_SETMASK, &none, nil)
}

/// Prints an error the way a user should see it (no stack trace) and exits non-zero.
func fail(_ error: Error) -> ExitCode {
    if let stop = error as? RunInterrupted {
        // Not an error: a requested stop, with what to do next (exit status 128 + signal).
        FileHandle.standardError.write(Data("laser: \(stop)\n".utf8))
        return ExitCode(stop.exitCode)
    }
    FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
    return ExitCode(1)
}

/// An error in words: Foundation's file errors ("NSCocoaErrorDomain Code=640") become what happened,
/// to which file, and what to do; laser's own errors are already worded.
func describe(_ error: Error) -> String {
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return "\(error)" }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    var code = ns.domain == NSPOSIXErrorDomain ? Int32(ns.code) : nil
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain { code = Int32(underlying.code) }
    if ns.domain == NSCocoaErrorDomain && ns.code == NSFileWriteOutOfSpaceError { code = ENOSPC }
    guard let code else { return "\(error)" }
    let hint = code == ENOSPC || code == EDQUOT ? "; free space on that file system, then resume the run (laser run --resume RUN_DIR)"
        : code == EACCES || code == EROFS ? "; check the permissions" : ""
    return "\(path.map { "\($0): " } ?? "")\(String(cString: strerror(code))) (errno \(code))\(hint)"
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole job on this machine: coordinator plus local worker processes.",
        discussion: "Without CONFIG, runs the built-in demo (generated data, five rule-based RMs, no download).")

    @Argument(help: "A run config (YAML). Omit for the built-in demo (or, with --resume, to use the run's own config).")
    var config: String?

    @Option(help: "Run directory (default: runs/run-<time> in the current folder).")
    var out: String?

    @Option(help: "Continue the interrupted run in this run directory (its journal and config.yaml).")
    var resume: String?

    @Flag(help: "With --resume: continue even if the config or an input file changed.")
    var force = false

    @Option(help: "Local worker processes to start (overrides workers.local).")
    var workers: Int?

    @Option(help: ArgumentHelp("Selection strategy (overrides the config): \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")) (fixed needs --fixed-rm)."))
    var strategy: String?

    @Option(help: "RM for --strategy fixed.")
    var fixedRm: String?

    @Option(help: "Seed (overrides the config; for the demo it also seeds the data).")
    var seed: UInt64?

    @Flag(help: "Run every strategy (and every single RM) on the same data and compare pair accuracy.")
    var compare = false

    @Flag(help: "No live progress line.")
    var noProgress = false

    @Option(help: "Serve Prometheus metrics on this port (overrides metrics.port; 0 picks a free port).")
    var metricsPort: Int?

    @Option(help: "Address the metrics endpoint listens on (overrides metrics.bind; default 127.0.0.1).")
    var metricsBind: String?

    @Flag(help: "Do not write RUN_DIR/report.html at the end.")
    var noReport = false

    @Flag(help: "Check the config and every input file, print what would run, and stop (creates nothing).")
    var dryRun = false

    @Option(help: "With reward.source: trainer-loss, start a SIMULATED trainer taking this many ms per step (a stand-in loss, no model).")
    var simulateTrainer: Double?

    @Flag(help: "Use CURVE secret key files that group or others may read (refused otherwise, as ssh does).")
    var allowInsecureKeyPermissions = false

    @OptionGroup var logging: LoggingOptions

    mutating func run() throws {
        ignoreFatalSignals()
        StopSignal.install()
        let logger = try logging.logger("laser", default: .warning)
        if resume != nil && (out != nil || compare) { throw ValidationError("--resume names the run directory; it does not go with --out or --compare") }
        // `laser stauts` would be read as the config path of the default command: suggest the command.
        if let config, !FileManager.default.fileExists(atPath: config), !config.contains("/"), !config.contains("."),
           let near = Laser.configuration.subcommands.compactMap({ $0.configuration.commandName }).min(by: { editDistance($0, config) < editDistance($1, config) }),
           editDistance(near, config) <= 2 {
            throw ValidationError("'\(config)' is neither a command nor a config file; did you mean: laser \(near)?")
        }
        var created: String?
        do {
            try checkMetricsPort(metricsPort, bind: metricsBind)
            // The config and every input it names are checked before a run directory is made, so a typo
            // or a bad line leaves nothing behind (laser validate does only this).
            var loaded: RunConfig?
            if let resume, config == nil {
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
            let existed = out.map { FileManager.default.fileExists(atPath: $0) } ?? false
            let dir = try resume.map { try RunDirectory.existing(path: $0) } ?? out.map { try RunDirectory(path: $0) } ?? RunDirectory.fresh(under: "runs")
            // One writer per run directory: before anything is written into it (demo data, config).
            if !compare { try RunDirectoryLock.acquire(dir.path) }
            if resume == nil && !existed { created = dir.path }
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
            if let warning = validated?.unrewardedWarning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
            if compare {
                try runComparison(base, dir, logger)
            } else {
                print("run directory: \(dir.path)")
                do {
                    var local = LocalRun(config: base, runDirectory: dir, executable: LocalRun.currentExecutable(),
                                         logger: logger, showProgress: !noProgress, resume: resume != nil, force: force)
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
                    throw RunFailure("\(error)\nEverything done so far is kept in \(dir.path); continue with: laser run --resume \(dir.path)")
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
        c.security.allowInsecureKeyPermissions = allowInsecureKeyPermissions
        if let seed { c.seed = seed }
        try applyMetricsOptions(port: metricsPort, bind: metricsBind, to: &c)
        if let s = strategy {
            guard let k = StrategyKind(rawValue: s) else {
                throw ValidationError("--strategy \(s) is not one of \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.strategy = k
        }
        if let f = fixedRm {
            guard c.rewardModels.contains(where: { $0.name == f }) else {
                throw ValidationError("--fixed-rm \(f) is not one of \(c.rewardModels.map(\.name).joined(separator: ", "))")
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
            let s = try LocalRun(config: c, runDirectory: sub, executable: LocalRun.currentExecutable(),
                                 logger: logger, showProgress: false).run()
            let calls = s.iterations.reduce(0) { $0 + $1.rmCalls.values.reduce(0, +) }
            let wall = s.iterations.reduce(0) { $0 + $1.wallSeconds }
            rows.append([label, "\(s.iterations.reduce(0) { $0 + $1.pairs })",
                         SummaryTable.pairAccuracy(s).map { String(format: "%.3f", $0) } ?? "n/a",
                         SummaryTable.pairAccuracy(s, lastIterationOnly: true).map { String(format: "%.3f", $0) } ?? "n/a",
                         "\(calls)", String(format: "%.2f", wall)])
            if label == "linucb" { print(SummaryTable.render(s)) }
        }
        print("Label-based pair accuracy per strategy (same data, same seed). A single rule-based RM abstains")
        print("(emits no pairs) where it has no signal, so compare pairs as well as accuracy:")
        print(SummaryTable.grid(rows))
        print("run directories: \(dir.path)/<strategy>")
    }
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run only the coordinator; workers connect from anywhere with `laser worker --connect`.")

    @Argument(help: "The run config (YAML). Optional with --resume (the run's own config.yaml is used).")
    var config: String?

    @Option(help: "ZeroMQ endpoint to bind (overrides network.bind), e.g. tcp://0.0.0.0:5555.")
    var bind: String?

    @Option(help: "Run directory (default: runs/run-<time>).")
    var out: String?

    @Option(help: "Continue the interrupted run in this run directory.")
    var resume: String?

    @Flag(help: "With --resume: continue even if the config or an input file changed.")
    var force = false

    @Option(help: "Serve Prometheus metrics on this port (overrides metrics.port; 0 picks a free port).")
    var metricsPort: Int?

    @Option(help: "Address the metrics endpoint listens on (overrides metrics.bind; default 127.0.0.1).")
    var metricsBind: String?

    @Flag(help: "Use a CURVE secret key file that group or others may read (refused otherwise, as ssh does).")
    var allowInsecureKeyPermissions = false

    @Flag(help: "No live progress line.")
    var noProgress = false

    @OptionGroup var logging: LoggingOptions

    mutating func run() throws {
        ignoreFatalSignals()
        StopSignal.install()
        let logger = try logging.logger("laser.coordinator", default: .info)
        guard config != nil || resume != nil else { throw ValidationError("give a CONFIG, or --resume RUN_DIR") }
        if resume != nil && out != nil { throw ValidationError("--resume names the run directory; it does not go with --out") }
        var created: String?
        do {
            try checkMetricsPort(metricsPort, bind: metricsBind)
            // The config and every input it names are checked before a run directory is made.
            var c = try RunConfig.load(path: config ?? RunDirectory.existing(path: resume!).configPath)
            if let bind {
                if let problem = Endpoint.problem(bind, bind: true) { throw ConfigError("--bind \(problem)") }
                c.bind = bind
            }
            c.security.allowInsecureKeyPermissions = allowInsecureKeyPermissions
            try applyMetricsOptions(port: metricsPort, bind: metricsBind, to: &c)
            let validated = try ValidatedInputs.check(c)
            if let warning = validated.unrewardedWarning { logger.warning("\(warning)") }
            let existed = out.map { FileManager.default.fileExists(atPath: $0) } ?? false
            let dir = try resume.map { try RunDirectory.existing(path: $0) } ?? out.map { try RunDirectory(path: $0) } ?? RunDirectory.fresh(under: "runs")
            try RunDirectoryLock.acquire(dir.path)
            if resume == nil && !existed { created = dir.path }
            let service = try CoordinatorService(config: c, runDirectory: dir, logger: logger, resume: resume != nil, force: force,
                                                 validated: validated)
            if resume == nil || service.startedAfresh { try AtomicFile.write(c.yaml(), to: dir.configPath) }
            // RUN_DIR/endpoint before the line below: whoever reads that line may read the file next
            // (service.run() writes it again).
            try AtomicFile.write(service.endpoint + "\n", to: dir.path + "/endpoint")
            // Unbuffered: scripts and tests read the endpoint from a pipe while the run goes on.
            FileHandle.standardOutput.write(Data("coordinator listening on \(service.endpoint); run directory \(dir.path)\n".utf8))
            if let url = service.observer.metricsAddress { FileHandle.standardOutput.write(Data("metrics on \(url)\n".utf8)) }
            let printer = ProgressPrinter(enabled: !noProgress)
            service.onStatus = { printer.update($0) }
            let summary = try service.run()
            printer.finish()
            print(SummaryTable.render(summary))
        } catch {
            if let created { removeIfUntouched(created) }
            throw fail(error)
        }
    }
}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker that hosts reward models and scores candidates for a coordinator.")

    @Option(help: "The coordinator's endpoint, e.g. tcp://10.0.0.5:5555.")
    var connect: String

    @Option(help: "Unique worker name (default: HOST-PID).")
    var id: String?

    @Option(name: .customLong("rm"), help: "An RM (by its name in the run config) to offer; repeat for several. Default: every RM of --rm-config, or else any built-in RM the coordinator assigns.")
    var rewardModels: [String] = []

    @Option(help: "YAML file with this worker's own reward_models list (a run config will do). Subprocess and http RMs run only from here, never from the coordinator's message (docs/security.md).")
    var rmConfig: String?

    @Option(help: "Score tasks accepted at once.")
    var slots: UInt32 = 2

    @Option(help: "Largest message accepted from the coordinator, in bytes (keep it at least the run's network.max_message_bytes).")
    var maxMessageBytes: Int64 = 256 << 20

    @Option(name: .customLong("label"), help: "A label for the run's placement (e.g. a100); repeat for several.")
    var labels: [String] = []

    @Option(help: "Serve this worker's Prometheus metrics on this port (0: any free port; printed at start).")
    var metricsPort: Int?

    @Option(help: "Address for --metrics-port (127.0.0.1: this machine only; 0.0.0.0: all interfaces).")
    var metricsBind = "127.0.0.1"

    @Option(help: "Exit when no coordinator answers for this many seconds (0: wait forever). It says it is still trying after 5 s.")
    var giveUpAfter: Double = 600

    @Option(help: .hidden)
    var parentPid: Int32?
    @Option(help: "The coordinator's CURVE public key file (NAME.pub); with --key, connect encrypted.")
    var serverKey: String?

    @Option(help: "This worker's CURVE key file (NAME.key from laser keygen); its NAME.pub must be in the coordinator's allowed_workers.")
    var key: String?

    @Flag(help: "Use a --key file that group or others may read (refused otherwise, as ssh does).")
    var allowInsecureKeyPermissions = false

    @OptionGroup var logging: LoggingOptions

    mutating func run() throws {
        ignoreFatalSignals()
        let logger = try logging.logger("laser.worker", default: .info)
        guard slots >= 1 else { throw ValidationError("--slots must be at least 1") }
        guard (serverKey == nil) == (key == nil) else {
            throw ValidationError("CURVE needs both --server-key (the coordinator's NAME.pub) and --key (this worker's NAME.key)")
        }
        if let problem = Endpoint.problem(connect, bind: false) { throw ValidationError("--connect \(problem)") }
        let name = id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        do {
            let local = try rmConfig.map { try RunConfig.loadRewardModels(path: CLIPath.absolute($0)) } ?? []
            let offer = try LocalRewardModels(definitions: local, selected: rewardModels)
            guard maxMessageBytes >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
            var options = WorkerOptions(endpoint: connect, workerID: name, rewardModels: offer.offered, slots: slots,
                                        giveUpAfterSeconds: giveUpAfter, maxMessageBytes: maxMessageBytes)
            options.localDefinitions = local
            options.parentPID = parentPid
            options.labels = labels
            // MetricsHTTPServer checks the port and the address and says what is wrong.
            options.metricsPort = metricsPort
            options.metricsBind = metricsBind
            if let serverKey, let key {
                try options.useCurve(serverKeyFile: serverKey, keyFile: key, allowInsecurePermissions: allowInsecureKeyPermissions) { logger.warning("\($0)") }
            }
            let worker = try WorkerService(options: options, logger: logger)
            switch try worker.run() {
            case .shutdown: return
            case .rejected(let reason): throw RunFailure("the coordinator rejected this worker: \(reason)")
            case .refused(let reason): throw RunFailure("this worker refused the coordinator's assignment: \(reason)")
            case .gaveUp:
                // A refused CURVE handshake looks like silence from here, so say what to check.
                let hint = key == nil
                    ? " (if the coordinator runs with security.curve, pass --server-key and --key)"
                    : " (with CURVE: is this worker's .pub in the coordinator's allowed_workers, and --server-key the coordinator's .pub?)"
                throw RunFailure("no coordinator answered at \(connect) within \(giveUpAfter) s\(hint)")
            }
        } catch {
            throw fail(error)
        }
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a run config and every input file it names (a streaming pass), print what would run, and create nothing.")

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
            throw ValidationError("--iterations must be at least 1 and --prompts-per-task between 1 and \(DemoDataset.maxPromptsPerTask)")
        }
        do {
            let c = try DemoJob.prepare(in: out, seed: seed, iterations: iterations, promptsPerTask: promptsPerTask)
            print("wrote \(c.inputs.count) input files and \(out)/config.yaml")
        } catch {
            throw fail(error)
        }
    }
}

struct KeyGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a CURVE key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub (share this one).",
        discussion: """
            The coordinator's NAME.key goes in security.server_key; each worker's NAME.pub goes into the \
            coordinator's security.allowed_workers folder (a trainer's into security.allowed_trainers); workers run with --server-key coordinator.pub --key NAME.key.
            """)

    @Option(help: "Folder to write into (created with mode 0700 if missing).")
    var out: String

    @Option(help: "Key name: the files are NAME.key and NAME.pub.")
    var name: String

    mutating func run() throws {
        do {
            let written = try CurveKeyFiles.generate(directory: out, name: name)
            print("wrote \(written.secretKeyPath) (secret, keep private) and \(written.publicKeyPath) (public key \(written.keyPair.publicKey))")
        } catch {
            throw fail(error)
        }
    }
}

struct FeedbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback",
        abstract: "Report a trainer's loss on one batch to the run's coordinator (for file-watching trainers).",
        discussion: "The batch is ITERATION/BATCH as in its file name iterations/IIII/batch-BBBB.jsonl (e.g. 2/7), or the global batch number. Exits 0 when the coordinator accepted the loss.")

    @Argument(help: "The run directory.")
    var runDirectory: String

    @Option(help: "ITERATION/BATCH (e.g. 2/7) or the global batch number.")
    var batch: String

    @Option(help: "The trainer's loss on that batch, at its optimiser step.")
    var loss: Double

    @Option(help: "With reward.source: prediction-gain, the loss on the same pairs after the step.")
    var lossAfter: Double?

    @Option(help: "The coordinator's endpoint (default: from RUN_DIR/endpoint).")
    var connect: String?

    @Option(help: "Seconds to wait for the coordinator's answer.")
    var timeout: Double = 10

    mutating func run() throws {
        var feedback = BatchFeedback(globalBatch: 0, loss: loss, lossAfter: lossAfter)
        let parts = batch.split(separator: "/")
        if parts.count == 2, let i = UInt32(parts[0]), let b = UInt32(parts[1]), i > 0, b > 0 {
            feedback.iteration = i
            feedback.batch = b
        } else if let g = UInt64(batch) {
            feedback.globalBatch = g
        } else {
            throw ValidationError("--batch \(batch): give ITERATION/BATCH (e.g. 2/7) or a global batch number")
        }
        do {
            let endpoint = try connect ?? FeedbackClient.endpoint(runDirectory: runDirectory)
            let ack = try FeedbackClient.send(feedback, to: endpoint, timeoutSeconds: timeout)
            if ack.accepted {
                print("accepted: loss \(loss) for batch \(ack.globalBatch)")
            } else {
                throw RunFailure("the coordinator refused the loss: \(ack.reason)")
            }
        } catch {
            throw fail(error)
        }
    }
}

struct TrainerSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trainer-sim",
        abstract: "A SIMULATED trainer for tests and benchmarks: takes batches, sleeps, reports a stand-in loss.",
        discussion: "The stand-in loss is the mean of log(1 + exp(-(chosen_score - rejected_score))) over the batch's pairs: no model is trained. For a real trainer see clients/python.")

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

/// --metrics-port / --metrics-bind over the config's metrics section, and a check that the port is
/// free before anything is written (the coordinator binds it for real when it starts).
func applyMetricsOptions(port: Int?, bind: String?, to config: inout RunConfig) throws {
    if let port {
        guard (0...65535).contains(port) else { throw ValidationError("--metrics-port \(port) is not a TCP port (0-65535; 0 picks a free one)") }
        config.metrics.port = port
    }
    if let bind {
        guard config.metrics.port != nil else { throw ValidationError("--metrics-bind needs --metrics-port (or metrics.port in the config)") }
        config.metrics.bind = bind
    }
    if let p = config.metrics.port, p != 0 { _ = try MetricsHTTPServer(host: config.metrics.bind, port: p) { [] } }
}

/// A port given on the command line is checked before the run directory is made.
func checkMetricsPort(_ port: Int?, bind: String?) throws {
    guard let port, port != 0 else { return }
    guard (0...65535).contains(port) else { throw ValidationError("--metrics-port \(port) is not a TCP port (0-65535; 0 picks a free one)") }
    _ = try MetricsHTTPServer(host: bind ?? "127.0.0.1", port: port) { [] }
}

/// Removes a run directory this command made when the start failed before anything was written in
/// it (only the empty iterations/ folder), so a failed start leaves no half-made run behind.
func removeIfUntouched(_ path: String) {
    let fm = FileManager.default
    // `.lock` is this process's own (RunDirectoryLock): it does not count as something written.
    guard let top = (try? fm.contentsOfDirectory(atPath: path))?.filter({ $0 != ".lock" }), top.isEmpty || top == ["iterations"],
          (try? fm.contentsOfDirectory(atPath: path + "/iterations"))?.isEmpty ?? true else { return }
    try? fm.removeItem(atPath: path)
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running job: workers, their RMs, load and health, the queue, throughput, and the bandit's arms.",
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
        guard interval >= 0.1, timeout > 0 else { throw ValidationError("--interval must be at least 0.1 and --timeout above 0") }
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

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write RUN_DIR/report.html: one self-contained page with charts of a run (opens offline).",
        discussion: "RM chosen per task family over the run, reward per arm, pair accuracy per iteration, throughput and worker utilisation, and the agreement matrix between RMs (ensemble runs). laser run writes it at the end of every run.")

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

/// Levenshtein distance, for suggesting the command a user mistyped.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}
