import LaserJSON
import CJSONScan
import Foundation
import StableRandom
import Testing
import LaserWire
@testable import LaserRuntime

// The input's JSON: the line parser, the C scanner behind it (Sources/CJSONScan) with its fast paths
// against their exact forms, the batch files' escaping and number forms.

/// The input's JSON parser against Foundation's, on random strings and on hand-picked edge cases.
@Suite struct JSONLineParserTests {
    func parse(_ text: String) throws -> JSONValue {
        try Array(text.utf8).withUnsafeBytes { try JSONLineParser.parse($0) }
    }

    @Test func stringsRoundTripThroughFoundation() throws {
        var rng = SplitMix64(seed: 11)
        let alphabet: [String] = [
            "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{01}", "\u{1F}", "é", "ß", "中", "😀", "\u{2028}",
            "\u{7F}",
        ]
        for _ in 0..<2000 {
            let length = Int(rng.next() % 40)
            let text = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined()
            let json = String(
                data: try JSONSerialization.data(withJSONObject: ["s": text, "n": [1, -2.5, 3e10]]), encoding: .utf8)!
            let value = try parse(json)
            #expect(value["s"] == .string(text), "\(json)")
        }
    }

    @Test func escapesAndErrors() throws {
        #expect(try parse(#"{"a": "x\u00e9\ud83d\ude00\/y"}"#)["a"] == .string("xé😀/y"))
        #expect(
            try parse(#"  {"id": 7, "r": 2.50, "t": true, "f": false, "z": null, "e": [], "o": {}}  "#)["id"]
                == .number(literal: "7", value: 7))
        for bad in [
            #"{"a": "x"#, #"{"a": "\x"}"#, #"{"a": "\ud83d"}"#, "{\"a\": \"tab\there\"}", #"{"a": 01}"#, #"{"a": 1.}"#,
            #"{"a" 1}"#, #"{"a": 1,}"#, #"[1, 2"#, #"{"a": tru}"#, #"{} x"#, String(repeating: "[", count: 100),
        ] {
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
            _ = try Array(text.utf8).withUnsafeBytes {
                try JSONLineParser.parseReportingNUL($0, materialize: materialize)
            }
            return nil
        } catch { return "\(error)" }
    }

    @Test func errorsNameWhatAndWhere() {
        let long = String(repeating: "x", count: 300)
        for materialize in [true, false] {
            for pad in ["", long] {
                let o = 7 + pad.utf8.count  // offset of the first byte after `{"a": "` and the padding
                #expect(
                    failure(#"{"a": ""# + pad + #"abc"#, materialize: materialize)
                        == "unterminated string at character \(o + 4)")
                #expect(
                    failure(#"{"a": ""# + pad + "ab\tc\"}", materialize: materialize)
                        == "a control character inside a string (escape it) at character \(o + 3)")
                #expect(
                    failure(#"{"a": ""# + pad + #"ab\"#, materialize: materialize)
                        == "unterminated escape at character \(o + 3)")
                #expect(
                    failure(#"{"a": ""# + pad + #"ab\x"}"#, materialize: materialize)
                        == #"an invalid escape '\x' at character \#(o + 3)"#)
                #expect(
                    failure(#"{"a": ""# + pad + #"ab\u12G4"}"#, materialize: materialize)
                        == "a \\u escape needs 4 hex digits at character \(o + 7)")
                #expect(
                    failure(#"{"a": ""# + pad + #"ab\u12"#, materialize: materialize)
                        == "a \\u escape needs 4 hex digits at character \(o + 5)")
                #expect(
                    failure(#"{"a": ""# + pad + #"ab\ud83dx"}"#, materialize: materialize)
                        == "an unpaired UTF-16 surrogate in a \\u escape at character \(o + 9)")
                #expect(
                    failure(#"{"a": ""# + pad + #"ab\ud83d\u0041"}"#, materialize: materialize)
                        == "an unpaired UTF-16 surrogate in a \\u escape at character \(o + 15)")
                #expect(
                    failure(#"{"a": ""# + pad + #"ab\ude00"}"#, materialize: materialize)
                        == "an unpaired UTF-16 surrogate in a \\u escape at character \(o + 9)")
                #expect(failure(#"{"a": ""# + pad + #"\n\u00e9\ud83d\ude00"}"#, materialize: materialize) == nil)
            }
        }
        // Invalid UTF-8 in a long text with escapes is still found when the text is not kept.
        let invalid =
            [UInt8](#"{"a": ["#.utf8) + [0x22] + [UInt8](repeating: 0x61, count: 300) + [0x5C, 0x6E, 0xC3, 0x28, 0x22]
            + [UInt8]("]}".utf8)
        #expect(throws: JSONSyntaxError.self) {
            try invalid.withUnsafeBytes { try JSONLineParser.parseReportingNUL($0, materialize: false) }
        }
    }

    @Test func longTextsDecodeAcrossBlockBoundaries() throws {
        var rng = SplitMix64(seed: 21)
        let alphabet: [String] = ["a", "b", " ", "\"", "\\", "\n", "\t", "\u{01}", "é", "中", "😀", "\u{0}"]
        for _ in 0..<400 {
            let length = Int(rng.next() % 700)
            let text = (0..<length).map { _ in
                rng.next() % 4 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : "x"
            }.joined()
            let json = String(data: try JSONSerialization.data(withJSONObject: ["s": text]), encoding: .utf8)!
            let (value, sawNUL, _) = try Array(json.utf8).withUnsafeBytes { try JSONLineParser.parseReportingNUL($0) }
            #expect(value["s"] == .string(text))
            #expect(sawNUL == text.contains("\u{0}"))
            // Validate-only keeps short texts and checks long ones without keeping them.
            let checked = try Array(json.utf8).withUnsafeBytes {
                try JSONLineParser.parseReportingNUL($0, materialize: false)
            }.value
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
        let pieces: [[UInt8]] = [
            Array("abcdefgh".utf8), Array("x".utf8), Array(#"\"#.utf8), Array(#"\\"#.utf8), Array(#"\""#.utf8),
            Array(#"\n"#.utf8), Array(#"\/"#.utf8), Array(#"\u00e9"#.utf8), Array(#"\ud83d\ude00"#.utf8),
            Array(#"\q"#.utf8),
            Array(#"\u12"#.utf8), [0x22], [0x09], [0xC3, 0xA9], [0xFF], Array(String(repeating: "y", count: 61).utf8),
        ]
        let weights = [20, 20, 6, 3, 3, 4, 1, 1, 1, 1, 1, 2, 1, 2, 1, 3]
        let total = weights.reduce(0, +)
        var checked = 0
        for _ in 0..<20000 {
            var body: [UInt8] = Array(repeating: 0x20, count: Int(rng.next() % 70))  // shifts the alignment
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
                #expect(
                    fast.error == exact.error && fast.at == exact.at && (fast.non_ascii != 0) == (exact.non_ascii != 0)
                        && fast.saw_nul == exact.saw_nul, "\(Array(body[from...]))")
                // Stepping over a valid string (what a stream does with lines the scan checked) ends where checking it does.
                if exact.error == Int32(LASER_JSON_OK) {
                    #expect(laser_json_string_end(p, from, n) == exact.at, "\(Array(body[from...]))")
                }
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
        let texts = [
            "plain", "a/b \u{8} é 😀 \n\t\"q\" \\", String(repeating: "long \n\"text\" ", count: 40), "\u{1F}\u{7F}",
        ]
        // The same texts escaped three ways: laser's own, Foundation's (\/), and by hand (\u00e9, \b, \u000A).
        let laser = texts.map { t -> String in
            var o: [UInt8] = []; JSONLines.appendString(t, to: &o); return String(decoding: o, as: UTF8.self)
        }
        let foundation = try texts.map {
            String(data: try JSONSerialization.data(withJSONObject: $0, options: [.fragmentsAllowed]), encoding: .utf8)!
        }
        let byHand = laser.map {
            $0.replacingOccurrences(of: "é", with: #"\u00e9"#).replacingOccurrences(of: #"\u0008"#, with: #"\b"#)
                .replacingOccurrences(of: #"\n"#, with: #"\u000A"#).replacingOccurrences(of: "/", with: #"\/"#)
        }
        var lines: [String] = []
        for (k, form) in [laser, foundation, byHand].enumerated() {
            lines.append(#"{"id": "p\#(k)", "prompt": "q", "candidates": [\#(form.joined(separator: ", "))]}"#)
            lines.append(
                #"{"id": "o\#(k)", "prompt": "q", "candidates": [\#(form.map { #"{"text": \#($0), "correct": true}"# }.joined(separator: ", "))]}"#
            )
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
        let canonical = texts.map { t -> String in
            var o: [UInt8] = []; JSONLines.appendString(t, to: &o); return String(decoding: o, as: UTF8.self)
        }
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
            #expect(
                t.candidates.map { $0.json.withEscapedBytes { Array($0) } }
                    == c.candidates.map { $0.json.withEscapedBytes { Array($0) } })
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
        for x in fixed
            + (0..<2000).map({ _ in Double(Int64(bitPattern: rng.next()) % 2_000_000) / Double(1 + rng.next() % 1000) })
        {
            var out: [UInt8] = []
            JSONLines.appendNumber(x, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == JSONLines.number(x), "\(x)")
        }
        for n in [0, 7, -7, 10, 1_000_000, Int.max, Int.min]
            + (0..<500).map({ _ in Int(truncatingIfNeeded: rng.next()) })
        {
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
            let text = (0..<length).map { _ in
                round < 5 ? "\u{01}" : (rng.next() % 3 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : "y")
            }.joined()
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
        let tricky = String(repeating: #"q\"x"#, count: 100) + #"\\\\"#  // ends with two escaped backslashes
        let line = #"{"prompt": "p", "candidates": [""# + tricky + #"", "b", ""# + tricky + #""], "task": "t"}"#
        let full = try Array(line.utf8).withUnsafeBytes { try reader.parse(bytes: $0, where: "x", defaultID: "d") }
        let skimmed = try Array(line.utf8).withUnsafeBytes {
            try reader.parse(bytes: $0, where: "x", defaultID: "d", skim: true)
        }
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
            let bytes = (0..<n).map { _ in
                rng.next() % 6 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : UInt8(0x41 + rng.next() % 26)
            }
            let from = n == 0 ? 0 : Int(rng.next() % UInt64(n + 1))
            var expectedIndex = n, expectedNonASCII = false
            for k in from..<n {
                let c = bytes[k]
                if c == 0x22 || c == 0x5C || c < 0x20 { expectedIndex = k; break }
                if c >= 0x80 { expectedNonASCII = true }
            }
            var flag: UInt32 = 0
            let got = bytes.withUnsafeBytes {
                JSONScan.findSpecial(
                    $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, from: from, end: n, high: &flag)
            }
            #expect(got == expectedIndex, "\(bytes) from \(from)")
            #expect(!JSONScan.isASCII(flag) == expectedNonASCII, "\(bytes) from \(from)")
        }
    }
}
