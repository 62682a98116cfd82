import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run only the coordinator; workers connect from anywhere with `laser worker --connect`.")

    @Argument(help: "The run config (YAML). Optional with --resume (the run's own config.yaml is used).")
    var config: String?

    @Option(help: "ZeroMQ endpoint to bind (overrides network.bind), e.g. tcp://0.0.0.0:5555.")
    var bind: String?

    @Flag(help: "No live progress line.")
    var noProgress = false

    @OptionGroup var runDirectory: RunDirectoryOptions

    @OptionGroup var metrics: MetricsOptions

    @OptionGroup var keyFiles: KeyFileOptions

    @OptionGroup var logging: LoggingOptions

    mutating func run() throws {
        ignoreFatalSignals()
        StopSignal.install()
        let logger = try logging.logger("laser.coordinator", default: .info)
        guard config != nil || runDirectory.resume != nil else {
            throw ValidationError("give a CONFIG, or --resume RUN_DIR")
        }
        var created: String?
        do {
            try metrics.checkPortIsFree()
            // The config and every input it names are checked before a run directory is made.
            var c = try RunConfig.load(path: config ?? RunDirectory.existing(path: runDirectory.resume!).configPath)
            if let bind {
                if let problem = Endpoint.problem(bind, bind: true) { throw ConfigError("--bind \(problem)") }
                c.bind = bind
            }
            c.security.allowInsecureKeyPermissions = keyFiles.allowInsecureKeyPermissions
            try metrics.apply(to: &c)
            let validated = try ValidatedInputs.check(c)
            if let warning = validated.unrewardedWarning { logger.warning("\(warning)") }
            let (dir, made) = try runDirectory.directory()
            try RunDirectoryLock.acquire(dir.path)
            created = made
            let service = try CoordinatorService(
                config: c, runDirectory: dir, logger: logger, resume: runDirectory.resume != nil,
                force: runDirectory.force,
                validated: validated)
            if runDirectory.resume == nil || service.startedAfresh {
                try AtomicFile.write(c.yaml(), to: dir.configPath)
            }
            // RUN_DIR/endpoint before the line below: whoever reads that line may read the file next
            // (service.run() writes it again).
            try AtomicFile.write(service.endpoint + "\n", to: dir.path + "/endpoint")
            // Unbuffered: scripts and tests read the endpoint from a pipe while the run goes on.
            FileHandle.standardOutput.write(
                Data("coordinator listening on \(service.endpoint); run directory \(dir.path)\n".utf8))
            if let url = service.observer.metricsAddress {
                FileHandle.standardOutput.write(Data("metrics on \(url)\n".utf8))
            }
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
