/// LASeR's reward normalisation (paper code): raw rewards are mapped to [0, 1] by the 20th and 80th
/// percentiles of the history of all raw rewards so far (all arms, no window).
///
/// The new reward joins the history before the percentiles are taken; with fewer than two entries
/// the raw reward is returned as is. When q80 == q20 (a flat history) a reward inside the band maps
/// to 0.5, where the reference code divides by zero. Percentiles interpolate linearly (numpy's default).
public struct RewardNormalizer: Equatable, Sendable {
    /// Sorted history, so a percentile is O(1) and an insert O(n) without re-sorting.
    public private(set) var sortedHistory: [Double] = []

    public init() {}

    public mutating func normalize(_ r: Double) -> Double {
        precondition(r.isFinite, "reward must be finite")
        insert(r)
        guard sortedHistory.count >= 2 else { return r }
        let q20 = Self.percentile(sortedHistory, 0.2)
        let q80 = Self.percentile(sortedHistory, 0.8)
        if r < q20 { return 0 }
        if r > q80 { return 1 }
        guard q80 > q20 else { return 0.5 }
        return (r - q20) / (q80 - q20)
    }

    /// numpy.percentile(values, q * 100) with linear interpolation, for sorted input.
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty)
        let position = q * Double(sorted.count - 1)
        let lo = Int(position.rounded(.down))
        let hi = Int(position.rounded(.up))
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - Double(lo))
    }

    private mutating func insert(_ r: Double) {
        var lo = 0, hi = sortedHistory.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sortedHistory[mid] <= r { lo = mid + 1 } else { hi = mid }
        }
        sortedHistory.insert(r, at: lo)
    }
}
