import Foundation

/// SIGINT and SIGTERM as a clean stop (Ctrl-C, `kill`, Slurm's scancel, Kubernetes' pod deletion): the
/// handler only records the signal; the coordinator's loop sees it within one tick (at most 100 ms),
/// makes the journal durable, writes status.json ("interrupted" and the resume command), tells its
/// workers, and `laser` exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
public enum StopSignal {
    /// Installs the handlers (idempotent). Call once, early, in a process that runs a coordinator.
    public static func install() {
        signal(SIGINT) { laserStopSignal = $0 }
        signal(SIGTERM) { laserStopSignal = $0 }
    }

    /// The signal received, or 0.
    public static var received: Int32 { laserStopSignal }
}

/// Written only by the signal handler (one aligned word), read by the coordinator's loop.
nonisolated(unsafe) private var laserStopSignal: Int32 = 0

/// A run stopped by a signal: everything done so far is durable and a resume continues it.
public struct RunInterrupted: Error, CustomStringConvertible {
    public var signal: Int32
    public var runDirectory: String
    public var description: String {
        "stopped by \(signal == SIGINT ? "SIGINT (Ctrl-C)" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"); everything done so far is kept in \(runDirectory); continue with: laser run --resume \(runDirectory) (or laser coordinator --resume \(runDirectory))"
    }
    /// The exit status the shell convention gives a process ended by this signal.
    public var exitCode: Int32 { 128 + signal }
}
