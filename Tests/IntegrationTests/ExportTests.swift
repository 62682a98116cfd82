import Foundation
import Testing

/// `laser export` (the Python side, Tests/realstack/test_export.py, loads the output with pyarrow,
/// `datasets` and TRL).
@Suite struct ExportTests {
    static let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/config.yaml").path

    @Test func jsonlIsTheBatchLinesInOrderAndParquetIsFramedWithACard() throws {
        let dir = Laser.temporaryDirectory()
        let (code, _, err) = try Laser.run(["run", Self.config, "--out", dir + "/run", "--no-progress"])
        try #require(code == 0, "\(err)")
        let files = try batchFiles(dir + "/run")
        let lines = files.keys.sorted().map { String(decoding: files[$0]!, as: UTF8.self) }.joined()
        let (c1, out1, e1) = try Laser.run(["export", dir + "/run", "--format", "jsonl", "--out", dir + "/jsonl"])
        try #require(c1 == 0, "\(e1)")
        #expect(try String(contentsOfFile: dir + "/jsonl/data/train.jsonl", encoding: .utf8) == lines)
        #expect(
            out1.contains(
                "columns: prompt, chosen, rejected, chosen_score, rejected_score, rm, prompt_id, iteration, batch"),
            "\(out1)")
        let (c2, _, e2) = try Laser.run(["export", dir + "/run", "--out", dir + "/parquet"])
        try #require(c2 == 0, "\(e2)")
        let bytes = try [UInt8](
            Data(contentsOf: URL(fileURLWithPath: dir + "/parquet/data/train-00000-of-00001.parquet")))
        #expect(bytes.prefix(4) == Array("PAR1".utf8)[...] && bytes.suffix(4) == Array("PAR1".utf8)[...])
        let card = try String(contentsOfFile: dir + "/parquet/README.md", encoding: .utf8)
        #expect(card.hasPrefix("---\ntags:\n- dpo\n") && card.contains("  - name: iteration\n    dtype: int64\n"))
        let (c3, _, e3) = try Laser.run(["export", dir + "/run", "--out", dir + "/parquet"])
        #expect(c3 == 4 && e3.contains("exists and is not empty") && e3.contains("--force"), "\(e3)")
        let (c4, _, e4) = try Laser.run(["export", dir, "--out", dir + "/x"])
        #expect(c4 == 4 && e4.contains("has no iterations/ folder"), "\(e4)")
    }
}
