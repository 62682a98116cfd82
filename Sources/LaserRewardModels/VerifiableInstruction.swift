import Foundation

/// One instruction of a prompt whose fulfilment a program can check (IFEval's "verifiable instructions").
enum VerifiableInstruction: Equatable, Sendable {
    /// How a word-count instruction bounds the number of words.
    enum Bound: Equatable, Sendable {
        case exactly, atMost, atLeast, lessThan, moreThan
    }

    case wordCount(Bound, Int)
    case lowercase
    case uppercase
    case endsWith(String)
    case includes(String)
    case excludes(String)
    case noCommas
    case bulletPoints(Int)
    case wrappedInDoubleQuotes

    /// Whether the response satisfies this instruction.
    func isSatisfied(by response: String) -> Bool {
        switch self {
        case .wordCount(let bound, let n):
            let words = Self.wordCount(response)
            switch bound {
            case .exactly: return words == n
            case .atMost: return words <= n
            case .atLeast: return words >= n
            case .lessThan: return words < n
            case .moreThan: return words > n
            }
        case .lowercase:
            return response.contains(where: \.isLetter) && response == response.lowercased()
        case .uppercase:
            return response.contains(where: \.isLetter) && response == response.uppercased()
        case .endsWith(let phrase):
            return Self.endsWithPhrase(response, phrase)
        case .includes(let word):
            return Self.containsWord(response, word)
        case .excludes(let word):
            return !Self.containsWord(response, word)
        case .noCommas:
            return !response.contains(",") && !response.contains("\u{FF0C}")
        case .bulletPoints(let n):
            return Self.bulletCount(response) == n
        case .wrappedInDoubleQuotes:
            let trimmed = response.trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.count >= 2, let first = trimmed.first, let last = trimmed.last else { return false }
            return (first == "\"" && last == "\"") || (first == "\u{201C}" && last == "\u{201D}")
        }
    }

    /// Whitespace-separated tokens that hold a letter or digit, so a bullet's "-" is not a word.
    static func wordCount(_ text: String) -> Int {
        text.split(whereSeparator: \.isWhitespace).filter { $0.contains { $0.isLetter || $0.isNumber } }.count
    }

    static func bulletCount(_ text: String) -> Int {
        text.split(whereSeparator: \.isNewline).filter { line in
            let body = line.drop(while: { $0 == " " || $0 == "\t" })
            return body.hasPrefix("- ") || body.hasPrefix("* ")
        }.count
    }

    /// Case-insensitive, at word boundaries, ignoring closing punctuation and quotes at the very end.
    static func endsWithPhrase(_ response: String, _ phrase: String) -> Bool {
        let target = phrase.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
        guard !target.isEmpty else { return false }
        var text = Substring(response.lowercased())
        let closing = CharacterSet.whitespacesAndNewlines.union(.punctuationCharacters)
        while let last = text.unicodeScalars.last, closing.contains(last), !target.hasSuffix(String(last)) {
            text = text.dropLast()
        }
        guard text.hasSuffix(target) else { return false }
        let before = text.dropLast(target.count)
        return before.last.map { !isWordCharacter($0) } ?? true
    }

    static func containsWord(_ response: String, _ word: String) -> Bool {
        let text = response.lowercased()
        let target = word.lowercased().trimmingCharacters(in: .whitespacesAndNewlines)
        guard !target.isEmpty else { return false }
        var searchStart = text.startIndex
        while let range = text.range(of: target, range: searchStart..<text.endIndex) {
            let startsWord =
                range.lowerBound == text.startIndex
                || !isWordCharacter(text[text.index(before: range.lowerBound)])
            let endsWord = range.upperBound == text.endIndex || !isWordCharacter(text[range.upperBound])
            if startsWord && endsWord { return true }
            searchStart = text.index(after: range.lowerBound)
        }
        return false
    }

    private static func isWordCharacter(_ c: Character) -> Bool {
        c.isLetter || c.isNumber
    }
}
