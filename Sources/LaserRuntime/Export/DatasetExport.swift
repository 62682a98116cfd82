import LaserJSON
import Foundation

/// `laser export RUN_DIR --format parquet|jsonl --out DIR`: a run's batch files as one dataset that
/// `datasets.load_dataset(DIR)` and TRL load as they are: `DIR/data/train-00000-of-00001.parquet` (or
/// `DIR/data/train.jsonl`) and a dataset card, `DIR/README.md`, whose YAML header has `dataset_info`
/// (features, split size), `configs` and the tags `dpo` (pairs runs) and `laser`. Rows keep batch
/// order (iteration, then batch, then line) and every provenance column of the batch files.
public enum DatasetExport {
    public enum Format: String, CaseIterable, Sendable { case parquet, jsonl }

    public struct Result: Sendable {
        public var rows: Int
        public var batchFiles: Int
        public var dataPath: String
        public var columns: [String]
    }

    /// Column order: TRL's columns first, then provenance, then anything else by name.
    static let preferredOrder = [
        "prompt", "chosen", "rejected", "response", "chosen_score", "rejected_score", "score", "rm",
        "prompt_id", "iteration", "batch",
    ]
    static let integerColumns: Set<String> = ["iteration", "batch"]

    public static func run(runDirectory: String, format: Format, out: String, force: Bool = false) throws -> Result {
        let fm = FileManager.default
        let iterations = runDirectory + "/iterations"
        guard fm.fileExists(atPath: iterations) else {
            throw StorageError(
                "\(runDirectory) has no iterations/ folder: it is not a laser run directory, or its run emitted no batch yet",
                code: .notARun)
        }
        if fm.fileExists(atPath: out), let existing = try? fm.contentsOfDirectory(atPath: out), !existing.isEmpty,
            !force
        {
            throw StorageError(
                "\(out) exists and is not empty; choose another --out, or pass --force to replace what is there",
                code: .outputNotEmpty)
        }
        // Batch files in order: iterations/IIII/batch-BBBB.jsonl (zero-padded, so names sort).
        var files: [String] = []
        for it in try fm.contentsOfDirectory(atPath: iterations).sorted() where !it.hasPrefix(".") {
            for f in try fm.contentsOfDirectory(atPath: iterations + "/" + it).sorted()
            where f.hasPrefix("batch-") && f.hasSuffix(".jsonl") {
                files.append(iterations + "/" + it + "/" + f)
            }
        }
        var lines: [(text: Substring, row: [String: JSONValue], source: String)] = []
        for file in files {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            for (i, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
                let parsed = try? Array(line.utf8).withUnsafeBytes { try JSONLineParser.parse($0) }
                guard case .object(let members)? = parsed else {
                    throw StorageError(
                        "\(file):\(i + 1): not a JSON object; the batch file is damaged (laser writes them atomically: was it edited?)"
                    )
                }
                var row: [String: JSONValue] = [:]
                for member in members { row[member.key] = member.value }
                lines.append((line, row, "\(file):\(i + 1)"))
            }
        }
        guard let first = lines.first else {
            throw StorageError("\(runDirectory) has no batch lines to export yet", code: .notARun)
        }
        let keys = Set(first.row.keys)
        for line in lines where Set(line.row.keys) != keys {
            throw StorageError(
                "\(line.source): its keys differ from the first line's (\(keys.sorted().joined(separator: ", "))); a run's batch lines all have the same columns"
            )
        }
        let names = preferredOrder.filter(keys.contains) + keys.subtracting(preferredOrder).sorted()
        let pairs = keys.contains("chosen") && keys.contains("rejected")
        let dataDirectory = out + "/data"
        try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        for old in (try? fm.contentsOfDirectory(atPath: dataDirectory)) ?? [] where old.hasPrefix("train") {
            try? fm.removeItem(atPath: dataDirectory + "/" + old)
        }
        var types: [String: String] = [:]
        let dataPath: String
        switch format {
        case .jsonl:
            dataPath = dataDirectory + "/train.jsonl"
            try AtomicFile.write(lines.map { $0.text + "\n" }.joined(), to: dataPath)
            for name in names { types[name] = dtype(name, lines.map { $0.row[name]! }) }
        case .parquet:
            dataPath = dataDirectory + "/train-00000-of-00001.parquet"
            var columns: [ParquetWriter.Column] = []
            for name in names {
                let values = lines.map { $0.row[name]! }
                let type = dtype(name, values)
                types[name] = type
                switch type {
                case "int64": columns.append(.int64(name: name, values: values.map { Int64(number($0)!) }))
                case "float64": columns.append(.double(name: name, values: values.map { number($0)! }))
                default: columns.append(.string(name: name, values: values.map(text)))
                }
            }
            let bytes = ParquetWriter.file(columns: columns, keyValueMetadata: [("laser.run_directory", runDirectory)])
            try AtomicFile.write(bytes, to: dataPath)
        }
        let bytes = ((try? fm.attributesOfItem(atPath: dataPath))?[.size] as? NSNumber)?.intValue ?? 0
        let card = datasetCard(
            runDirectory: runDirectory, format: format, names: names, types: types, rows: lines.count, bytes: bytes,
            files: files.count, pairs: pairs, dataFile: String(dataPath.dropFirst(out.count + 1)))
        try AtomicFile.write(card, to: out + "/README.md")
        return Result(rows: lines.count, batchFiles: files.count, dataPath: dataPath, columns: names)
    }

    /// The `datasets` dtype of a column: int64 (iteration, batch), float64 (other numbers), string
    /// (strings; lists and objects as their JSON text in Parquet).
    static func dtype(_ name: String, _ values: [JSONValue]) -> String {
        if values.allSatisfy({ number($0) != nil }) {
            return integerColumns.contains(name) && values.allSatisfy({ number($0)! == number($0)!.rounded() })
                ? "int64" : "float64"
        }
        return "string"
    }

    /// A number as its literal reads (Swift's parser rounds correctly, so the Parquet double is the
    /// batch file's number exactly).
    static func number(_ value: JSONValue) -> Double? {
        if case .number(let literal, let parsed) = value { return Double(literal) ?? parsed }
        return nil
    }

    /// A string column's text: strings as they are, anything else as its JSON text.
    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .text(let t): return t.string
        default: return json(value)
        }
    }

    static func json(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return JSONLines.quoted(s)
        case .text(let t): return JSONLines.quoted(t.string)
        case .number(let literal, _): return literal
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map(json).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.map { JSONLines.quoted($0.key) + ":" + json($0.value) }.joined(separator: ",") + "}"
        }
    }

    static func datasetCard(
        runDirectory: String, format: Format, names: [String], types: [String: String], rows: Int, bytes: Int,
        files: Int,
        pairs: Bool, dataFile: String
    ) -> String {
        var y = "---\n"
        y += "tags:\n" + (pairs ? "- dpo\n" : "") + "- laser\n- preference\n"
        y += "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: \(dataFile)\n"
        y += "dataset_info:\n  features:\n"
        for name in names { y += "  - name: \(name)\n    dtype: \(types[name]!)\n" }
        y += "  splits:\n  - name: train\n    num_bytes: \(bytes)\n    num_examples: \(rows)\n"
        y += "---\n\n"
        y += "# laser \(pairs ? "preference pairs" : "best-of-n choices")\n\n"
        y +=
            "Exported by `laser export` (\(format.rawValue)) from the run directory `\(runDirectory)`: \(rows) rows from \(files) batch files, "
        y += "in batch order (iteration, batch, line).\n\n"
        if pairs {
            y += "`prompt`, `chosen` and `rejected` are TRL's preference format; load with\n"
            y += "`datasets.load_dataset(\"PATH\")` and pass the `train` split to `trl.DPOTrainer` as it is.\n\n"
        }
        y += "Provenance columns: `rm` (the reward model the bandit chose for the row's mini-batch), `prompt_id`, "
        y += "`iteration`, `batch` (1-based, as in `iterations/IIII/batch-BBBB.jsonl`)"
        y += pairs ? ", `chosen_score` and `rejected_score` (that RM's raw scores).\n" : ", `score`.\n"
        if format == .parquet {
            y += "\nConversational prompts and responses (message lists) are stored as their JSON text in Parquet; "
            y += "export with `--format jsonl` to keep them as lists.\n"
        }
        return y
    }
}
