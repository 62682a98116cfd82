import LaserCore

/// Hand-rolled JSON for output lines: a fixed key order (prompt, chosen, rejected first, as TRL
/// reads them) and byte-identical output for identical pairs, without a JSONEncoder per line.
public enum JSONLines {
    public static func line(_ p: PreferencePair) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(p.prompt.utf8.count + p.chosen.utf8.count + p.rejected.utf8.count + 160)
        append(p, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the pair's line (without a newline) as UTF-8. (No reserveCapacity here: reserving a little
    /// more for every pair of a batch reallocates the whole buffer each time.)
    public static func append(_ p: PreferencePair, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"prompt":"#.utf8)
        appendString(p.prompt, to: &out)
        out.append(contentsOf: #","chosen":"#.utf8)
        appendString(p.chosen, to: &out)
        out.append(contentsOf: #","rejected":"#.utf8)
        appendString(p.rejected, to: &out)
        out.append(contentsOf: ",\"chosen_score\":\(number(p.chosenScore)),\"rejected_score\":\(number(p.rejectedScore)),\"rm\":".utf8)
        appendString(p.rm, to: &out)
        out.append(contentsOf: #","prompt_id":"#.utf8)
        appendString(p.promptID, to: &out)
        out.append(contentsOf: ",\"iteration\":\(p.iteration),\"batch\":\(p.batch)}".utf8)
    }

    /// A best-of-n line: the response the selected RM ranked first, with provenance.
    public static func line(_ c: BestOfNChoice) -> String {
        var out: [UInt8] = []
        append(c, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func append(_ c: BestOfNChoice, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"prompt":"#.utf8)
        appendString(c.prompt, to: &out)
        out.append(contentsOf: #","response":"#.utf8)
        appendString(c.response, to: &out)
        out.append(contentsOf: ",\"score\":\(number(c.score)),\"rm\":".utf8)
        appendString(c.rm, to: &out)
        out.append(contentsOf: #","prompt_id":"#.utf8)
        appendString(c.promptID, to: &out)
        out.append(contentsOf: ",\"iteration\":\(c.iteration),\"batch\":\(c.batch)}".utf8)
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

    /// `text` as a JSON string: '"', '\\' and control characters escaped, everything else (UTF-8
    /// included) copied as is, in runs.
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(0x22)
        var text = text
        text.withUTF8 { u in
            guard let base = u.baseAddress else { return }
            var high: UInt32 = 0
            var run = 0
            while true {
                let k = JSONScan.findSpecial(UnsafeRawPointer(base), from: run, end: u.count, high: &high)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: u[run..<k]))
                guard k < u.count else { return }
                let c = u[k]
                run = k + 1
                out.append(0x5C)
                switch c {
                case 0x22, 0x5C: out.append(c)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    let hex: StaticString = "0123456789abcdef"
                    out.append(UInt8(ascii: "u"))
                    out.append(0x30)
                    out.append(0x30)
                    out.append(hex.utf8Start[Int(c >> 4)])
                    out.append(hex.utf8Start[Int(c & 0xF)])
                }
            }
        }
        out.append(0x22)
    }
}
