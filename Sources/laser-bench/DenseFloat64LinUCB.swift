/// The baseline for laser-bench: LaserCore's LinUCB as it was before the Float32 Cholesky form
/// (commit 6ae41d9), unchanged but for the name and access levels, so that `bandit` and `drift` can
/// measure it in the same invocation as the new one.
///
/// Disjoint LinUCB (Li et al. 2010): keeps `A_k^-1` directly and updates it with Sherman-Morrison,
/// O(d^2) per update and per selection. Float64, row-major dense d x d per arm.
struct DenseFloat64LinUCB: Equatable, Sendable {
    let armCount: Int
    let dimension: Int
    let alpha: Double
    let lambda: Double
    /// Row-major d x d inverse per arm.
    private(set) var aInverse: [[Double]]
    private(set) var b: [[Double]]
    /// How many updates each arm received.
    private(set) var updates: [Int]

    init(armCount: Int, dimension: Int, alpha: Double = 0.1, lambda: Double = 1.0) {
        precondition(armCount > 0 && dimension > 0 && lambda > 0)
        self.armCount = armCount
        self.dimension = dimension
        self.alpha = alpha
        self.lambda = lambda
        var identity = [Double](repeating: 0, count: dimension * dimension)
        for i in 0..<dimension { identity[i * dimension + i] = 1 / lambda }
        aInverse = Array(repeating: identity, count: armCount)
        b = Array(repeating: [Double](repeating: 0, count: dimension), count: armCount)
        updates = Array(repeating: 0, count: armCount)
    }

    /// The upper confidence bound `p_k = theta_k . x + alpha * sqrt(x . A_k^-1 x)` of every arm.
    func upperConfidenceBounds(_ x: [Double]) -> [Double] {
        precondition(x.count == dimension, "context has \(x.count) dimensions, bandit has \(dimension)")
        return (0..<armCount).map { k in
            let v = Self.multiply(aInverse[k], x, dimension)
            // theta . x = (A^-1 b) . x = b . (A^-1 x) because A^-1 is symmetric.
            let mean = Self.dot(b[k], v)
            let variance = max(0, Self.dot(x, v))
            return mean + alpha * variance.squareRoot()
        }
    }

    /// The arm with the highest bound; ties go to the lowest arm index (so the first pick is arm 0).
    func select(_ x: [Double]) -> Int {
        let p = upperConfidenceBounds(x)
        var best = 0
        for k in 1..<armCount where p[k] > p[best] { best = k }
        return best
    }

    /// `A_k += x x^T`, `b_k += r x` for the chosen arm only.
    mutating func update(arm k: Int, context x: [Double], reward r: Double) {
        precondition(x.count == dimension && (0..<armCount).contains(k))
        let d = dimension
        let v = Self.multiply(aInverse[k], x, d)
        let denominator = 1 + Self.dot(x, v)
        aInverse[k].withUnsafeMutableBufferPointer { a in
            for i in 0..<d {
                let scale = v[i] / denominator
                if scale == 0 { continue }
                for j in 0..<d { a[i * d + j] -= scale * v[j] }
            }
        }
        for i in 0..<d { b[k][i] += r * x[i] }
        updates[k] += 1
    }

    /// theta_k = A_k^-1 b_k, the arm's current linear reward estimate.
    func theta(arm k: Int) -> [Double] { Self.multiply(aInverse[k], b[k], dimension) }

    static func multiply(_ m: [Double], _ x: [Double], _ d: Int) -> [Double] {
        var out = [Double](repeating: 0, count: d)
        m.withUnsafeBufferPointer { m in
            x.withUnsafeBufferPointer { x in
                for i in 0..<d {
                    var s = 0.0
                    let row = i * d
                    for j in 0..<d { s += m[row + j] * x[j] }
                    out[i] = s
                }
            }
        }
        return out
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += a[i] * b[i] }
        return s
    }
}
