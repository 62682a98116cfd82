import Foundation
import LaserCore
import Logging

/// `laser run`: a coordinator on this thread plus local worker processes (this same executable in
/// its `worker` role), all over real ZeroMQ sockets on loopback.
public struct LocalRun {
    public var config: RunConfig
    public var runDirectory: RunDirectory
    /// Path of the laser executable to start workers from.
    public var executable: String
    public var logger: Logger
    public var showProgress: Bool
    /// Continue the interrupted run in `runDirectory` (its journal) instead of starting one.
    public var resume: Bool
    /// With `resume`: accept a changed config or input.
    public var force: Bool
    /// Start a simulated trainer (`laser trainer-sim`) taking this many ms per step (reward.source:
    /// trainer-loss without a real trainer).
    public var simulatedTrainerStepMs: Double?
    /// Extra arguments for the local worker processes (e.g. --log-format json).
    public var workerArguments: [String] = []
    /// Called once the coordinator is listening (its metrics URL is known then).
    public var onStart: ((CoordinatorService) -> Void)?

    public init(config: RunConfig, runDirectory: RunDirectory, executable: String, logger: Logger, showProgress: Bool,
                resume: Bool = false, force: Bool = false) {
        self.config = config
        self.runDirectory = runDirectory
        self.executable = executable
        self.logger = logger
        self.showProgress = showProgress
        self.resume = resume
        self.force = force
    }

    public func run() throws -> RunSummary {
        // security.curve: throwaway keys for the local workers (Security/LocalRunSecurity.swift).
        let secured = try LocalRunSecurity.prepare(config, runDirectory: runDirectory, workers: config.localWorkers)
        let service = try CoordinatorService(config: secured.coordinatorConfig, runDirectory: runDirectory, logger: logger,
                                             resume: resume, force: force)
        if !resume { try AtomicFile.write(config.yaml(), to: runDirectory.configPath) }
        onStart?(service)
        try AtomicFile.makeDirectory(runDirectory.logsDirectory)
        // The local workers' own RM definitions (--rm-config): this config, so subprocess and HTTP RMs
        // run on them without the coordinator ever sending a command or URL (docs/security.md).
        let rmConfig = runDirectory.path + "/local-workers.yaml"
        if config.localWorkers > 0 { try AtomicFile.write(config.yaml(), to: rmConfig) }
        var workers: [Process] = []
        defer { Self.stop(workers) }
        for i in 1...max(config.localWorkers, 1) where config.localWorkers > 0 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["worker", "--connect", service.endpoint, "--id", "local-\(i)",
                           "--slots", "\(config.workerSlots)", "--give-up-after", "30", "--parent-pid", "\(getpid())",
                           "--rm-config", rmConfig] + (secured.workerArguments[i] ?? []) + workerArguments
            let log = runDirectory.logsDirectory + "/worker-\(i).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let handle = FileHandle(forWritingAtPath: log)
            p.standardOutput = handle
            p.standardError = handle
            do { try p.run() } catch {
                throw RunFailure("cannot start local worker \(i) from \(executable): \(error). Is that laser binary still there and executable? (With workers.local: 0 no local worker is started; connect workers by hand.)")
            }
            workers.append(p)
        }
        if let step = simulatedTrainerStepMs {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["trainer-sim", "--connect", service.endpoint, "--step-ms", "\(step)", "--parent-pid", "\(getpid())"]
            let log = runDirectory.logsDirectory + "/trainer-sim.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: log)
            p.standardError = FileHandle(forWritingAtPath: log)
            do { try p.run() } catch { throw RunFailure("cannot start the simulated trainer from \(executable): \(error). Is that laser binary still there and executable?") }
            workers.append(p)
        } else if config.rewardSource == .trainerLoss {
            FileHandle.standardError.write(Data("reward.source is trainer-loss: waiting for a trainer at \(service.endpoint) (clients/python/laser_trainer.py, or laser run --simulate-trainer MS)\n".utf8))
        }
        let printer = ProgressPrinter(enabled: showProgress)
        service.onStatus = { printer.update($0) }
        defer { printer.finish() }
        return try service.run()
    }

    /// Waits briefly for workers to leave on Shutdown, then terminates the stragglers.
    static func stop(_ workers: [Process]) {
        let deadline = Date().addingTimeInterval(3)
        while workers.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for p in workers where p.isRunning { p.terminate() }
        for p in workers { p.waitUntilExit() }
    }

    /// The running executable's path (for starting workers).
    public static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments[0]
    }
}
