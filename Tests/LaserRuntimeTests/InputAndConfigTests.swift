import CJSONScan
import Foundation
import LaserCore
import StableRandom
import Testing
import LaserWire
@testable import LaserRuntime

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "laser-test-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct PromptReaderTests {
    let reader = PromptReader(contextDimension: 4)

    func read(_ text: String) throws -> [PromptRecord] {
        let dir = temporaryDirectory()
        try text.write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        return try reader.read(path: dir + "/in.jsonl")
    }

    func error(_ text: String) -> String {
        do { _ = try read(text); return "no error" } catch { return "\(error)" }
    }

    @Test func readsBothCandidateFormsAndDerivesLabels() throws {
        let records = try read(
            """
            {"id": "a", "prompt": "2+2?", "candidates": ["The answer is 4", "A: 5"], "reference": "4", "task": "math"}

            {"id": 7, "prompt": "hi", "candidates": [{"text": "x", "correct": true}, {"text": "y"}], "context": [1, 0, 0, 0.5]}
            """)
        #expect(records.count == 2)
        #expect(records[0].candidates.map(\.correct) == [true, false])
        #expect(records[0].task == "math")
        #expect(records[0].context.count == 4)
        #expect(records[1].id == "7")
        #expect(records[1].candidates.map(\.correct) == [true, nil])
        #expect(records[1].context == [1, 0, 0, 0.5])
        #expect(records[1].task == "default")
    }

    /// The scan parses a chunk's lines on several threads: still the first problem in file order is
    /// the one reported, across chunk boundaries (lines of ~9 KB, so 4 MiB chunks hold ~450 of them).
    @Test func aParallelScanReportsTheFirstBadLineOfTheFile() {
        let long = String(repeating: "w", count: 9000)
        func line(_ i: Int) -> String { #"{"id": "p\#(i)", "prompt": "q", "candidates": ["\#(long)", "b"]}"# }
        var lines = (1...2000).map(line)
        lines[1299] = #"{"id": "p1300", "prompt": 5, "candidates": ["a", "b"]}"#  // line 1300: bad prompt
        lines[1799] = "{not json"  // line 1800
        lines[999] = line(10)  // line 1000 repeats line 10's id
        #expect(
            error(lines.joined(separator: "\n")).contains("in.jsonl:1000: prompt id 'p10' was already used on line 10"))
        lines[999] = line(1000)
        #expect(error(lines.joined(separator: "\n")).contains("in.jsonl:1300: \"prompt\" is missing or not a string"))
        lines[1299] = line(1300)
        #expect(error(lines.joined(separator: "\n")).contains("in.jsonl:1800: not valid JSON"))
        lines[1799] = line(1800)
        #expect(error(lines.joined(separator: "\n")) == "no error")
    }

    @Test func badLinesNameFileLineAndFix() {
        #expect(
            error("{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n{not json").contains(
                "in.jsonl:2: not valid JSON"))
        #expect(
            error("{\"prompt\": \"p\", \"candidates\": [\"a\"]}").contains(
                "in.jsonl:1: prompt 'line-1' has 1 candidate(s); a preference pair needs at least 2"))
        #expect(error("{\"prompt\": \"p\", \"candidates\": \"a,b\"}").contains("\"candidates\" must be an array"))
        #expect(error("{\"prompt\": \"p\", \"candidates\": [\"a\", 3]}").contains("candidate 1 must be a string"))
        #expect(
            error("{\"prompt\": \"p\", \"candidates\": [{\"text\": \"a\", \"correct\": \"yes\"}, \"b\"]}").contains(
                "\"correct\" must be true or false"))
        #expect(
            error("{\"prompt\": 5, \"candidates\": [\"a\", \"b\"]}").contains("\"prompt\" is missing or not a string"))
        #expect(error("[1, 2]").contains("expected a JSON object"))
        #expect(
            error("{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"], \"context\": [1, 2]}").contains(
                "set context.dimension: 2"))
        #expect(error("{\"prompt\": \"p\\u0000\", \"candidates\": [\"a\", \"b\"]}").contains("NUL"))
        #expect(
            error(
                "{\"id\": \"x\", \"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n{\"id\": \"x\", \"prompt\": \"q\", \"candidates\": [\"a\", \"b\"]}"
            ).contains("in.jsonl:2: prompt id 'x' was already used on line 1"))
        #expect(error("").contains("no error"))
    }

    /// A resume trusts a file whose digest matches the journal's and scans anything else in full.
    @Test func rescanChecksTheDigestAndScansAChangedFile() throws {
        let dir = temporaryDirectory()
        let path = dir + "/in.jsonl"
        try "{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let scan = try reader.scan(path: path)
        #expect(scan.prompts == 1)
        // The same scan, without the canonical-line marks (nothing was checked).
        var digestOnly = scan
        digestOnly.canonicalLines = nil
        #expect(try reader.rescan(path: path, digest: scan.digest, prompts: 1) == digestOnly)
        try "{\"prompt\": \"p\", \"candidates\": [\"a\"]}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: InputError.self) { try reader.rescan(path: path, digest: scan.digest, prompts: 1) }
        try "{\"prompt\": \"q\", \"candidates\": [\"a\", \"b\"]}\n\n{\"prompt\": \"r\", \"candidates\": [\"a\", \"b\"]}"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let changed = try reader.rescan(path: path, digest: scan.digest, prompts: 1)
        #expect(changed.prompts == 2 && changed.digest != scan.digest)
    }

    /// A journal written by a laser before the streaming reader holds the byte-wise FNV-1a digest: the
    /// unchanged file still resumes (the scan reports that digest), a changed one does not.
    @Test func rescanAcceptsTheDigestOfEarlierVersions() throws {
        let dir = temporaryDirectory()
        let path = dir + "/in.jsonl"
        let text =
            "{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n{\"prompt\": \"q\", \"candidates\": [\"c\", \"d\"]}\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let legacy = contentDigest(Array(text.utf8))
        #expect(try PromptReader.legacyDigest(path: path) == legacy)
        let scan = try reader.rescan(path: path, digest: legacy, prompts: 2)
        #expect(scan.digest == legacy && scan.prompts == 2)
        try
            (text
            + text.replacingOccurrences(of: "\"p\"", with: "\"p2\"").replacingOccurrences(of: "\"q\"", with: "\"q2\""))
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try reader.rescan(path: path, digest: legacy, prompts: 2).digest != legacy)
    }

    /// The digest does not depend on how the file is cut into chunks.
    @Test func streamDigestIgnoresChunkBoundaries() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var whole = StreamDigest()
        bytes.withUnsafeBytes { whole.update($0) }
        for cut in [1, 7, 31, 32, 33, 500, 999] {
            var parts = StreamDigest()
            bytes.withUnsafeBytes {
                parts.update(UnsafeRawBufferPointer(rebasing: $0[0..<cut]))
                parts.update(UnsafeRawBufferPointer(rebasing: $0[cut...]))
            }
            #expect(parts.finish() == whole.finish(), "cut at \(cut)")
        }
        var other = StreamDigest()
        (bytes.dropLast() + [bytes[999] ^ 0xFF]).withUnsafeBytes { other.update($0) }
        #expect(other.finish() != whole.finish())
    }

    /// Batches come out in order and complete, from the input thread too; a file that changes after
    /// its scan is refused instead of being mixed with the version that was validated.
    @Test func streamAndPrefetcherHandOutBatchesInOrderAndRefuseAChangedFile() throws {
        let dir = temporaryDirectory()
        let path = dir + "/in.jsonl"
        let lines = (0..<150).map {
            "{\"id\": \"p\($0)\", \"prompt\": \"q\($0)\", \"candidates\": [\"a\\n\($0)\", \"b \\\"\($0)\\\"\"]}"
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let scan = try reader.scan(path: path)
        #expect(scan.prompts == 150)
        let prefetcher = PromptPrefetcher(
            stream: try PromptStream(path: path, scan: scan, reader: reader), batchSize: 64, depth: 2)
        var ids: [String] = []
        for range in [0..<64, 64..<128, 128..<150] {
            let batch = try prefetcher.take(range)
            #expect(batch.count == range.count)
            ids += batch.map(\.id)
        }
        #expect(ids == (0..<150).map { "p\($0)" })
        #expect(try read(lines.joined(separator: "\n"))[149].candidates[1].text == "b \"149\"")

        let stream = try PromptStream(path: path, scan: scan, reader: reader)
        _ = try stream.next(10)
        Thread.sleep(forTimeInterval: 0.01)  // a later modification time, whatever the file system's resolution
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"prompt\": \"new\", \"candidates\": [\"a\", \"b\"]}\n".utf8))
        handle.closeFile()
        #expect { _ = try stream.next(10) } throws: { "\($0)".contains("changed while its iteration was running") }
        let late = PromptPrefetcher(
            stream: try PromptStream(path: path, scan: try reader.scan(path: path), reader: reader), batchSize: 64,
            depth: 1)
        try "{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        // Whatever the thread had read before the change, the first batch read after it is refused.
        var refused = false
        for range in [0..<64, 64..<128, 128..<151] {
            do { _ = try late.take(range) } catch { refused = "\(error)".contains("changed"); break }
        }
        #expect(refused)
    }

    /// A resume's replayed batches: long candidate texts are stepped over, everything else is kept,
    /// and a line with a reference is read in full (its labels come from the texts).
    @Test func skimmingLeavesOutOnlyLongCandidateTexts() throws {
        let long = String(repeating: "x\\n", count: 200)
        let prompt = String(repeating: "why ", count: 100)
        let line =
            "{\"id\": \"a\", \"prompt\": \"\(prompt)\", \"task\": \"t\", \"candidates\": [\"\(long)\", \"short\", {\"text\": \"\(long)\", \"correct\": true}]}"
        let full = try Array(line.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d") }
        let skimmed = try Array(line.utf8).withUnsafeBytes {
            try reader.parse(bytes: $0, where: "x", defaultID: "d", skim: true)
        }
        #expect(full.candidates[0].text.count == 400)
        #expect(skimmed.candidates.map(\.text) == ["", "short", ""])
        #expect(skimmed.candidates.map(\.correct) == full.candidates.map(\.correct))
        #expect(
            skimmed.prompt == full.prompt && skimmed.context == full.context && skimmed.id == "a" && skimmed.task == "t"
        )
        let withReference = line.replacingOccurrences(of: "\"task\": \"t\"", with: "\"reference\": \"4\"")
        let labelled = try Array(withReference.utf8).withUnsafeBytes {
            try reader.parse(bytes: $0, where: "x", defaultID: "d", skim: true)
        }
        #expect(labelled.candidates[0].text.count == 400)
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: InputError.self) { try reader.read(path: "/nonexistent/file.jsonl") }
    }
}

@Suite struct RunConfigTests {
    let minimal = """
        input: [a.jsonl, /abs/b.jsonl]
        reward_models:
          - {name: am, kind: answer-match}
          - {name: noisy, kind: noisy, params: {base: length, sigma: 0.3}}
        """

    func parse(_ yaml: String) throws -> RunConfig {
        try RunConfig.parse(yaml: yaml, source: "cfg.yaml", baseDirectory: "/data")
    }

    func error(_ yaml: String) -> String {
        do { _ = try parse(yaml); return "no error" } catch { return "\(error)" }
    }

    @Test func defaultsAndPaths() throws {
        let c = try parse(minimal)
        #expect(c.inputs == ["/data/a.jsonl", "/abs/b.jsonl"])
        #expect(c.iterations == 2)
        #expect(c.strategy == .linucb && c.alpha == 0.1 && c.lambda == 1)
        #expect(c.rewardModels[1].params == ["base": "length", "sigma": "0.3"])
        #expect(c.input(forIteration: 5) == "/abs/b.jsonl")
    }

    /// Issue 16's keys: `preset: paper` sets the paper's setting and later keys override it; the bandit
    /// section and the new reward sources parse, round-trip, and refuse what they do not know.
    @Test func presetBanditAndRewardSources() throws {
        let paper = try parse(minimal + "\npreset: paper\nlinucb: {alpha: 2}\n")
        #expect(
            paper.preset == "paper" && paper.rewardSource == .trainerLoss && paper.alpha == 2
                && paper.bandit == BanditOptions())
        let fair = try parse(
            minimal
                + "\nbandit: {warm_start: round-robin, ties: seeded, first_reward: neutral}\nreward: {source: probe-progress, probe_size: 32}\n"
        )
        #expect(fair.bandit == BanditOptions(warmStart: .roundRobin, ties: .seeded, firstReward: .neutral))
        #expect(fair.rewardSource == .probeProgress && fair.probeSize == 32)
        #expect(fair.plan(coordinatorID: "c").bandit == fair.bandit && fair.plan(coordinatorID: "c").probeSize == 32)
        for c in [paper, fair] {
            #expect(try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/elsewhere") == c)
        }
        // A config without the new keys writes none of them (its digest, and so its resumes, stay as they were).
        let plain = try parse(minimal).yaml()
        #expect(!plain.contains("bandit:") && !plain.contains("probe_size") && !plain.contains("preset"))
        #expect(
            error(minimal + "\npreset: fast\n").contains("cfg.yaml: preset 'fast' is not a preset; choose one of paper")
        )
        #expect(error(minimal + "\nbandit: {ties: last}\n").contains("bandit.ties 'last' is not one of first, seeded"))
        #expect(error(minimal + "\nbandit: {warm: 1}\n").contains("bandit"))
        #expect(
            error(minimal + "\nreward: {source: prediction-gain}\nmode: best-of-n\n").contains(
                "prediction-gain does not go with mode: best-of-n"))
    }

    @Test func yamlRoundTrip() throws {
        var c = try parse(minimal + "\nstrategy: fixed\nfixed_rm: am\npairs: {mode: best-vs-worst}\n")
        c.seed = 9
        let again = try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/elsewhere")
        #expect(again == c)
    }

    @Test func placementParsesRoundTripsAndChecksRMNames() throws {
        let c = try parse(
            minimal + "\nplacement: {by_label: {a100: [am]}, by_worker: {n1-gpu0: [noisy, am]}, idle_report_s: 10}")
        #expect(c.placement.byLabel == ["a100": ["am"]])
        #expect(c.placement.byWorker == ["n1-gpu0": ["noisy", "am"]])
        #expect(c.placement.idleReportSeconds == 10)
        #expect(try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/") == c)
        #expect(
            error(minimal + "\nplacement: {by_label: {a100: [judge]}}").contains(
                "placement.by_label.a100 names 'judge'"))
        #expect(error(minimal + "\nplacement: {by_gpu: {}}").contains("by_gpu is not a known key"))
    }

    /// RM params travel as strings: a YAML list or mapping (a subprocess RM's argv and env) becomes
    /// JSON, and the run directory's config.yaml reads back to the same params.
    @Test func listAndMappingParamsBecomeJSON() throws {
        let c = try parse(
            """
            input: a.jsonl
            reward_models:
              - name: gpu-rm
                kind: subprocess
                params:
                  command: [python3, "rm server.py", --model, "a \\"b\\""]
                  env: {CUDA_VISIBLE_DEVICES: 0, HF_HOME: /data/hf}
                  timeout_ms: 5000
            """)
        #expect(
            c.rewardModels[0].params == [
                "command": #"["python3","rm server.py","--model","a \"b\""]"#,
                "env": #"{"CUDA_VISIBLE_DEVICES":0,"HF_HOME":"/data/hf"}"#,
                "timeout_ms": "5000",
            ])
        #expect(try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/data") == c)
    }

    @Test func errorsSayWhereAndWhat() {
        #expect(
            error(minimal + "\nstrategy: linucbb").contains(
                "strategy 'linucbb' is not a strategy; choose one of linucb, random, sequential, ensemble, fixed"))
        #expect(error("input: a.jsonl\nreward_models: [{name: x, kind: gpt4-judge}]").contains("gpt4-judge"))
        #expect(error(minimal + "\nbatchsize: 3").contains("batchsize is not a known key"))
        #expect(error(minimal + "\nstrategy: fixed").contains("fixed_rm is required"))
        #expect(error(minimal + "\nfixed_rm: nope").contains("'nope' is not one of the reward_models"))
        #expect(error(minimal + "\nbatch_size: 0").contains("batch_size must be at least 1"))
        #expect(error("reward_models: [{kind: length}]").contains("input is missing"))
        #expect(error("input: a.jsonl").contains("reward_models is missing"))
        #expect(error(minimal + "\nlinucb: {alpha: -1}").contains("linucb.alpha must be a finite number >= 0"))
        #expect(error("input: a.jsonl\nreward_models: [{kind: length}, {kind: length}]").contains("used twice"))
        #expect(error("input: a.jsonl\nreward_models: [{kind: noisy, params: {base: length}}]").contains("sigma"))
        #expect(error(": : :").contains("cfg.yaml"))
        #expect(error(minimal + "\nseed: 1\nseed: 2").contains("seed is given twice (line"))
        #expect(
            error(
                "input: a.jsonl\nreward_models:\n  - name: x\n    kind: length\n    params: {prefer: longer}\n    params: {prefer: shorter}\n"
            ).contains("reward_models[0].params is given twice"))
    }
}

@Suite struct OutputTests {
    @Test func pairLinesAreTRLJSONWithProvenance() throws {
        let pair = PreferencePair(
            prompt: "q \"x\"\n\u{1}", chosen: "é🚀", rejected: "b\\", chosenScore: 1, rejectedScore: -0.25,
            rm: "am", promptID: "p1", iteration: 2, batch: 3)
        let line = JSONLines.line(pair)
        #expect(
            line
                == #"{"prompt":"q \"x\"\n\u0001","chosen":"é🚀","rejected":"b\\","chosen_score":1.0,"rejected_score":-0.25,"rm":"am","prompt_id":"p1","iteration":2,"batch":3}"#
        )
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        #expect(object["prompt"] as? String == "q \"x\"\n\u{1}")
        #expect(object["chosen"] as? String == "é🚀")
    }

    @Test func atomicWriteReplacesWholeFileAndLeavesNoTemp() throws {
        let dir = temporaryDirectory()
        try AtomicFile.write("first", to: dir + "/f")
        try AtomicFile.write("second", to: dir + "/f")
        #expect(try String(contentsOfFile: dir + "/f", encoding: .utf8) == "second")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["f"])
    }

    @Test func writeIntoAMissingFolderIsAClearError() {
        do {
            try AtomicFile.write("x", to: "/nonexistent-laser-dir/f")
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("cannot create /nonexistent-laser-dir/.f.tmp"))
        }
    }
}
