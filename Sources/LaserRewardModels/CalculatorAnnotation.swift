import Foundation

/// A GSM8K calculator annotation `<<expr=result>>` as written in a solution.
struct CalculatorAnnotation: Equatable {
    var expression: String
    var result: String

    /// Longest annotation body looked at; longer ones are not calculator notes and count as unparseable.
    static let maxBodyLength = 512

    /// Every `<<...>>` of the text in order. A body without '=' keeps an empty result, so it is
    /// still counted (as wrong) rather than silently dropped.
    static func all(in text: String) -> [CalculatorAnnotation] {
        var annotations: [CalculatorAnnotation] = []
        var rest = text[...]
        while let open = rest.range(of: "<<") {
            guard let close = rest[open.upperBound...].range(of: ">>") else { break }
            let body = rest[open.upperBound..<close.lowerBound]
            if let equals = body.lastIndex(of: "="), body.count <= maxBodyLength {
                annotations.append(
                    CalculatorAnnotation(
                        expression: String(body[..<equals]), result: String(body[body.index(after: equals)...])))
            } else {
                annotations.append(CalculatorAnnotation(expression: String(body.prefix(maxBodyLength)), result: ""))
            }
            rest = rest[close.upperBound...]
        }
        return annotations
    }

    /// Whether the stated result is what the expression evaluates to; `false` when either side
    /// cannot be read or the expression divides by zero.
    var isCorrect: Bool {
        guard let stated = Self.number(result), let actual = CalculatorExpression.evaluate(expression) else {
            return false
        }
        let scale = max(1, abs(actual), abs(stated))
        if abs(actual - stated) <= 1e-6 * scale { return true }
        // GSM8K writes non-terminating results rounded to cents ("10/3=3.33").
        return abs((actual * 100).rounded() / 100 - stated) <= 1e-9 * scale
    }

    /// A stated result: a plain number, possibly with thousands separators, a currency sign or '%'.
    static func number(_ text: String) -> Double? {
        FinalAnswer.parseNumericAnswer(text)
    }
}

/// Evaluates the arithmetic of calculator annotations: decimal numbers, + - * /, parentheses and
/// unary signs, by recursive descent (no NSExpression, which traps on malformed input).
enum CalculatorExpression {
    /// Deepest parenthesis/unary nesting accepted, so hostile input cannot overflow the stack.
    static let maxDepth = 64

    /// The value of the expression, or `nil` when it is malformed, divides by zero or is not finite.
    static func evaluate(_ text: String) -> Double? {
        guard let tokens = tokenize(text) else { return nil }
        var parser = Parser(tokens: tokens)
        guard let value = parser.expression(depth: 0), parser.atEnd, value.isFinite else { return nil }
        return value
    }

    enum Token: Equatable {
        case number(Double)
        case op(Character)
        case open
        case close
    }

    static func tokenize(_ text: String) -> [Token]? {
        var tokens: [Token] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case _ where c.isWhitespace:
                i += 1
            case "+", "-", "*", "/":
                tokens.append(.op(c)); i += 1
            case "\u{00D7}":
                tokens.append(.op("*")); i += 1
            case "\u{00F7}":
                tokens.append(.op("/")); i += 1
            case "\u{2212}":
                tokens.append(.op("-")); i += 1
            case "(":
                tokens.append(.open); i += 1
            case ")":
                tokens.append(.close); i += 1
            case "$":
                i += 1
            case _ where c.isASCIIDigit || c == ".":
                var j = i
                var literal = ""
                while j < chars.count {
                    let d = chars[j]
                    if d.isASCIIDigit || d == "." {
                        literal.append(d)
                    } else if d == ",", j + 1 < chars.count, chars[j + 1].isASCIIDigit, !literal.isEmpty {
                        // Thousands separator ("1,200"); nothing else uses commas in an annotation.
                    } else {
                        break
                    }
                    j += 1
                }
                guard literal.filter({ $0 == "." }).count <= 1, literal != ".",
                    let value = Double(literal.hasPrefix(".") ? "0" + literal : literal)
                else { return nil }
                tokens.append(.number(value))
                i = j
            default:
                return nil
            }
        }
        return tokens
    }

    private struct Parser {
        let tokens: [Token]
        var position = 0

        var atEnd: Bool { position == tokens.count }

        private var next: Token? { position < tokens.count ? tokens[position] : nil }

        mutating func expression(depth: Int) -> Double? {
            guard var value = term(depth: depth) else { return nil }
            while case .op(let op)? = next, op == "+" || op == "-" {
                position += 1
                guard let rhs = term(depth: depth) else { return nil }
                value = op == "+" ? value + rhs : value - rhs
            }
            return value
        }

        private mutating func term(depth: Int) -> Double? {
            guard var value = unary(depth: depth) else { return nil }
            while case .op(let op)? = next, op == "*" || op == "/" {
                position += 1
                guard let rhs = unary(depth: depth) else { return nil }
                if op == "/" {
                    guard rhs != 0 else { return nil }
                    value /= rhs
                } else {
                    value *= rhs
                }
            }
            return value
        }

        private mutating func unary(depth: Int) -> Double? {
            guard depth < CalculatorExpression.maxDepth else { return nil }
            if case .op(let op)? = next, op == "-" || op == "+" {
                position += 1
                guard let value = unary(depth: depth + 1) else { return nil }
                return op == "-" ? -value : value
            }
            return primary(depth: depth)
        }

        private mutating func primary(depth: Int) -> Double? {
            switch next {
            case .number(let value)?:
                position += 1
                return value
            case .open?:
                position += 1
                guard let value = expression(depth: depth + 1), next == .close else { return nil }
                position += 1
                return value
            default:
                return nil
            }
        }
    }
}
