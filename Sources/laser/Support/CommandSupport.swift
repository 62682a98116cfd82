// What the commands share: logging options, error reporting, metrics flags, file helpers.
import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRewardModels
import LaserRuntime
import LaserWire
import Logging

/// `--log-format`: text lines, or one JSON object per line.
enum LogFormat: String, CaseIterable, ExpressibleByArgument {
    case text, json
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension StrategyKind: ExpressibleByArgument {}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level?

    @Option(help: "Log format: text (default) or json (one JSON object per line, for log shippers).")
    var logFormat: LogFormat?

    /// The same logging options for child processes (local workers).
    var forwarded: [String] { logFormat.map { ["--log-format", $0.rawValue] } ?? [] }

    func logger(_ label: String, default level: Logger.Level) throws -> Logger {
        let json = logFormat == .json
        var logger = Logger(label: label) {
            json ? JSONLogHandler(label: $0) as LogHandler : StreamLogHandler.standardError(label: $0)
        }
        logger.logLevel = logLevel ?? level
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
    return ExitCode(exitStatus(of: error))
}

/// The exit status of a command that stopped with `error`, by the error's kind (docs/user-guide.md#exit-status):
/// 1 the run failed after it started (resumable), 2 config or run-directory state, 3 input, 4 storage,
/// 5 key file, 6 RM definition, 7 wire; 64 a command line ArgumentParser refused; 128 + N a signal.
func exitStatus(of error: Error) -> Int32 {
    switch error {
    case is ConfigError: return 2
    case is InputError: return 3
    case is StorageError: return 4
    case is KeyFileError: return 5
    case let e as RewardModelError: return e.code == .definition ? 6 : 1
    case is WireError: return 7
    default: return 1
    }
}

/// An error in words: Foundation's file errors ("NSCocoaErrorDomain Code=640") become what happened,
/// to which file, and what to do; laser's own errors are already worded.
func describe(_ error: Error) -> String {
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return "\(error)" }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    var code = ns.domain == NSPOSIXErrorDomain ? Int32(ns.code) : nil
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        code = Int32(underlying.code)
    }
    if ns.domain == NSCocoaErrorDomain && ns.code == NSFileWriteOutOfSpaceError { code = ENOSPC }
    guard let code else { return "\(error)" }
    let hint =
        code == ENOSPC || code == EDQUOT
        ? "; free space on that file system, then resume the run (laser run --resume RUN_DIR)"
        : code == EACCES || code == EROFS ? "; check the permissions" : ""
    return "\(path.map { "\($0): " } ?? "")\(String(cString: strerror(code))) (errno \(code))\(hint)"
}

/// --metrics-port / --metrics-bind over the config's metrics section, and a check that the port is
/// free before anything is written (the coordinator binds it for real when it starts).
func applyMetricsOptions(port: Int?, bind: String?, to config: inout RunConfig) throws {
    if let port {
        guard (0...65535).contains(port) else {
            throw ValidationError("--metrics-port \(port) is not a TCP port (0-65535; 0 picks a free one)")
        }
        config.metrics.port = port
    }
    if let bind {
        guard config.metrics.port != nil else {
            throw ValidationError("--metrics-bind needs --metrics-port (or metrics.port in the config)")
        }
        config.metrics.bind = bind
    }
    if let p = config.metrics.port, p != 0 { _ = try MetricsHTTPServer(host: config.metrics.bind, port: p) { [] } }
}

/// A port given on the command line is checked before the run directory is made.
func checkMetricsPort(_ port: Int?, bind: String?) throws {
    guard let port, port != 0 else { return }
    guard (0...65535).contains(port) else {
        throw ValidationError("--metrics-port \(port) is not a TCP port (0-65535; 0 picks a free one)")
    }
    _ = try MetricsHTTPServer(host: bind ?? "127.0.0.1", port: port) { [] }
}

/// Removes a run directory this command made when the start failed before anything was written in
/// it (only the empty iterations/ folder), so a failed start leaves no half-made run behind.
func removeIfUntouched(_ path: String) {
    let fm = FileManager.default
    // `.lock` is this process's own (RunDirectoryLock): it does not count as something written.
    guard let top = (try? fm.contentsOfDirectory(atPath: path))?.filter({ $0 != ".lock" }),
        top.isEmpty || top == ["iterations"],
        (try? fm.contentsOfDirectory(atPath: path + "/iterations"))?.isEmpty ?? true
    else { return }
    try? fm.removeItem(atPath: path)
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

/// `--out`, `--resume`, `--force`: where a run lives (`laser run`, `laser coordinator`).
struct RunDirectoryOptions: ParsableArguments {
    @Option(help: "Run directory (default: runs/run-<time> in the current folder).")
    var out: String?

    @Option(help: "Continue the interrupted run in this run directory (its journal and config.yaml).")
    var resume: String?

    @Flag(help: "With --resume: continue even if the config or an input file changed.")
    var force = false

    func validate() throws {
        if resume != nil && out != nil {
            throw ValidationError("--resume names the run directory; it does not go with --out")
        }
    }

    /// The run directory (resumed, named, or a new one under runs/) and, when this call made it, its path
    /// (so a failed start can remove it again).
    func directory() throws -> (directory: RunDirectory, created: String?) {
        let existed = out.map { FileManager.default.fileExists(atPath: $0) } ?? false
        let dir =
            try resume.map { try RunDirectory.existing(path: $0) } ?? out.map { try RunDirectory(path: $0) }
            ?? RunDirectory.fresh(under: "runs")
        return (dir, resume == nil && !existed ? dir.path : nil)
    }
}

/// `--metrics-port`, `--metrics-bind`: the Prometheus endpoint (`laser run`, `laser coordinator`).
struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve Prometheus metrics on this port (overrides metrics.port; 0 picks a free port).")
    var metricsPort: Int?

    @Option(help: "Address the metrics endpoint listens on (overrides metrics.bind; default 127.0.0.1).")
    var metricsBind: String?

    func validate() throws {
        if let port = metricsPort, !(0...65535).contains(port) {
            throw ValidationError("--metrics-port \(port) is not a TCP port (0-65535; 0 picks a free one)")
        }
    }

    /// Fails early, with what to do, when the port is taken.
    func checkPortIsFree() throws { try checkMetricsPort(metricsPort, bind: metricsBind) }

    func apply(to config: inout RunConfig) throws {
        try applyMetricsOptions(port: metricsPort, bind: metricsBind, to: &config)
    }
}

/// `--allow-insecure-key-permissions` (`run`, `coordinator`, `worker`).
struct KeyFileOptions: ParsableArguments {
    @Flag(help: "Use CURVE secret key files that group or others may read (refused otherwise, as ssh does).")
    var allowInsecureKeyPermissions = false
}
