#if canImport(Glibc)
import LaserSync
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// Disjoint LinUCB (Li et al. 2010) as LASeR uses it: one ridge-regression model per arm (RM),
/// `A_k = lambda I + sum x x^T`, `b_k = sum r x`, bound `p_k = theta_k . x + alpha sqrt(x^T A_k^-1 x)`.
///
/// Representation: the Cholesky factor `L_k` of `A_k` (`A_k = L_k L_k^T`, lower triangular) in
/// Float32, packed column by column (column j holds rows j..d-1), each element with a 16-bit carry
/// (below), and `b_k` in Float64. Measured figures: docs/performance.md, "Bandit step".
/// - A select solves `L u = x` and `L w = b` in one sweep over the columns of each arm's factor:
///   `x^T A^-1 x = |u|^2` and `theta . x = b^T A^-1 x = w . u`. It reads the d(d+1)/2 Float32 values
///   of each arm (not the carries), the least a select over a symmetric d x d matrix can read.
/// - An update is the rank-1 Cholesky update `L L^T + x x^T` by Givens rotations (LINPACK dchud), also
///   one sweep over the columns. It is deferred: `update` records (arm, x), and the next pass over
///   that arm's factor (the next `select` or `upperConfidenceBounds`; `theta`, `==` and `update` apply
///   it on their own) rotates each column block and then solves with it while it is in cache, so a
///   select + update step reads every factor once and writes one. The rotation code is the same
///   whether it runs fused or alone, so the result does not depend on when it runs.
/// - Why a factor and not `A^-1` with Sherman-Morrison: the same bytes per select, and an update that
///   needs no `A^-1 x` first (Sherman-Morrison needs a matrix-vector pass before its rank-1 pass).
/// - Why Float32: half the bytes of Float64; a select is bound by memory bandwidth from d ~ 1000 on.
///   Bounds agree with a Float64 closed form to ~1e-5 of max(1, |p|) at the sizes tested.
/// - Drift: kept in Float32 alone, an element that grows by many small increments loses the part of
///   each that is below half an ulp, always in the same direction, and the factor drifted from A
///   linearly with the number of updates (max|L L^T - A| / max|A| = 7.6e-5 after 100,000 updates at
///   d = 64). So every element carries the rounding error of its last update as a bfloat16 and adds
///   it back in the next one (Kahan's compensated summation, per element); the error then stays at
///   Float32 rounding, ~1e-7, from 1,000 to 100,000 updates (`laser-bench drift`). No re-factorisation
///   is needed, and none would be possible without keeping A.
/// - Memory: K d(d+1)/2 * 6 bytes (factor + carries) + K d * 8 (b) + d * 8 (the deferred context),
///   at most K d^2 * 4 for d >= 4; a select uses K * 3 d floats of scratch kept with the state.
/// - Threads: above `parallelThreshold` bytes of factors a select shares the arms' sweeps, cut into
///   column pieces, between `maxThreads` threads. Each arm's pieces run in order with the same
///   arithmetic on whichever thread, so results are bitwise the same whatever the thread count:
///   LinUCB is a deterministic function of its update sequence (same binary, same choices). The kernels
///   use only separate multiplies and adds (no FMA contraction, no reductions across SIMD lanes), so
///   they also round the same whatever vector width the compiler picks.
///
/// A value type: the factors live in a class that is copied on write (`update` on a shared copy
/// copies it first). Applying a deferred update inside a non-mutating call changes only the
/// representation, not the value, and happens under the storage's lock, so copies that share storage
/// stay consistent.
public struct LinUCB: Equatable, Sendable {
    public let armCount: Int
    public let dimension: Int
    public let alpha: Double
    public let lambda: Double
    /// How many updates each arm received.
    public private(set) var updates: [Int]
    private var storage: CholeskyStorage

    /// How many threads a select may use once the factors exceed `parallelThreshold` bytes. It changes
    /// only the speed, never a result, and is not part of the value (`==` ignores it).
    public var maxThreads = 2
    /// Above this many bytes of factors a select shares its work between `maxThreads` threads. Measured
    /// with laser-bench (K = 4, 2 threads against 1): 8% and 40% less time at d = 512 (2.1 MB, 2 runs),
    /// 38% at d = 1024 and 43% at d = 4096 (medians of 5 runs); none at d = 384 (1.2 MB).
    public static let parallelThreshold = 2 << 20

    public init(armCount: Int, dimension: Int, alpha: Double = 0.1, lambda: Double = 1.0) {
        precondition(armCount > 0 && dimension > 0 && lambda > 0)
        self.armCount = armCount
        self.dimension = dimension
        self.alpha = alpha
        self.lambda = lambda
        updates = Array(repeating: 0, count: armCount)
        storage = CholeskyStorage(arms: armCount, dimension: dimension, lambda: lambda)
    }

    /// The upper confidence bound `p_k = theta_k . x + alpha * sqrt(x . A_k^-1 x)` of every arm.
    public func upperConfidenceBounds(_ x: [Double]) -> [Double] {
        precondition(x.count == dimension, "context has \(x.count) dimensions, bandit has \(dimension)")
        let threads = storage.factorBytes > Self.parallelThreshold ? min(maxThreads, Self.processors) : 1
        let parts = storage.solveAll(x, threads: threads)
        return parts.map { $0.mean + alpha * $0.variance.squareRoot() }
    }

    /// Every arm's posterior for context x: the ridge estimate `theta_k . x` and `x^T A_k^-1 x` (the
    /// variance factor), from the same sweep as the bounds.
    public func posterior(_ x: [Double]) -> [(mean: Double, variance: Double)] {
        precondition(x.count == dimension, "context has \(x.count) dimensions, bandit has \(dimension)")
        let threads = storage.factorBytes > Self.parallelThreshold ? min(maxThreads, Self.processors) : 1
        return storage.solveAll(x, threads: threads)
    }

    /// The arm with the highest bound; ties go to the lowest arm index (so the first pick is arm 0).
    public func select(_ x: [Double]) -> Int {
        let p = upperConfidenceBounds(x)
        var best = 0
        for k in 1..<armCount where p[k] > p[best] { best = k }
        return best
    }

    /// `A_k += x x^T`, `b_k += r x` for the chosen arm only. The factor update is deferred to the next
    /// pass over the factors (see the type's documentation).
    public mutating func update(arm k: Int, context x: [Double], reward r: Double) {
        precondition(x.count == dimension && (0..<armCount).contains(k))
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        storage.update(arm: k, x, r)
        updates[k] += 1
    }

    /// theta_k = A_k^-1 b_k, the arm's current linear reward estimate.
    public func theta(arm k: Int) -> [Double] {
        precondition((0..<armCount).contains(k))
        let (l, b) = storage.dense(arm: k)
        return Self.solve(factor: l, dimension: dimension, b)
    }

    /// x with L L^T x = b, for a dense lower-triangular L (row-major, d x d), in Float64: L y = b, then
    /// L^T x = y. (theta from the Float32 factor; the benchmark's inverse-error check uses it too.)
    public static func solve(factor l: [Double], dimension d: Int, _ b: [Double]) -> [Double] {
        var y = b
        for j in 0..<d {
            y[j] /= l[j * d + j]
            for i in (j + 1)..<d { y[i] -= l[i * d + j] * y[j] }
        }
        for j in stride(from: d - 1, through: 0, by: -1) {
            var s = y[j]
            for i in (j + 1)..<d { s -= l[i * d + j] * y[i] }
            y[j] = s / l[j * d + j]
        }
        return y
    }

    /// Arm k's Cholesky factor `L` (A_k = L L^T) as a dense row-major d x d Float64 matrix, zero above
    /// the diagonal; for tests and the drift benchmark.
    public func choleskyFactor(arm k: Int) -> [Double] { storage.dense(arm: k).factor }

    /// Bytes this bandit keeps (factors, b, the deferred context), not counting scratch.
    public var stateBytes: Int { storage.factorBytes + storage.carryBytes + armCount * dimension * 8 + dimension * 8 }

    private static let processors = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    public static func == (l: LinUCB, r: LinUCB) -> Bool {
        l.armCount == r.armCount && l.dimension == r.dimension && l.alpha == r.alpha && l.lambda == r.lambda
            && l.updates == r.updates && CholeskyStorage.sameState(l.storage, r.storage)
    }
}

/// The factors, `b`, and the deferred update; all access goes through `locked`.
final class CholeskyStorage: @unchecked Sendable {  // raw factor memory: each select thread touches only its own arms
    let arms: Int
    let d: Int
    /// Floats per packed factor, d(d+1)/2.
    let packed: Int
    /// The factors' Float32 values, what a select reads.
    let factor: UnsafeMutablePointer<Float>
    /// Each factor element's carry, the rounding error of its last update (bfloat16 bits; see `Kernels`).
    let carry: UnsafeMutablePointer<UInt16>
    let b: UnsafeMutablePointer<Double>
    /// The deferred rank-1 update: arm (-1: none) and context.
    private var pendingArm = -1
    private let pendingX: UnsafeMutablePointer<Double>
    /// Per arm, a select's two right-hand sides and the rotated x (3 d floats).
    private let scratch: UnsafeMutableRawPointer
    private var scratchStride: Int { d * 12 }
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    var factorBytes: Int { arms * packed * 4 }
    var carryBytes: Int { arms * packed * 2 }

    init(arms: Int, dimension d: Int, lambda: Double) {
        self.arms = arms
        self.d = d
        packed = d * (d + 1) / 2
        factor = .allocate(capacity: arms * packed)
        factor.initialize(repeating: 0, count: arms * packed)
        carry = .allocate(capacity: arms * packed)
        carry.initialize(repeating: 0, count: arms * packed)
        let root = lambda.squareRoot()
        for k in 0..<arms {
            for j in 0..<d {
                let o = k * packed + Kernels.offset(j, d)
                factor[o] = Float(root)
                carry[o] = Kernels.carryBits(Float(root - Double(Float(root))))
            }
        }
        b = .allocate(capacity: arms * d)
        b.initialize(repeating: 0, count: arms * d)
        pendingX = .allocate(capacity: d)
        pendingX.initialize(repeating: 0, count: d)
        scratch = .allocate(byteCount: arms * d * 12, alignment: 16)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    private init(copying o: CholeskyStorage) {
        arms = o.arms
        d = o.d
        packed = o.packed
        factor = .allocate(capacity: arms * packed)
        factor.initialize(from: o.factor, count: arms * packed)
        carry = .allocate(capacity: arms * packed)
        carry.initialize(from: o.carry, count: arms * packed)
        b = .allocate(capacity: arms * d)
        b.initialize(from: o.b, count: arms * d)
        pendingX = .allocate(capacity: d)
        pendingX.initialize(from: o.pendingX, count: d)
        pendingArm = o.pendingArm
        scratch = .allocate(byteCount: arms * d * 12, alignment: 16)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        factor.deallocate()
        carry.deallocate()
        b.deallocate()
        pendingX.deallocate()
        scratch.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    func copy() -> CholeskyStorage { locked { CholeskyStorage(copying: self) } }

    /// Applies the deferred update on its own (a pass over one factor). Call with the lock held.
    private func materialize() {
        guard pendingArm >= 0 else { return }
        let z = scratch.bindMemory(to: Float.self, capacity: d)
        for i in 0..<d { z[i] = Float(pendingX[i]) }
        let l = factor + pendingArm * packed, e = carry + pendingArm * packed
        var j0 = 0
        while j0 < d {
            Kernels.rotateBlock(l, e, d, j0, min(Kernels.block, d - j0), z)
            j0 += Kernels.block
        }
        pendingArm = -1
    }

    func update(arm k: Int, _ x: [Double], _ r: Double) {
        locked {
            materialize()
            for i in 0..<d {
                pendingX[i] = x[i]
                b[k * d + i] += r * x[i]
            }
            pendingArm = k
        }
    }

    /// Per arm, `w . u` and `|u|^2` with `L u = x`, `L w = b`; applies a deferred update on the way.
    /// `threads`: how many threads may share the work. Each arm's sweep runs its column pieces in
    /// order, on whichever thread, with the same arithmetic, so the result does not depend on it.
    func solveAll(_ x: [Double], threads: Int) -> [(mean: Double, variance: Double)] {
        locked {
            let pending = pendingArm
            var out = [(mean: Double, variance: Double)](repeating: (0, 0), count: arms)
            let workers = min(threads, arms)
            if workers <= 1 {
                for k in 0..<arms {
                    begin(arm: k, x, rotate: k == pending)
                    sweep(arm: k, columns: 0..<d, rotate: k == pending)
                    out[k] = finish(arm: k)
                }
            } else {
                // Each arm's sweep in pieces of about equal work, handed out so that both threads
                // stay busy to the end (whole arms leave one thread idle while the other does the
                // longest: the pending arm's pass is about 3.5 solves).
                let pieces = Self.pieces(d: d, count: 4)
                let queue = PieceQueue(arms: arms, pieces: pieces.count, first: pending)
                out.withUnsafeMutableBufferPointer { buffer in
                    let out = SendablePointer(buffer)  // each thread writes only its own arms' elements
                    DispatchQueue.concurrentPerform(iterations: workers) { _ in
                        while let (k, n) = queue.next() {
                            if n == 0 { self.begin(arm: k, x, rotate: k == pending) }
                            self.sweep(arm: k, columns: pieces[n], rotate: k == pending)
                            if n == pieces.count - 1 { out[k] = self.finish(arm: k) }
                            queue.done(arm: k)
                        }
                    }
                }
            }
            pendingArm = -1
            return out
        }
    }

    /// Column ranges (multiples of the kernels' block) with about equal numbers of factor elements.
    static func pieces(d: Int, count: Int) -> [Range<Int>] {
        let total = Double(d) * Double(d + 1) / 2
        var bounds = [0]
        for t in 1..<count {
            // Elements in columns 0..<m: m d - m (m - 1) / 2; solve for t / count of the total.
            let target = total * Double(t) / Double(count)
            let dd = Double(d) + 0.5
            let m = dd - (dd * dd - 2 * target).squareRoot()
            let aligned = min(d, max(bounds.last!, Int(m.rounded()) / Kernels.block * Kernels.block))
            bounds.append(aligned)
        }
        bounds.append(d)
        return (0..<count).map { bounds[$0]..<bounds[$0 + 1] }
    }

    private func vectors(
        arm k: Int
    ) -> (r: UnsafeMutablePointer<Float>, s: UnsafeMutablePointer<Float>, z: UnsafeMutablePointer<Float>) {
        let r = (scratch + k * scratchStride).bindMemory(to: Float.self, capacity: 3 * d)
        return (r, r + d, r + 2 * d)
    }

    /// Sets up arm k's right-hand sides x and b (and the context to rotate in). Lock held.
    private func begin(arm k: Int, _ x: [Double], rotate: Bool) {
        let (r, s, z) = vectors(arm: k)
        for i in 0..<d {
            r[i] = Float(x[i])
            s[i] = Float(b[k * d + i])
        }
        if rotate { for i in 0..<d { z[i] = Float(pendingX[i]) } }
    }

    /// Columns `columns` (from a block boundary) of arm k's sweep: rotate (for the pending arm), then
    /// solve, block by block. Lock held; arms may run on different threads (each has its own scratch).
    private func sweep(arm k: Int, columns: Range<Int>, rotate: Bool) {
        let (r, s, z) = vectors(arm: k)
        let l = factor + k * packed, e = carry + k * packed
        var j0 = columns.lowerBound
        while j0 < columns.upperBound {
            let nb = min(Kernels.block, d - j0)
            if rotate { Kernels.rotateBlock(l, e, d, j0, nb, z) }
            Kernels.solveBlock(l, d, j0, nb, r, s)
            j0 += Kernels.block
        }
    }

    /// After the sweep r holds u and s holds w: (w . u, |u|^2) in a fixed order, in Float64.
    private func finish(arm k: Int) -> (mean: Double, variance: Double) {
        let (r, s, _) = vectors(arm: k)
        var wu = 0.0, uu = 0.0
        for i in 0..<d {
            let u = Double(r[i])
            wu += Double(s[i]) * u
            uu += u * u
        }
        return (wu, uu)
    }

    /// Arm k's factor (dense row-major lower, Float64) and b, with any deferred update applied.
    func dense(arm k: Int) -> (factor: [Double], b: [Double]) {
        locked {
            materialize()
            var l = [Double](repeating: 0, count: d * d)
            for j in 0..<d {
                let o = k * packed + Kernels.offset(j, d)
                for i in j..<d { l[i * d + j] = Double(factor[o + i - j]) }
            }
            return (l, Array(UnsafeBufferPointer(start: b + k * d, count: d)))
        }
    }

    /// Whether both hold the same state (bitwise, after applying deferred updates).
    static func sameState(_ x: CholeskyStorage, _ y: CholeskyStorage) -> Bool {
        if x === y { return true }
        guard x.arms == y.arms && x.d == y.d else { return false }
        x.locked { x.materialize() }
        y.locked { y.materialize() }
        let (first, second) = ObjectIdentifier(x) < ObjectIdentifier(y) ? (x, y) : (y, x)
        return first.locked {
            second.locked {
                memcmp(x.factor, y.factor, x.factorBytes) == 0 && memcmp(x.carry, y.carry, x.carryBytes) == 0
                    && memcmp(x.b, y.b, x.arms * x.d * 8) == 0
            }
        }
    }
}

/// Hands out the pieces of every arm's sweep, each arm's in order and one at a time: the next piece
/// of the free arm that has done the fewest (the pending arm first on ties, then by index). A thread
/// that finds no free arm with work left stops; the busy arm's thread finishes that arm.
final class PieceQueue: @unchecked Sendable {
    private var done: [Int]
    private var busy: [Bool]
    private let pieces: Int
    private let first: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(arms: Int, pieces: Int, first: Int) {
        done = Array(repeating: 0, count: arms)
        busy = Array(repeating: false, count: arms)
        self.pieces = pieces
        self.first = first
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func next() -> (arm: Int, piece: Int)? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var best: Int? = nil
        for k in done.indices where !busy[k] && done[k] < pieces {
            guard let b = best else { best = k; continue }
            if done[k] < done[b] || (done[k] == done[b] && k == first) { best = k }
        }
        guard let k = best else { return nil }
        busy[k] = true
        return (k, done[k])
    }

    func done(arm k: Int) {
        pthread_mutex_lock(mutex)
        busy[k] = false
        done[k] += 1
        pthread_mutex_unlock(mutex)
    }
}

/// Column-block kernels on one packed lower-triangular factor (column j at `offset(j, d)`, rows j..d-1).
enum Kernels {
    /// Columns per block: one pass over the rows below a block applies 4 columns at once, so the
    /// right-hand sides (or the rotated vector) are loaded and stored once per 4 columns.
    static let block = 4

    @inline(__always) static func offset(_ j: Int, _ d: Int) -> Int { j * d - j * (j - 1) / 2 }

    /// Forward substitution for columns j0..<j0+nb of `L u = r`, `L w = s`, in place: r[j], s[j] become
    /// u_j, w_j for those columns and the rows below lose their contributions.
    @inline(__always)
    static func solveBlock(
        _ l: UnsafeMutablePointer<Float>, _ d: Int, _ j0: Int, _ nb: Int,
        _ r: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Float>
    ) {
        var u = SIMD4<Float>(), w = SIMD4<Float>()
        for c in 0..<nb {
            let j = j0 + c
            let col = l + offset(j, d) - j  // col[i] = L[i, j]
            let pivot = col[j]
            let uj = r[j] / pivot, wj = s[j] / pivot
            r[j] = uj
            s[j] = wj
            u[c] = uj
            w[c] = wj
            for i in (j + 1)..<(j0 + nb) {
                r[i] = r[i] - uj * col[i]
                s[i] = s[i] - wj * col[i]
            }
        }
        var i = j0 + nb
        guard i < d else { return }
        if nb < block {
            // Only the last block of a d that is not a multiple of 4 gets here.
            for c in 0..<nb {
                let j = j0 + c
                let col = l + offset(j, d) - j
                for i in (j0 + nb)..<d {
                    r[i] = r[i] - u[c] * col[i]
                    s[i] = s[i] - w[c] * col[i]
                }
            }
            return
        }
        let c0 = UnsafeRawPointer(l + offset(j0, d) - j0)
        let c1 = UnsafeRawPointer(l + offset(j0 + 1, d) - (j0 + 1))
        let c2 = UnsafeRawPointer(l + offset(j0 + 2, d) - (j0 + 2))
        let c3 = UnsafeRawPointer(l + offset(j0 + 3, d) - (j0 + 3))
        let rr = UnsafeMutableRawPointer(r), sr = UnsafeMutableRawPointer(s)
        typealias V = SIMD8<Float>
        let u0 = V(repeating: u[0]), u1 = V(repeating: u[1]), u2 = V(repeating: u[2]), u3 = V(repeating: u[3])
        let w0 = V(repeating: w[0]), w1 = V(repeating: w[1]), w2 = V(repeating: w[2]), w3 = V(repeating: w[3])
        while i &+ 8 <= d {
            let o = i &* 4
            let a0 = c0.loadUnaligned(fromByteOffset: o, as: V.self)
            let a1 = c1.loadUnaligned(fromByteOffset: o, as: V.self)
            let a2 = c2.loadUnaligned(fromByteOffset: o, as: V.self)
            let a3 = c3.loadUnaligned(fromByteOffset: o, as: V.self)
            let rv = rr.loadUnaligned(fromByteOffset: o, as: V.self)
            let sv = sr.loadUnaligned(fromByteOffset: o, as: V.self)
            rr.storeBytes(of: rv - u0 * a0 - u1 * a1 - u2 * a2 - u3 * a3, toByteOffset: o, as: V.self)
            sr.storeBytes(of: sv - w0 * a0 - w1 * a1 - w2 * a2 - w3 * a3, toByteOffset: o, as: V.self)
            i &+= 8
        }
        let f0 = l + offset(j0, d) - j0, f1 = l + offset(j0 + 1, d) - (j0 + 1)
        let f2 = l + offset(j0 + 2, d) - (j0 + 2), f3 = l + offset(j0 + 3, d) - (j0 + 3)
        while i < d {
            r[i] = r[i] - u[0] * f0[i] - u[1] * f1[i] - u[2] * f2[i] - u[3] * f3[i]
            s[i] = s[i] - w[0] * f0[i] - w[1] * f1[i] - w[2] * f2[i] - w[3] * f3[i]
            i += 1
        }
    }

    // A factor element is a Float32 value f (what a select reads) plus a carry c, the rounding error
    // of f's last update, kept as a bfloat16 (the top half of a Float32). An update adds its increment
    // and the carry to f and keeps the new rounding error: Kahan's compensated summation per element.
    // Why: in Float32 alone, an element that grows by many small increments loses the part of each
    // below half an ulp, always in the same direction, and the factor drifted linearly with the
    // number of updates (measured: max|L L^T - A| / max|A| = 7.6e-5 after 100,000 updates at d = 64).

    @inline(__always) static func carryValue(_ c: UInt16) -> Float { Float(bitPattern: UInt32(c) << 16) }
    /// To bfloat16, rounding half away from zero (ties are rare and only move 2^-9 of a carry).
    @inline(__always) static func carryBits(_ x: Float) -> UInt16 {
        UInt16(truncatingIfNeeded: (x.bitPattern &+ 0x8000) >> 16)
    }

    /// Adds `delta` (an update's change of the element) and the carry to the element; keeps the new
    /// rounding error. The scalar form of the vector loop in `rotateBlock`, the same operations.
    @inline(__always) static func accumulate(
        _ h: UnsafeMutablePointer<Float>, _ e: UnsafeMutablePointer<UInt16>, _ delta: Float
    ) {
        let v = h.pointee
        let total = delta + carryValue(e.pointee)
        let f = v + total
        h.pointee = f
        e.pointee = carryBits(total - (f - v))
    }

    /// The rank-1 update `L L^T + z z^T` for columns j0..<j0+nb by Givens rotations (LINPACK dchud),
    /// in place; z carries the rotated remainder to the next block. Per column a rotation (c, s) with
    /// `L_ij' = L_ij + ((c - 1) L_ij + s z_i)`, `z_i' = z_i + ((c - 1) z_i - s L_ij)`; c - 1 is computed
    /// without cancellation, so the increments are accurate and `accumulate` adds them without bias.
    @inline(__always)
    static func rotateBlock(
        _ l: UnsafeMutablePointer<Float>, _ carry: UnsafeMutablePointer<UInt16>, _ d: Int,
        _ j0: Int, _ nb: Int, _ z: UnsafeMutablePointer<Float>
    ) {
        var cm = SIMD4<Float>(), sn = SIMD4<Float>()
        for c in 0..<nb {
            let j = j0 + c
            let o = offset(j, d) - j  // element (i, j) at o + i
            // The rotation in Float64: with z_j = 0 it is exactly (1, 0) and leaves the column as it is.
            let ljj = Double(l[o + j]) + Double(carryValue(carry[o + j])), zj = Double(z[j])
            let radius = (ljj * ljj + zj * zj).squareRoot()
            let sj = zj / radius
            let cm1 = -(zj * zj) / ((ljj + radius) * radius)  // c - 1 = ljj / radius - 1
            // The diagonal becomes the radius: its increment is radius - ljj = z_j^2 / (ljj + radius).
            accumulate(l + o + j, carry + o + j, Float(zj * zj / (ljj + radius)))
            z[j] = 0
            cm[c] = Float(cm1)
            sn[c] = Float(sj)
            for i in (j + 1)..<(j0 + nb) { rotate(l + o + i, carry + o + i, &z[i], cm[c], sn[c]) }
        }
        var i = j0 + nb
        guard i < d else { return }
        if nb < block {
            for c in 0..<nb {
                let o = offset(j0 + c, d) - (j0 + c)
                for i in (j0 + nb)..<d { rotate(l + o + i, carry + o + i, &z[i], cm[c], sn[c]) }
            }
            return
        }
        let o0 = offset(j0, d) - j0, o1 = offset(j0 + 1, d) - (j0 + 1)
        let o2 = offset(j0 + 2, d) - (j0 + 2), o3 = offset(j0 + 3, d) - (j0 + 3)
        let h = UnsafeMutableRawPointer(l), e = UnsafeMutableRawPointer(carry), zr = UnsafeMutableRawPointer(z)
        typealias V = SIMD4<Float>
        let m = (V(repeating: cm[0]), V(repeating: cm[1]), V(repeating: cm[2]), V(repeating: cm[3]))
        let n = (V(repeating: sn[0]), V(repeating: sn[1]), V(repeating: sn[2]), V(repeating: sn[3]))
        // Wrapping index arithmetic: no overflow checks in the loop (offsets are below d^2).
        while i &+ 4 <= d {
            var zv = zr.loadUnaligned(fromByteOffset: i &* 4, as: V.self)
            rotate4(h, e, o0 &+ i, &zv, m.0, n.0)
            rotate4(h, e, o1 &+ i, &zv, m.1, n.1)
            rotate4(h, e, o2 &+ i, &zv, m.2, n.2)
            rotate4(h, e, o3 &+ i, &zv, m.3, n.3)
            zr.storeBytes(of: zv, toByteOffset: i &* 4, as: V.self)
            i &+= 4
        }
        while i < d {
            rotate(l + o0 + i, carry + o0 + i, &z[i], cm[0], sn[0])
            rotate(l + o1 + i, carry + o1 + i, &z[i], cm[1], sn[1])
            rotate(l + o2 + i, carry + o2 + i, &z[i], cm[2], sn[2])
            rotate(l + o3 + i, carry + o3 + i, &z[i], cm[3], sn[3])
            i += 1
        }
    }

    /// One element of a column's rotation (c - 1, s) against z_i.
    @inline(__always) static func rotate(
        _ h: UnsafeMutablePointer<Float>, _ e: UnsafeMutablePointer<UInt16>,
        _ z: inout Float, _ cm1: Float, _ s: Float
    ) {
        let v = h.pointee
        accumulate(h, e, cm1 * v + s * z)
        z = z + (cm1 * z - s * v)
    }

    /// `rotate` on 4 consecutive rows (element offset o), the same operations lane by lane.
    @inline(__always) static func rotate4(
        _ h: UnsafeMutableRawPointer, _ e: UnsafeMutableRawPointer, _ o: Int,
        _ z: inout SIMD4<Float>, _ cm1: SIMD4<Float>, _ s: SIMD4<Float>
    ) {
        let v = h.loadUnaligned(fromByteOffset: o &* 4, as: SIMD4<Float>.self)
        let carryIn = unsafeBitCast(
            SIMD4<UInt32>(truncatingIfNeeded: e.loadUnaligned(fromByteOffset: o &* 2, as: SIMD4<UInt16>.self)) &<< 16,
            to: SIMD4<Float>.self)
        let total = (cm1 * v + s * z) + carryIn
        let f = v + total
        h.storeBytes(of: f, toByteOffset: o &* 4, as: SIMD4<Float>.self)
        let carryOut = (unsafeBitCast(total - (f - v), to: SIMD4<UInt32>.self) &+ 0x8000) &>> 16
        e.storeBytes(of: SIMD4<UInt16>(truncatingIfNeeded: carryOut), toByteOffset: o &* 2, as: SIMD4<UInt16>.self)
        z = z + (cm1 * z - s * v)
    }
}
