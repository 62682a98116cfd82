import Foundation
import LaserCore

/// `laser report RUN_DIR`: one self-contained HTML file (inline CSS, charts as inline SVG, no script,
/// nothing fetched) from what the run directory holds: summary.json, selections.jsonl, timeline.jsonl,
/// the journal and the input files. Sections whose data the run does not have say so and why.
public enum RunReport {
    /// Writes the report (atomically: no partial file on failure) and returns its path.
    @discardableResult
    public static func write(runDirectory: String, to output: String? = nil) throws -> String {
        let data = try ReportData.load(runDirectory: runDirectory)
        let path = output ?? runDirectory + "/report.html"
        try AtomicFile.write(html(data), to: path)
        return path
    }

    // MARK: HTML

    static func html(_ d: ReportData, generated: Date = Date()) -> String {
        let e = SVGChart.escape
        let s = d.summary
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>laser run report: \(e(d.name))</title>
            <style>
            body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #fafafa; }
            main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
            h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 32px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
            h3 { font-size: 14px; margin: 16px 0 2px; }
            .sub { color: #666; margin: 0 0 16px; } .note { background: #fff7e0; border-left: 3px solid #e0a800; padding: 8px 12px; color: #444; }
            .cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
            .card { border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 12px; min-width: 110px; }
            .card b { display: block; font-size: 18px; } .card span { color: #666; font-size: 12px; }
            table { border-collapse: collapse; margin: 8px 0; font-size: 13px; } th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
            th:first-child, td:first-child { text-align: left; } th { background: #f4f4f4; }
            svg.chart { display: block; max-width: 100%; height: auto; margin: 6px 0; } svg.chart.wide { width: 100%; }
            svg .axis { font-size: 11px; fill: #555; } svg .title { font-size: 12px; fill: #333; } svg .legend { font-size: 12px; fill: #333; }
            svg .grid { stroke: #eee; } svg .tick { stroke: #999; } svg .frame { fill: none; stroke: #bbb; }
            svg .cellv { font-size: 14px; font-weight: 600; } svg .celln { font-size: 10px; }
            .desc { color: #444; margin: 4px 0 8px; } code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; }
            footer { color: #888; font-size: 12px; margin-top: 40px; }
            </style></head><body><main>

            """
        h +=
            "<h1>laser run report</h1>\n<p class=\"sub\">\(e(d.path)) · strategy <b>\(e(s.strategy))</b> · \(s.rewardModels.count) reward models: \(e(s.rewardModels.joined(separator: ", ")))</p>\n"
        if !d.finished {
            h +=
                "<p class=\"note\">This run did not finish (its summary was written when it stopped). Continue it with <code>laser run --resume \(e(d.path))</code>; the report shows what was done until then.</p>\n"
        }
        let pairs = s.iterations.reduce(0) { $0 + $1.pairs }
        let calls = s.iterations.reduce(0) { $0 + $1.rmCalls.values.reduce(0, +) }
        let wall = s.iterations.reduce(0.0) { $0 + $1.wallSeconds }
        h += "<div class=\"cards\">"
        h +=
            card("\(s.iterations.count)", "iterations")
            + card("\(s.iterations.reduce(0) { $0 + $1.batches })", "mini-batches")
        h += card("\(pairs)", d.bestOfN ? "choices" : "pairs")
        h += card(d.overallAccuracy.map { String(format: "%.3f", $0) } ?? "n/a", "label pair accuracy")
        h += card("\(calls)", "RM calls (candidates)") + card(String(format: "%.1f s", wall), "wall time")
        h += "</div>\n"

        h += choicesSection(d)
        h += rewardSection(d)
        h += accuracySection(d)
        h += throughputSection(d)
        h += agreementSection(d)

        // Operational counters.
        h += "<h2>Scheduler counters</h2>\n"
        h += table(
            [["counter", "value"]] + s.counters.map { [$0.0.replacingOccurrences(of: "_", with: " "), "\($0.1)"] })

        h +=
            "<footer>Made by laser \(e(laserVersion)) on \(e(ISO8601DateFormatter().string(from: generated))) from \(e(d.path)). Self-contained: no network needed to view it.</footer>\n"
        h += "</main></body></html>\n"
        return h
    }

    /// The RM chosen over the run, by task family.
    static func choicesSection(_ d: ReportData) -> String {
        let e = SVGChart.escape
        let s = d.summary
        var h = ""
        h += "<h2>RM chosen over the run, by task family</h2>\n"
        if let byBatch = d.familySelections {
            h +=
                "<p class=\"desc\">Share of each family's prompts ranked by each RM, over the run's mini-batches (from the journal's decisions and the input's <code>task</code> fields). A bandit that learns moves from mixed colours to one colour per family.</p>\n"
            for (i, f) in byBatch.enumerated() {
                h += "<h3>\(e(f.family))</h3>\n"
                h += SVGChart.stackedBars(
                    id: "chart-rm-family-\(i)", title: "RM chosen for \(f.family)",
                    xTitle: "mini-batches (over the run) holding this family's prompts, in bins of equal prompt count",
                    yTitle: "share of prompts", categories: f.bins,
                    series: d.rmColors.map { rm in (rm.name, rm.color, f.counts.map { Double($0[rm.name] ?? 0) }) }
                        .filter { $0.2.contains { $0 > 0 } }, normalise: true, height: 190)
            }
        } else {
            h += note(d.familyNote ?? "Per-batch decisions are not available; shown per iteration instead.")
            let families = d.families
            for (i, f) in families.enumerated() {
                h += "<h3>\(e(f))</h3>\n"
                let its = s.iterations.map { it in it.tasks.first { $0.task == f }?.selections ?? [:] }
                h += SVGChart.stackedBars(
                    id: "chart-rm-family-\(i)", title: "RM chosen for \(f)", xTitle: "iteration",
                    yTitle: "share of prompts",
                    categories: s.iterations.map { "\($0.iteration)" },
                    series: d.rmColors.map { rm in (rm.name, rm.color, its.map { Double($0[rm.name] ?? 0) }) }
                        .filter { $0.2.contains { $0 > 0 } }, normalise: true, height: 190)
            }
        }
        return h
    }

    /// Each arm's reward over time.
    static func rewardSection(_ d: ReportData) -> String {
        let e = SVGChart.escape
        let s = d.summary
        var h = ""
        h += "<h2>Reward per arm over time</h2>\n"
        let rewardSeries = d.rewardSeries
        if rewardSeries.isEmpty {
            h += note(d.rewardNote)
        } else {
            h +=
                "<p class=\"desc\">Raw reward of each batch (dots) for the RM that ranked it, and its moving average (lines). \(e(d.rewardMeaning))</p>\n"
            h += SVGChart.lines(
                id: "chart-reward", title: "Reward per arm", xTitle: "mini-batch (over the run)", yTitle: "raw reward",
                series: rewardSeries,
                integerX: true)
        }
        var armRows = [["RM", "chosen", "rewarded", "mean raw reward"]]
        for a in s.arms {
            armRows.append([
                a.name, "\(a.batches)", "\(a.rewarded)", a.meanRawReward.map { String(format: "%.3f", $0) } ?? "-",
            ])
        }
        h += table(armRows)
        return h
    }

    /// Label-based pair accuracy per iteration.
    static func accuracySection(_ d: ReportData) -> String {
        let s = d.summary
        var h = ""
        h += "<h2>Label-based pair accuracy per iteration</h2>\n"
        let accuracy = d.accuracySeries
        if accuracy.isEmpty {
            h += note(
                "No pair could be judged: the input has no <code>correct</code> labels and no <code>reference</code> answers. Add them to see how often the chosen response is the correct one."
            )
        } else {
            h +=
                "<p class=\"desc\">Share of labelled pairs whose chosen response is correct and rejected one is not (same label: half), overall (thick) and per task family.\(d.bestOfN ? " In best-of-n mode: the share of correct choices." : "")</p>\n"
            h += SVGChart.lines(
                id: "chart-accuracy", title: "Pair accuracy per iteration", xTitle: "iteration",
                yTitle: "pair accuracy",
                series: accuracy, yRange: 0...1, integerX: true)
        }
        var itRows = [
            ["iteration", "prompts", "batches", d.bestOfN ? "choices" : "pairs", "pair accuracy", "RM calls", "wall s"]
        ]
        for it in s.iterations {
            itRows.append([
                "\(it.iteration)", "\(it.prompts)", "\(it.batches)", "\(it.pairs)",
                it.labelAccuracy.map { String(format: "%.3f", $0) } ?? "n/a",
                "\(it.rmCalls.values.reduce(0, +))", String(format: "%.2f", it.wallSeconds),
            ])
        }
        h += table(itRows)
        return h
    }

    /// Throughput and utilisation over time (and placement, with capacity-limited workers).
    static func throughputSection(_ d: ReportData) -> String {
        var h = ""
        h += "<h2>Throughput and worker utilisation</h2>\n"
        if let all = d.timeline, all.count >= 3 {
            // The scoring window: from the sample before the first candidate was scored to the one after
            // the last. Time before it (waiting for workers) and after it (waiting for the trainer, writing
            // the summary) is named, not drawn, so the chart is about scoring.
            let scored = all.indices.filter { $0 > 0 && all[$0].candidatesScored > all[$0 - 1].candidatesScored }
            let lo: Int = scored.first.map { max(0, $0 - 1) } ?? 0
            let hi: Int = scored.last.map { min(all.count - 1, $0 + 1) } ?? all.count - 1
            let t: [TimelinePoint] = Array(all[lo...hi])
            let before: Double = t[0].time - all[0].time
            let after: Double = all[all.count - 1].time - t[t.count - 1].time
            var left: [String] = []
            if before >= 2 {
                left.append(
                    String(format: "%.0f s before the first candidate was scored (waiting for workers)", before))
            }
            if after >= 2 {
                left.append(String(format: "%.0f s after the last one (waiting for the trainer, finishing)", after))
            }
            h +=
                "<p class=\"desc\">From <code>timeline.jsonl</code>, one sample a second: candidates scored per second, and the share of the workers' slots holding a task (with the number of workers).\(left.isEmpty ? "" : " Not shown: " + left.joined(separator: "; ") + ".")</p>\n"
            let t0 = t[0].time
            var rate: [(x: Double, y: Double)] = []
            // Samples are a second apart while a coordinator runs; a longer gap is an outage (a crash or a
            // stop before a resume): no rate across it, and no line drawn over it.
            let gap = 5.0
            for i in 1..<t.count where t[i].time > t[i - 1].time && t[i].time - t[i - 1].time <= gap {
                rate.append(
                    (
                        t[i].time - t0,
                        max(0, Double(t[i].candidatesScored - t[i - 1].candidatesScored) / (t[i].time - t[i - 1].time))
                    ))
            }
            h += SVGChart.lines(
                id: "chart-throughput", title: "Throughput", xTitle: "seconds since start", yTitle: "candidates / s",
                series: [.init(name: "candidates scored per second", color: SVGChart.color(0), points: rate)],
                yRange: 0...max(1, (rate.map(\.y).max() ?? 1) * 1.1), gapAfter: gap)
            let util = t.map { (x: $0.time - t0, y: $0.slots > 0 ? 100 * Double($0.busySlots) / Double($0.slots) : 0) }
            let workers = t.map { (x: $0.time - t0, y: Double($0.workers)) }
            h += SVGChart.lines(
                id: "chart-utilisation", title: "Worker utilisation", xTitle: "seconds since start",
                yTitle: "% of slots busy",
                series: [.init(name: "slots busy (%)", color: SVGChart.color(1), points: util)], yRange: 0...100,
                gapAfter: gap)
            h += SVGChart.lines(
                id: "chart-workers", title: "Workers connected", xTitle: "seconds since start", yTitle: "workers",
                series: [.init(name: "workers connected", color: SVGChart.color(2), points: workers)],
                yRange: 0...max(1, (workers.map(\.y).max() ?? 1) + 1), height: 180, gapAfter: gap)
            // The whole timeline: the first loads happen before anything is scored.
            h += placementCharts(d, all, gap: gap)
        } else {
            h += note(
                d.timeline == nil
                    ? "No <code>timeline.jsonl</code> in this run directory: it was made by a laser version that did not record one. Runs of this version record a sample every second."
                    : "The run was too short for the once-a-second timeline (fewer than 3 samples); longer runs show throughput and utilisation over time here."
            )
        }
        return h
    }

    /// Agreement between RMs.
    static func agreementSection(_ d: ReportData) -> String {
        var h = ""
        h += "<h2>Agreement between reward models</h2>\n"
        if let m = d.agreement {
            h +=
                "<p class=\"desc\">For each pair of RMs: of the candidate pairs of a prompt that both RMs rank strictly (no tie), the share where they prefer the same candidate (the paper's conflict analysis). Computed from the journal's scores, \(m.prompts) prompts scored by more than one RM.</p>\n"
            h += SVGChart.heatmap(
                id: "chart-agreement", title: "Pairwise agreement between RMs", names: m.names,
                value: { m.value($0, $1) }, count: { m.count[$0][$1] })
        } else {
            h += note(d.agreementNote)
        }
        return h
    }

    static func card(_ value: String, _ label: String) -> String {
        "<div class=\"card\"><b>\(SVGChart.escape(value))</b><span>\(SVGChart.escape(label))</span></div>"
    }

    /// A note; `text` may hold <code> markup (it is laser's own text, never user input).
    static func note(_ text: String) -> String { "<p class=\"note\">\(text)</p>\n" }

    static func table(_ rows: [[String]]) -> String {
        guard let head = rows.first else { return "" }
        var t = "<table><tr>" + head.map { "<th>\(SVGChart.escape($0))</th>" }.joined() + "</tr>\n"
        for r in rows.dropFirst() { t += "<tr>" + r.map { "<td>\(SVGChart.escape($0))</td>" }.joined() + "</tr>\n" }
        return t + "</table>\n"
    }
}

extension RunReport {
    /// Dynamic placement (docs/placement.md): per RM over time, the slots holding it, loading it, and
    /// holding it idle (no task of it). Only for runs with capacity-limited workers (rm_loads > 0).
    static func placementCharts(_ d: ReportData, _ t: [TimelinePoint], gap: Double) -> String {
        let loads = d.summary.counters.first { $0.0 == "rm_loads" }?.1 ?? 0
        guard loads > 0, t.contains(where: { $0.rms != nil }) else { return "" }
        let t0 = t[0].time
        let reloads = d.summary.counters.first { $0.0 == "rm_reloads" }?.1 ?? 0
        let failures = d.summary.counters.first { $0.0 == "rm_load_failures" }?.1 ?? 0
        var h = "<h3>Placement: where the RMs were</h3>\n"
        h +=
            "<p class=\"desc\">Capacity-limited workers, moved by the coordinator: \(loads) loads (\(reloads) of an RM the worker had held before), \(failures) failed. Per RM, from <code>timeline.jsonl</code> (one sample a second, from the run's start, so the first loads show): slots holding it, slots loading it, and slots holding it with no task of it (idle).</p>\n"
        let colors = d.rmColors
        func series(_ value: (TimelinePoint.RMSlots) -> Int) -> [SVGChart.Series] {
            colors.compactMap { rm, color in
                let points = t.compactMap { p -> (x: Double, y: Double)? in
                    guard let r = p.rms?.first(where: { $0.rm == rm }) else { return nil }
                    return (p.time - t0, Double(value(r)))
                }
                return points.isEmpty ? nil : SVGChart.Series(name: rm, color: color, points: points)
            }
        }
        for (id, title, y, value) in [
            ("chart-placement-loaded", "Slots holding each RM", "slots", { (r: TimelinePoint.RMSlots) in r.loaded }),
            ("chart-placement-loading", "Slots loading each RM", "slots", { (r: TimelinePoint.RMSlots) in r.loading }),
            ("chart-placement-idle", "Idle slots per RM (loaded, no task)", "slots", { (r: TimelinePoint.RMSlots) in r.idle }),
        ] as [(String, String, String, (TimelinePoint.RMSlots) -> Int)] {
            let s = series(value)
            let top = s.flatMap { $0.points.map(\.y) }.max() ?? 1
            h += SVGChart.lines(
                id: id, title: title, xTitle: "seconds since start", yTitle: y, series: s, yRange: 0...max(1, top + 1),
                height: 200, gapAfter: gap)
        }
        return h
    }
}
