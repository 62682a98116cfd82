/// Text that came from a peer (worker ids, trainer ids, RM failure messages, Reject reasons), made safe
/// to print: control characters (C0, DEL, C1) and the bidirectional overrides are written as `\u{..}`
/// escapes, so a peer can neither forge a log line (newlines) nor drive a terminal (ESC, OSC, BEL), and
/// long text is cut, so a peer cannot fill the log (docs/security.md).
public enum PeerText {
    /// Most characters of one peer string printed in a log line.
    public static let maxPrinted = 200

    /// `text` with control characters escaped, cut to `limit` characters (marked with the full length).
    public static func printable(_ text: String, limit: Int = maxPrinted) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit {
                out += "...(\(text.utf8.count) bytes)"
                return out
            }
            if needsEscape(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return out
    }

    /// Whether a scalar is a control character or a bidirectional override/isolate.
    public static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0..<0x20, 0x7F..<0xA0: return true
        case 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    /// Whether `text` has any character `printable` would escape.
    public static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains(where: needsEscape)
    }

    /// Why an identifier (worker id, trainer id, label) is not acceptable, or nil: 1 to `maxBytes` bytes of
    /// UTF-8 without control characters.
    public static func identifierProblem(_ text: String, what: String, maxBytes: Int = 128) -> String? {
        if text.isEmpty { return "\(what) is empty" }
        if text.utf8.count > maxBytes {
            return "\(what) is \(text.utf8.count) bytes long; at most \(maxBytes) are allowed"
        }
        if hasControlCharacters(text) {
            return "\(what) '\(printable(text))' contains control characters; use printable text"
        }
        return nil
    }
}
