/// A JSON value as the input reader needs it. Numbers keep their literal text (an id `7` stays "7").
enum JSONValue: Equatable {
    case string(String)
    /// Equal when the literals are equal.
    case number(literal: String, value: Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([JSONMember])

    /// The last value of `key` (JSON allows repeats; the last one wins, as in most parsers).
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }
}

/// One key and value of a JSON object, in the order of the text.
struct JSONMember: Equatable {
    var key: String
    var value: JSONValue
}

/// Why a line is not JSON, with the byte offset where the parser stopped.
struct JSONSyntaxError: Error, CustomStringConvertible {
    var message: String
    var offset: Int
    var description: String { "\(message) at character \(offset + 1)" }
}

/// A strict RFC 8259 parser over one line's bytes, written for the input reader's hot path: no
/// Foundation bridging, one pass, strings copied once into Swift Strings (UTF-8 validated).
/// Depth is limited so a hostile line cannot exhaust the stack.
struct JSONLineParser {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private var depth = 0
    /// Reused for strings with escapes.
    private var scratch: [UInt8] = []
    static let maxDepth = 64

    /// Whether a `\u0000` escape put a NUL into some string.
    private(set) var sawNUL = false

    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue { try parseReportingNUL(bytes).value }

    static func parseReportingNUL(_ bytes: UnsafeRawBufferPointer) throws -> (value: JSONValue, sawNUL: Bool) {
        var p = JSONLineParser(bytes: bytes)
        p.skipSpace()
        let v = try p.value()
        p.skipSpace()
        guard p.i == bytes.count else { throw p.error("unexpected text after the JSON value") }
        return (v, p.sawNUL)
    }

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

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
        case UInt8(ascii: "\""): return .string(try string())
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

    /// The first index at or after `k` that holds '"', '\\' or a control character (or the end).
    /// Eight bytes at a time: on long candidate texts this scan is most of the parser's work.
    @inline(__always) private func findSpecial(from k: Int) -> Int {
        let base = bytes.baseAddress!
        let end = bytes.count
        var k = k
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        while k + 8 <= end {
            let w = base.loadUnaligned(fromByteOffset: k, as: UInt64.self)
            let q = w ^ (ones &* 0x22), b = w ^ (ones &* 0x5C)
            let special = ((q &- ones) & ~q) | ((b &- ones) & ~b) | ((w &- ones &* 0x20) & ~w)
            if special & highs != 0 { break }
            k += 8
        }
        while k < end {
            let c = base.load(fromByteOffset: k, as: UInt8.self)
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 { return k }
            k += 1
        }
        return end
    }

    /// A string starting at the opening quote. The common case (no escape) is one scan and one copy;
    /// with escapes, the runs between them are copied in bulk.
    private mutating func string() throws -> String {
        i += 1
        let start = i
        let end = bytes.count
        var k = findSpecial(from: i)
        guard k < end else { i = k; throw error("unterminated string") }
        if bytes[k] == UInt8(ascii: "\"") {
            i = k + 1
            return try makeString(UnsafeRawBufferPointer(rebasing: bytes[start..<k]))
        }
        scratch.removeAll(keepingCapacity: true)
        var run = start
        while true {
            guard k < end else { i = k; throw error("unterminated string") }
            let c = bytes[k]
            if c < 0x20 { i = k; throw error("a control character inside a string (escape it)") }
            scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[run..<k]))
            if c == UInt8(ascii: "\"") { i = k + 1; break }
            // A backslash: decode one escape.
            i = k + 1
            guard i < end else { throw error("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(e)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 1 < end, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw error("an unpaired UTF-16 surrogate in a \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("an unpaired UTF-16 surrogate in a \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("an unpaired UTF-16 surrogate in a \\u escape")
                }
                if scalar == 0 { sawNUL = true }
                scratch.append(contentsOf: Array(String(Unicode.Scalar(scalar)!).utf8))
            default: i -= 1; throw error("an invalid escape '\\\(Self.show(e))'")
            }
            run = i
            k = findSpecial(from: i)
        }
        return try scratch.withUnsafeBytes { try makeString($0) }
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("a \\u escape needs 4 hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw error("a \\u escape needs 4 hex digits")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
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

import Foundation
