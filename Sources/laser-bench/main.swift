import Foundation
import LaserCore
import StableRandom

// laser-bench: micro-benchmarks of the core that the performance docs quote. Each prints a table and,
// on its last line, one JSON object. Build with -c release:
//   swift run -c release laser-bench bandit [--dims 384,1024,4096] [--steps N]
//   swift run -c release laser-bench drift [--dim 64] [--updates 100000]
//   swift run -c release laser-bench ingest FILE.jsonl [--repeats 3]

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Bytes per second this machine streams from memory (sum over a buffer far larger than the caches),
/// the limit for a LinUCB select, which must read every arm's d x d inverse.
func memoryReadBandwidth() -> Double {
    let count = 64 << 20 / 8 * 4  // 256 MiB of Double
    var buffer = [Double](repeating: 1, count: count)
    buffer[count - 1] = 2
    var best = 0.0
    for _ in 0..<5 {
        let t = now()
        var acc = SIMD8<Double>()
        buffer.withUnsafeBufferPointer { p in
            let n = p.count / 8 * 8
            var i = 0
            p.baseAddress!.withMemoryRebound(to: SIMD8<Double>.self, capacity: n / 8) { v in
                while i < n / 8 { acc += v[i]; i += 1 }
            }
        }
        let dt = now() - t
        if acc.sum() == 0 { print("") }
        best = max(best, Double(count * 8) / dt)
    }
    return best
}

func residentBytes() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let parts = s.split(separator: " ")
    return (Int(parts[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func bandit(dims: [Int], steps: Int) {
    let arms = 4
    let bandwidth = memoryReadBandwidth()
    print(String(format: "memory read bandwidth: %.1f GB/s", bandwidth / 1e9))
    print("d      ms/step (select+update)  select ms  update ms  state MB  K*d^2*8 MB  read-limit ms  ratio to limit")
    var results: [[String: Any]] = []
    for d in dims {
        let before = residentBytes()
        var bandit = LinUCB(armCount: arms, dimension: d, alpha: 0.1, lambda: 1)
        let stateMB = Double(residentBytes() - before) / 1e6
        var rng = SplitMix64(seed: UInt64(d))
        var selects: [Double] = [], updates: [Double] = []
        let n = d >= 4096 ? min(steps, 20) : steps
        for _ in 0..<n {
            let x = HashingFeaturizer.normalized((0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 })
            let t0 = now()
            let arm = bandit.select(x)
            let t1 = now()
            bandit.update(arm: arm, context: x, reward: Double(rng.next() % 1000) / 1000)
            let t2 = now()
            selects.append((t1 - t0) * 1000)
            updates.append((t2 - t1) * 1000)
        }
        let sel = median(selects), upd = median(updates)
        let limit = Double(arms * d * d * 8) / bandwidth * 1000
        print(String(format: "%-6d %-24.3f %-10.3f %-10.3f %-9.1f %-11.1f %-14.2f %.2f", d, sel + upd, sel, upd, stateMB,
                     Double(arms * d * d * 8) / 1e6, limit, (sel + upd) / limit))
        results.append(["d": d, "ms_per_step": sel + upd, "select_ms": sel, "update_ms": upd, "state_mb": stateMB, "read_limit_ms": limit])
    }
    let json: [String: Any] = ["benchmark": "bandit", "arms": arms, "bandwidth_gb_s": bandwidth / 1e9, "results": results]
    print(String(data: try! JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), encoding: .utf8)!)
}

/// How far Sherman-Morrison's A^-1 drifts from the exact inverse over many updates: after `updates`
/// updates of one arm, || (A^-1 kept) * A - I ||_max, with A rebuilt exactly.
func drift(dim d: Int, updates: Int) {
    var bandit = LinUCB(armCount: 1, dimension: d, alpha: 0.1, lambda: 1)
    var a = [Double](repeating: 0, count: d * d)
    for i in 0..<d { a[i * d + i] = 1 }
    var rng = SplitMix64(seed: 9)
    var checkpoints: [[String: Any]] = []
    print("updates   max |A^-1 A - I|")
    var next = 1000
    for u in 1...updates {
        let x = HashingFeaturizer.normalized((0..<d).map { _ in Double(rng.next() % 2001) / 1000 - 1 })
        bandit.update(arm: 0, context: x, reward: 0.5)
        for i in 0..<d { for j in 0..<d { a[i * d + j] += x[i] * x[j] } }
        if u == next || u == updates {
            let inv = bandit.aInverse[0]
            var worst = 0.0
            for i in 0..<d {
                for j in 0..<d {
                    var s = 0.0
                    for k in 0..<d { s += inv[i * d + k] * a[k * d + j] }
                    worst = max(worst, abs(s - (i == j ? 1 : 0)))
                }
            }
            print(String(format: "%-9d %.3e", u, worst))
            checkpoints.append(["updates": u, "max_error": worst])
            next *= 10
        }
    }
    let json: [String: Any] = ["benchmark": "drift", "dimension": d, "checkpoints": checkpoints]
    print(String(data: try! JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), encoding: .utf8)!)
}

let args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, in args: [String] = Array(CommandLine.arguments.dropFirst())) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}
switch args.first {
case "bandit":
    let dims = (option("--dims") ?? "384,1024,4096").split(separator: ",").compactMap { Int($0) }
    bandit(dims: dims, steps: Int(option("--steps") ?? "50") ?? 50)
case "ingest" where args.count >= 2:
    do { try ingest(path: args[1], repeats: Int(option("--repeats") ?? "3") ?? 3, contextDimension: Int(option("--context-dimension") ?? "256") ?? 256) } catch {
        print("error: \(error)")
        exit(1)
    }
case "drift":
    drift(dim: Int(option("--dim") ?? "32") ?? 32, updates: Int(option("--updates") ?? "100000") ?? 100_000)
default:
    print("usage: laser-bench bandit [--dims 384,1024,4096] [--steps N] | drift [--dim 32] [--updates 100000]")
    exit(2)
}
