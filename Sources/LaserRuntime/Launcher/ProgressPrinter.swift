import Foundation
import LaserCore

/// Live progress on stderr. On a terminal: two lines rewritten in place every second (a bar for the
/// current iteration, prompts scored / total, batches emitted, candidates/s, ETA, workers alive and
/// how busy, and each RM's share of the decisions so far), cut to the terminal's width. Otherwise (CI,
/// Slurm, a pipe): one plain timestamped line every `plainInterval` seconds and one at the end.
public final class ProgressPrinter: @unchecked Sendable {  // called only from the coordinator thread (onProgress, onStatus): never shared
    private let enabled: Bool
    private let isTerminal: Bool
    private let plainInterval: Double
    private var lastPlain = Date.distantPast
    private var started = Date()
    private var linesOnScreen = 0
    private var rate = PromptRate()
    private var lastStatus: LiveStatus?

    public init(enabled: Bool, plainInterval: Double = 10, terminal: Bool? = nil) {
        self.enabled = enabled
        self.plainInterval = plainInterval
        isTerminal = terminal ?? (isatty(STDERR_FILENO) == 1)
    }

    /// The live status, about once a second (CoordinatorService.onStatus).
    public func update(_ status: LiveStatus) {
        guard enabled else { return }
        var s = status
        let final = s.phase == "finished" || s.phase == "failed"
        // The run's average rate once it is over (the 10 s window is empty by then).
        if final, s.elapsedSeconds > 0 {
            s.candidatesPerSecond = (Double(s.candidatesScored) / s.elapsedSeconds * 10).rounded() / 10
        }
        rate.add(s)
        lastStatus = s
        // A plain final line is written once, by `finish`.
        if final && !isTerminal { return }
        if isTerminal {
            let lines = Self.render(s, eta: rate.eta(s), width: Self.terminalWidth())
            var out = linesOnScreen > 1 ? "\u{1B}[\(linesOnScreen - 1)A" : ""
            out += "\r\u{1B}[J" + lines.joined(separator: "\n")
            FileHandle.standardError.write(Data(out.utf8))
            linesOnScreen = lines.count
        } else if Date().timeIntervalSince(lastPlain) >= plainInterval {
            lastPlain = Date()
            writePlain(s)
        }
    }

    /// The older one-line display from `CoordinatorProgress` (kept for callers of onProgress).
    public func update(_ p: CoordinatorProgress) {
        guard enabled else { return }
        let line = Self.render(p, elapsed: Date().timeIntervalSince(started))
        if isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            linesOnScreen = 1
        } else if Date().timeIntervalSince(lastPlain) >= plainInterval {
            lastPlain = Date()
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    public func finish() {
        if linesOnScreen > 0 {
            FileHandle.standardError.write(Data("\n".utf8))
        } else if enabled, !isTerminal, let s = lastStatus, lastPlain != .distantPast, lastWritten != s.updatedAt {
            // Once, and with the run's average rate: the last 10 s window is empty once the work is done.
            writePlain(s)
        }
        linesOnScreen = 0
    }

    /// The snapshot (by its time) last written as a plain line, so the final one is not written twice.
    private var lastWritten: Double?

    private func writePlain(_ s: LiveStatus) {
        lastWritten = s.updatedAt
        let stamp = ISO8601DateFormatter().string(from: Date())
        FileHandle.standardError.write(Data("\(stamp) progress: \(Self.plain(s, eta: rate.eta(s)))\n".utf8))
    }

    // MARK: rendering (pure, for tests)

    static func render(_ s: LiveStatus, eta: (iteration: Double, run: Double)?, width: Int) -> [String] {
        let total = max(0, s.promptsInIteration)
        let done = min(total, s.promptsScoredInIteration)
        let bar = Self.bar(total > 0 ? Double(done) / Double(total) : 0, width: 20)
        var first = "iteration \(s.iteration)/\(s.iterations) \(bar) \(done)/\(total) prompts"
        first += " · batches \(s.batchesEmittedInIteration)/\(s.batchesInIteration)"
        first += " · \(Self.rate(s.candidatesPerSecond)) cand/s"
        if let eta { first += " · ETA \(duration(eta.iteration)) (run ~\(duration(eta.run)))" }
        first +=
            " · workers \(s.workers.count) (\(s.totalSlots) slots, \(s.totalSlots > 0 ? 100 * s.busySlots / s.totalSlots : 0)% busy)"
        if s.batchesAwaitingLoss > 0 { first += " · \(s.batchesAwaitingLoss) awaiting loss" }
        let second = "RMs so far: " + shares(s)
        return [first, second].map { fit($0, width) }
    }

    static func plain(_ s: LiveStatus, eta: (iteration: Double, run: Double)?) -> String {
        let pct = s.promptsInIteration > 0 ? 100 * s.promptsScoredInIteration / s.promptsInIteration : 0
        var line =
            "iteration \(s.iteration)/\(s.iterations), \(s.promptsScoredInIteration)/\(s.promptsInIteration) prompts scored (\(pct)%)"
        line +=
            ", batches \(s.batchesEmittedInIteration)/\(s.batchesInIteration), \(Self.rate(s.candidatesPerSecond)) candidates/s"
        if let eta { line += ", ETA \(duration(eta.iteration)) (run ~\(duration(eta.run)))" }
        line +=
            ", workers \(s.workers.count) (\(s.busySlots)/\(s.totalSlots) slots busy), tasks \(s.tasksQueued) queued \(s.tasksInFlight) running"
        if s.tasksFailed > 0 || s.tasksRetried > 0 { line += ", \(s.tasksFailed) failed \(s.tasksRetried) retried" }
        return line + "; RMs: " + shares(s)
    }

    static func shares(_ s: LiveStatus) -> String {
        let total = s.arms.reduce(0) { $0 + $1.selections }
        guard total > 0 else {
            return s.strategy == "ensemble" || s.strategy == "agreement" ? "all (\(s.strategy))" : "none chosen yet"
        }
        return s.arms.map { "\($0.name) \(Int((100 * Double($0.selections) / Double(total)).rounded()))%" }.joined(
            separator: " · ")
    }

    static func bar(_ fraction: Double, width: Int) -> String {
        let filled = Int((max(0, min(1, fraction)) * Double(width)).rounded())
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    static func rate(_ x: Double) -> String { x >= 100 ? String(Int(x.rounded())) : String(format: "%.1f", x) }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m"
    }

    /// Cuts a line to `width` characters (no wrapping, which would break the in-place rewrite).
    static func fit(_ line: String, _ width: Int) -> String {
        line.count <= width ? line : String(line.prefix(max(1, width - 1))) + "…"
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 10 { return Int(size.ws_col) }
        return 120
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

/// Prompts scored per second over the last 20 s, across iteration boundaries, for the ETA.
struct PromptRate {
    private var finishedIterations = 0
    private var promptsBefore = 0
    private var current = (iteration: 0, prompts: 0)
    private var samples: [(Double, Int)] = []

    mutating func add(_ s: LiveStatus) {
        if s.iteration != current.iteration {
            if current.iteration > 0 { promptsBefore += current.prompts }
            current = (s.iteration, s.promptsInIteration)
        }
        samples.append((s.elapsedSeconds, promptsBefore + s.promptsScoredInIteration))
        samples.removeAll { s.elapsedSeconds - $0.0 > 20 }
    }

    /// Seconds left in the iteration and in the run (assuming later iterations are as large), or nil
    /// while there is no rate yet.
    func eta(_ s: LiveStatus) -> (iteration: Double, run: Double)? {
        guard let a = samples.first, let b = samples.last, b.0 - a.0 >= 1, b.1 > a.1 else { return nil }
        let perSecond = Double(b.1 - a.1) / (b.0 - a.0)
        let left = Double(max(0, s.promptsInIteration - s.promptsScoredInIteration))
        let later = Double(max(0, s.iterations - s.iteration) * s.promptsInIteration)
        return (left / perSecond, (left + later) / perSecond)
    }
}
