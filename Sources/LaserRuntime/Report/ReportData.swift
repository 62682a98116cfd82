import Foundation
import LaserCore

/// What the report reads from a run directory. summary.json is required; everything else is used
/// when it is there (older runs lack timeline.jsonl; a moved input file loses the per-batch families).
struct ReportData {
    struct Family {
        var task: String; var prompts: Int; var selections: [String: Int]; var pairs: Int; var labelledPairs: Int;
        var labelAccuracy: Double?
    }
    struct Iteration {
        var iteration: Int; var prompts: Int; var batches: Int; var pairs: Int; var labelledPairs: Int;
        var labelAccuracy: Double?; var rmCalls: [String: Int]; var wallSeconds: Double; var tasks: [Family]
    }
    struct Arm { var name: String; var batches: Int; var rewarded: Int; var meanRawReward: Double? }
    struct Summary {
        var strategy: String; var rewardModels: [String]; var iterations: [Iteration]; var arms: [Arm];
        var counters: [(String, Int)]
    }
    struct SelectionLine {
        var iteration: Int; var batch: Int; var global: Int; var rm: String; var prompts: Int; var rawReward: Double?;
        var loss: Double?
    }
    struct FamilyBins { var family: String; var bins: [String]; var counts: [[String: Int]] }
    struct Agreement {
        var names: [String]
        var agree: [[Int]]
        var count: [[Int]]
        var prompts: Int
        func value(_ i: Int, _ j: Int) -> Double? { count[i][j] > 0 ? Double(agree[i][j]) / Double(count[i][j]) : nil }
    }

    var path: String
    var name: String
    var summary: Summary
    var finished: Bool
    var bestOfN = false
    var rewardSource = "label-pair-accuracy"
    var selections: [SelectionLine] = []
    var timeline: [TimelinePoint]?
    var familySelections: [FamilyBins]?
    var familyNote: String?
    var agreement: Agreement?
    var agreementNote = ""

    /// Each RM's colour, the same in every report (`SVGChart.stableColors`), in the run's arm order.
    var rmColors: [(name: String, color: String)] {
        let colors = SVGChart.stableColors(summary.rewardModels)
        var out = summary.rewardModels.map { ($0, colors[$0]!) }
        out.append(("ensemble", "#555555"))
        return out
    }

    /// Each task family's colour, the same in every report.
    var familyColors: [String: String] { SVGChart.stableColors(families) }

    /// Families in the order they first appear.
    var families: [String] {
        var out: [String] = []
        for it in summary.iterations { for f in it.tasks where !out.contains(f.task) { out.append(f.task) } }
        return out
    }

    var overallAccuracy: Double? {
        let n = summary.iterations.reduce(0) { $0 + $1.labelledPairs }
        guard n > 0 else { return nil }
        return summary.iterations.reduce(0.0) { $0 + ($1.labelAccuracy ?? 0) * Double($1.labelledPairs) } / Double(n)
    }

    var rewardMeaning: String {
        rewardSource == "trainer-loss"
            ? "The reward is minus the trainer's loss on the batch."
            : "The reward is the batch's label-based pair accuracy."
    }

    var rewardNote: String {
        if selections.isEmpty {
            return "No <code>selections.jsonl</code> in this run directory, so there is no reward per batch."
        }
        if selections.allSatisfy({ $0.rm == "mixed" }) {
            return
                "With instance-level selection (<code>granularity: instance</code>) a batch mixes RMs, so rewards are not per arm here; the table below has each arm's mean reward."
        }
        if summary.strategy == "ensemble" || summary.strategy == "agreement" {
            return "Strategy \(summary.strategy) ranks every batch with all RMs: no arm is chosen and none is rewarded."
        }
        return "No batch got a reward (no labels in the input, or the trainer reported no loss)."
    }

    var rewardSeries: [SVGChart.Series] {
        var out: [SVGChart.Series] = []
        for (rm, color) in rmColors {
            let pts = selections.filter { $0.rm == rm }.compactMap { s in
                s.rawReward.map { (x: Double(s.global + 1), y: $0) }
            }
            guard !pts.isEmpty else { continue }
            let window = max(3, pts.count / 12)
            var avg: [(x: Double, y: Double)] = []
            for k in pts.indices {
                let lo = max(0, k - window + 1)
                avg.append((pts[k].x, pts[lo...k].reduce(0) { $0 + $1.y } / Double(k - lo + 1)))
            }
            out.append(.init(name: rm + " (points)", color: color, points: pts, dotsOnly: true, faint: true))
            out.append(.init(name: rm, color: color, points: avg))
        }
        return out
    }

    var accuracySeries: [SVGChart.Series] {
        let overall = summary.iterations.compactMap { it in it.labelAccuracy.map { (x: Double(it.iteration), y: $0) } }
        guard !overall.isEmpty else { return [] }
        var out = [SVGChart.Series(name: "all families", color: "#222222", points: overall)]
        let colors = familyColors
        for f in families {
            let pts = summary.iterations.compactMap { it in
                it.tasks.first { $0.task == f }?.labelAccuracy.map { (x: Double(it.iteration), y: $0) }
            }
            if !pts.isEmpty { out.append(.init(name: f, color: colors[f]!, points: pts, dashed: true)) }
        }
        return out
    }

    // MARK: loading

    static func load(runDirectory: String) throws -> ReportData {
        let dir = CLIPath.absolute(runDirectory)
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StorageError(
                "\(runDirectory) does not exist or is not a folder; give the run directory laser run printed")
        }
        guard fm.fileExists(atPath: dir + "/config.yaml") else {
            throw StorageError(
                "\(runDirectory) is not a laser run directory (no config.yaml); give the folder laser run printed as 'run directory: ...'"
            )
        }
        guard let summaryData = fm.contents(atPath: dir + "/summary.json") else {
            throw StorageError(
                "\(runDirectory) has no summary.json yet: the run is still going or was killed before it wrote one. Watch it with laser status \(runDirectory); continue a killed run with laser run --resume \(runDirectory), which writes the report at the end."
            )
        }
        let summary: Summary
        do { summary = try parseSummary(summaryData) } catch let e as StorageError {
            throw StorageError(
                "\(dir)/summary.json: \(e.description); was it written by another laser version? Re-running the report with that version, or resuming the run with this one, rewrites it."
            )
        }
        var d = ReportData(
            path: dir, name: URL(fileURLWithPath: dir).lastPathComponent, summary: summary, finished: true)
        d.selections = (try? parseSelections(dir + "/selections.jsonl")) ?? []
        d.timeline = parseTimeline(dir + "/timeline.jsonl")
        let config = try? RunConfig.load(path: dir + "/config.yaml")
        if let config {
            d.bestOfN = config.mode == .bestOfN
            d.rewardSource = config.rewardSource.rawValue
        }
        let planned = config?.iterations ?? summary.iterations.count
        d.finished =
            summary.iterations.count >= planned && (summary.iterations.last.map { $0.wallSeconds > 0 } ?? false)

        // The journal: decisions per batch and every shard's scores.
        var selected: [Int: [Selection]] = [:]
        var scored: [(batch: Int, rm: String, first: Int, scores: [[Double]])] = []
        var journalProblem: String?
        if let bytes = fm.contents(atPath: dir + "/journal") {
            do {
                for r in try JournalFile.decode(bytes, path: dir + "/journal").0 {
                    switch r {
                    case .selected(let b, let s): selected[b] = s
                    case .scored(let b, let rm, let first, let s): scored.append((b, rm, first, s))
                    default: break
                    }
                }
            } catch { journalProblem = "\(error)" }
        } else {
            journalProblem = "the run directory has no journal"
        }

        // RM chosen per batch and family.
        if let journalProblem {
            d.familyNote =
                "Per-batch decisions are not available (\(SVGChart.escape(journalProblem))); shown per iteration instead."
        } else if let config {
            do {
                d.familySelections = try familyBins(
                    config: config, selections: d.selections, selected: selected, rms: summary.rewardModels)
            } catch {
                d.familyNote =
                    "The input files could not be read for the prompts' task families (\(SVGChart.escape("\(error)"))); shown per iteration instead."
            }
        } else {
            d.familyNote = "config.yaml could not be read by this laser version; shown per iteration instead."
        }

        // Agreement between RMs from shards that several RMs scored.
        if let journalProblem {
            d.agreementNote =
                "The journal could not be read (\(SVGChart.escape(journalProblem))), and the agreement matrix is computed from its scores."
        } else if let a = agreement(scored, rms: summary.rewardModels) {
            d.agreement = a
        } else {
            d.agreementNote =
                "The agreement matrix needs prompts scored by more than one RM: run with <code>strategy: ensemble</code> or <code>agreement</code> (every RM scores every candidate), e.g. <code>laser run CONFIG --strategy ensemble</code>. This run (strategy \(SVGChart.escape(summary.strategy))) ranked each prompt with one RM."
        }
        return d
    }

    static func parseSummary(_ data: Data) throws -> Summary {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw StorageError("not a JSON object")
        }
        func int(_ m: [String: Any], _ k: String) -> Int { (m[k] as? NSNumber)?.intValue ?? 0 }
        func double(_ m: [String: Any], _ k: String) -> Double? { (m[k] as? NSNumber)?.doubleValue }
        func counts(_ v: Any?) -> [String: Int] {
            ((v as? [String: Any]) ?? [:]).compactMapValues { ($0 as? NSNumber)?.intValue }
        }
        guard let strategy = root["strategy"] as? String, let rms = root["reward_models"] as? [String],
            let its = root["iterations"] as? [[String: Any]]
        else {
            throw StorageError("it lacks strategy, reward_models or iterations")
        }
        let iterations = its.map { it in
            Iteration(
                iteration: int(it, "iteration"), prompts: int(it, "prompts"), batches: int(it, "batches"),
                pairs: int(it, "pairs"),
                labelledPairs: int(it, "labelled_pairs"), labelAccuracy: double(it, "label_accuracy"),
                rmCalls: counts(it["rm_calls"]),
                wallSeconds: double(it, "wall_seconds") ?? 0,
                tasks: ((it["tasks"] as? [[String: Any]]) ?? []).map { f in
                    Family(
                        task: f["task"] as? String ?? "default", prompts: int(f, "prompts"),
                        selections: counts(f["selections"]),
                        pairs: int(f, "pairs"), labelledPairs: int(f, "labelled_pairs"),
                        labelAccuracy: double(f, "label_accuracy"))
                })
        }
        let arms = ((root["arms"] as? [[String: Any]]) ?? []).map {
            Arm(
                name: $0["name"] as? String ?? "?", batches: int($0, "batches"), rewarded: int($0, "rewarded_batches"),
                meanRawReward: double($0, "mean_raw_reward"))
        }
        let counters = counts(root["counters"]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return Summary(strategy: strategy, rewardModels: rms, iterations: iterations, arms: arms, counters: counters)
    }

    static func parseSelections(_ path: String) throws -> [SelectionLine] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        var out: [SelectionLine] = []
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            guard let m = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else { continue }
            func int(_ k: String) -> Int? { (m[k] as? NSNumber)?.intValue }
            guard let it = int("iteration"), let b = int("batch") else { continue }
            out.append(
                SelectionLine(
                    iteration: it, batch: b, global: int("global_batch") ?? out.count, rm: m["rm"] as? String ?? "?",
                    prompts: int("prompts") ?? 0, rawReward: (m["raw_reward"] as? NSNumber)?.doubleValue,
                    loss: (m["loss"] as? NSNumber)?.doubleValue))
        }
        return out
    }

    static func parseTimeline(_ path: String) -> [TimelinePoint]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        // A torn last line (killed mid-append) or a line of another version is skipped.
        return data.split(separator: 0x0A).compactMap { try? decoder.decode(TimelinePoint.self, from: Data($0)) }
    }

    /// Each input line's task family, per iteration (blank lines skipped as PromptReader does).
    static func tasks(ofInput path: String) throws -> [String] {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        if let size = attributes[.size] as? NSNumber, size.int64Value > 2 << 30 {
            throw StorageError("\(path) is larger than 2 GiB; the report does not read it")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw StorageError("cannot read \(path)") }
        var out: [String] = []
        for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let m = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any]
            out.append((m?["task"] as? String) ?? "default")
        }
        return out
    }

    static func familyBins(
        config: RunConfig, selections: [SelectionLine], selected: [Int: [Selection]], rms: [String]
    ) throws -> [FamilyBins]? {
        guard !selections.isEmpty, !selected.isEmpty else { return nil }
        var tasksOf: [Int: [String]] = [:]
        for it in Set(selections.map(\.iteration)) {
            tasksOf[it] = try tasks(ofInput: config.input(forIteration: it))
        }
        // Each family's prompts in run order, with the RM that ranked each and its mini-batch.
        var order: [String] = []
        var decisionsOf: [String: [(batch: Int, rm: String)]] = [:]
        for b in selections.sorted(by: { $0.global < $1.global }) {
            guard let decisions = selected[b.global], let tasks = tasksOf[b.iteration] else { continue }
            let start = (b.batch - 1) * config.batchSize
            for offset in 0..<b.prompts where start + offset < tasks.count {
                let decision =
                    decisions.count == 1 ? decisions[0] : (offset < decisions.count ? decisions[offset] : decisions[0])
                let rm: String
                switch decision {
                case .arm(let k): rm = k < rms.count ? rms[k] : "?"
                case .ensemble: rm = "ensemble"
                }
                let family = tasks[start + offset]
                if decisionsOf[family] == nil { order.append(family) }
                decisionsOf[family, default: []].append((b.global + 1, rm))
            }
        }
        // Binned per family over its own prompts (at most 60 bins of equal size): every bin holds some
        // of the family's prompts, so no bar is empty where the run was busy with other families.
        return order.map { f in
            let list = decisionsOf[f]!
            let binSize = max(1, Int((Double(list.count) / 60).rounded(.up)))
            var bins: [String] = [], counts: [[String: Int]] = []
            for lo in stride(from: 0, to: list.count, by: binSize) {
                let slice = list[lo..<min(list.count, lo + binSize)]
                let (first, last) = (slice.first!.batch, slice.last!.batch)
                bins.append(first == last ? "\(first)" : "\(first)-\(last)")
                counts.append(slice.reduce(into: [:]) { $0[$1.rm, default: 0] += 1 })
            }
            return FamilyBins(family: f, bins: bins, counts: counts)
        }
    }

    /// How often two RMs prefer the same candidate of a pair, over pairs both rank strictly.
    static func agreement(
        _ scored: [(batch: Int, rm: String, first: Int, scores: [[Double]])], rms: [String]
    ) -> Agreement? {
        struct Key: Hashable { var batch: Int; var first: Int; var offset: Int }
        var byPrompt: [Key: [Int: [Double]]] = [:]
        let index = Dictionary(rms.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
        for s in scored {
            guard let k = index[s.rm] else { continue }
            for (offset, scores) in s.scores.enumerated() {
                byPrompt[Key(batch: s.batch, first: s.first, offset: offset), default: [:]][k] = scores
            }
        }
        let n = rms.count
        var agree = Array(repeating: Array(repeating: 0, count: n), count: n)
        var count = agree
        var prompts = 0
        for (_, byRM) in byPrompt where byRM.count >= 2 {
            prompts += 1
            let present = byRM.keys.sorted()
            for a in present {
                let sa = byRM[a]!
                for b in present where b >= a {
                    let sb = byRM[b]!
                    guard sa.count == sb.count else { continue }
                    for i in 0..<sa.count {
                        for j in (i + 1)..<sa.count {
                            let da = sa[i] - sa[j], db = sb[i] - sb[j]
                            guard da != 0, db != 0 else { continue }
                            count[a][b] += 1
                            if (da > 0) == (db > 0) { agree[a][b] += 1 }
                        }
                    }
                }
            }
        }
        guard prompts > 0 else { return nil }
        for a in 0..<n { for b in 0..<a { agree[a][b] = agree[b][a]; count[a][b] = count[b][a] } }
        return Agreement(names: rms, agree: agree, count: count, prompts: prompts)
    }
}
