import Foundation

/// Finds the verifiable instructions stated in a prompt; the phrases are listed on ``InstructionFollowingRM``.
enum InstructionParser {
    /// Longest prompt prefix searched, so a pasted document cannot make scoring slow.
    static let maxPromptLength = 8_192

    static func instructions(in prompt: String) -> [VerifiableInstruction] {
        let text = normalizedQuotes(String(prompt.prefix(maxPromptLength)).lowercased())
        var found: [VerifiableInstruction] = []
        func add(_ instruction: VerifiableInstruction) {
            if !found.contains(instruction) { found.append(instruction) }
        }

        for groups in matches(Pattern.wordCount, in: text) {
            if let bound = bound(groups[1]), let n = number(groups[2]) { add(.wordCount(bound, n)) }
        }
        for groups in matches(Pattern.wordCountOr, in: text) {
            if let n = number(groups[1]) { add(.wordCount(groups[2] == "more" ? .atLeast : .atMost, n)) }
        }
        if !matches(Pattern.lowercase, in: text).isEmpty { add(.lowercase) }
        if !matches(Pattern.uppercase, in: text).isEmpty { add(.uppercase) }
        for groups in matches(Pattern.endsWith, in: text) {
            if let phrase = groups[1] ?? groups[2] { add(.endsWith(phrase)) }
        }
        for (range, groups) in matchesWithRanges(Pattern.includes, in: text) {
            let negated = groups[1] != nil
            for word in quotedList(in: text, from: range.upperBound) {
                add(negated ? .excludes(word) : .includes(word))
            }
        }
        if !matches(Pattern.noCommas, in: text).isEmpty { add(.noCommas) }
        for groups in matches(Pattern.bullets, in: text) {
            if let n = number(groups[1]) { add(.bulletPoints(n)) }
        }
        if !matches(Pattern.doubleQuotes, in: text).isEmpty { add(.wrappedInDoubleQuotes) }
        return found
    }

    private enum Pattern {
        static let num =
            #"(\d{1,4}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty)"#
        static let quoted = #"(?:'([^']+)'|"([^"]+)")"#
        static let wordCount = regex(
            #"\b(exactly|at most|at least|no more than|no fewer than|no less than|fewer than|less than|more than|up to)\s+"#
                + num + #"\s+words?\b"#)
        static let wordCountOr = regex(#"\b"# + num + #"\s+words?\s+or\s+(less|fewer|more)\b"#)
        static let lowercase = regex(
            #"\b(?:all|entirely|only|in|use|using)\s+(?:in\s+)?(?:lowercase|lower case|lower-case)\b|\b(?:lowercase|lower case) letters only\b"#
        )
        static let uppercase = regex(
            #"\b(?:all|entirely|only|in|use|using)\s+(?:in\s+)?(?:uppercase|upper case|upper-case|capital letters|capitals|caps)\b"#
        )
        static let endsWith = regex(
            #"\b(?:end|finish)\s+(?:your\s+(?:response|answer|reply)\s+|it\s+)?with\s+(?:the\s+(?:exact\s+)?(?:word|phrase)\s+)?"#
                + quoted)
        static let includes = regex(
            #"(\b(?:do not|don't|dont|never|avoid)\s+(?:to\s+)?)?\b(?:include|use|using|mention|contain)s?\s+(?:the\s+)?(?:key\s?words?|words?|phrases?)\s+(?=['"])"#
        )
        static let noCommas = regex(
            #"\b(?:do not|don't|dont|never)\s+use\s+(?:any\s+)?commas\b|\bwithout\s+(?:using\s+)?(?:any\s+)?commas\b|\bno\s+commas\b|\b(?:avoid|refrain from)\s+(?:using\s+)?(?:any\s+)?commas\b"#
        )
        static let bullets = regex(#"\b"# + num + #"\s+(?:bullet(?:\s+|-)?points?|bullets)\b"#)
        static let doubleQuotes = regex(
            #"\b(?:wrap|enclose)\s+(?:your\s+)?(?:entire\s+|whole\s+)?(?:response|answer|reply|output)\s+(?:in|with|inside|within)\s+double\s+quot(?:es|ation\s+marks?)\b"#
        )

        private static func regex(_ pattern: String) -> CompiledPattern {
            do {
                return CompiledPattern(regex: try NSRegularExpression(pattern: pattern))
            } catch {
                preconditionFailure("invalid built-in instruction pattern \(pattern): \(error)")
            }
        }
    }

    /// Apple documents NSRegularExpression as immutable and thread-safe, but not every SDK marks it
    /// Sendable; the box lets the compiled patterns be shared statics on all platforms.
    private struct CompiledPattern: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe once compiled
        let regex: NSRegularExpression
    }

    private static let numberWords = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    ]

    private static func number(_ text: String?) -> Int? {
        guard let text else { return nil }
        if let n = Int(text) { return n }
        return numberWords.firstIndex(of: text).map { $0 + 1 }
    }

    private static func bound(_ text: String?) -> VerifiableInstruction.Bound? {
        switch text {
        case "exactly": return .exactly
        case "at most", "no more than", "up to": return .atMost
        case "at least", "no fewer than", "no less than": return .atLeast
        case "fewer than", "less than": return .lessThan
        case "more than": return .moreThan
        default: return nil
        }
    }

    /// Curly quotes become straight ones so one pattern covers both; apostrophes stay apostrophes.
    private static func normalizedQuotes(_ text: String) -> String {
        text.replacingOccurrences(of: "\u{2018}", with: "'").replacingOccurrences(of: "\u{2019}", with: "'")
            .replacingOccurrences(of: "\u{201C}", with: "\"").replacingOccurrences(of: "\u{201D}", with: "\"")
    }

    /// The capture groups of every match (index 0 is the whole match; `nil` for a group that did not take part).
    private static func matches(_ pattern: CompiledPattern, in text: String) -> [[String?]] {
        matchesWithRanges(pattern, in: text).map(\.groups)
    }

    private static func matchesWithRanges(
        _ pattern: CompiledPattern, in text: String
    ) -> [(range: Range<String.Index>, groups: [String?])] {
        let whole = NSRange(text.startIndex..<text.endIndex, in: text)
        return pattern.regex.matches(in: text, range: whole).compactMap { match in
            guard let range = Range(match.range, in: text) else { return nil }
            let groups = (0..<match.numberOfRanges).map { index -> String? in
                Range(match.range(at: index), in: text).map { String(text[$0]) }
            }
            return (range, groups)
        }
    }

    /// "'a'", "'a' and 'b'", "'a', 'b', and 'c'" starting at `start`.
    private static func quotedList(in text: String, from start: String.Index) -> [String] {
        var items: [String] = []
        var rest = text[start...]
        while let quote = rest.first, quote == "'" || quote == "\"" {
            let body = rest.dropFirst()
            guard let close = body.firstIndex(of: quote) else { break }
            let item = body[..<close].trimmingCharacters(in: .whitespaces)
            if !item.isEmpty { items.append(item) }
            rest = body[body.index(after: close)...]
            let separators = rest.prefix(while: { $0 == " " || $0 == "," })
            rest = rest.dropFirst(separators.count)
            if rest.hasPrefix("and ") || rest.hasPrefix("or ") {
                rest = rest.drop(while: { $0 != " " }).dropFirst()
            } else if separators.isEmpty {
                break
            }
        }
        return items
    }
}
