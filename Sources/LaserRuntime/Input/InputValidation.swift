import Foundation
import LaserCore

/// Everything a run reads, checked before anything is created (issue 14 item 7): every input file of
/// every iteration is scanned once (a streaming pass: memory does not grow with the file), so a typo in a
/// path or a bad line in iteration 3 stops the start, not the run after hours. The scans are handed to
/// the coordinator, which does not read those files a second time to validate them.
public struct ValidatedInputs: Sendable {
    /// By absolute path.
    public var scans: [String: PromptReader.Scan] = [:]
    /// Prompts per iteration (1-based index into the array: iteration n at n - 1); 0 for one not written yet.
    public var promptsPerIteration: [Int] = []
    /// On-policy iterations whose input is not written yet (the run will wait for them).
    public var waiting: [Int] = []

    public init() {}

    /// The reader the coordinator uses for `config` (context settings, the line-size limit).
    public static func reader(for config: RunConfig) -> PromptReader {
        var reader = PromptReader(contextDimension: config.contextDimension, ngrams: config.contextNgrams)
        reader.maxLineBytes = config.maxTaskBytes
        return reader
    }

    /// Scans every input of `config`; the first problem is thrown (an `InputError` naming file and line,
    /// or a missing file with what to do).
    public static func check(_ config: RunConfig) throws -> ValidatedInputs {
        var out = ValidatedInputs()
        let reader = reader(for: config)
        for n in 1...config.iterations {
            let path = config.input(forIteration: n)
            if let known = out.scans[path] {
                out.promptsPerIteration.append(known.prompts)
                continue
            }
            // On-policy: a file not written yet is checked when the run gets to it (it waits for it).
            if !config.inputReady(forIteration: n) {
                out.promptsPerIteration.append(0)
                out.waiting.append(n)
                continue
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw InputError(
                    "\(path): input of iteration \(n) does not exist; fix the path in the config's input list (paths are relative to the config file's folder)",
                    code: .unreadable)
            }
            let scan = try reader.scan(path: path)
            out.scans[path] = scan
            out.promptsPerIteration.append(scan.prompts)
        }
        // Only strategies that learn from the reward need it (fixed, random, sequential and the ensembles do not).
        if config.rewardSource == .labelPairAccuracy && [.linucb, .exp3, .thompson].contains(config.strategy) {
            try out.checkLabels(config, reader: reader)
        }
        return out
    }

    /// How many of the first prompts of each input are sampled for labels.
    static let labelSample = 500

    /// The label reward needs labels (a `reference`, or candidates with `correct`): without any, every
    /// batch would get no reward and the bandit would learn nothing while the run "succeeds". Refused at
    /// start unless reward.allow_unrewarded (then `unrewardedWarning` says so).
    mutating func checkLabels(_ config: RunConfig, reader: PromptReader) throws {
        for (path, scan) in scans.sorted(by: { $0.key < $1.key }) where scan.prompts > 0 {
            let stream = try PromptStream(path: path, scan: scan, reader: reader)
            let sample = try stream.next(Self.labelSample)
            if sample.contains(where: { $0.reference != nil || $0.candidates.contains { $0.correct != nil } }) {
                continue
            }
            let problem =
                "\(path): none of its first \(sample.count) prompts has a label (a \"reference\", or candidates with \"correct\"), so reward.source label-pair-accuracy would give the bandit no reward at all"
            guard config.allowUnrewarded else {
                throw ConfigError(
                    "\(problem). Add labels, use reward.source: trainer-loss with a trainer connected, or set reward.allow_unrewarded: true to run anyway",
                    code: .rewardUnavailable)
            }
            unrewardedWarning =
                problem + " (reward.allow_unrewarded is true: running anyway; the bandit will not learn)"
        }
    }

    /// Set when the run starts with a reward that cannot arrive (reward.allow_unrewarded).
    public var unrewardedWarning: String?

    /// What the run would do, for `laser validate` and `--dry-run`.
    public func plan(_ config: RunConfig) -> String {
        var lines: [String] = []
        let batches = promptsPerIteration.map { ($0 + config.batchSize - 1) / config.batchSize }
        lines.append(
            "config OK: \(config.iterations) iteration(s), strategy \(config.strategy.rawValue), reward \(config.rewardSource.rawValue)"
        )
        for (i, p) in promptsPerIteration.enumerated() {
            if waiting.contains(i + 1) {
                lines.append(
                    "  iteration \(i + 1): not written yet; the run will wait for \(config.inputPattern?.waitingText(forIteration: i + 1) ?? config.input(forIteration: i + 1))"
                )
                continue
            }
            lines.append(
                "  iteration \(i + 1): \(p) prompts in \(batches[i]) mini-batch(es) of up to \(config.batchSize) (\(config.input(forIteration: i + 1)))"
            )
        }
        let kinds = config.rewardModels.map { "\($0.name) (\($0.kind))" }.joined(separator: ", ")
        lines.append("  reward models: \(kinds)")
        lines.append(
            "  workers: \(config.localWorkers) local with laser run (\(config.workerSlots) slot(s) each); more may connect to \(config.bind)"
        )
        if waiting.isEmpty && promptsPerIteration.allSatisfy({ $0 == 0 }) {
            lines.append("  note: every input is empty: nothing would run")
        }
        return lines.joined(separator: "\n")
    }
}
