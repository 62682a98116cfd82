import CJSONScan
import Foundation
import LaserWire
import Testing

/// `JSONText`: one escaped form per text, decoded back exactly; bodies escaped another way are
/// recognised (`non_canonical`, which the input reader uses to escape them again laser's way) and
/// decoded to the same text; what is not a body is refused.
@Suite struct JSONTextTests {
    struct LCG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 17
        }
    }

    static let alphabet: [String] = [
        "a", "Z", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{8}", "\u{C}", "\u{1F}",
        "\u{7F}", "é", "中", "😀", "\u{2028}", "xxxxxxxxxxxxxxxxxxxx",
    ]

    static func randomText(_ rng: inout LCG) -> String {
        (0..<Int(rng.next() % 120)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined()
    }

    /// The C scanner's verdict on a body (it reads to the end: a body has no closing quote).
    static func scan(_ body: [UInt8]) -> laser_json_string_result {
        body.withUnsafeBufferPointer {
            laser_json_string($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, 0, body.count, nil)
        }
    }

    @Test func roundTripsAndHasOneFormPerText() throws {
        var rng = LCG(state: 3)
        for _ in 0..<2000 {
            let text = Self.randomText(&rng)
            let json = JSONText(text)
            #expect(json.string == text)
            #expect(json == JSONText(text) && json.hashValue == JSONText(text).hashValue)
            let bytes = json.withEscapedBytes { Array($0) }
            let r = Self.scan(bytes)
            #expect(
                r.non_canonical == 0 && r.error == Int32(LASER_JSON_UNTERMINATED_STRING) && r.at == bytes.count,
                "\(bytes)")
            // Off the wire (a worker): the same text.
            #expect(try bytes.withUnsafeBytes { try JSONText.decode(body: $0) } == text)
        }
    }

    /// Foundation escapes '/' and some controls its own way, and hand-written escapes vary: the flag is
    /// set exactly when the bytes differ from laser's form of the same text, and they decode to it.
    @Test func otherEscapingsAreFlaggedExactlyAndNormalised() throws {
        var rng = LCG(state: 5)
        var flagged = 0
        for round in 0..<3000 {
            let text = Self.randomText(&rng)
            var body: [UInt8]
            if round % 2 == 0 {
                let data = try JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed])
                let full = Array(data)
                body = Array(full[2..<(full.count - 2)])  // ["...."] -> ....
            } else {
                // Laser's form with some escapes swapped for equivalent ones.
                body = []
                for scalar in text.unicodeScalars {
                    let choice = rng.next() % 3
                    switch scalar {
                    case "/" where choice == 0: body += Array(#"\/"#.utf8)
                    case "\u{8}" where choice == 0: body += Array(#"\b"#.utf8)
                    case "\n" where choice == 0: body += Array(#"\u000A"#.utf8)
                    case "\u{1F}" where choice == 0: body += Array(#"\u001F"#.utf8)
                    case "é" where choice == 0: body += Array(#"\u00e9"#.utf8)
                    case "😀" where choice == 0: body += Array(#"\ud83d\ude00"#.utf8)
                    default: body += JSONText(String(scalar)).withEscapedBytes { Array($0) }
                    }
                }
            }
            let canonical = JSONText(text).withEscapedBytes { Array($0) }
            let r = Self.scan(body)
            #expect((r.non_canonical != 0) == (body != canonical), "\(String(decoding: body, as: UTF8.self))")
            if r.non_canonical != 0 { flagged += 1 }
            #expect(try body.withUnsafeBytes { try JSONText.decode(body: $0) } == text)
        }
        #expect(flagged > 500)
    }

    @Test func packedTextsAreTheSameTexts() {
        var rng = LCG(state: 9)
        let texts = (0..<50).map { _ in JSONText(Self.randomText(&rng)) } + [JSONText(""), JSONText.empty]
        let packed = JSONText.packed(texts)
        #expect(packed == texts)
        #expect(packed.map(\.string) == texts.map(\.string))
    }

    @Test func whatIsNotABodyIsRefused() {
        for bad: [UInt8] in [
            Array(#"a"b"#.utf8), Array(#"a\x"#.utf8), [0x61, 0x01], Array(#"ends\"#.utf8), Array(#"\u12"#.utf8),
            Array(#"\ud83d"#.utf8), [0xC3, 0x28],
        ] {
            #expect(throws: JSONText.InvalidBody.self, "\(bad)") {
                try bad.withUnsafeBytes { try JSONText.decode(body: $0) }
            }
        }
    }
}
