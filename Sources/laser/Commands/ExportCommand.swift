import ArgumentParser
import Foundation
import LaserRuntime

/// `laser export`: a run's batch files as one dataset (Export/DatasetExport.swift).
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a run's batches as one dataset (Parquet or JSONL) with a Hugging Face dataset card.",
        discussion: """
            Writes OUT/data/train-00000-of-00001.parquet (or OUT/data/train.jsonl) with every batch line in \
            batch order and its provenance columns, and OUT/README.md with dataset_info features and the dpo \
            tag, so datasets.load_dataset(OUT) and TRL's DPOTrainer take it as it is. docs/user-guide.md#export.
            """)

    @Argument(help: "The run directory.")
    var runDirectory: String

    @Option(help: "parquet or jsonl.")
    var format: String = "parquet"

    @Option(help: "The dataset folder to write.")
    var out: String

    @Flag(help: "Replace what is in --out.")
    var force = false

    mutating func run() throws {
        guard let f = DatasetExport.Format(rawValue: format) else {
            throw ValidationError("--format must be parquet or jsonl, got '\(format)'")
        }
        do {
            let result = try DatasetExport.run(
                runDirectory: CLIPath.absolute(runDirectory), format: f, out: CLIPath.absolute(out), force: force)
            print(
                "wrote \(result.rows) rows from \(result.batchFiles) batch files to \(result.dataPath) (columns: \(result.columns.joined(separator: ", "))) and \(out)/README.md"
            )
        } catch {
            throw fail(error)
        }
    }
}
