import Foundation

/// `laser status`: the live status as plain-text tables (workers, queue, throughput, bandit arms).
public enum StatusTable {
    public static func render(_ s: LiveStatus, source: String, now: Double = Date().timeIntervalSince1970) -> String {
        var out = ""
        let age = max(0, now - s.updatedAt)
        out += "run: \(source)   phase: \(s.phase)   strategy: \(s.strategy)"
        if s.phase == "running" && age > 5 {
            out +=
                "   (status is \(Int(age)) s old: the coordinator may have stopped; laser run --resume continues a killed run)"
        }
        out += "\n"
        if let waiting = s.waitingForInput { out += "waiting for \(waiting)\n" }
        let pct = s.promptsInIteration > 0 ? 100 * s.promptsScoredInIteration / s.promptsInIteration : 0
        out +=
            "iteration \(s.iteration)/\(s.iterations): \(s.promptsScoredInIteration)/\(s.promptsInIteration) prompts scored (\(pct)%), "
        out += "batches \(s.batchesEmittedInIteration)/\(s.batchesInIteration) (\(s.batchesEmitted) over the run)\n"
        out +=
            "throughput: \(ProgressPrinter.rate(s.candidatesPerSecond)) candidates/s, \(s.candidatesScored) scored so far"
        if s.elapsedSeconds > 0 { out += ", running \(ProgressPrinter.duration(s.elapsedSeconds))" }
        out +=
            "; tasks \(s.tasksQueued) queued, \(s.tasksInFlight) running, \(s.tasksRetried) retried, \(s.tasksFailed) failed"
        if s.batchesAwaitingLoss > 0 || s.trainer != nil {
            out += "\ntrainer: \(s.trainer ?? "none connected"), \(s.batchesAwaitingLoss) batch(es) waiting for a loss"
        }
        out += "\n\n"

        let busy = s.totalSlots > 0 ? 100 * s.busySlots / s.totalSlots : 0
        out += "workers: \(s.workers.count) connected, \(s.totalSlots) slots, \(busy)% busy\n"
        if s.workers.isEmpty {
            out += "  (none: start one with laser worker --connect \(s.endpoint ?? "ENDPOINT"))\n"
        } else {
            let allRMs = Set(s.queue.map(\.rm))
            var rows = [["worker", "RMs", "load", "health"]]
            for w in s.workers {
                let rms =
                    !allRMs.isEmpty && Set(w.rewardModels) == allRMs
                    ? "all (\(w.rewardModels.count))" : w.rewardModels.joined(separator: ", ")
                let health =
                    w.secondsSinceHeard < 3
                    ? "ok (heard \(String(format: "%.1f", w.secondsSinceHeard)) s ago)"
                    : "silent for \(String(format: "%.0f", w.secondsSinceHeard)) s"
                rows.append([w.id, rms, "\(w.inFlight)/\(w.slots)", health])
            }
            out += indent(SummaryTable.grid(rows))
        }
        out += "\n"

        out += "queue per RM:\n"
        var q = [["RM", "queued", "running", "candidates scored"]]
        for e in s.queue { q.append([e.rm, "\(e.queued)", "\(e.inFlight)", "\(e.candidatesScored)"]) }
        out += indent(SummaryTable.grid(q))
        out += "\n"

        let total = s.arms.reduce(0) { $0 + $1.selections }
        let ucbNote = s.arms.contains { $0.ucb != nil } ? " (UCB: LinUCB's bound for the last decision's context)" : ""
        out += "bandit arms\(ucbNote):\n"
        var a = [["RM", "chosen", "share", "rewards", "mean reward"]]
        let showUCB = s.arms.contains { $0.ucb != nil }, showP = s.arms.contains { $0.probability != nil }
        if showUCB { a[0].append("UCB") }
        if showP { a[0].append("probability") }
        for arm in s.arms {
            var row = [
                arm.name, "\(arm.selections)",
                total > 0 ? "\(Int((100 * Double(arm.selections) / Double(total)).rounded()))%" : "-",
                "\(arm.rewards)", arm.meanReward.map { String(format: "%.3f", $0) } ?? "-",
            ]
            if showUCB { row.append(arm.ucb.map { String(format: "%.3f", $0) } ?? "-") }
            if showP { row.append(arm.probability.map { String(format: "%.3f", $0) } ?? "-") }
            a.append(row)
        }
        out += indent(SummaryTable.grid(a))
        return out
    }

    static func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(
            separator: "\n")
    }
}
