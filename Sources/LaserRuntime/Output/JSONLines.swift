import LaserCore

/// Hand-rolled JSON for output lines: a fixed key order (prompt, chosen, rejected first, as TRL
/// reads them) and byte-identical output for identical pairs, without a JSONEncoder per line.
public enum JSONLines {
    public static func line(_ p: PreferencePair) -> String {
        var s = "{\"prompt\":"
        s.reserveCapacity(p.prompt.utf8.count + p.chosen.utf8.count + p.rejected.utf8.count + 160)
        appendString(p.prompt, to: &s)
        s += ",\"chosen\":"
        appendString(p.chosen, to: &s)
        s += ",\"rejected\":"
        appendString(p.rejected, to: &s)
        s += ",\"chosen_score\":\(number(p.chosenScore)),\"rejected_score\":\(number(p.rejectedScore)),\"rm\":"
        appendString(p.rm, to: &s)
        s += ",\"prompt_id\":"
        appendString(p.promptID, to: &s)
        s += ",\"iteration\":\(p.iteration),\"batch\":\(p.batch)}"
        return s
    }

    /// A best-of-n line: the response the selected RM ranked first, with provenance.
    public static func line(_ c: BestOfNChoice) -> String {
        var s = "{\"prompt\":"
        appendString(c.prompt, to: &s)
        s += ",\"response\":"
        appendString(c.response, to: &s)
        s += ",\"score\":\(number(c.score)),\"rm\":"
        appendString(c.rm, to: &s)
        s += ",\"prompt_id\":"
        appendString(c.promptID, to: &s)
        return s + ",\"iteration\":\(c.iteration),\"batch\":\(c.batch)}"
    }

    /// Shortest round-trip decimal form; finite values only (scores are validated finite).
    public static func number(_ x: Double) -> String {
        precondition(x.isFinite)
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) + ".0" }
        return "\(x)"
    }

    public static func quoted(_ text: String) -> String {
        var s = ""
        appendString(text, to: &s)
        return s
    }

    public static func appendString(_ text: String, to s: inout String) {
        s.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            case "\n": s += "\\n"
            case "\r": s += "\\r"
            case "\t": s += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    s += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    s.unicodeScalars.append(scalar)
                }
            }
        }
        s.append("\"")
    }
}
