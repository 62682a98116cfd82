import LaserJSON
import LaserSync
import LaserErrors
import Foundation
import LaserCore
import LaserRewardModels
import LaserWire
import StableRandom

/// A problem with an input line: file, line, what is wrong and what to do.
/// An input file that cannot be used (exit status 3); the message names file and line.
public typealias InputError = CodedError<InputErrorCode>

/// The codes of ``InputError``.
public enum InputErrorCode: String, ErrorCode {
    /// A line that is not a valid prompt record.
    case invalidLine = "invalid-line"
    /// A line longer than one message may carry.
    case lineTooLong = "line-too-long"
    /// The file does not exist or cannot be read.
    case unreadable
    /// An on-policy iteration's file did not come within input.wait_timeout_s.
    case waitTimedOut = "wait-timed-out"

    public static var unspecified: Self { .invalidLine }
}

/// Reads one iteration's JSONL input into validated `PromptRecord`s, streaming: memory does not grow
/// with the file (see docs/performance.md#memory).
///
/// Line format: `{"id", "prompt", "candidates": [..], "reference"?, "task"?, "context"?}` where a
/// candidate is a string or `{"text": string, "correct"?: bool}`. Correctness labels come from
/// `correct`, or else from matching the candidate's final answer against `reference`.
///
/// Two passes, so that one bad line still rejects the iteration before anything is used: `scan`
/// validates every line, checks ids are unique, counts the prompts and digests the bytes, holding one
/// 4 MiB chunk of the file and, per id, a 64-bit hash with its line number and offset (a dictionary
/// entry of about 40 bytes, against kilobytes of prompt and candidates); a `PromptStream` then hands
/// out the records batch by batch as the coordinator selects them.
public struct PromptReader: Sendable {
    public let featurizer: HashingFeaturizer

    /// A line longer than this cannot travel in one score task (network.max_message_bytes): the scan
    /// refuses it, naming file and line, before any worker is involved.
    public var maxLineBytes = Int.max

    public init(contextDimension: Int, ngrams: Int = 2) {
        featurizer = HashingFeaturizer(dimension: contextDimension, ngrams: ngrams)
    }

    /// What `scan` learned about an input file.
    public struct Scan: Sendable, Equatable {
        public var prompts: Int
        public var digest: String
        public var bytes: Int
        /// The file's identity when scanned: a stream refuses a file that changed since.
        var stamp: FileStamp
        /// The lines (by number) whose strings are all escaped laser's way: a stream of the unchanged
        /// file steps over their candidate texts without checking them a second time. Nil after a
        /// `rescan` that only digested the file: every line is then checked again as it is read.
        var canonicalLines: LineBits?
    }

    /// A set of line numbers, one bit each (12.5 KB per 100,000 lines).
    struct LineBits: Sendable, Equatable {
        private var words: [UInt64] = []

        func contains(_ line: Int) -> Bool {
            line >= 0 && line / 64 < words.count && words[line / 64] & (1 << UInt64(line % 64)) != 0
        }

        mutating func insert(_ line: Int) {
            precondition(line >= 0)
            while words.count <= line / 64 { words.append(0) }
            words[line / 64] |= 1 << UInt64(line % 64)
        }
    }

    /// `scan` for a file that a scan already validated once (a resume: the journal holds its digest and
    /// prompt count): when the bytes still digest to `digest`, they are the bytes that passed, so only
    /// the digest is computed (at memory speed); otherwise this is a full scan.
    public func rescan(path: String, digest recorded: String, prompts: Int) throws -> Scan {
        let lines = try LineSource(path: path)
        var digest = StreamDigest()
        lines.onChunk = { digest.update($0) }
        try lines.readToEnd()
        guard digest.finish() == recorded else {
            var full = try scan(path: path)
            // A run started by a laser before the streaming reader recorded byte-wise FNV-1a: the same
            // bytes under that digest are the same input, not a changed one.
            if try Self.legacyDigest(path: path) == recorded { full.digest = recorded }
            return full
        }
        return Scan(prompts: prompts, digest: recorded, bytes: lines.bytesRead, stamp: lines.stamp)
    }

    /// The input digest of laser versions before the streaming reader (`contentDigest`, FNV-1a over
    /// every byte), computed in chunks.
    static func legacyDigest(path: String) throws -> String {
        let lines = try LineSource(path: path)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        lines.onChunk = { h = FNV1a.hash($0, seed: h) }
        try lines.readToEnd()
        return digestHex(h)
    }

    /// Validates every line of `path` (first bad line: an `InputError` naming file and line).
    public func scan(path: String) throws -> Scan {
        let lines = try LineSource(path: path)
        var digest = StreamDigest()
        lines.onChunk = { digest.update($0) }
        // Ids by a 64-bit hash, with their line's number and byte offset: a collision is checked exactly.
        var seen: [UInt64: (line: Int, offset: Int)] = [:]
        var count = 0
        // The lines of each chunk are parsed on `LineSource.parallelism` threads (the scan is most of
        // the time before the first batch goes out); ids are then checked in file order, so the first
        // bad line of the file is the one reported, as in a one-thread scan.
        var canonical = LineBits()
        var ids: [Result<(id: String, canonical: Bool), Error>?] = []
        while try lines.nextLines(
            max: 4096,
            { group, bytes -> Bool in
                let n = group.count
                ids.removeAll(keepingCapacity: true)
                ids.append(contentsOf: repeatElement(nil, count: n))
                ids.withUnsafeMutableBufferPointer { buffer in
                    let slots = SendablePointer(buffer), all = SendableRawBytes(bytes), reader = self
                    let threads = min(LineSource.parallelism, max(1, n / 8))
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        for i in stride(from: t, to: n, by: threads) {
                            let line = group[i]
                            slots[i] = Result {
                                let (record, canonical) = try reader.parseLine(
                                    bytes: UnsafeRawBufferPointer(rebasing: all.bytes[line.range]),
                                    where: "\(path):\(line.number)", defaultID: "line-\(line.number)", idOnly: true)
                                return (record.id, canonical)
                            }
                        }
                    }
                }
                for i in 0..<n {
                    let (number, offset) = (group[i].number, group[i].offset)
                    if group[i].range.count > maxLineBytes {
                        throw InputError(
                            "\(path):\(number): the line is \(group[i].range.count) bytes, more than one score task can carry (\(maxLineBytes) bytes: network.max_message_bytes less room for framing); raise network.max_message_bytes (and the workers' --max-message-bytes) or shorten this prompt and its candidates",
                            code: .lineTooLong)
                    }
                    let (id, isCanonical) = try ids[i]!.get()
                    if isCanonical { canonical.insert(number) }
                    let h = FNV1a.hash(id.utf8)
                    if let first = seen[h] {
                        let earlier = try lines.line(atOffset: first.offset).withUnsafeBytes {
                            try parse(
                                bytes: $0, where: "\(path):\(first.line)", defaultID: "line-\(first.line)", idOnly: true
                            ).id
                        }
                        if earlier == id {
                            throw InputError(
                                "\(path):\(number): prompt id '\(id)' was already used on line \(first.line); ids must be unique within an iteration"
                            )
                        }
                    } else {
                        seen[h] = (number, offset)
                    }
                    count += 1
                }
                return true
            }) != nil
        {}
        return Scan(
            prompts: count, digest: digest.finish(), bytes: lines.bytesRead, stamp: lines.stamp,
            canonicalLines: canonical)
    }

    /// Every record of `path` (small files and tests; the coordinator streams).
    public func read(path: String) throws -> [PromptRecord] {
        let scan = try scan(path: path)
        return try PromptStream(path: path, scan: scan, reader: self).next(scan.prompts)
    }

    /// `location` ("file:line") and `defaultID` are only made when needed (an error, a line without id).
    /// `skim`: the line was validated before and its candidate texts will not be read (a batch a
    /// resume replays without emitting it again): they come back empty, unless the line has a
    /// reference (its labels are derived from the texts).
    /// `trusted`: the line is one the scan found canonical (`Scan.canonicalLines`), in an unchanged
    /// file: its candidate texts are stepped over, not checked again.
    func parse(
        bytes: UnsafeRawBufferPointer, where location: @autoclosure () -> String, defaultID: @autoclosure () -> String,
        idOnly: Bool = false, skim: Bool = false,
        trusted: Bool = false, escapedIn: (storage: JSONTextStorage, offset: Int)? = nil
    ) throws -> PromptRecord {
        try parseLine(
            bytes: bytes, where: location(), defaultID: defaultID(), idOnly: idOnly, skim: skim, trusted: trusted,
            escapedIn: escapedIn
        ).record
    }

    /// `parse`, and whether every string of the line is escaped laser's way.
    func parseLine(
        bytes: UnsafeRawBufferPointer, where location: @autoclosure () -> String, defaultID: @autoclosure () -> String,
        idOnly: Bool = false, skim: Bool = false,
        trusted: Bool = false, escapedIn: (storage: JSONTextStorage, offset: Int)? = nil
    ) throws -> (record: PromptRecord, canonical: Bool) {
        let o: JSONValue
        let sawNUL: Bool
        let canonical: Bool
        do {
            (o, sawNUL, canonical) = try JSONLineParser.parseReportingNUL(
                bytes, materialize: !idOnly, skim: skim, trusted: trusted && escapedIn != nil, escapedIn: escapedIn)
        } catch {
            throw InputError("\(location()): not valid JSON (\(error)); each line must be one JSON object")
        }
        guard case .object = o else {
            throw InputError(
                "\(location()): expected a JSON object with prompt and candidates, got \(Self.typeName(o))")
        }
        let id: String
        switch o["id"] {
        case nil, .null?: id = defaultID()
        case .string(let s)?: id = s
        case .number(let literal, let value)?: id = Self.numberText(literal, value)
        default: throw InputError("\(location()): \"id\" must be a string or a number")
        }
        let prompt: String
        var messagesJSON: String?
        switch o["prompt"] {
        case .string(let s)?: prompt = s
        case .array(let list)?:
            let messages = try Conversation.messages(list, what: "\"prompt\"", at: location())
            prompt = Conversation.render(messages)
            if !idOnly { messagesJSON = Conversation.json(list) }
        default:
            throw InputError(
                "\(location()): \"prompt\" is missing or not a string or a list of {\"role\", \"content\"} messages")
        }
        guard case .array(let rawCandidates)? = o["candidates"] else {
            throw InputError(
                "\(location()): \"candidates\" must be an array of strings or of {\"text\", \"correct\"} objects, got \(o["candidates"].map(Self.typeName) ?? "nothing")"
            )
        }
        guard rawCandidates.count >= 2 else {
            throw InputError(
                "\(location()): prompt '\(id)' has \(rawCandidates.count) candidate(s); a preference pair needs at least 2"
            )
        }
        // Texts the skim left out that this record still needs: candidates' (labels are derived from
        // them against a reference) and a conversational prompt's (the featurizer reads its rendering).
        if skim, (o["reference"].map { $0 != .null } ?? false) || messagesJSON != nil {
            return try parseLine(bytes: bytes, where: location(), defaultID: defaultID(), idOnly: idOnly)
        }
        var reference: String?
        switch o["reference"] {
        case nil, .null?: reference = nil
        case .string(let s)?: reference = s
        case .number(let literal, let value)?: reference = Self.numberText(literal, value)
        default: throw InputError("\(location()): \"reference\" must be a string or a number")
        }
        var candidates: [Candidate] = []
        candidates.reserveCapacity(rawCandidates.count)
        for (i, c) in rawCandidates.enumerated() {
            switch c {
            case .string(let text):
                candidates.append(Candidate(text: text))
            case .text(let json):
                candidates.append(Candidate(json: json))
            case .array(let list):
                // TRL's conversational completion: one assistant message.
                let messages = try Conversation.messages(list, what: "candidate \(i)", at: location())
                guard messages.count == 1, messages[0].role == "assistant" else {
                    throw InputError(
                        "\(location()): candidate \(i) is a list of \(messages.count) message(s); a conversational candidate must be one {\"role\": \"assistant\", \"content\": ...} message (TRL's format)"
                    )
                }
                candidates.append(Candidate(text: messages[0].content))
            case .object:
                let json: JSONText
                switch c["text"] {
                case .text(let t)?: json = t
                case .string(let t)?: json = JSONText(t)
                default: throw InputError("\(location()): candidate \(i) is an object without a string \"text\"")
                }
                var correct: Bool?
                switch c["correct"] {
                case nil, .null?: correct = nil
                case .bool(let b)?: correct = b
                default: throw InputError("\(location()): candidate \(i) \"correct\" must be true or false")
                }
                candidates.append(Candidate(json: json, correct: correct))
            default:
                throw InputError(
                    "\(location()): candidate \(i) must be a string or a {\"text\", \"correct\"} object, got \(Self.typeName(c))"
                )
            }
        }
        let task: String
        switch o["task"] {
        case nil, .null?: task = "default"
        case .string(let s)?: task = s
        default: throw InputError("\(location()): \"task\" must be a string")
        }
        var context: [Double] = []
        if let raw = o["context"], raw != .null {
            guard case .array(let list) = raw else {
                throw InputError("\(location()): \"context\" must be an array of finite numbers")
            }
            for item in list {
                guard case .number(_, let v) = item, v.isFinite else {
                    throw InputError("\(location()): \"context\" must be an array of finite numbers")
                }
                context.append(v)
            }
            guard context.count == featurizer.dimension else {
                throw InputError(
                    "\(location()): \"context\" has \(context.count) numbers but context.dimension is \(featurizer.dimension); set context.dimension: \(context.count) in the config"
                )
            }
        }
        // protobuf-c carries strings as C strings: an embedded NUL (only a \u0000 escape can make one)
        // would silently cut them. (The scan does not keep long strings: it asks again in full.)
        if sawNUL && idOnly { return try parseLine(bytes: bytes, where: location(), defaultID: defaultID()) }
        if sawNUL {
            for (name, text) in [("id", id), ("prompt", prompt), ("reference", reference ?? "")]
                + candidates.map({ ("candidate", $0.text) })
            where text.utf8.contains(0) {
                throw InputError(
                    "\(location()): \(name) contains a NUL character (\\u0000), which laser cannot carry; remove it")
            }
        }
        // What only the records need (not the validating scan): derived labels and the featurizer's context.
        if !idOnly {
            if let reference {
                for i in candidates.indices where candidates[i].correct == nil {
                    candidates[i].correct = FinalAnswer.matches(candidates[i].text, reference: reference)
                }
            }
            if context.isEmpty { context = featurizer.features(prompt) }
        }
        return (
            PromptRecord(
                id: id, prompt: prompt, candidates: candidates, reference: reference, task: task, context: context,
                messagesJSON: messagesJSON), canonical
        )
    }

    /// A JSON number as an id or reference: integers as written, others in Swift's shortest form.
    static func numberText(_ literal: String, _ value: Double) -> String {
        if !literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return literal }
        if value == value.rounded(), abs(value) < 9e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func typeName(_ v: JSONValue) -> String {
        switch v {
        case .string, .text: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .array: return "an array"
        case .object: return "an object"
        case .null: return "null"
        }
    }
}
