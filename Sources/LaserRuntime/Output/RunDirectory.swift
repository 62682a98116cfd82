import Foundation
import LaserCore
import LaserWire

/// The run directory: everything a run leaves behind, in one folder.
///
///     RUN_DIR/
///       config.yaml              the resolved config of the run
///       iterations/0001/batch-0001.jsonl   preference pairs, one file per mini-batch (atomic)
///       journal                  append-only record of selections, scores and emitted batches (resume)
///       selections.jsonl         one line per emitted batch: RM, prompts, pairs, label accuracy, reward
///       summary.json             machine-readable summary (atomic, at the end)
///       logs/                    local worker logs (laser run)
///       input/                   generated demo input (demo runs only)
public struct RunDirectory: Sendable {
    public let path: String

    public init(path: String) throws {
        self.path = CLIPath.absolute(path)
        try AtomicFile.makeDirectory(self.path)
        // iterations/ comes with the first batch file (`write`): a folder that holds only other runs
        // (`laser run --compare`) or none yet has no empty one.
    }

    /// An existing run directory (for --resume), with a clear error when it is not one.
    public static func existing(path: String) throws -> RunDirectory {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path + "/config.yaml", isDirectory: &isDirectory),
            !isDirectory.boolValue
        else {
            throw StorageError(
                "\(path) is not a laser run directory (it has no config.yaml); give the folder a run was started in")
        }
        return try RunDirectory(path: path)
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

    func iterationDirectory(_ iteration: Int) -> String {
        path + "/iterations/" + String(iteration).leftPad(4)
    }

    public func batchPath(iteration: Int, batch: Int) -> String {
        iterationDirectory(iteration) + "/batch-" + String(batch).leftPad(4) + ".jsonl"
    }

    /// Where an emitted batch's file is (the layout lives in `EmittedBatch.relativePath`).
    public func path(of batch: EmittedBatch) -> String { path + "/" + batch.relativePath }

    public var summaryPath: String { path + "/summary.json" }
    public var selectionsPath: String { path + "/selections.jsonl" }
    public var configPath: String { path + "/config.yaml" }
    public var journalPath: String { path + "/journal" }
    public var logsDirectory: String { path + "/logs" }
    public var inputDirectory: String { path + "/input" }

    /// Writes one batch's pairs atomically. A batch file that is already there with the same bytes
    /// (written just before a crash, not yet journaled) is left alone: the batch is not emitted twice.
    /// One with different bytes is never overwritten: that would mean the run is not deterministic.
    /// Returns false when the file was already there.
    @discardableResult
    public func write(_ batch: EmittedBatch) throws -> Bool {
        let folder = iterationDirectory(batch.iteration)
        if mkdir(folder, 0o755) != 0 && errno != EEXIST { try AtomicFile.makeDirectory(folder) }
        var bytes: [UInt8] = []
        // Once, for the whole file (texts plus escapes and the fixed keys, roughly).
        bytes.reserveCapacity(
            batch.pairs.reduce(0) {
                $0 + $1.prompt.utf8.count + ($1.messagesJSON?.utf8.count ?? 0) + $1.chosenJSON.escapedCount
                    + $1.rejectedJSON.escapedCount + 200
            }
                + batch.choices.reduce(0) {
                    $0 + $1.prompt.utf8.count + ($1.messagesJSON?.utf8.count ?? 0) + $1.responseJSON.escapedCount + 200
                })
        for pair in batch.pairs {
            JSONLines.append(pair, to: &bytes)
            bytes.append(0x0A)
        }
        for choice in batch.choices {
            JSONLines.append(choice, to: &bytes)
            bytes.append(0x0A)
        }
        let path = path(of: batch)
        if access(path, F_OK) == 0, let existing = FileManager.default.contents(atPath: path) {
            guard existing.elementsEqual(bytes) else {
                throw StorageError(
                    "\(path) already exists with different content: this run is not reproducing its earlier output (did an RM, the input or the config change?). laser will not overwrite an emitted batch; move the file away to emit it anew."
                )
            }
            return false
        }
        try AtomicFile.write(bytes, to: path)
        return true
    }

    /// Deletes temp files that a crash left behind mid-write (`.NAME.tmp-PID`); their targets were
    /// never renamed into place, so nothing refers to them. Returns how many were removed.
    @discardableResult
    public func removeStaleTemporaryFiles() -> Int {
        var removed = 0
        let fm = FileManager.default
        var folders = [path]
        if let iterations = try? fm.contentsOfDirectory(atPath: path + "/iterations") {
            folders += iterations.map { path + "/iterations/" + $0 }
        }
        for folder in folders {
            for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? []
            where name.hasPrefix(".") && name.contains(".tmp-") {
                if (try? fm.removeItem(atPath: folder + "/" + name)) != nil { removed += 1 }
            }
        }
        return removed
    }

    /// selections.jsonl: one line per emitted batch (RM, prompts, pairs, label accuracy, reward).
    public func write(selections: [BatchOutcome]) throws {
        var text = ""
        for b in selections {
            text +=
                "{\"iteration\":\(b.iteration),\"batch\":\(b.batch),\"global_batch\":\(b.globalIndex),\"rm\":\(JSONLines.quoted(b.rm)),\"prompts\":\(b.prompts),\"pairs\":\(b.pairs)"
            if let a = b.labelAccuracy { text += ",\"label_accuracy\":\(JSONLines.number(a))" }
            if let r = b.rawReward { text += ",\"raw_reward\":\(JSONLines.number(r))" }
            if let l = b.loss { text += ",\"loss\":\(JSONLines.number(l))" }
            if let decisions = b.decisions {
                text +=
                    ",\"decisions\":["
                    + decisions.map { d in
                        var s = "{\"context_fnv1a\":\"\(d.contextDigest)\""
                        if let arm = d.arm { s += ",\"arm\":\(arm)" }
                        if let bounds = d.bounds {
                            s += ",\"bounds\":[" + bounds.map(JSONLines.number).joined(separator: ",") + "]"
                        }
                        if let x = d.context {
                            s += ",\"context\":[" + x.map(JSONLines.number).joined(separator: ",") + "]"
                        }
                        return s + "}"
                    }.joined(separator: ",") + "]"
            }
            text += "}\n"
        }
        try AtomicFile.write(text, to: selectionsPath)
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
