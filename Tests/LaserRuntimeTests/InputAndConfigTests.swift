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
        let records = try read("""
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
        lines[1299] = #"{"id": "p1300", "prompt": 5, "candidates": ["a", "b"]}"#    // line 1300: bad prompt
        lines[1799] = "{not json"                                                // line 1800
        lines[999] = line(10)                                                    // line 1000 repeats line 10's id
        #expect(error(lines.joined(separator: "\n")).contains("in.jsonl:1000: prompt id 'p10' was already used on line 10"))
        lines[999] = line(1000)
        #expect(error(lines.joined(separator: "\n")).contains("in.jsonl:1300: \"prompt\" is missing or not a string"))
        lines[1299] = line(1300)
        #expect(error(lines.joined(separator: "\n")).contains("in.jsonl:1800: not valid JSON"))
        lines[1799] = line(1800)
        #expect(error(lines.joined(separator: "\n")) == "no error")
    }

    @Test func badLinesNameFileLineAndFix() {
        #expect(error("{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n{not json").contains("in.jsonl:2: not valid JSON"))
        #expect(error("{\"prompt\": \"p\", \"candidates\": [\"a\"]}").contains("in.jsonl:1: prompt 'line-1' has 1 candidate(s); a preference pair needs at least 2"))
        #expect(error("{\"prompt\": \"p\", \"candidates\": \"a,b\"}").contains("\"candidates\" must be an array"))
        #expect(error("{\"prompt\": \"p\", \"candidates\": [\"a\", 3]}").contains("candidate 1 must be a string"))
        #expect(error("{\"prompt\": \"p\", \"candidates\": [{\"text\": \"a\", \"correct\": \"yes\"}, \"b\"]}").contains("\"correct\" must be true or false"))
        #expect(error("{\"prompt\": 5, \"candidates\": [\"a\", \"b\"]}").contains("\"prompt\" is missing or not a string"))
        #expect(error("[1, 2]").contains("expected a JSON object"))
        #expect(error("{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"], \"context\": [1, 2]}").contains("set context.dimension: 2"))
        #expect(error("{\"prompt\": \"p\\u0000\", \"candidates\": [\"a\", \"b\"]}").contains("NUL"))
        #expect(error("{\"id\": \"x\", \"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n{\"id\": \"x\", \"prompt\": \"q\", \"candidates\": [\"a\", \"b\"]}").contains("in.jsonl:2: prompt id 'x' was already used on line 1"))
        #expect(error("").contains("no error"))
    }

    /// A resume trusts a file whose digest matches the journal's and scans anything else in full.
    @Test func rescanChecksTheDigestAndScansAChangedFile() throws {
        let dir = temporaryDirectory()
        let path = dir + "/in.jsonl"
        try "{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let scan = try reader.scan(path: path)
        #expect(scan.prompts == 1)
        // The same scan, without the canonical-line marks (nothing was checked).
        var digestOnly = scan
        digestOnly.canonicalLines = nil
        #expect(try reader.rescan(path: path, digest: scan.digest, prompts: 1) == digestOnly)
        try "{\"prompt\": \"p\", \"candidates\": [\"a\"]}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: InputError.self) { try reader.rescan(path: path, digest: scan.digest, prompts: 1) }
        try "{\"prompt\": \"q\", \"candidates\": [\"a\", \"b\"]}\n\n{\"prompt\": \"r\", \"candidates\": [\"a\", \"b\"]}".write(toFile: path, atomically: true, encoding: .utf8)
        let changed = try reader.rescan(path: path, digest: scan.digest, prompts: 1)
        #expect(changed.prompts == 2 && changed.digest != scan.digest)
    }

    /// A journal written by a laser before the streaming reader holds the byte-wise FNV-1a digest: the
    /// unchanged file still resumes (the scan reports that digest), a changed one does not.
    @Test func rescanAcceptsTheDigestOfEarlierVersions() throws {
        let dir = temporaryDirectory()
        let path = dir + "/in.jsonl"
        let text = "{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n{\"prompt\": \"q\", \"candidates\": [\"c\", \"d\"]}\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let legacy = contentDigest(Array(text.utf8))
        #expect(try PromptReader.legacyDigest(path: path) == legacy)
        let scan = try reader.rescan(path: path, digest: legacy, prompts: 2)
        #expect(scan.digest == legacy && scan.prompts == 2)
        try (text + text.replacingOccurrences(of: "\"p\"", with: "\"p2\"").replacingOccurrences(of: "\"q\"", with: "\"q2\"")).write(toFile: path, atomically: true, encoding: .utf8)
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
        let lines = (0..<150).map { "{\"id\": \"p\($0)\", \"prompt\": \"q\($0)\", \"candidates\": [\"a\\n\($0)\", \"b \\\"\($0)\\\"\"]}" }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let scan = try reader.scan(path: path)
        #expect(scan.prompts == 150)
        let prefetcher = PromptPrefetcher(stream: try PromptStream(path: path, scan: scan, reader: reader), batchSize: 64, depth: 2)
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
        let late = PromptPrefetcher(stream: try PromptStream(path: path, scan: try reader.scan(path: path), reader: reader), batchSize: 64, depth: 1)
        try "{\"prompt\": \"p\", \"candidates\": [\"a\", \"b\"]}\n".write(toFile: path, atomically: true, encoding: .utf8)
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
        let line = "{\"id\": \"a\", \"prompt\": \"\(prompt)\", \"task\": \"t\", \"candidates\": [\"\(long)\", \"short\", {\"text\": \"\(long)\", \"correct\": true}]}"
        let full = try Array(line.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d") }
        let skimmed = try Array(line.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d", skim: true) }
        #expect(full.candidates[0].text.count == 400)
        #expect(skimmed.candidates.map(\.text) == ["", "short", ""])
        #expect(skimmed.candidates.map(\.correct) == full.candidates.map(\.correct))
        #expect(skimmed.prompt == full.prompt && skimmed.context == full.context && skimmed.id == "a" && skimmed.task == "t")
        let withReference = line.replacingOccurrences(of: "\"task\": \"t\"", with: "\"reference\": \"4\"")
        let labelled = try Array(withReference.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d", skim: true) }
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
        #expect(paper.preset == "paper" && paper.rewardSource == .trainerLoss && paper.alpha == 2 && paper.bandit == BanditOptions())
        let fair = try parse(minimal + "\nbandit: {warm_start: round-robin, ties: seeded, first_reward: neutral}\nreward: {source: probe-progress, probe_size: 32}\n")
        #expect(fair.bandit == BanditOptions(warmStart: .roundRobin, ties: .seeded, firstReward: .neutral))
        #expect(fair.rewardSource == .probeProgress && fair.probeSize == 32)
        #expect(fair.plan(coordinatorID: "c").bandit == fair.bandit && fair.plan(coordinatorID: "c").probeSize == 32)
        for c in [paper, fair] { #expect(try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/elsewhere") == c) }
        // A config without the new keys writes none of them (its digest, and so its resumes, stay as they were).
        let plain = try parse(minimal).yaml()
        #expect(!plain.contains("bandit:") && !plain.contains("probe_size") && !plain.contains("preset"))
        #expect(error(minimal + "\npreset: fast\n").contains("cfg.yaml: preset 'fast' is not a preset; choose one of paper"))
        #expect(error(minimal + "\nbandit: {ties: last}\n").contains("bandit.ties 'last' is not one of first, seeded"))
        #expect(error(minimal + "\nbandit: {warm: 1}\n").contains("bandit"))
        #expect(error(minimal + "\nreward: {source: prediction-gain}\nmode: best-of-n\n").contains("prediction-gain does not go with mode: best-of-n"))
    }

    @Test func yamlRoundTrip() throws {
        var c = try parse(minimal + "\nstrategy: fixed\nfixed_rm: am\npairs: {mode: best-vs-worst}\n")
        c.seed = 9
        let again = try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/elsewhere")
        #expect(again == c)
    }

    @Test func placementParsesRoundTripsAndChecksRMNames() throws {
        let c = try parse(minimal + "\nplacement: {by_label: {a100: [am]}, by_worker: {n1-gpu0: [noisy, am]}, idle_report_s: 10}")
        #expect(c.placement.byLabel == ["a100": ["am"]])
        #expect(c.placement.byWorker == ["n1-gpu0": ["noisy", "am"]])
        #expect(c.placement.idleReportSeconds == 10)
        #expect(try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/") == c)
        #expect(error(minimal + "\nplacement: {by_label: {a100: [judge]}}").contains("placement.by_label.a100 names 'judge'"))
        #expect(error(minimal + "\nplacement: {by_gpu: {}}").contains("by_gpu is not a known key"))
    }

    /// RM params travel as strings: a YAML list or mapping (a subprocess RM's argv and env) becomes
    /// JSON, and the run directory's config.yaml reads back to the same params.
    @Test func listAndMappingParamsBecomeJSON() throws {
        let c = try parse("""
            input: a.jsonl
            reward_models:
              - name: gpu-rm
                kind: subprocess
                params:
                  command: [python3, "rm server.py", --model, "a \\"b\\""]
                  env: {CUDA_VISIBLE_DEVICES: 0, HF_HOME: /data/hf}
                  timeout_ms: 5000
            """)
        #expect(c.rewardModels[0].params == [
            "command": #"["python3","rm server.py","--model","a \"b\""]"#,
            "env": #"{"CUDA_VISIBLE_DEVICES":0,"HF_HOME":"/data/hf"}"#,
            "timeout_ms": "5000",
        ])
        #expect(try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/data") == c)
    }

    @Test func errorsSayWhereAndWhat() {
        #expect(error(minimal + "\nstrategy: linucbb").contains("strategy 'linucbb' is not a strategy; choose one of linucb, random, sequential, ensemble, fixed"))
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
        #expect(error("input: a.jsonl\nreward_models:\n  - name: x\n    kind: length\n    params: {prefer: longer}\n    params: {prefer: shorter}\n").contains("reward_models[0].params is given twice"))
    }
}

@Suite struct OutputTests {
    @Test func pairLinesAreTRLJSONWithProvenance() throws {
        let pair = PreferencePair(prompt: "q \"x\"\n\u{1}", chosen: "é🚀", rejected: "b\\", chosenScore: 1, rejectedScore: -0.25,
                                  rm: "am", promptID: "p1", iteration: 2, batch: 3)
        let line = JSONLines.line(pair)
        #expect(line == #"{"prompt":"q \"x\"\n\u0001","chosen":"é🚀","rejected":"b\\","chosen_score":1.0,"rejected_score":-0.25,"rm":"am","prompt_id":"p1","iteration":2,"batch":3}"#)
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

/// The input's JSON parser against Foundation's, on random strings and on hand-picked edge cases.
@Suite struct JSONLineParserTests {
    func parse(_ text: String) throws -> JSONValue {
        try Array(text.utf8).withUnsafeBytes { try JSONLineParser.parse($0) }
    }

    @Test func stringsRoundTripThroughFoundation() throws {
        var rng = SplitMix64(seed: 11)
        let alphabet: [String] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{01}", "\u{1F}", "é", "ß", "中", "😀", "\u{2028}", "\u{7F}"]
        for _ in 0..<2000 {
            let length = Int(rng.next() % 40)
            let text = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined()
            let json = String(data: try JSONSerialization.data(withJSONObject: ["s": text, "n": [1, -2.5, 3e10]]), encoding: .utf8)!
            let value = try parse(json)
            #expect(value["s"] == .string(text), "\(json)")
        }
    }

    @Test func escapesAndErrors() throws {
        #expect(try parse(#"{"a": "x\u00e9\ud83d\ude00\/y"}"#)["a"] == .string("xé😀/y"))
        #expect(try parse(#"  {"id": 7, "r": 2.50, "t": true, "f": false, "z": null, "e": [], "o": {}}  "#)["id"] == .number(literal: "7", value: 7))
        for bad in [#"{"a": "x"#, #"{"a": "\x"}"#, #"{"a": "\ud83d"}"#, "{\"a\": \"tab\there\"}", #"{"a": 01}"#, #"{"a": 1.}"#,
                    #"{"a" 1}"#, #"{"a": 1,}"#, #"[1, 2"#, #"{"a": tru}"#, #"{} x"#, String(repeating: "[", count: 100)] {
            #expect(throws: JSONSyntaxError.self, "\(bad)") { try parse(bad) }
        }
        // Invalid UTF-8 inside a string.
        let invalid = [UInt8](#"{"a": ""#.utf8) + [0xC3, 0x28] + [UInt8](#""}"#.utf8)
        #expect(throws: JSONSyntaxError.self) { try invalid.withUnsafeBytes { try JSONLineParser.parse($0) } }
    }
}

/// The C string scanner behind the parser (`laser_json_string`): the same texts, the same errors at
/// the same offsets as the byte-at-a-time rules, in both of its modes (decode, and validate only).
@Suite struct JSONStringScanTests {
    func failure(_ text: String, materialize: Bool = true) -> String? {
        do {
            _ = try Array(text.utf8).withUnsafeBytes { try JSONLineParser.parseReportingNUL($0, materialize: materialize) }
            return nil
        } catch { return "\(error)" }
    }

    @Test func errorsNameWhatAndWhere() {
        let long = String(repeating: "x", count: 300)
        for materialize in [true, false] {
            for pad in ["", long] {
                let o = 7 + pad.utf8.count   // offset of the first byte after `{"a": "` and the padding
                #expect(failure(#"{"a": ""# + pad + #"abc"#, materialize: materialize) == "unterminated string at character \(o + 4)")
                #expect(failure(#"{"a": ""# + pad + "ab\tc\"}", materialize: materialize) == "a control character inside a string (escape it) at character \(o + 3)")
                #expect(failure(#"{"a": ""# + pad + #"ab\"#, materialize: materialize) == "unterminated escape at character \(o + 3)")
                #expect(failure(#"{"a": ""# + pad + #"ab\x"}"#, materialize: materialize) == #"an invalid escape '\x' at character \#(o + 3)"#)
                #expect(failure(#"{"a": ""# + pad + #"ab\u12G4"}"#, materialize: materialize) == "a \\u escape needs 4 hex digits at character \(o + 7)")
                #expect(failure(#"{"a": ""# + pad + #"ab\u12"#, materialize: materialize) == "a \\u escape needs 4 hex digits at character \(o + 5)")
                #expect(failure(#"{"a": ""# + pad + #"ab\ud83dx"}"#, materialize: materialize) == "an unpaired UTF-16 surrogate in a \\u escape at character \(o + 9)")
                #expect(failure(#"{"a": ""# + pad + #"ab\ud83d\u0041"}"#, materialize: materialize) == "an unpaired UTF-16 surrogate in a \\u escape at character \(o + 15)")
                #expect(failure(#"{"a": ""# + pad + #"ab\ude00"}"#, materialize: materialize) == "an unpaired UTF-16 surrogate in a \\u escape at character \(o + 9)")
                #expect(failure(#"{"a": ""# + pad + #"\n\u00e9\ud83d\ude00"}"#, materialize: materialize) == nil)
            }
        }
        // Invalid UTF-8 in a long text with escapes is still found when the text is not kept.
        let invalid = [UInt8](#"{"a": ["#.utf8) + [0x22] + [UInt8](repeating: 0x61, count: 300) + [0x5C, 0x6E, 0xC3, 0x28, 0x22] + [UInt8]("]}".utf8)
        #expect(throws: JSONSyntaxError.self) { try invalid.withUnsafeBytes { try JSONLineParser.parseReportingNUL($0, materialize: false) } }
    }

    @Test func longTextsDecodeAcrossBlockBoundaries() throws {
        var rng = SplitMix64(seed: 21)
        let alphabet: [String] = ["a", "b", " ", "\"", "\\", "\n", "\t", "\u{01}", "é", "中", "😀", "\u{0}"]
        for _ in 0..<400 {
            let length = Int(rng.next() % 700)
            let text = (0..<length).map { _ in rng.next() % 4 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : "x" }.joined()
            let json = String(data: try JSONSerialization.data(withJSONObject: ["s": text]), encoding: .utf8)!
            let (value, sawNUL, _) = try Array(json.utf8).withUnsafeBytes { try JSONLineParser.parseReportingNUL($0) }
            #expect(value["s"] == .string(text))
            #expect(sawNUL == text.contains("\u{0}"))
            // Validate-only keeps short texts and checks long ones without keeping them.
            let checked = try Array(json.utf8).withUnsafeBytes { try JSONLineParser.parseReportingNUL($0, materialize: false) }.value
            #expect(checked["s"] == .string(json.utf8.count - 8 > JSONLineParser.longString ? "" : text), "\(json)")
        }
    }
}

/// The 64-byte fast path of `laser_json_string` against its exact one-escape-at-a-time path, on
/// random string bodies built to stress it: backslash runs across block edges, escapes in a block's
/// last byte, quotes, control characters, \u escapes (good and bad), non-ASCII, at every alignment.
@Suite struct JSONStringFastPathTests {
    @Test func fastPathAgreesWithTheExactPath() {
        var rng = SplitMix64(seed: 44)
        let pieces: [[UInt8]] = [Array("abcdefgh".utf8), Array("x".utf8), Array(#"\"#.utf8), Array(#"\\"#.utf8), Array(#"\""#.utf8),
                                 Array(#"\n"#.utf8), Array(#"\/"#.utf8), Array(#"\u00e9"#.utf8), Array(#"\ud83d\ude00"#.utf8), Array(#"\q"#.utf8),
                                 Array(#"\u12"#.utf8), [0x22], [0x09], [0xC3, 0xA9], [0xFF], Array(String(repeating: "y", count: 61).utf8)]
        let weights = [20, 20, 6, 3, 3, 4, 1, 1, 1, 1, 1, 2, 1, 2, 1, 3]
        let total = weights.reduce(0, +)
        var checked = 0
        for _ in 0..<20000 {
            var body: [UInt8] = Array(repeating: 0x20, count: Int(rng.next() % 70))   // shifts the alignment
            let from = body.count
            let target = Int(rng.next() % 300)
            while body.count - from < target {
                var r = Int(rng.next() % UInt64(total)), i = 0
                while r >= weights[i] { r -= weights[i]; i += 1 }
                body += pieces[i]
            }
            if rng.next() % 4 != 0 { body += [0x22] + Array(#", "z"]}"#.utf8) }
            let n = body.count
            body.withUnsafeBufferPointer { b in
                let p = b.baseAddress!
                let fast = laser_json_string(p, from, n, nil), exact = laser_json_string_exact(p, from, n, nil)
                #expect(fast.error == exact.error && fast.at == exact.at && (fast.non_ascii != 0) == (exact.non_ascii != 0) && fast.saw_nul == exact.saw_nul, "\(Array(body[from...]))")
                // Stepping over a valid string (what a stream does with lines the scan checked) ends where checking it does.
                if exact.error == Int32(LASER_JSON_OK) { #expect(laser_json_string_end(p, from, n) == exact.at, "\(Array(body[from...]))") }
                var a = [UInt8](repeating: 0, count: n + 16), e = [UInt8](repeating: 0, count: n + 16)
                let fd = laser_json_string(p, from, n, &a), ed = laser_json_string_exact(p, from, n, &e)
                #expect(fd.error == ed.error && fd.at == ed.at && fd.written == ed.written, "\(Array(body[from...]))")
                if ed.error == Int32(LASER_JSON_OK) {
                    #expect(a[..<Int(fd.written)] == e[..<Int(ed.written)], "\(Array(body[from...]))")
                    checked += 1
                }
            }
        }
        #expect(checked > 5000)
    }
}

/// Candidate texts travel from the input to batch files as the input's escaped bytes: the batch-file
/// bytes are the ones escaping the decoded text writes, whichever way the input escaped it.
@Suite struct EscapedCandidateTests {
    @Test func batchFileBytesAreIndependentOfHowTheInputEscaped() throws {
        let dir = NSTemporaryDirectory() + "laser-escaped-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let texts = ["plain", "a/b \u{8} é 😀 \n\t\"q\" \\", String(repeating: "long \n\"text\" ", count: 40), "\u{1F}\u{7F}"]
        // The same texts escaped three ways: laser's own, Foundation's (\/), and by hand (\u00e9, \b, \u000A).
        let laser = texts.map { t -> String in var o: [UInt8] = []; JSONLines.appendString(t, to: &o); return String(decoding: o, as: UTF8.self) }
        let foundation = try texts.map { String(data: try JSONSerialization.data(withJSONObject: $0, options: [.fragmentsAllowed]), encoding: .utf8)! }
        let byHand = laser.map { $0.replacingOccurrences(of: "é", with: #"\u00e9"#).replacingOccurrences(of: #"\u0008"#, with: #"\b"#)
            .replacingOccurrences(of: #"\n"#, with: #"\u000A"#).replacingOccurrences(of: "/", with: #"\/"#) }
        var lines: [String] = []
        for (k, form) in [laser, foundation, byHand].enumerated() {
            lines.append(#"{"id": "p\#(k)", "prompt": "q", "candidates": [\#(form.joined(separator: ", "))]}"#)
            lines.append(#"{"id": "o\#(k)", "prompt": "q", "candidates": [\#(form.map { #"{"text": \#($0), "correct": true}"# }.joined(separator: ", "))]}"#)
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        let records = try PromptReader(contextDimension: 8).read(path: dir + "/in.jsonl")
        #expect(records.count == 6)
        for r in records {
            #expect(r.candidates.map(\.text) == texts, "\(r.id)")
            for (c, t) in zip(r.candidates, texts) {
                var kept: [UInt8] = [], escaped: [UInt8] = []
                JSONLines.append(c.json, to: &kept)
                JSONLines.appendString(t, to: &escaped)
                #expect(kept == escaped, "\(r.id)")
            }
        }
    }
}

/// The scan marks the lines whose strings are all escaped laser's way; a stream steps over those
/// lines' candidate texts without checking them again, and must find the same texts as a full check.
@Suite struct TrustedLineTests {
    @Test func canonicalLinesAreMarkedAndSteppedOverToTheSameTexts() throws {
        let dir = NSTemporaryDirectory() + "laser-trusted-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Backslash runs next to quotes and at a text's end are where stepping over could go wrong.
        let texts = ["end\\", "\\\"q\"", "\\\\", String(repeating: "x\\\\\"y ", count: 70), "plain", "tab\t\u{1}"]
        let canonical = texts.map { t -> String in var o: [UInt8] = []; JSONLines.appendString(t, to: &o); return String(decoding: o, as: UTF8.self) }
        let lines = [
            #"{"id": "a", "prompt": "q", "candidates": [\#(canonical.joined(separator: ", "))]}"#,
            #"{"id": "b", "prompt": "q\/slash", "candidates": [\#(canonical.joined(separator: ", "))]}"#,  // \/ in the prompt
            "",
            #"{"id": "c", "prompt": "q", "candidates": [{"text": \#(canonical[0]), "correct": true}, "\u00e9"]}"#,
            #"{"id": "d", "prompt": "q", "candidates": [{"text": \#(canonical[3])}, \#(canonical[1])]}"#,
        ]
        let path = dir + "/in.jsonl"
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let reader = PromptReader(contextDimension: 8)
        let scan = try reader.scan(path: path)
        let marked = try #require(scan.canonicalLines)
        #expect((1...5).filter { marked.contains($0) } == [1, 5])
        // Streamed with the marks (lines 1 and 5 stepped over) and without (every line checked).
        let trusted = try PromptStream(path: path, scan: scan, reader: reader).next(10)
        var unmarked = scan
        unmarked.canonicalLines = nil
        let checked = try PromptStream(path: path, scan: unmarked, reader: reader).next(10)
        #expect(trusted.map(\.id) == ["a", "b", "c", "d"])
        for (t, c) in zip(trusted, checked) {
            #expect(t.candidates.map(\.text) == c.candidates.map(\.text), "\(t.id)")
            #expect(t.candidates.map { $0.json.withEscapedBytes { Array($0) } } == c.candidates.map { $0.json.withEscapedBytes { Array($0) } })
        }
        #expect(trusted[0].candidates.map(\.text) == texts && trusted[1].candidates.map(\.text) == texts)
        #expect(trusted[2].candidates.map(\.text) == ["end\\", "é"])
        // A rescan by digest knows no marks: the stream checks every line again.
        #expect(try reader.rescan(path: path, digest: scan.digest, prompts: scan.prompts).canonicalLines == nil)
    }
}

/// Numbers in pair lines are written as bytes; the same text as `JSONLines.number` and `String(n)`.
@Suite struct JSONNumberTests {
    @Test func bytesMatchTheStringForms() {
        var rng = SplitMix64(seed: 77)
        let fixed: [Double] = [0, -0.0, 1, -1, 0.5, -0.25, 1e-300, 1e300, 999_999_999_999_999, 1e15, -3, 123456789.125]
        for x in fixed + (0..<2000).map({ _ in Double(Int64(bitPattern: rng.next()) % 2_000_000) / Double(1 + rng.next() % 1000) }) {
            var out: [UInt8] = []
            JSONLines.appendNumber(x, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == JSONLines.number(x), "\(x)")
        }
        for n in [0, 7, -7, 10, 1_000_000, Int.max, Int.min] + (0..<500).map({ _ in Int(truncatingIfNeeded: rng.next()) }) {
            var out: [UInt8] = []
            JSONLines.appendInteger(n, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(n))
        }
    }
}

/// The batch files' string escaping (`laser_json_escape`, 4 KiB at a time) against the rule written
/// out character by character, and back through Foundation.
@Suite struct JSONEscapeTests {
    func reference(_ text: String) -> [UInt8] {
        var out: [UInt8] = [0x22]
        for b in text.utf8 {
            switch b {
            case 0x22, 0x5C: out += [0x5C, b]
            case 0x0A: out += Array(#"\n"#.utf8)
            case 0x0D: out += Array(#"\r"#.utf8)
            case 0x09: out += Array(#"\t"#.utf8)
            case 0..<0x20: out += Array(String(format: "\\u%04x", Int(b)).utf8)
            default: out.append(b)
            }
        }
        return out + [0x22]
    }

    @Test func escapesLikeTheRuleAndRoundTrips() throws {
        var rng = SplitMix64(seed: 33)
        let alphabet: [String] = ["\"", "\\", "\n", "\r", "\t", "\u{08}", "\u{0C}", "\u{01}", "\u{1F}", "é", "😀", "/"]
        for round in 0..<300 {
            // Up to 3 chunks of escapes (6 bytes each from a control character).
            let length = round < 5 ? 2500 : Int(rng.next() % 1200)
            let text = (0..<length).map { _ in round < 5 ? "\u{01}" : (rng.next() % 3 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : "y") }.joined()
            var out: [UInt8] = []
            JSONLines.appendString(text, to: &out)
            #expect(out == reference(text))
            let back = try JSONSerialization.jsonObject(with: Data(out), options: [.fragmentsAllowed]) as? String
            #expect(back == text)
        }
    }
}

/// Skimming finds the end of a long text across escaped quotes and trailing escaped backslashes.
@Suite struct SkimTests {
    @Test func escapedQuotesAndBackslashesDoNotEndAText() throws {
        let reader = PromptReader(contextDimension: 4)
        let tricky = String(repeating: #"q\"x"#, count: 100) + #"\\\\"#   // ends with two escaped backslashes
        let line = #"{"prompt": "p", "candidates": [""# + tricky + #"", "b", ""# + tricky + #""], "task": "t"}"#
        let full = try Array(line.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d") }
        let skimmed = try Array(line.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d", skim: true) }
        #expect(full.candidates[0].text.hasSuffix(#"x\\"#) && full.candidates[0].text.count == 302)
        #expect(skimmed.candidates.map(\.text) == ["", "b", ""])
        #expect(skimmed.task == "t" && skimmed.candidates.count == 3)
    }
}

/// The SSE2 scan against the obvious loop, on random bytes at every offset and length.
@Suite struct JSONScanTests {
    @Test func findsTheFirstSpecialByteAndReportsNonASCIIBeforeIt() {
        var rng = SplitMix64(seed: 5)
        let alphabet: [UInt8] = [0x61, 0x7A, 0x20, 0x22, 0x5C, 0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xFF, 0x30]
        for _ in 0..<3000 {
            let n = Int(rng.next() % 70)
            // Mostly plain text, so that many blocks have no special byte at all.
            let bytes = (0..<n).map { _ in rng.next() % 6 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : UInt8(0x41 + rng.next() % 26) }
            let from = n == 0 ? 0 : Int(rng.next() % UInt64(n + 1))
            var expectedIndex = n, expectedNonASCII = false
            for k in from..<n {
                let c = bytes[k]
                if c == 0x22 || c == 0x5C || c < 0x20 { expectedIndex = k; break }
                if c >= 0x80 { expectedNonASCII = true }
            }
            var flag: UInt32 = 0
            let got = bytes.withUnsafeBytes { JSONScan.findSpecial($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, from: from, end: n, high: &flag) }
            #expect(got == expectedIndex, "\(bytes) from \(from)")
            #expect(!JSONScan.isASCII(flag) == expectedNonASCII, "\(bytes) from \(from)")
        }
    }
}
