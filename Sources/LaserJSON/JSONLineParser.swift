import CJSONScan
import Foundation

/// Why a line is not JSON, with the byte offset where the parser stopped.
public struct JSONSyntaxError: Error, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "\(message) at character \(offset + 1)" }
}

/// A strict RFC 8259 parser over one line's bytes, written for the input reader's hot path: no
/// Foundation bridging, one pass, strings copied once into Swift Strings (UTF-8 validated).
/// Depth is limited so a hostile line cannot exhaust the stack.
public struct JSONLineParser {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private var depth = 0
    static let maxDepth = 64

    /// Whether a `\u0000` escape put a NUL into some string.
    public private(set) var sawNUL = false
    /// Whether some string is escaped another way than laser writes (`\/`, `\u00e9`, ...).
    public private(set) var sawNonCanonical = false

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue { try parseReportingNUL(bytes).value }

    /// `materialize: false` (a validating pass that only needs short fields): strings longer than
    /// `longString` bytes are checked exactly as usual but come back empty, saving their copy.
    /// `skim: true` (a line that was validated before and whose long texts nobody will read): strings
    /// longer than `longString` bytes inside arrays (candidate texts; never a top-level field such as
    /// the prompt) are only stepped over, neither decoded nor checked, and come back empty.
    /// `escapedIn`: `bytes` lie at `offset` in `storage`; strings inside arrays (candidate texts, and
    /// the `text` of candidate objects) come back as `.text`, checked but not decoded, pointing into the
    /// storage (decoded and escaped again only if their escapes are not the ones laser writes).
    /// `trusted` (with `escapedIn`: a line whose bytes a validating pass checked and found escaped
    /// laser's way, `canonical` below): those strings are only stepped over to their closing quote, not
    /// checked again.
    /// `canonical` in the result: no string of the line is escaped another way than laser writes.
    public static func parseReportingNUL(
        _ bytes: UnsafeRawBufferPointer, materialize: Bool = true, skim: Bool = false, trusted: Bool = false,
        escapedIn: (storage: JSONTextStorage, offset: Int)? = nil
    ) throws -> (value: JSONValue, sawNUL: Bool, canonical: Bool) {
        var p = JSONLineParser(bytes: bytes)
        p.materialize = materialize
        p.skim = skim
        p.trusted = trusted
        p.escapedIn = escapedIn
        defer { p.scratch?.deallocate() }
        p.skipSpace()
        let v = try p.value()
        p.skipSpace()
        guard p.i == bytes.count else { throw p.error("unexpected text after the JSON value") }
        return (v, p.sawNUL, !p.sawNonCanonical)
    }

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
    private var materialize = true
    private var skim = false
    private var trusted = false
    private var escapedIn: (storage: JSONTextStorage, offset: Int)?
    /// Where strings with escapes are decoded: as long as the line (freed by `parseReportingNUL`).
    private var scratch: UnsafeMutablePointer<UInt8>?
    public static let longString = 256

    private func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(message: message, offset: i) }

    private mutating func skipSpace() {
        while i < bytes.count {
            let c = bytes[i]
            guard c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D else { return }
            i += 1
        }
    }

    private mutating func value() throws -> JSONValue {
        guard i < bytes.count else { throw error("unexpected end of the line") }
        switch bytes[i] {
        case UInt8(ascii: "\""):
            if let keep = escapedIn, depth >= 2 { return .text(try escapedText(keep)) }
            return .string(try string())
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character '\(Self.show(bytes[i]))'")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw error("unexpected end of the line") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw error("invalid literal") }
        i += n
    }

    private mutating func number() throws -> JSONValue {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits() -> Int {
            let s = i
            while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
            return i - s
        }
        guard i < bytes.count else { throw error("a number without digits") }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else if digits() == 0 { throw error("a number without digits") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw error("a number without digits after '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw error("a number without exponent digits") }
        }
        let literal = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        guard let value = Double(literal) else { throw error("a number out of range") }
        return .number(literal: literal, value: value)
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth) levels") }
    }

    private mutating func array() throws -> JSONValue {
        try enter()
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; depth -= 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value())
            skipSpace()
            guard i < bytes.count else { throw error("unterminated array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; break }
            throw error("expected ',' or ']' in an array")
        }
        depth -= 1
        return .array(items)
    }

    private mutating func object() throws -> JSONValue {
        try enter()
        i += 1
        var members: [JSONMember] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; depth -= 1; return .object(members) }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a quoted key") }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
            i += 1
            skipSpace()
            members.append(JSONMember(key: key, value: try value()))
            skipSpace()
            guard i < bytes.count else { throw error("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; break }
            throw error("expected ',' or '}' in an object")
        }
        depth -= 1
        return .object(members)
    }

    /// A string starting at the opening quote: a scan 16 bytes at a time to the next quote, backslash
    /// or control character; a string without escapes is then copied once, straight into the String's
    /// storage; one with escapes is checked and decoded in one more scan in C into a buffer kept for
    /// the line. Only non-ASCII text pays for UTF-8 validation.
    private mutating func string() throws -> String {
        i += 1
        let start = i
        let base = bytes.baseAddress!
        let end = bytes.count
        var high: UInt32 = 0
        if skim && depth >= 2 {
            let k = try closingQuote(from: start)
            if k - start > Self.longString {
                i = k + 1
                return ""
            }
            high = 0  // short: decoded as usual below
        }
        let k = JSONScan.findSpecial(base, from: start, end: end, high: &high)
        guard k < end else { i = k; throw error("unterminated string") }
        if base.load(fromByteOffset: k, as: UInt8.self) == UInt8(ascii: "\"") {
            i = k + 1
            let raw = UnsafeRawBufferPointer(start: base + start, count: k - start)
            guard JSONScan.isASCII(high) else { return try makeString(raw) }
            if !materialize && raw.count > Self.longString { return "" }
            return String(unsafeUninitializedCapacity: raw.count) { out in
                out.baseAddress!.initialize(
                    from: raw.assumingMemoryBound(to: UInt8.self).baseAddress!, count: raw.count)
                return raw.count
            }
        }
        // Escapes or an error: the rest of the string in C (`laser_json_string`), which checks every
        // escape and, unless this pass throws long texts away, decodes them in the same scan into a
        // buffer kept for the line (decoded text is never longer than its escaped form).
        let u8 = base.assumingMemoryBound(to: UInt8.self)
        if scratch == nil { scratch = .allocate(capacity: end + 16) }
        var r = laser_json_string(u8, start, end, materialize ? scratch : nil)
        if !materialize && r.error == Int32(LASER_JSON_OK) && r.at - start <= Self.longString {
            r = laser_json_string(u8, start, end, scratch)
        }
        try check(r)
        if r.saw_nul != 0 { sawNUL = true }
        i = r.at + 1
        if !materialize && r.at - start > Self.longString {
            // Checked but not kept; non-ASCII bytes still have to be valid UTF-8 (escapes decode to
            // whole characters, so the raw bytes are valid exactly when the decoded ones are).
            if !JSONScan.isASCII(r.non_ascii) {
                _ = try makeString(UnsafeRawBufferPointer(start: base + start, count: r.at - start))
            }
            return ""
        }
        let decoded = UnsafeRawBufferPointer(start: scratch!, count: r.written)
        guard JSONScan.isASCII(r.non_ascii) else { return try makeString(decoded) }
        return String(unsafeUninitializedCapacity: r.written) { dst in
            dst.baseAddress!.initialize(from: scratch!, count: r.written)
            return r.written
        }
    }

    /// Steps over a string body starting at `start`: the index of the next quote not escaped
    /// (`laser_json_string_end`, 64 bytes per step). Checks nothing.
    private mutating func closingQuote(from start: Int) throws -> Int {
        let k = Int(laser_json_string_end(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), start, bytes.count))
        guard k < bytes.count else { i = bytes.count; throw error("unterminated string") }
        return k
    }

    /// Throws the error a scan of a string found, at its offset.
    private mutating func check(_ r: laser_json_string_result) throws {
        if r.non_canonical != 0 { sawNonCanonical = true }
        guard r.error != Int32(LASER_JSON_OK) else { return }
        i = r.at
        if r.error == Int32(LASER_JSON_INVALID_ESCAPE) {
            throw error("an invalid escape '\\\(Self.show(bytes[i + 1]))'")
        }
        throw error(Self.message(r.error))
    }

    /// A string starting at the opening quote, checked (every escape, control characters, UTF-8) and
    /// kept escaped where it lies in `keep.storage`.
    private mutating func escapedText(_ keep: (storage: JSONTextStorage, offset: Int)) throws -> JSONText {
        i += 1
        let start = i
        if trusted {
            let k = try closingQuote(from: start)
            i = k + 1
            return JSONText(storage: keep.storage, range: (keep.offset + start)..<(keep.offset + k))
        }
        let u8 = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let r = laser_json_string(u8, start, bytes.count, nil)
        try check(r)
        if r.saw_nul != 0 { sawNUL = true }
        i = r.at + 1
        let raw = UnsafeRawBufferPointer(start: bytes.baseAddress! + start, count: r.at - start)
        if r.non_canonical != 0 {
            // Escaped another way than laser writes (\/, \u00e9, ...): decoded, and escaped laser's way.
            if scratch == nil { scratch = .allocate(capacity: bytes.count + 16) }
            let d = laser_json_string(u8, start, bytes.count, scratch)
            let text =
                JSONScan.isASCII(d.non_ascii)
                ? String(decoding: UnsafeRawBufferPointer(start: scratch!, count: d.written), as: UTF8.self)
                : try makeString(UnsafeRawBufferPointer(start: scratch!, count: d.written))
            return JSONText(text)
        }
        if !JSONScan.isASCII(r.non_ascii) { _ = try makeString(raw) }
        return JSONText(storage: keep.storage, range: (keep.offset + start)..<(keep.offset + r.at))
    }

    private static func message(_ code: Int32) -> String {
        switch Int(code) {
        case Int(LASER_JSON_UNTERMINATED_STRING): return "unterminated string"
        case Int(LASER_JSON_CONTROL_CHARACTER): return "a control character inside a string (escape it)"
        case Int(LASER_JSON_UNTERMINATED_ESCAPE): return "unterminated escape"
        case Int(LASER_JSON_BAD_HEX): return "a \\u escape needs 4 hex digits"
        default: return "an unpaired UTF-16 surrogate in a \\u escape"
        }
    }

    private func makeString(_ raw: UnsafeRawBufferPointer) throws -> String {
        guard let s = String(validating: raw.assumingMemoryBound(to: UInt8.self), as: UTF8.self) else {
            throw error("a string that is not valid UTF-8")
        }
        return s
    }

    private static func show(_ c: UInt8) -> String {
        (0x21...0x7E).contains(c) ? String(UnicodeScalar(c)) : String(format: "\\x%02X", c)
    }
}

/// The scan both the input parser and the output writer spend their time in: the next byte that a
/// JSON string cannot hold as is ('"', '\\' or a control character). SSE2, 16 bytes per step, in
/// `CJSONScan` (Swift's SIMD types have no movemask); a portable loop elsewhere.
public enum JSONScan {
    /// The first index in from..<end holding '"', '\\' or a byte below 0x20, or `end`. Makes
    /// `nonASCII` non-zero if it passed a byte >= 0x80.
    @inline(__always)
    public static func findSpecial(_ base: UnsafeRawPointer, from: Int, end: Int, high nonASCII: inout UInt32) -> Int {
        Int(laser_json_find_special(base.assumingMemoryBound(to: UInt8.self), from, end, &nonASCII))
    }

    public static func isASCII(_ nonASCII: UInt32) -> Bool { nonASCII == 0 }
}
