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

    /// The inputs as checked before the run directory was made (scanned again if nil).
    public var validated: ValidatedInputs?

    public init(
        config: RunConfig, runDirectory: RunDirectory, executable: String, logger: Logger, showProgress: Bool,
        resume: Bool = false, force: Bool = false
    ) {
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
        let service = try CoordinatorService(
            config: secured.coordinatorConfig, runDirectory: runDirectory, logger: logger,
            resume: resume, force: force, validated: validated)
        if !resume || service.startedAfresh { try AtomicFile.write(config.yaml(), to: runDirectory.configPath) }
        onStart?(service)
        try AtomicFile.makeDirectory(runDirectory.logsDirectory)
        // The local workers' own RM definitions (--rm-config): this config, so subprocess and HTTP RMs
        // run on them without the coordinator ever sending a command or URL (docs/security.md).
        let rmConfig = runDirectory.path + "/local-workers.yaml"
        if config.localWorkers > 0 { try AtomicFile.write(config.yaml(), to: rmConfig) }
        var memoryArguments: [String] = []
        if config.workerMemoryBudget > 0 {
            memoryArguments = ["--memory-budget", "\(config.workerMemoryBudget)"]
            for name in config.workerRMMemory.keys.sorted() {
                memoryArguments += ["--rm-memory", "\(name)=\(config.workerRMMemory[name]!)"]
            }
        }
        let supervisor = LocalWorkers(
            count: config.localWorkers, logsDirectory: runDirectory.logsDirectory, logger: logger
        ) { i in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments =
                [
                    "worker", "--connect", service.endpoint, "--id", "local-\(i)",
                    "--slots", "\(config.workerSlots)", "--rm-capacity", "\(config.workerRMCapacity)", "--give-up-after", "30", "--parent-pid", "\(getpid())",
                    "--rm-config", rmConfig, "--max-message-bytes", "\(max(config.maxMessageBytes, 256 << 20))",
                ] + memoryArguments + (secured.workerArguments[i] ?? []) + workerArguments
            return p
        }
        try supervisor.startAll(executable: executable)
        var others: [Process] = []
        // After a finished run the workers leave on their own (Shutdown); after a stop they are told to.
        var stopped = false
        defer {
            Self.stop(supervisor.processes + others, wait: stopped ? 0 : 3)
        }
        if let step = simulatedTrainerStepMs {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = [
                "trainer-sim", "--connect", service.endpoint, "--step-ms", "\(step)", "--parent-pid", "\(getpid())",
            ]
            let log = runDirectory.logsDirectory + "/trainer-sim.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: log)
            p.standardError = FileHandle(forWritingAtPath: log)
            do { try p.run() } catch {
                throw RunFailure(
                    "cannot start the simulated trainer from \(executable): \(error). Is that laser binary still there and executable?"
                )
            }
            others.append(p)
        } else if config.rewardSource.fromTrainer {
            FileHandle.standardError.write(
                Data(
                    "reward.source is \(config.rewardSource.rawValue): waiting for a trainer at \(service.endpoint) (clients/python/laser_trainer.py, or laser run --simulate-trainer MS)\n"
                        .utf8))
        }
        let printer = ProgressPrinter(enabled: showProgress)
        service.onStatus = { live in
            printer.update(live)
            // Local workers that die are started again (with backoff, a few times); when none is left,
            // the run stops with the reason instead of waiting forever.
            if live.phase == "running", let failure = supervisor.check() { service.requestStop(failure) }
        }
        defer { printer.finish() }
        do {
            return try service.run()
        } catch {
            stopped = true
            throw error
        }
    }

    /// Waits briefly for workers to leave on Shutdown, then terminates the stragglers.
    static func stop(_ workers: [Process], wait: Double = 3) {
        let deadline = Date().addingTimeInterval(wait)
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

/// The local worker processes of `laser run`: started, watched once a second, restarted when one dies
/// (after 1, 2, 4, 8, 16 s; at most `maxRestarts` times each); when every one has died for good the run
/// is stopped with the reason (issue 14 item 10), rather than waiting for workers that never come.
final class LocalWorkers {
    static let maxRestarts = 5
    let count: Int
    let logsDirectory: String
    let logger: Logger
    let make: (Int) -> Process
    private(set) var processes: [Process] = []
    private var restarts: [Int]
    private var nextStart: [Date?]
    private var gaveUp: Set<Int> = []

    init(count: Int, logsDirectory: String, logger: Logger, make: @escaping (Int) -> Process) {
        self.count = count
        self.logsDirectory = logsDirectory
        self.logger = logger
        self.make = make
        restarts = Array(repeating: 0, count: count + 1)
        nextStart = Array(repeating: nil, count: count + 1)
    }

    private var slots: [Int: Process] = [:]

    func startAll(executable: String) throws {
        for i in stride(from: 1, through: count, by: 1) {
            do { try start(i, truncate: true) } catch {
                throw RunFailure(
                    "cannot start local worker \(i) from \(executable): \(error). Is that laser binary still there and executable? (With workers.local: 0 no local worker is started; connect workers by hand.)"
                )
            }
        }
    }

    private func start(_ i: Int, truncate: Bool) throws {
        let p = make(i)
        let log = logsDirectory + "/worker-\(i).log"
        if truncate || !FileManager.default.fileExists(atPath: log) {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
        }
        let handle = FileHandle(forWritingAtPath: log)
        _ = try? handle?.seekToEnd()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        slots[i] = p
        processes.append(p)
    }

    /// Restarts workers that died (when their backoff is over); the reason to stop when none is left.
    func check() -> Error? {
        guard count > 0 else { return nil }
        let now = Date()
        for i in stride(from: 1, through: count, by: 1) {
            guard let p = slots[i], !p.isRunning, !gaveUp.contains(i) else { continue }
            if restarts[i] >= Self.maxRestarts {
                gaveUp.insert(i)
                logger.error(
                    "local worker \(i) exited (status \(p.terminationStatus)) \(Self.maxRestarts + 1) times; not starting it again (see \(logsDirectory)/worker-\(i).log)"
                )
                continue
            }
            guard let at = nextStart[i] else {
                let wait = Double(1 << restarts[i])
                nextStart[i] = now.addingTimeInterval(wait)
                logger.warning(
                    "local worker \(i) exited (status \(p.terminationStatus)); starting it again in \(Int(wait)) s (see \(logsDirectory)/worker-\(i).log)"
                )
                continue
            }
            guard now >= at else { continue }
            restarts[i] += 1
            nextStart[i] = nil
            do { try start(i, truncate: false) } catch {
                logger.error("cannot start local worker \(i) again: \(error)")
            }
        }
        if gaveUp.count == count {
            return RunFailure(
                "every local worker exited \(Self.maxRestarts + 1) times, so no worker is left to score; see the logs in \(logsDirectory) (a broken RM definition, or a worker that cannot reach the coordinator?). Fix it and resume the run"
            )
        }
        return nil
    }
}
