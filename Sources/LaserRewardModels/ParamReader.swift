/// Reads an RM's string params, remembering which were used so that a misspelt one is reported
/// instead of silently ignored.
struct ParamReader {
    let rm: String
    let kind: String
    private let params: [String: String]
    private var used: Set<String> = []

    init(rm: String, kind: String, params: [String: String]) {
        self.rm = rm
        self.kind = kind
        self.params = params
    }

    mutating func string(_ key: String) -> String? {
        used.insert(key)
        return params[key]?.trimmingWhitespace()
    }

    mutating func requiredString(_ key: String, expected: String) throws -> String {
        guard let value = string(key), !value.isEmpty else {
            throw RewardModelError(
                "reward model '\(rm)' (kind \(kind)): missing param '\(key)' (expected \(expected))", code: .definition)
        }
        return value
    }

    /// An optional integer param within `range`.
    mutating func integer(_ key: String, default value: Int, range: ClosedRange<Int>, expected: String) throws -> Int {
        guard let text = string(key), !text.isEmpty else { return value }
        guard let parsed = Int(text), range.contains(parsed) else { throw invalid(key, text, expected: expected) }
        return parsed
    }

    /// Marks keys as handled elsewhere (for example passed on to a wrapped RM).
    mutating func markUsed(_ keys: some Sequence<String>) {
        used.formUnion(keys)
    }

    func invalid(_ key: String, _ value: String, expected: String) -> RewardModelError {
        RewardModelError(
            "reward model '\(rm)' (kind \(kind)): param '\(key)' must be \(expected), got \"\(value)\"",
            code: .definition)
    }

    func rejectUnused() throws {
        let unknown = params.keys.filter { !used.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let known = used.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw RewardModelError(
                "reward model '\(rm)' (kind \(kind)): unknown param\(unknown.count > 1 ? "s" : "") "
                    + unknown.map { "'\($0)'" }.joined(separator: ", ")
                    + " (known: \(known.isEmpty ? "none" : known))", code: .definition)
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
