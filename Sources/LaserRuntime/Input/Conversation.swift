import LaserJSON
import LaserWire

/// TRL's conversational format in the input: a `prompt` that is a list of `{"role", "content"}`
/// messages, and candidates that are one assistant message each
/// (https://huggingface.co/docs/trl/dataset_formats#conversational).
///
/// RMs see one prompt string (`render`); the batch files get the messages back as they were written
/// (`json`), with chosen and rejected as assistant messages (`JSONLines`).
enum Conversation {
    struct Message: Equatable {
        var role: String
        var content: String
    }

    /// The messages of `list`, each an object with a non-empty string `role` and a string `content`
    /// (other keys are kept in `json` and ignored here). `what` names the field in errors.
    static func messages(_ list: [JSONValue], what: String, at location: @autoclosure () -> String) throws -> [Message]
    {
        guard !list.isEmpty else {
            throw InputError(
                "\(location()): \(what) is an empty list of messages; give at least one {\"role\": \"user\", \"content\": ...}"
            )
        }
        return try list.enumerated().map { i, item in
            guard case .object = item else {
                throw InputError(
                    "\(location()): \(what) message \(i) must be an object {\"role\", \"content\"}, got \(PromptReader.typeName(item))"
                )
            }
            guard let role = item["role"].flatMap(text), !role.isEmpty else {
                throw InputError(
                    "\(location()): \(what) message \(i) needs a non-empty string \"role\" (system, user, assistant, ...)"
                )
            }
            guard let content = item["content"].flatMap(text) else {
                throw InputError(
                    "\(location()): \(what) message \(i) needs a string \"content\" (content given as a list of parts is not supported; join the text parts into one string)"
                )
            }
            return Message(role: role, content: content)
        }
    }

    /// The prompt string RMs, the featurizer and the trainer's wire get: a single user message's
    /// content as it is (so a one-turn conversation scores exactly like the same plain prompt);
    /// otherwise every message as `role: content`, separated by blank lines.
    static func render(_ messages: [Message]) -> String {
        if messages.count == 1, messages[0].role == "user" { return messages[0].content }
        return messages.map { "\($0.role): \($0.content)" }.joined(separator: "\n\n")
    }

    /// The list as one JSON array, as laser writes JSON: no spaces, keys in input order, strings in
    /// laser's one escaping, numbers as written.
    static func json(_ list: [JSONValue]) -> String {
        var out: [UInt8] = []
        append(.array(list), to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func append(_ v: JSONValue, to out: inout [UInt8]) {
        switch v {
        case .string(let s): JSONLines.appendString(s, to: &out)
        case .text(let t): JSONLines.append(t, to: &out)
        case .number(let literal, _): out.append(contentsOf: literal.utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .null: out.append(contentsOf: "null".utf8)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                append(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, m) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONLines.appendString(m.key, to: &out)
                out.append(UInt8(ascii: ":"))
                append(m.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func text(_ v: JSONValue) -> String? {
        switch v {
        case .string(let s): return s
        case .text(let t): return t.string
        default: return nil
        }
    }
}
