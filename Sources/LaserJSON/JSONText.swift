import CJSONScan
#if canImport(Glibc)
import Glibc
#endif

/// A text kept as the body of a JSON string literal (the bytes between the quotes), escaped the one way
/// laser writes JSON: '"' '\\' newline, return and tab by their short names, other control characters
/// as \u00xx (lower-case hex), everything else (UTF-8 included) as is. Each text has exactly one such
/// form, so equal texts have equal bytes.
///
/// Why: the coordinator moves about 8 KiB of candidate text per prompt from the input file to the
/// workers and into batch files without reading it. Kept in this form, a candidate read from the input
/// (whose escapes are laser's own, which the reader checks) is never decoded on the coordinator: its
/// bytes are referenced in the batch's line buffer, sent to workers as they are (ScoreItem.candidates_json)
/// and copied into batch files between quotes. `string` decodes when a String is needed (an RM, labels).
public struct JSONText: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let storage: JSONTextStorage
    public let range: Range<Int>

    /// `bytes[range]` of `storage` must be an escaped body in laser's form (see the type's comment).
    public init(storage: JSONTextStorage, range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= storage.count)
        self.storage = storage
        self.range = range
    }

    /// `text` escaped.
    public init(_ text: String) {
        // The empty text shares one storage (a replay reads its candidates as empty texts, 8 per prompt).
        if text.isEmpty { self = .empty; return }
        var text = text
        let escaped = text.withUTF8 { u -> [UInt8] in
            var out: [UInt8] = []
            out.reserveCapacity(u.count + 16)
            guard let base = u.baseAddress else { return out }
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk in
                var k = 0
                while k < u.count {
                    let n = laser_json_escape(base, u.count, &k, chunk.baseAddress!, chunk.count)
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<n]))
                }
            }
            return out
        }
        storage = .copying(escaped)
        range = 0..<escaped.count
    }

    public init(stringLiteral value: String) { self.init(value) }

    /// Why bytes are not a JSON string body (`decode(body:)`).
    public struct InvalidBody: Error, CustomStringConvertible {
        public var description: String
    }

    /// The text a JSON string body (`bytes`, no quotes) stands for, checked as it is decoded: every
    /// escape, no raw control character or unescaped quote, UTF-8.
    public static func decode(body bytes: UnsafeRawBufferPointer) throws -> String {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return "" }
        let p = base.assumingMemoryBound(to: UInt8.self)
        var failure: InvalidBody?
        var nonASCII = false
        let text = String(unsafeUninitializedCapacity: bytes.count + 16) { out -> Int in
            let r = laser_json_string_exact(p, 0, bytes.count, out.baseAddress!)
            // No closing quote in a body: the scanner must run to the end and report it "unterminated".
            guard r.error == Int32(LASER_JSON_UNTERMINATED_STRING), r.at == bytes.count else {
                let what =
                    r.error == Int32(LASER_JSON_OK) ? "an unescaped quote" : "an invalid escape or a control character"
                failure = InvalidBody(description: "\(what) at byte \(r.at)")
                return 0
            }
            nonASCII = r.non_ascii != 0
            return Int(r.written)
        }
        if let failure { throw failure }
        // String(unsafeUninitializedCapacity:) repairs invalid UTF-8; refuse it instead.
        if nonASCII, String(validating: bytes.assumingMemoryBound(to: UInt8.self), as: UTF8.self) == nil {
            throw InvalidBody(description: "bytes that are not UTF-8")
        }
        return text
    }

    public static let empty = JSONText(storage: JSONTextStorage(adopting: malloc(1)!, count: 0), range: 0..<0)

    /// The same texts, copied into one storage of their own (no longer keeping alive what they
    /// pointed into).
    public static func packed(_ texts: [JSONText]) -> [JSONText] {
        let total = texts.reduce(0) { $0 + $1.range.count }
        let base = malloc(max(total, 1))!
        var at = 0
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(texts.count)
        for t in texts {
            t.withEscapedBytes {
                if $0.count > 0 { (base + at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            ranges.append(at..<(at + t.range.count))
            at += t.range.count
        }
        let storage = JSONTextStorage(adopting: base, count: total)
        return ranges.map { JSONText(storage: storage, range: $0) }
    }

    /// The escaped bytes (no quotes), valid while `body` runs.
    public func withEscapedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeRawBufferPointer(start: storage.base + range.lowerBound, count: range.count))
        }
    }

    /// Where the escaped bytes are: stable for as long as `storage` lives (the wire encoder points
    /// protobuf-c at them).
    public var escapedPointer: UnsafeRawPointer { UnsafeRawPointer(storage.base + range.lowerBound) }
    public var escapedCount: Int { range.count }
    public var isEmpty: Bool { range.isEmpty }

    /// The text, decoded.
    public var string: String {
        guard !range.isEmpty else { return "" }
        return withEscapedBytes { raw -> String in
            let p = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            return String(unsafeUninitializedCapacity: raw.count + 16) { out in
                // The body has no closing quote: the exact scanner reports "unterminated" at its end
                // with everything decoded.
                let r = laser_json_string_exact(p, 0, raw.count, out.baseAddress!)
                precondition(r.at == raw.count, "JSONText holds an invalid escape at byte \(r.at)")
                return Int(r.written)
            }
        }
    }

    public var description: String { string }

    public static func == (a: JSONText, b: JSONText) -> Bool {
        guard a.range.count == b.range.count else { return false }
        if a.range.isEmpty { return true }
        return a.withEscapedBytes { x in
            b.withEscapedBytes { y in memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withEscapedBytes { hasher.combine(bytes: $0) }
    }
}

/// Immutable bytes that `JSONText`s point into (a batch's input lines, or one escaped text).
public final class JSONTextStorage: @unchecked Sendable {  // immutable bytes once built
    // @unchecked: written before init returns, read-only after, freed in deinit.
    let base: UnsafeMutableRawPointer
    public let count: Int

    public init(copying bytes: UnsafeRawBufferPointer) {
        count = bytes.count
        base = malloc(max(count, 1))!
        if count > 0 { base.copyMemory(from: bytes.baseAddress!, byteCount: count) }
    }

    public static func copying(_ bytes: [UInt8]) -> JSONTextStorage {
        bytes.withUnsafeBytes { JSONTextStorage(copying: $0) }
    }

    /// Takes over `count` bytes at `base`, which must come from malloc (or realloc); freed with free.
    public init(adopting base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    deinit { free(base) }

    /// Where the bytes start (valid while this storage lives).
    public var baseAddress: UnsafeRawPointer { UnsafeRawPointer(base) }

    /// The bytes, valid while `body` runs.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(UnsafeRawBufferPointer(start: base, count: count)) }
    }
}
