import LaserJSON
import CJSONScan
import LaserCore
import LaserWire

/// Hand-rolled JSON for output lines: a fixed key order (prompt, chosen, rejected first, as TRL
/// reads them) and byte-identical output for identical pairs, without a JSONEncoder per line.
public enum JSONLines {
    public static func line(_ p: PreferencePair) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(p.prompt.utf8.count + p.chosenJSON.escapedCount + p.rejectedJSON.escapedCount + 160)
        append(p, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the pair's line (without a newline) as UTF-8. (No reserveCapacity here: reserving a little
    /// more for every pair of a batch reallocates the whole buffer each time.)
    public static func append(_ p: PreferencePair, to out: inout [UInt8]) {
        appendLiteral(#"{"prompt":"#, to: &out)
        if let messages = p.messagesJSON {
            // TRL's conversational format: the prompt's messages, chosen and rejected as assistant turns.
            out.append(contentsOf: messages.utf8)
            appendLiteral(#","chosen":"#, to: &out)
            appendAssistant(p.chosenJSON, to: &out)
            appendLiteral(#","rejected":"#, to: &out)
            appendAssistant(p.rejectedJSON, to: &out)
        } else {
            appendString(p.prompt, to: &out)
            appendLiteral(#","chosen":"#, to: &out)
            append(p.chosenJSON, to: &out)
            appendLiteral(#","rejected":"#, to: &out)
            append(p.rejectedJSON, to: &out)
        }
        // Pieces appended one by one: an interpolated String per line cost more than the line's texts.
        appendLiteral(#","chosen_score":"#, to: &out)
        appendNumber(p.chosenScore, to: &out)
        appendLiteral(#","rejected_score":"#, to: &out)
        appendNumber(p.rejectedScore, to: &out)
        appendProvenance(rm: p.rm, promptID: p.promptID, iteration: p.iteration, batch: p.batch, to: &out)
    }

    /// A best-of-n line: the response the selected RM ranked first, with provenance.
    public static func line(_ c: BestOfNChoice) -> String {
        var out: [UInt8] = []
        append(c, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func append(_ c: BestOfNChoice, to out: inout [UInt8]) {
        appendLiteral(#"{"prompt":"#, to: &out)
        if let messages = c.messagesJSON {
            out.append(contentsOf: messages.utf8)
            appendLiteral(#","response":"#, to: &out)
            appendAssistant(c.responseJSON, to: &out)
        } else {
            appendString(c.prompt, to: &out)
            appendLiteral(#","response":"#, to: &out)
            append(c.responseJSON, to: &out)
        }
        appendLiteral(#","score":"#, to: &out)
        appendNumber(c.score, to: &out)
        appendProvenance(rm: c.rm, promptID: c.promptID, iteration: c.iteration, batch: c.batch, to: &out)
    }

    /// A response as TRL's conversational completion: `[{"role":"assistant","content":"..."}]`.
    private static func appendAssistant(_ text: JSONText, to out: inout [UInt8]) {
        appendLiteral(#"[{"role":"assistant","content":"#, to: &out)
        append(text, to: &out)
        appendLiteral("}]", to: &out)
    }

    /// The end both line kinds share: `,"rm":..,"prompt_id":..,"iteration":..,"batch":..}`.
    private static func appendProvenance(
        rm: String, promptID: String, iteration: Int, batch: Int, to out: inout [UInt8]
    ) {
        appendLiteral(#","rm":"#, to: &out)
        appendString(rm, to: &out)
        appendLiteral(#","prompt_id":"#, to: &out)
        appendString(promptID, to: &out)
        appendLiteral(#","iteration":"#, to: &out)
        appendInteger(iteration, to: &out)
        appendLiteral(#","batch":"#, to: &out)
        appendInteger(batch, to: &out)
        out.append(0x7D)
    }

    /// `number(x)`'s bytes.
    static func appendNumber(_ x: Double, to out: inout [UInt8]) {
        if x == x.rounded(), abs(x) < 1e15 {
            appendInteger(Int(x), to: &out)
            appendLiteral(".0", to: &out)
        } else {
            out.append(contentsOf: number(x).utf8)
        }
    }

    /// A literal's bytes (a StaticString's buffer is appended as one copy; `String.UTF8View` went
    /// through the generic element-by-element path).
    @inline(__always)
    static func appendLiteral(_ text: StaticString, to out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// An integer's decimal digits, without a String.
    static func appendInteger(_ n: Int, to out: inout [UInt8]) {
        if n < 0 { out.append(0x2D) }
        var m = n.magnitude
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - count] = UInt8(truncatingIfNeeded: m % 10) + 0x30
                m /= 10
                count += 1
            } while m > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
    }

    /// Shortest round-trip decimal form; finite values only (scores are validated finite).
    public static func number(_ x: Double) -> String {
        precondition(x.isFinite)
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) + ".0" }
        return "\(x)"
    }

    public static func quoted(_ text: String) -> String {
        var out: [UInt8] = []
        appendString(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func appendString(_ text: String, to s: inout String) {
        s += quoted(text)
    }

    /// A text kept escaped (`JSONText`) as a JSON string: its bytes between quotes, as they are (the
    /// same bytes `appendString` writes for the decoded text: laser's one escaped form).
    public static func append(_ text: JSONText, to out: inout [UInt8]) {
        out.append(0x22)
        text.withEscapedBytes { out.append(contentsOf: $0) }
        out.append(0x22)
    }

    /// `text` as a JSON string: '"', '\\' and control characters escaped, everything else (UTF-8
    /// included) copied as is. The escaping runs in C 16 bytes at a time (`laser_json_escape`) into a
    /// 4 KiB stack buffer that is appended whole.
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(0x22)
        var text = text
        text.withUTF8 { u in
            guard let base = u.baseAddress else { return }
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk in
                var k = 0
                while k < u.count {
                    let n = laser_json_escape(base, u.count, &k, chunk.baseAddress!, chunk.count)
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[..<n]))
                }
            }
        }
        out.append(0x22)
    }
}
