import Foundation
import LaserRuntime

/// `laser-bench ingest FILE [--repeats N]`: how fast the coordinator reads an input file: the
/// validating scan (pass 1) and the batch-by-batch records (pass 2), in MB/s of the file, median of N;
/// against Foundation's JSONSerialization on the same lines in the same run.
func ingest(path: String, repeats: Int, contextDimension: Int) throws {
    let reader = PromptReader(contextDimension: contextDimension)
    let megabytes =
        Double((try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0) / 1e6
    var scans: [Double] = [], reads: [Double] = [], foundation: [Double] = []
    var prompts = 0
    for _ in 0..<repeats {
        // Baseline: what the coordinator did before (Foundation's JSONSerialization per line, the whole
        // file in memory), parsing only, no validation, no records.
        let tf = now()
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var objects = 0
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            if (try? JSONSerialization.jsonObject(with: Data(line))) != nil { objects += 1 }
        }
        foundation.append(now() - tf)
        let t0 = now()
        let scan = try reader.scan(path: path)
        let t1 = now()
        let stream = try PromptStream(path: path, scan: scan, reader: reader)
        var n = 0
        while n < scan.prompts { n += try stream.next(64).count }
        let t2 = now()
        prompts = scan.prompts
        scans.append(t1 - t0)
        reads.append(t2 - t1)
    }
    let scan = median(scans), read = median(reads), base = median(foundation)
    print(
        String(
            format:
                "%@: %.0f MB, %d prompts; scan %.3f s (%.0f MB/s, %.1f us/prompt), records %.3f s (%.0f MB/s, %.1f us/prompt)",
            path, megabytes, prompts, scan, megabytes / scan, 1e6 * scan / Double(prompts), read, megabytes / read,
            1e6 * read / Double(prompts)))
    print(
        String(
            format:
                "baseline, Foundation JSONSerialization (parse only): %.3f s (%.0f MB/s); scan + records take %.2f of it",
            base, megabytes / base, (scan + read) / base))
    let json: [String: Any] = [
        "benchmark": "ingest", "megabytes": megabytes, "prompts": prompts, "scan_s": scan, "records_s": read,
        "scan_mb_s": megabytes / scan, "records_mb_s": megabytes / read,
        "foundation_s": base, "ratio_to_foundation": (scan + read) / base,
        "runs": ["scan_s": scans, "records_s": reads, "foundation_s": foundation],
    ]
    print(String(data: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), encoding: .utf8)!)
}
