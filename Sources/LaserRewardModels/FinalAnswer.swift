import Foundation

/// Finds the final answer of a solution and normalises it, so that answers can be compared with each
/// other (self-consistency) or with a reference (answer matching, labelling candidates correct/incorrect).
///
/// Extraction, first rule that yields a non-empty answer wins:
/// 1. the text after the last `####` (GSM8K's answer line);
/// 2. the text after the last `A:`, `Answer:` or `The answer is` (whichever comes last; `A:` is
///    case-sensitive and must start a word, the others are case-insensitive);
/// 3. the contents of the last `\boxed{...}`;
/// 4. the last number in the text.
///
/// The text after a marker is cut at the end of its line and of its first sentence.
///
/// Normalisation: an answer that is a number, optionally with a currency sign, thousands separators,
/// a percent sign or one trailing unit word ("$1,000", "18 apples", "50%", "3/4"), becomes the number
/// in a canonical decimal form, so "1,000", "1000" and "1000.0" are equal. Anything else is text,
/// compared case-insensitively with punctuation and whitespace trimmed at both ends.
public enum FinalAnswer {
    /// The raw final answer of a solution, or `nil` when the text contains no answer at all.
    public static func extract(from text: String) -> String? {
        if let answer = extractMarked(text) { return answer }
        return lastNumber(in: text)
    }

    /// The raw answer of a reference. A reference is often the bare answer ("Canberra"), so where
    /// no marker or `\boxed{}` is found the whole reference is the answer rather than its last number.
    public static func extract(fromReference reference: String) -> String? {
        if let answer = extractMarked(reference) { return answer }
        let trimmed = reference.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// The canonical, comparable form of an answer, or `nil` when nothing is left after trimming.
    public static func normalize(_ answer: String) -> String? {
        let unwrapped = unwrapMarkup(answer)
        if let value = parseNumericAnswer(unwrapped) { return canonical(value) }
        let text = collapseWhitespace(unwrapped.lowercased()).trimmingCharacters(in: trimmedAtEnds)
        return text.isEmpty ? nil : text
    }

    /// The normalised final answer of a solution (``extract(from:)`` then ``normalize(_:)``).
    public static func key(of solution: String) -> String? {
        extract(from: solution).flatMap(normalize)
    }

    /// The normalised answer of a reference (``extract(fromReference:)`` then ``normalize(_:)``).
    public static func referenceKey(_ reference: String) -> String? {
        extract(fromReference: reference).flatMap(normalize)
    }

    /// Whether a solution's final answer equals the reference's; `false` when either has none.
    public static func matches(_ solution: String, reference: String) -> Bool {
        guard let expected = referenceKey(reference), let actual = key(of: solution) else { return false }
        return expected == actual
    }

    /// The canonical decimal form shared by answers and calculator results, so both compare as strings.
    static func canonical(_ value: Double) -> String {
        // Six decimals absorb float noise ("0.1 + 0.2") without merging answers that really differ.
        let rounded = (value * 1e6).rounded() / 1e6
        if rounded == 0 { return "0" }
        if abs(rounded) < 1e15, rounded == rounded.rounded() { return String(Int64(rounded)) }
        if abs(rounded) >= 1e15 { return String(format: "%.9e", rounded) }
        var text = String(format: "%.6f", rounded)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    // MARK: - Extraction

    private static let trimmedAtEnds = CharacterSet.whitespacesAndNewlines.union(.punctuationCharacters)
        .union(.symbols).subtracting(CharacterSet(charactersIn: "$%"))

    private static func extractMarked(_ text: String) -> String? {
        if let hashes = text.range(of: "####", options: .backwards),
            let answer = answerSegment(text[hashes.upperBound...])
        {
            return answer
        }
        if let marker = lastAnswerMarker(in: text), let answer = answerSegment(text[marker...]) {
            return answer
        }
        if let boxed = lastBoxedContent(in: text) {
            let trimmed = boxed.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { return trimmed }
        }
        return nil
    }

    /// The end of the last "A:", "Answer:" or "The answer is" in the text.
    private static func lastAnswerMarker(in text: String) -> String.Index? {
        var best: Range<String.Index>?
        func consider(_ range: Range<String.Index>?) {
            guard let range else { return }
            if let current = best, current.lowerBound >= range.lowerBound { return }
            best = range
        }
        consider(text.range(of: "answer:", options: [.backwards, .caseInsensitive]))
        consider(text.range(of: "the answer is", options: [.backwards, .caseInsensitive]))
        // "A:" only as a word of its own, so "DATA:" or "ERA:" are not answer markers.
        var searchEnd = text.endIndex
        while let range = text.range(of: "A:", options: .backwards, range: text.startIndex..<searchEnd) {
            if range.lowerBound == text.startIndex
                || !isWordCharacter(text[text.index(before: range.lowerBound)])
            {
                consider(range)
                break
            }
            searchEnd = range.lowerBound
        }
        return best?.upperBound
    }

    /// The answer that follows a marker: its first line, cut at the first sentence end.
    private static func answerSegment(_ rest: Substring) -> String? {
        let afterMarker = rest.drop(while: { $0.isWhitespace || $0 == ":" })
        let line = Array(afterMarker.prefix(while: { !$0.isNewline }))
        var end = line.count
        for i in line.indices.dropLast() where ".!?".contains(line[i]) && line[i + 1].isWhitespace {
            // "3.5" has no space after its point; "H. G. Wells" and "D.C. is" are initials, not sentence ends.
            let isInitial =
                line[i] == "." && i >= 1 && line[i - 1].isLetter
                && (i == 1 || !line[i - 2].isLetter)
            if !isInitial {
                end = i
                break
            }
        }
        let answer = String(line[..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
        return answer.isEmpty ? nil : answer
    }

    private static func lastBoxedContent(in text: String) -> String? {
        guard let open = text.range(of: "\\boxed{", options: .backwards) else { return nil }
        return balancedContent(text[open.upperBound...])
    }

    /// Everything up to the brace that closes an already opened `{`, or `nil` when it never closes.
    private static func balancedContent(_ rest: Substring) -> String? {
        var depth = 1
        var index = rest.startIndex
        while index < rest.endIndex {
            switch rest[index] {
            case "{": depth += 1
            case "}":
                depth -= 1
                if depth == 0 { return String(rest[rest.startIndex..<index]) }
            default: break
            }
            index = rest.index(after: index)
        }
        return nil
    }

    /// The last number in the text, with its sign, thousands separators and decimals.
    static func lastNumber(in text: String) -> String? {
        numbers(in: text).last
    }

    /// The numbers of a text in order. A '-' is a sign only where it cannot be a binary minus.
    static func numbers(in text: String) -> [String] {
        let chars = Array(text)
        var found: [String] = []
        var i = 0
        while i < chars.count {
            let startsNumber =
                chars[i].isASCIIDigit
                || (chars[i] == "." && i + 1 < chars.count && chars[i + 1].isASCIIDigit
                    && (i == 0 || !chars[i - 1].isASCIIDigit))
            guard startsNumber else { i += 1; continue }
            var start = i
            if start > 0, chars[start - 1] == "-",
                start == 1 || !(isWordCharacter(chars[start - 2]) || chars[start - 2] == ")")
            {
                start -= 1
            }
            var end = i
            while end < chars.count {
                let c = chars[end]
                if c.isASCIIDigit {
                    end += 1
                } else if (c == "," || c == "."), end + 1 < chars.count, chars[end + 1].isASCIIDigit {
                    end += 1
                } else {
                    break
                }
            }
            found.append(String(chars[start..<end]))
            i = end
        }
        return found
    }

    // MARK: - Normalisation

    private static func unwrapMarkup(_ answer: String) -> String {
        var text = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        if let boxed = lastBoxedContent(in: text) { text = boxed }
        for wrapper in ["\\text{", "\\mathrm{"] where text.hasPrefix(wrapper) {
            if let inner = balancedContent(text.dropFirst(wrapper.count)) { text = inner }
        }
        text = text.replacingOccurrences(of: "**", with: "")
        text = text.replacingOccurrences(of: "\\$", with: "$")
        if text.count >= 2, text.hasPrefix("$"), text.hasSuffix("$") {
            text = String(text.dropFirst().dropLast())
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The value of an answer that is a number, with at most a currency sign before it and a percent
    /// sign or one unit word after it; `nil` for any other text.
    static func parseNumericAnswer(_ answer: String) -> Double? {
        var rest = Substring(answer.trimmingCharacters(in: .whitespacesAndNewlines))
        var negative = false
        if rest.hasPrefix("-") || rest.hasPrefix("\u{2212}") { negative = true; rest = rest.dropFirst() }
        if let first = rest.first, "$€£".contains(first) { rest = rest.dropFirst() }
        if !negative, rest.hasPrefix("-") { negative = true; rest = rest.dropFirst() }
        let digits = rest.prefix(while: { $0.isASCIIDigit || $0 == "," || $0 == "." || $0 == "/" })
        guard digits.contains(where: \.isASCIIDigit) else { return nil }
        guard var value = parsePlainNumber(digits) else { return nil }
        if negative { value = -value }
        let tail = rest.dropFirst(digits.count).trimmingCharacters(in: trimmedAtEnds)
        if tail.isEmpty || tail == "%" { return value }
        let isOneUnitWord = tail.allSatisfy { $0.isLetter } && !tail.isEmpty
        return isOneUnitWord ? value : nil
    }

    /// "1,000.5", ".25" or a simple fraction "3/4"; trailing sentence punctuation is tolerated.
    private static func parsePlainNumber(_ token: Substring) -> Double? {
        var token = token
        while let last = token.last, last == "." || last == "," { token = token.dropLast() }
        let parts = token.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 2 {
            guard let numerator = parseDecimal(parts[0]), let denominator = parseDecimal(parts[1]),
                denominator != 0
            else { return nil }
            return numerator / denominator
        }
        guard parts.count == 1 else { return nil }
        return parseDecimal(token)
    }

    private static func parseDecimal(_ token: Substring) -> Double? {
        let plain = token.replacingOccurrences(of: ",", with: "")
        guard !plain.isEmpty, plain.filter({ $0 == "." }).count <= 1,
            plain.allSatisfy({ $0.isASCIIDigit || $0 == "." }),
            plain.contains(where: \.isASCIIDigit),
            let value = Double(plain), value.isFinite
        else { return nil }
        return value
    }

    private static func collapseWhitespace(_ text: String) -> String {
        text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    private static func isWordCharacter(_ c: Character) -> Bool {
        c.isLetter || c.isNumber || c == "_"
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isWholeNumber }
}
