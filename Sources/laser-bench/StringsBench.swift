import LaserJSON
import CJSONScan
import Foundation

/// `laser-bench strings FILE`: the JSON string kernels the coordinator spends its input and output time
/// in, alone, on the strings of FILE's first 64 MB: checking and decoding with `laser_json_string`
/// (64-byte masks) against its exact one-escape-at-a-time path in the same run, and escaping for batch
/// files (`laser_json_escape`). GB/s of string bytes (decoded bytes for escaping), median of `repeats`.
func strings(path: String, repeats: Int) throws {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    let data = [UInt8](try handle.read(upToCount: 64 << 20) ?? Data())
    let n = data.count
    // Where each string's body starts (the byte after an opening quote), found once.
    var starts: [Int] = []
    data.withUnsafeBufferPointer { p in
        var i = 0
        while i < n, let q = memchr(p.baseAddress! + i, 0x22, n - i) {
            let s = p.baseAddress!.distance(to: q.assumingMemoryBound(to: UInt8.self)) + 1
            let r = laser_json_string_exact(p.baseAddress!, s, n, nil)
            if r.error != Int32(LASER_JSON_OK) { i = s; continue }
            starts.append(s)
            i = r.at + 1
        }
    }
    let out = UnsafeMutablePointer<UInt8>.allocate(capacity: n + 64)
    defer { out.deallocate() }
    func rate(_ body: (UnsafePointer<UInt8>) -> Int) -> (gbps: Double, bytes: Int) {
        var times: [Double] = [], bytes = 0
        data.withUnsafeBufferPointer { p in
            for _ in 0..<repeats {
                let t = now()
                bytes = body(p.baseAddress!)
                times.append(now() - t)
            }
        }
        return (Double(bytes) / median(times) / 1e9, bytes)
    }
    typealias Kernel = (UnsafePointer<UInt8>, Int, Int, UnsafeMutablePointer<UInt8>?) -> laser_json_string_result
    func pass(_ kernel: Kernel, decode: Bool) -> (gbps: Double, bytes: Int) {
        rate { p in
            var total = 0
            for s in starts {
                let r = kernel(p, s, n, decode ? out : nil)
                total += r.at - s
            }
            return total
        }
    }
    let check = pass(laser_json_string, decode: false), checkExact = pass(laser_json_string_exact, decode: false)
    let decode = pass(laser_json_string, decode: true), decodeExact = pass(laser_json_string_exact, decode: true)
    // Escaping: the decoded texts back, 4 KiB at a time as the batch-file writer does.
    var decoded: [UInt8] = []
    data.withUnsafeBufferPointer { p in
        for s in starts {
            let r = laser_json_string(p.baseAddress!, s, n, out)
            decoded.append(contentsOf: UnsafeBufferPointer(start: out, count: r.written))
        }
    }
    var times: [Double] = []
    let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
    defer { chunk.deallocate() }
    var escapedBytes = 0
    decoded.withUnsafeBufferPointer { d in
        for _ in 0..<repeats {
            let t = now()
            var k = 0, w = 0
            while k < d.count { w += laser_json_escape(d.baseAddress!, d.count, &k, chunk, 4096) }
            times.append(now() - t)
            escapedBytes = w
        }
    }
    let escape = Double(decoded.count) / median(times) / 1e9
    print("\(path): first \(n >> 20) MiB, \(starts.count) strings, \(check.bytes >> 20) MiB of string bodies")
    print(
        String(
            format: "check:  %.2f GB/s (exact path %.2f GB/s, %.2fx)", check.gbps, checkExact.gbps,
            check.gbps / checkExact.gbps))
    print(
        String(
            format: "decode: %.2f GB/s (exact path %.2f GB/s, %.2fx)", decode.gbps, decodeExact.gbps,
            decode.gbps / decodeExact.gbps))
    print(String(format: "escape: %.2f GB/s (%d decoded bytes -> %d)", escape, decoded.count, escapedBytes))
    print(
        json([
            "benchmark": "strings", "bytes": check.bytes, "strings": starts.count, "repeats": repeats,
            "check_gb_s": check.gbps, "check_exact_gb_s": checkExact.gbps, "decode_gb_s": decode.gbps,
            "decode_exact_gb_s": decodeExact.gbps, "escape_gb_s": escape,
        ]))
}
