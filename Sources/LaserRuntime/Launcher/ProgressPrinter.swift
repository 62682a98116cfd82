import Foundation
import LaserCore

/// Live progress on stderr: one rewritten line on a terminal, a plain line every 10 s otherwise
/// (CI and Slurm logs).
public final class ProgressPrinter: @unchecked Sendable {
    private let enabled: Bool
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private var lastPlain = Date.distantPast
    private var started = Date()
    private var wroteLine = false

    public init(enabled: Bool) { self.enabled = enabled }

    public func update(_ p: CoordinatorProgress) {
        guard enabled else { return }
        let line = Self.render(p, elapsed: Date().timeIntervalSince(started))
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            wroteLine = true
        } else if Date().timeIntervalSince(lastPlain) >= 10 {
            lastPlain = Date()
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    public func finish() {
        if wroteLine { FileHandle.standardError.write(Data("\n".utf8)) }
        wroteLine = false
    }

    static func render(_ p: CoordinatorProgress, elapsed: Double) -> String {
        let total = p.selections.reduce(0) { $0 + $1.1 }
        let shares = p.selections.filter { $0.1 > 0 }.map { "\($0.0) \(total > 0 ? 100 * $0.1 / total : 0)%" }
        let rate = elapsed > 0 ? Double(p.batchesEmitted) / elapsed : 0
        return "iteration \(p.iteration)/\(p.iterations) · batch \(p.batchesEmittedInIteration)/\(p.batchesInIteration)"
            + " · \(String(format: "%.1f", rate)) batches/s · workers \(p.workers) (\(p.slots) slots)"
            + " · tasks \(p.tasksQueued) queued \(p.tasksInFlight) running"
            + (shares.isEmpty ? "" : " · RMs: " + shares.joined(separator: ", "))
    }
}
