import Foundation
import LaserCore
import StableRandom

// laser-bench: micro-benchmarks of the core that the performance docs quote. Each prints a table and,
// on its last line, one JSON object. Build with -c release:
//   swift run -c release laser-bench bandit [--dims 384,1024,4096] [--steps N] [--baseline-steps N]
//   swift run -c release laser-bench drift [--dims 64,384] [--updates 100000]
//   swift run -c release laser-bench ingest FILE.jsonl [--repeats 3]
//   swift run -c release laser-bench strings FILE.jsonl [--repeats 5]

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func json(_ object: [String: Any]) -> String {
    String(data: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), encoding: .utf8)!
}

/// Sums `floats` floats from `p` as 8 interleaved streams (a cache line of each per round, 8 SIMD
/// accumulators), the way a select reads 4 columns of a factor plus its vectors: one stream per
/// thread leaves most of a core's bandwidth unused on this machine (measured: 7.5 vs 16 GB/s).
@inline(never) func sumStreams(_ p: UnsafePointer<Float>, _ floats: Int) -> Float {
    let streams = 8
    let part = floats / streams / 16 * 16
    let v = UnsafeRawPointer(p)
    var acc = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
    var i = 0
    while i < part {
        acc.0 += v.loadUnaligned(fromByteOffset: (0 * part + i) * 4, as: SIMD16<Float>.self)
        acc.1 += v.loadUnaligned(fromByteOffset: (1 * part + i) * 4, as: SIMD16<Float>.self)
        acc.2 += v.loadUnaligned(fromByteOffset: (2 * part + i) * 4, as: SIMD16<Float>.self)
        acc.3 += v.loadUnaligned(fromByteOffset: (3 * part + i) * 4, as: SIMD16<Float>.self)
        acc.0 += v.loadUnaligned(fromByteOffset: (4 * part + i) * 4, as: SIMD16<Float>.self)
        acc.1 += v.loadUnaligned(fromByteOffset: (5 * part + i) * 4, as: SIMD16<Float>.self)
        acc.2 += v.loadUnaligned(fromByteOffset: (6 * part + i) * 4, as: SIMD16<Float>.self)
        acc.3 += v.loadUnaligned(fromByteOffset: (7 * part + i) * 4, as: SIMD16<Float>.self)
        i += 16
    }
    return (acc.0 + acc.1 + acc.2 + acc.3).sum()
}

/// Read bandwidth (bytes/s, median of 9 rounds) over a buffer of `bytes` that is read in full each
/// round, split over `threads` threads the way a select splits its arms (DispatchQueue.concurrentPerform).
/// Small buffers are read several times per round so that a round lasts at least ~2 ms.
func readBandwidth(bytes: Int, threads: Int) -> Double {
    let floats = max(bytes / 4, 1 << 14)
    let p = UnsafeMutablePointer<Float>.allocate(capacity: floats)
    defer { p.deallocate() }
    p.initialize(repeating: 1, count: floats)
    let repeats = max(1, (32 << 20) / (floats * 4))
    let chunk = floats / threads
    var rates: [Double] = []
    var sink: Float = 0
    let base = UInt(bitPattern: p)  // an address is Sendable; the pointer is not
    for round in 0..<10 {
        let t = now()
        for _ in 0..<repeats {
            p[0] += 1  // a store between passes, so that no pass can be folded into another
            if threads == 1 {
                sink += sumStreams(p, floats)
            } else {
                DispatchQueue.concurrentPerform(iterations: threads) { k in
                    let s = sumStreams(UnsafePointer<Float>(bitPattern: base)! + k * chunk, chunk)
                    if s == 0 { print("") }
                }
            }
        }
        let dt = now() - t
        if round > 0 { rates.append(Double(repeats * floats * 4) / dt) }  // round 0 warms up
    }
    if sink == -1 { print("") }
    return median(rates)
}

func residentBytes() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let parts = s.split(separator: " ")
    return (Int(parts[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func context(_ rng: inout SplitMix64, _ d: Int) -> [Double] {
    HashingFeaturizer.normalized((0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 })
}

protocol Bandit {
    func select(_ x: [Double]) -> Int
    mutating func update(arm: Int, context: [Double], reward: Double)
}
extension LinUCB: Bandit {}
extension DenseFloat64LinUCB: Bandit {}

struct StepTimes {
    var select: [Double] = []
    var update: [Double] = []
    var step: [Double] = []
    var choices: [Int] = []
    /// Growth of the resident set from before the bandit was made to its last step (0 where freed
    /// memory of an earlier run was reused).
    var resident = 0
}

/// `steps` timed select+update steps after `warmup` untimed ones (which also fault the state in), on
/// contexts and rewards drawn from a seed per d (the same for every implementation).
func timeSteps<B: Bandit>(d: Int, steps: Int, warmup: Int, _ make: () -> B) -> StepTimes {
    var times = StepTimes()
    let before = residentBytes()
    var bandit = make()
    var rng = SplitMix64(seed: UInt64(d))
    for n in 0..<(warmup + steps) {
        let x = context(&rng, d)
        let reward = Double(rng.next() % 1000) / 1000
        let t0 = now()
        let arm = bandit.select(x)
        let t1 = now()
        bandit.update(arm: arm, context: x, reward: reward)
        let t2 = now()
        if n == warmup + steps - 1 { times.resident = residentBytes() - before }
        if n >= warmup {
            times.select.append((t1 - t0) * 1000)
            times.update.append((t2 - t1) * 1000)
            times.step.append((t2 - t0) * 1000)
        }
        times.choices.append(arm)
    }
    return times
}

func bandit(dims: [Int], steps: Int, baselineSteps: Int) {
    let arms = 4
    let dramBytes = 1 << 30
    let dram1 = readBandwidth(bytes: dramBytes, threads: 1), dram2 = readBandwidth(bytes: dramBytes, threads: 2)
    print(
        String(
            format: "read bandwidth, 1 GiB buffer, 8 streams per thread: %.1f GB/s (1 thread), %.1f GB/s (2 threads)",
            dram1 / 1e9, dram2 / 1e9))
    print(
        "LinUCB select + update, K = \(arms) arms, medians of \(steps) steps (the Float64 baseline: \(baselineSteps) steps at d >= 4096)"
    )
    print("bandwidth: over a buffer of the new state's size; limit: bytes moved per step / the higher of the two")
    print(
        "state: bytes the bandit keeps (its resident-set growth is in the JSON); moved: bytes a step must read + write")
    print(
        "float32_cholesky_*: this LinUCB with maxThreads 2 and 1 (2 threads only above LinUCB.parallelThreshold = "
            + "\(LinUCB.parallelThreshold >> 20) MiB of factors, d >= 512 here); dense_float64_baseline: the code it replaced"
    )
    print(
        "d     implementation           ms/step  select ms  update ms  state MB  K*d^2*4 MB  moved MB/step  BW GB/s 1T/2T  limit ms  ratio"
    )
    var results: [[String: Any]] = []
    for d in dims {
        let packedBytes = d * (d + 1) / 2 * 4
        let bound = arms * d * d * 4
        let bw1 = readBandwidth(bytes: arms * packedBytes, threads: 1)
        let bw2 = readBandwidth(bytes: arms * packedBytes, threads: 2)
        var row: [String: Any] = [
            "d": d, "state_bound_bytes": bound, "bandwidth_1t_gb_s": bw1 / 1e9, "bandwidth_2t_gb_s": bw2 / 1e9,
            "threads_used_by_2t": arms * packedBytes > LinUCB.parallelThreshold ? 2 : 1,
        ]
        func report(_ name: String, _ t: StepTimes, state: Int, moved: Int) -> [String: Any] {
            let limit = Double(moved) / max(bw1, bw2) * 1000
            print(
                String(format: "%-5d ", d) + name.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + String(
                        format: " %-8.3f %-10.3f %-10.4f %-9.1f %-11.1f %-14.1f %5.1f / %-6.1f %-9.3f %.2f",
                        median(t.step), median(t.select), median(t.update), Double(state) / 1e6, Double(bound) / 1e6,
                        Double(moved) / 1e6, bw1 / 1e9, bw2 / 1e9, limit, median(t.step) / limit))
            return [
                "ms_per_step": median(t.step), "select_ms": median(t.select), "update_ms": median(t.update),
                "steps": t.step.count, "choices": t.choices, "state_bytes": state, "resident_growth_bytes": t.resident,
                "bytes_moved_per_step": moved, "limit_ms": limit, "ratio_to_limit": median(t.step) / limit,
            ]
        }
        // A step reads every arm's Float32 factor once; for the updated arm (rotated in the same pass
        // by the select after the update) it also reads its bfloat16 carries and writes both:
        // K + 2 packed Float32 factors' worth.
        let moved = (arms + 2) * packedBytes
        var choices: [[Int]] = []
        for threads in [2, 1] {
            var stateBytes = 0
            let t = timeSteps(d: d, steps: steps, warmup: 3) {
                var b = LinUCB(armCount: arms, dimension: d, alpha: 0.1, lambda: 1)
                b.maxThreads = threads
                stateBytes = b.stateBytes
                return b
            }
            choices.append(t.choices)
            row["float32_cholesky_\(threads)t"] = report(
                "float32_cholesky_\(threads)t", t, state: stateBytes, moved: moved)
        }
        // The thread count must not change a single choice.
        row["same_choices_1t_2t"] = choices[0] == choices[1]
        // The old code: a select reads K d x d Float64 inverses; an update reads the chosen one for
        // A^-1 x, then reads and writes it for the rank-1 step.
        let old = timeSteps(d: d, steps: d >= 4096 ? baselineSteps : steps, warmup: 1) {
            DenseFloat64LinUCB(armCount: arms, dimension: d, alpha: 0.1, lambda: 1)
        }
        row["dense_float64_baseline"] = report(
            "dense_float64_baseline", old, state: arms * (d * d + d) * 8, moved: (arms + 3) * d * d * 8)
        row["speedup_2t_vs_baseline"] =
            median(old.step) / ((row["float32_cholesky_2t"] as! [String: Any])["ms_per_step"] as! Double)
        results.append(row)
    }
    print(
        json([
            "benchmark": "bandit", "arms": arms, "steps": steps, "baseline_steps_d4096": baselineSteps,
            "dram_bandwidth_1t_gb_s": dram1 / 1e9, "dram_bandwidth_2t_gb_s": dram2 / 1e9, "results": results,
        ]))
}

/// The Float64 matrix A = lambda I + sum x x^T, packed lower by columns like the factor.
struct ExactGram {
    let d: Int
    var a: [Double]
    init(d: Int, lambda: Double) {
        self.d = d
        a = [Double](repeating: 0, count: d * (d + 1) / 2)
        for j in 0..<d { a[offset(j, j)] = lambda }
    }
    func offset(_ i: Int, _ j: Int) -> Int { j * d - j * (j - 1) / 2 + (i - j) }
    mutating func add(_ x: [Double]) {
        let d = d
        a.withUnsafeMutableBufferPointer { a in
            var o = 0
            for j in 0..<d {
                let xj = x[j]
                for i in j..<d { a[o + i - j] += x[i] * xj }
                o += d - j
            }
        }
    }
    func at(_ i: Int, _ j: Int) -> Double { i >= j ? a[offset(i, j)] : a[offset(j, i)] }
}

/// After n updates of one arm: the factor's backward error max|L L^T - A| / max|A| (A rebuilt in
/// Float64 from the same contexts), and max|(L L^T)^-1 A - I|, the measure the Sherman-Morrison
/// inverse was held to (`(L L^T)^-1 A` in Float64 from the Float32 factor).
func factorErrors(_ l: [Double], _ a: ExactGram) -> (backward: Double, inverse: Double) {
    let d = a.d
    var worst = 0.0, scale = 0.0
    for i in 0..<d {
        for j in 0...i {
            var s = 0.0
            for k in 0...j { s += l[i * d + k] * l[j * d + k] }
            worst = max(worst, abs(s - a.at(i, j)))
            scale = max(scale, abs(a.at(i, j)))
        }
    }
    var inverse = 0.0
    for c in 0..<d {
        let y = LinUCB.solve(factor: l, dimension: d, (0..<d).map { a.at($0, c) })
        for i in 0..<d { inverse = max(inverse, abs(y[i] - (i == c ? 1 : 0))) }
    }
    return (worst / scale, inverse)
}

/// Float32 Sherman-Morrison on a dense A^-1 (the old code in Float32): what the factor replaces.
struct ShermanMorrisonFloat32 {
    let d: Int
    var inv: [Float]
    init(d: Int) {
        self.d = d
        inv = [Float](repeating: 0, count: d * d)
        for i in 0..<d { inv[i * d + i] = 1 }
    }
    mutating func add(_ x: [Double]) {
        let d = d
        let xf = x.map { Float($0) }
        var v = [Float](repeating: 0, count: d)
        for i in 0..<d {
            var s: Float = 0
            for j in 0..<d { s += inv[i * d + j] * xf[j] }
            v[i] = s
        }
        var den: Float = 1
        for i in 0..<d { den += xf[i] * v[i] }
        inv.withUnsafeMutableBufferPointer { m in
            for i in 0..<d {
                let scale = v[i] / den
                for j in 0..<d { m[i * d + j] -= scale * v[j] }
            }
        }
    }
    func inverseError(_ a: ExactGram) -> Double {
        var worst = 0.0
        for i in 0..<d {
            for j in 0..<d {
                var s = 0.0
                for k in 0..<d { s += Double(inv[i * d + k]) * a.at(k, j) }
                worst = max(worst, abs(s - (i == j ? 1 : 0)))
            }
        }
        return worst
    }
}

/// The same Givens rank-1 updates as LinUCB's factor, in Float32 without the carry (dense, scalar):
/// what the carry is for.
struct UncompensatedFactor {
    let d: Int
    var l: [Float]
    init(d: Int) {
        self.d = d
        l = [Float](repeating: 0, count: d * d)
        for i in 0..<d { l[i * d + i] = 1 }
    }
    mutating func add(_ x: [Double]) {
        var z = x.map { Float($0) }
        for j in 0..<d {
            let ljj = Double(l[j * d + j]), zj = Double(z[j])
            let radius = (ljj * ljj + zj * zj).squareRoot()
            let c = Float(ljj / radius), s = Float(zj / radius)
            l[j * d + j] = Float(radius)
            for i in (j + 1)..<d {
                let li = l[i * d + j], zi = z[i]
                l[i * d + j] = c * li + s * zi
                z[i] = c * zi - s * li
            }
        }
    }
}

/// Contexts for the drift benchmark: "random" (uniform in [-1, 1]^d, normalised, as `bandit` uses) or
/// "featurizer" (HashingFeaturizer on 8 words drawn from a 300-word vocabulary: a bias component of
/// 1/sqrt 2 in every context and sparse, correlated word features, like LASeR's prompts).
func driftContext(_ kind: String, _ rng: inout SplitMix64, _ d: Int) -> [Double] {
    if kind == "random" { return context(&rng, d) }
    let words = (0..<8).map { _ in "w\(rng.next() % 300)" }
    return HashingFeaturizer(dimension: d).features(words.joined(separator: " "))
}

/// Drift over many updates of one arm: the Float32 Cholesky factor (this LinUCB), and for comparison
/// (`--compare-dims`, small d: plain loops, O(d^2) per update and O(d^3) per checkpoint) the same
/// factor without the carry, and Float32 and Float64 Sherman-Morrison.
func drift(dims: [Int], compareDims: Set<Int>, updates: Int) {
    var rows: [[String: Any]] = []
    print("max|L L^T - A| / max|A|: the factor a select uses (Float32 values) against A summed in Float64")
    print("max|A^-1 A - I|: (L L^T)^-1 A for the factor; the kept inverse for Sherman-Morrison (SM)")
    print("no carry: the same factor updates in Float32 without the carry (max|LL^T-A|/max|A|)")
    print(
        "d     contexts    updates   factor max|LL^T-A|/max|A|  factor max|(LL^T)^-1 A - I|  no carry max|LL^T-A|/..  SM f32 max|A^-1 A - I|  SM f64 max|A^-1 A - I|"
    )
    for d in dims {
        for kind in ["random", "featurizer"] {
            var bandit = LinUCB(armCount: 1, dimension: d, alpha: 0.1, lambda: 1)
            var gram = ExactGram(d: d, lambda: 1)
            let compare = compareDims.contains(d)
            var sm32 = compare ? ShermanMorrisonFloat32(d: d) : nil
            var plain = compare ? UncompensatedFactor(d: d) : nil
            var sm64 = compare ? DenseFloat64LinUCB(armCount: 1, dimension: d, alpha: 0.1, lambda: 1) : nil
            var rng = SplitMix64(seed: 9)
            var next = 1000
            for u in 1...updates {
                let x = driftContext(kind, &rng, d)
                bandit.update(arm: 0, context: x, reward: 0.5)
                gram.add(x)
                sm32?.add(x)
                plain?.add(x)
                sm64?.update(arm: 0, context: x, reward: 0.5)
                guard u == next || u == updates else { continue }
                let e = factorErrors(bandit.choleskyFactor(arm: 0), gram)
                var row: [String: Any] = [
                    "d": d, "contexts": kind, "updates": u, "cholesky_f32_backward": e.backward,
                    "cholesky_f32_inverse": e.inverse,
                ]
                var s32 = "-", s64 = "-", sp = "-"
                if let f = plain {
                    let v = factorErrors(f.l.map { Double($0) }, gram).backward
                    row["factor_f32_without_carry_backward"] = v
                    sp = String(format: "%.3e", v)
                }
                if let sm = sm32 {
                    let v = sm.inverseError(gram)
                    row["sherman_morrison_f32_inverse"] = v
                    s32 = String(format: "%.3e", v)
                }
                if let sm = sm64 {
                    var worst = 0.0
                    for i in 0..<d {
                        for j in 0..<d {
                            var s = 0.0
                            for k in 0..<d { s += sm.aInverse[0][i * d + k] * gram.at(k, j) }
                            worst = max(worst, abs(s - (i == j ? 1 : 0)))
                        }
                    }
                    row["sherman_morrison_f64_inverse"] = worst
                    s64 = String(format: "%.3e", worst)
                }
                print(
                    String(format: "%-5d ", d) + kind.padding(toLength: 11, withPad: " ", startingAt: 0)
                        + String(format: " %-9d %-26.3e %-29.3e ", u, e.backward, e.inverse)
                        + sp.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + s32.padding(toLength: 24, withPad: " ", startingAt: 0) + s64)
                rows.append(row)
                next *= 10
            }
        }
    }
    print(json(["benchmark": "drift", "checkpoints": rows]))
}

let args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, in args: [String] = Array(CommandLine.arguments.dropFirst())) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}
func ints(_ s: String) -> [Int] { s.split(separator: ",").compactMap { Int($0) } }
switch args.first {
case "bandit":
    bandit(
        dims: ints(option("--dims") ?? "384,1024,4096"), steps: Int(option("--steps") ?? "50") ?? 50,
        baselineSteps: Int(option("--baseline-steps") ?? "5") ?? 5)
case "ingest" where args.count >= 2:
    do {
        try ingest(
            path: args[1], repeats: Int(option("--repeats") ?? "3") ?? 3,
            contextDimension: Int(option("--context-dimension") ?? "256") ?? 256)
    } catch {
        print("error: \(error)")
        exit(1)
    }
case "strings" where args.count >= 2:
    do { try strings(path: args[1], repeats: Int(option("--repeats") ?? "5") ?? 5) } catch {
        print("error: \(error)")
        exit(1)
    }
case "drift":
    drift(
        dims: ints(option("--dims") ?? "64,384"), compareDims: Set(ints(option("--compare-dims") ?? "64")),
        updates: Int(option("--updates") ?? "100000") ?? 100_000)
default:
    print(
        "usage: laser-bench bandit [--dims 384,1024,4096] [--steps N] [--baseline-steps N] | drift [--dims 64,384] [--compare-dims 64] [--updates 100000] | ingest FILE.jsonl [--repeats 3] | strings FILE.jsonl [--repeats 5]"
    )
    exit(2)
}
