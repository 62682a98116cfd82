import Foundation
import LaserCore

/// What earlier incarnations of a run counted, read from its summary.json when a run is resumed: each
/// incarnation's core counts from zero, so the summary it writes adds these, and totals (counters, each
/// iteration's wall time) add up across crashes and resumes instead of showing only the last part.
/// (An incarnation killed with SIGKILL writes no summary: its time since the last one is not counted.)
struct SummaryBaseline {
    var present = false
    var counters: [String: Int] = [:]
    var wallSeconds: [Int: Double] = [:]

    init() {}

    init(path: String) {
        guard let data = FileManager.default.contents(atPath: path),
            let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return }
        present = true
        for (k, v) in root["counters"] as? [String: Any] ?? [:] {
            if let n = v as? NSNumber { counters[k] = n.intValue }
        }
        for it in root["iterations"] as? [[String: Any]] ?? [] {
            if let n = (it["iteration"] as? NSNumber)?.intValue, let w = (it["wall_seconds"] as? NSNumber)?.doubleValue
            {
                wallSeconds[n] = w
            }
        }
    }

    /// `summary` (this incarnation's) plus what earlier ones counted.
    func adding(to summary: RunSummary) -> RunSummary {
        guard present else { return summary }
        var s = summary
        for i in s.iterations.indices { s.iterations[i].wallSeconds += wallSeconds[s.iterations[i].iteration] ?? 0 }
        let encoder = JSONEncoder()
        guard let data = try? encoder.encode(s.counters),
            var mine = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return s }
        for (k, v) in counters { mine[k] = ((mine[k] as? NSNumber)?.intValue ?? 0) + v }
        if let merged = try? JSONSerialization.data(withJSONObject: mine),
            let counters = try? JSONDecoder().decode(RunSummary.Counters.self, from: merged)
        {
            s.counters = counters
        }
        return s
    }
}
