/// How candidate scores become preference pairs.
public struct PairPolicy: Equatable, Sendable {
    public enum Mode: String, Equatable, Sendable, Codable, CaseIterable {
        /// Paper code: sort by score, nested i < j walk over the sorted list, up to `maxPairs` pairs
        /// (with many candidates: the best against ranks 2..P+1).
        case bestVsRest = "best-vs-rest"
        /// OpenRLHF iterative DPO: best against worst, one pair per prompt.
        case bestVsWorst = "best-vs-worst"
    }

    public var mode: Mode
    public var maxPairs: Int
    /// A pair is emitted only if chosen's score exceeds rejected's by more than this (0: skip exact ties).
    public var margin: Double

    public init(mode: Mode = .bestVsRest, maxPairs: Int = 10, margin: Double = 0) {
        self.mode = mode
        self.maxPairs = maxPairs
        self.margin = margin
    }

    /// Candidate index pairs (chosen, rejected) for one prompt's scores; `accept` can veto a pair
    /// before it counts towards `maxPairs` (the agreement ensemble's filter).
    /// Order is deterministic: score descending, then candidate index ascending.
    public func pairs(scores: [Double], accept: (Int, Int) -> Bool = { _, _ in true }) -> [(chosen: Int, rejected: Int)]
    {
        guard scores.count >= 2, maxPairs > 0 else { return [] }
        let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        switch mode {
        case .bestVsWorst:
            let best = order.first!, worst = order.last!
            return scores[best] - scores[worst] > margin && accept(best, worst) ? [(best, worst)] : []
        case .bestVsRest:
            var out: [(chosen: Int, rejected: Int)] = []
            for i in 0..<order.count {
                for j in (i + 1)..<order.count
                where scores[order[i]] - scores[order[j]] > margin && accept(order[i], order[j]) {
                    out.append((order[i], order[j]))
                    if out.count == maxPairs { return out }
                }
            }
            return out
        }
    }
}

/// The agreement ensemble's test for a pair: of the RMs that tell the two candidates apart, the
/// share that prefers `chosen`. A pair is kept when that share is at least the threshold (and at
/// least one RM has an opinion), so pairs the RMs disagree on never reach the trainer.
public enum AgreementFilter {
    public static func agreement(_ perRM: [[Double]], chosen i: Int, rejected j: Int) -> Double? {
        var opinions = 0, agree = 0
        for s in perRM where s[i] != s[j] {
            opinions += 1
            if s[i] > s[j] { agree += 1 }
        }
        return opinions == 0 ? nil : Double(agree) / Double(opinions)
    }
}

/// Combines several RMs' scores for the score-ensemble baseline.
public enum ScoreEnsemble {
    /// Per-RM scores of one prompt are z-scored across its candidates (a constant RM contributes 0),
    /// then averaged over RMs, so RMs on different scales weigh the same.
    public static func combine(_ perRM: [[Double]]) -> [Double] {
        precondition(!perRM.isEmpty)
        let n = perRM[0].count
        var total = [Double](repeating: 0, count: n)
        for scores in perRM {
            precondition(scores.count == n)
            let mean = scores.reduce(0, +) / Double(n)
            let variance = scores.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            let sd = variance.squareRoot()
            guard sd > 1e-12 else { continue }
            for i in 0..<n { total[i] += (scores[i] - mean) / sd }
        }
        return total.map { $0 / Double(perRM.count) }
    }
}
