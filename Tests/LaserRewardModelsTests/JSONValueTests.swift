import LaserJSON
import Testing

/// The lenient reader (servers' replies) and the sorted writer (requests) of the one JSONValue (LaserJSON).
@Suite struct JSONValueTests {
    @Test func parsesWhatServersWrite() throws {
        let v = try JSONValue.parse(
            #" {"id": 7, "scores": [[1.5e2, -0.25, 0, NaN, Infinity, -Infinity]], "ok": true, "x": null, "s": "a\"\\\/\n\u00e9\ud83d\ude00"} "#
        )
        #expect(v["id"] == .number(7) && v["id"] == .number(literal: "7", value: 7))
        guard case .array(let lists)? = v["scores"], case .array(let scores) = lists[0] else {
            Issue.record("no scores"); return
        }
        // Numbers keep the literal as written (1.5e2), with its value.
        #expect(scores[0] == .number(literal: "1.5e2", value: 150) && scores[1] == .number(-0.25) && scores[2] == .number(0))
        if case .number(_, let nan) = scores[3] { #expect(nan.isNaN) } else { Issue.record("NaN") }
        #expect(scores[4].number == .infinity && scores[5].number == -.infinity)
        #expect(v["ok"] == .bool(true) && v["x"] == .null)
        #expect(v["s"] == .string("a\"\\/\né😀"))
    }

    @Test func rejectsWhatIsNotJSON() {
        for text in [
            "", "Loading...", "{\"a\": 1", "[1,]", "{\"a\" 1}", "01x", "\"\u{01}\"", "\"\\ud800\"", "[1] 2", "-", "1.",
            "tru",
        ] {
            #expect(throws: JSONParseError.self, "\(text)") { _ = try JSONValue.parse(text) }
        }
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse([0x22, 0xFF, 0x22]) }  // invalid UTF-8
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse(String(repeating: "[", count: 1000)) }
    }

    @Test func writesSortedCompactEscapedJSON() throws {
        let value = JSONValue.object(sorting: [
            "b": .array([.number(1), .number(0.5), .bool(false), .null]), "a": .string("q\"\n\t\u{01}é\u{2028}"),
        ])
        #expect(value.serialized == #"{"a":"q\"\n\t\u0001é\u2028","b":[1,0.5,false,null]}"#)
        #expect(try JSONValue.parse(value.serialized) == value)
    }

    /// One JSONValue: the input reader's strict line parser and this lenient one read the same line into
    /// the same value (numbers with their literals, members in order), and the writer writes it back.
    @Test func theStrictAndTheLenientParserAgree() throws {
        let line = #"{"id":7,"prompt":"2+2?","candidates":["4","five"],"meta":{"w":1.50,"ok":true,"x":null}}"#
        let lenient = try JSONValue.parse(line)
        let strict = try Array(line.utf8).withUnsafeBytes { try JSONLineParser.parse($0) }
        #expect(strict == lenient)
        #expect(lenient["meta"]?["w"] == .number(literal: "1.50", value: 1.5))
        #expect(try JSONValue.parse(strict.serialized) == JSONValue.parse(lenient.serialized))
    }
}
