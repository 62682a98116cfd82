import Foundation
import LaserCore

/// Plain-text tables of a run summary for the terminal.
public enum SummaryTable {
    /// Which RM ranked which task family (share of prompts over all iterations, and in the last one),
    /// the label-based pair accuracy per family, and a line per iteration.
    public static func render(_ s: RunSummary) -> String {
        var families: [String] = []
        var total: [String: [String: Int]] = [:]
        var last: [String: [String: Int]] = [:]
        var accuracy: [String: (Double, Int)] = [:]
        for (i, it) in s.iterations.enumerated() {
            for f in it.tasks {
                if !families.contains(f.task) { families.append(f.task) }
                for (rm, n) in f.selections {
                    total[f.task, default: [:]][rm, default: 0] += n
                    if i == s.iterations.count - 1 { last[f.task, default: [:]][rm, default: 0] += n }
                }
                if let a = f.labelAccuracy {
                    let (sum, n) = accuracy[f.task] ?? (0, 0)
                    accuracy[f.task] = (sum + a * Double(f.labelledPairs), n + f.labelledPairs)
                }
            }
        }
        let columns = s.strategy == "ensemble" || s.strategy == "agreement" ? ["ensemble"] : s.rewardModels
        var rows: [[String]] = [["task family"] + columns + ["pair accuracy"]]
        for f in families {
            let all = total[f] ?? [:], end = last[f] ?? [:]
            let allN = max(1, all.values.reduce(0, +)), endN = max(1, end.values.reduce(0, +))
            var row = [f]
            for rm in columns {
                let a = 100 * Double(all[rm] ?? 0) / Double(allN)
                let e = 100 * Double(end[rm] ?? 0) / Double(endN)
                row.append(String(format: "%3.0f%% (%3.0f%%)", a, e))
            }
            let acc = accuracy[f].flatMap { $0.1 > 0 ? $0.0 / Double($0.1) : nil }
            row.append(acc.map { String(format: "%.3f", $0) } ?? "n/a")
            rows.append(row)
        }
        var out =
            "Strategy \(s.strategy): RM chosen per task family, share of prompts over all iterations (last iteration)\n"
        out += grid(rows)
        out += "\n"
        for it in s.iterations {
            let calls = it.rmCalls.values.reduce(0, +)
            out +=
                "iteration \(it.iteration): \(it.prompts) prompts, \(it.batches) batches, \(it.pairs) pairs, pair accuracy "
            out += (it.labelAccuracy.map { String(format: "%.3f", $0) } ?? "n/a")
            out += ", \(calls) RM calls, \(String(format: "%.2f", it.wallSeconds)) s\n"
        }
        // How much the bandit had to learn from: a run whose batches got no reward learned nothing.
        let batches = s.iterations.reduce(0) { $0 + $1.batches },
            rewarded = s.arms.reduce(0) { $0 + $1.rewardedBatches }
        if s.strategy != "ensemble" && s.strategy != "agreement" {
            out += "rewarded: \(rewarded) of \(batches) batch decisions got a reward"
            out += rewarded == 0 && batches > 0 ? ": the bandit learned nothing in this run\n" : "\n"
        }
        if batches == 0 { out += "nothing ran: the input has no prompts\n" }
        return out
    }

    /// Left-aligned columns separated by two spaces.
    public static func grid(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = Array(repeating: 0, count: first.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n") + "\n"
    }

    /// Overall label-based pair accuracy of a run (all iterations), or of its last iteration.
    public static func pairAccuracy(_ s: RunSummary, lastIterationOnly: Bool = false) -> Double? {
        let its = lastIterationOnly ? Array(s.iterations.suffix(1)) : s.iterations
        let n = its.reduce(0) { $0 + $1.labelledPairs }
        guard n > 0 else { return nil }
        return its.reduce(0.0) { $0 + ($1.labelAccuracy ?? 0) * Double($1.labelledPairs) } / Double(n)
    }
}
