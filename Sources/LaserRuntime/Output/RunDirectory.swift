import Foundation
import LaserCore

/// The run directory: everything a run leaves behind, in one folder.
///
///     RUN_DIR/
///       config.yaml              the resolved config of the run
///       iterations/0001/batch-0001.jsonl   preference pairs, one file per mini-batch (atomic)
///       selections.jsonl         one line per emitted batch: RM, prompts, pairs, label accuracy, reward
///       summary.json             machine-readable summary (atomic, at the end)
///       logs/                    local worker logs (laser run)
///       input/                   generated demo input (demo runs only)
public struct RunDirectory: Sendable {
    public let path: String

    public init(path: String) throws {
        self.path = URL(fileURLWithPath: path).standardized.path
        try AtomicFile.makeDirectory(self.path)
        try AtomicFile.makeDirectory(self.path + "/iterations")
    }

    /// A fresh folder under `parent` named after the current time (with a suffix if taken).
    public static func fresh(under parent: String, prefix: String = "run") throws -> RunDirectory {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        let stamp = f.string(from: Date())
        var candidate = "\(parent)/\(prefix)-\(stamp)"
        var n = 2
        while FileManager.default.fileExists(atPath: candidate) {
            candidate = "\(parent)/\(prefix)-\(stamp)-\(n)"
            n += 1
        }
        return try RunDirectory(path: candidate)
    }

    public func iterationDirectory(_ iteration: Int) -> String {
        path + "/iterations/" + String(iteration).leftPad(4)
    }

    public func batchPath(iteration: Int, batch: Int) -> String {
        iterationDirectory(iteration) + "/batch-" + String(batch).leftPad(4) + ".jsonl"
    }

    public var summaryPath: String { path + "/summary.json" }
    public var selectionsPath: String { path + "/selections.jsonl" }
    public var configPath: String { path + "/config.yaml" }
    public var logsDirectory: String { path + "/logs" }
    public var inputDirectory: String { path + "/input" }

    /// Writes one batch's pairs atomically.
    public func write(_ batch: EmittedBatch) throws {
        try AtomicFile.makeDirectory(iterationDirectory(batch.iteration))
        var text = ""
        for pair in batch.pairs {
            text += JSONLines.line(pair)
            text += "\n"
        }
        try AtomicFile.write(text, to: batchPath(iteration: batch.iteration, batch: batch.batch))
    }

    /// The selections log line for a batch.
    public static func selectionLine(_ b: EmittedBatch) -> String {
        var s = "{\"iteration\":\(b.iteration),\"batch\":\(b.batch),\"global_batch\":\(b.globalIndex),\"rm\":\(JSONLines.quoted(b.rm)),\"prompts\":\(b.promptCount),\"pairs\":\(b.pairs.count)"
        if let a = b.labelAccuracy { s += ",\"label_accuracy\":\(JSONLines.number(a))" }
        if let r = b.rawReward { s += ",\"raw_reward\":\(JSONLines.number(r))" }
        return s + "}"
    }

    public func write(summary: RunSummary) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = try encoder.encode(summary)
        try AtomicFile.write(Array(data) + [0x0A], to: summaryPath)
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
