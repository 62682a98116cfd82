import Foundation
import LaserCore
import LaserRewardModels

/// A problem with an input line: file, line, what is wrong and what to do.
public struct InputError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Reads one iteration's JSONL input into validated `PromptRecord`s.
///
/// Line format: `{"id", "prompt", "candidates": [..], "reference"?, "task"?, "context"?}` where a
/// candidate is a string or `{"text": string, "correct"?: bool}`. Correctness labels come from
/// `correct`, or else from matching the candidate's final answer against `reference`. The whole
/// file is validated before anything is used: one bad line rejects the iteration, naming the line.
public struct PromptReader: Sendable {
    public let featurizer: HashingFeaturizer

    public init(contextDimension: Int, ngrams: Int = 2) {
        featurizer = HashingFeaturizer(dimension: contextDimension, ngrams: ngrams)
    }

    public func read(path: String) throws -> [PromptRecord] { try readWithDigest(path: path).records }

    /// The records and a digest of the file's bytes (a resume refuses input that changed).
    public func readWithDigest(path: String) throws -> (records: [PromptRecord], digest: String) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw InputError("\(path): cannot read the input file (\(error.localizedDescription)); check the path in the config's input list")
        }
        var records: [PromptRecord] = []
        var seen: [String: Int] = [:]
        var lineNumber = 0
        var start = data.startIndex
        while start < data.endIndex {
            let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
            lineNumber += 1
            let line = data[start..<end]
            start = end < data.endIndex ? data.index(after: end) : end
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let where_ = "\(path):\(lineNumber)"
            let record = try parse(line: Data(line), where: where_, defaultID: "line-\(lineNumber)")
            if let first = seen[record.id] {
                throw InputError("\(where_): prompt id '\(record.id)' was already used on line \(first); ids must be unique within an iteration")
            }
            seen[record.id] = lineNumber
            records.append(record)
        }
        return (records, contentDigest(data))
    }

    func parse(line: Data, where location: String, defaultID: String) throws -> PromptRecord {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: line) } catch {
            throw InputError("\(location): not valid JSON (\(Self.reason(error))); each line must be one JSON object")
        }
        guard let o = object as? [String: Any] else {
            throw InputError("\(location): expected a JSON object with prompt and candidates, got \(Self.typeName(object))")
        }
        let id: String
        switch o["id"] {
        case nil, is NSNull: id = defaultID
        case let s as String: id = s
        case let n as NSNumber: id = n.stringValue
        default: throw InputError("\(location): \"id\" must be a string or a number")
        }
        guard let prompt = o["prompt"] as? String else {
            throw InputError("\(location): \"prompt\" is missing or not a string")
        }
        guard let rawCandidates = o["candidates"] as? [Any] else {
            throw InputError("\(location): \"candidates\" must be an array of strings or of {\"text\", \"correct\"} objects, got \(o["candidates"].map(Self.typeName) ?? "nothing")")
        }
        guard rawCandidates.count >= 2 else {
            throw InputError("\(location): prompt '\(id)' has \(rawCandidates.count) candidate(s); a preference pair needs at least 2")
        }
        var reference: String?
        switch o["reference"] {
        case nil, is NSNull: reference = nil
        case let s as String: reference = s
        case let n as NSNumber where !Self.isBool(n): reference = n.stringValue
        default: throw InputError("\(location): \"reference\" must be a string or a number")
        }
        var candidates: [Candidate] = []
        for (i, c) in rawCandidates.enumerated() {
            switch c {
            case let text as String:
                candidates.append(Candidate(text: text))
            case let m as [String: Any]:
                guard let text = m["text"] as? String else {
                    throw InputError("\(location): candidate \(i) is an object without a string \"text\"")
                }
                var correct: Bool?
                if let v = m["correct"], !(v is NSNull) {
                    guard let n = v as? NSNumber, Self.isBool(n) else {
                        throw InputError("\(location): candidate \(i) \"correct\" must be true or false")
                    }
                    correct = n.boolValue
                }
                candidates.append(Candidate(text: text, correct: correct))
            default:
                throw InputError("\(location): candidate \(i) must be a string or a {\"text\", \"correct\"} object, got \(Self.typeName(c))")
            }
        }
        if let reference {
            for i in candidates.indices where candidates[i].correct == nil {
                candidates[i].correct = FinalAnswer.matches(candidates[i].text, reference: reference)
            }
        }
        let task: String
        switch o["task"] {
        case nil, is NSNull: task = "default"
        case let s as String: task = s
        default: throw InputError("\(location): \"task\" must be a string")
        }
        var context: [Double]
        if let raw = o["context"], !(raw is NSNull) {
            guard let list = raw as? [Any], let numbers = list.map({ ($0 as? NSNumber)?.doubleValue }) as? [Double],
                  numbers.allSatisfy({ $0.isFinite }) else {
                throw InputError("\(location): \"context\" must be an array of finite numbers")
            }
            guard numbers.count == featurizer.dimension else {
                throw InputError("\(location): \"context\" has \(numbers.count) numbers but context.dimension is \(featurizer.dimension); set context.dimension: \(numbers.count) in the config")
            }
            context = numbers
        } else {
            context = featurizer.features(prompt)
        }
        // protobuf-c carries strings as C strings: an embedded NUL would silently cut them.
        for (name, text) in [("id", id), ("prompt", prompt), ("reference", reference ?? "")] + candidates.map({ ("candidate", $0.text) })
        where text.utf8.contains(0) {
            throw InputError("\(location): \(name) contains a NUL character (\\u0000), which laser cannot carry; remove it")
        }
        return PromptRecord(id: id, prompt: prompt, candidates: candidates, reference: reference, task: task, context: context)
    }

    static func typeName(_ v: Any) -> String {
        switch v {
        case is String: return "a string"
        case let n as NSNumber: return isBool(n) ? "a boolean" : "a number"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case is NSNull: return "null"
        default: return "\(type(of: v))"
        }
    }

    /// JSONSerialization hands out JSON booleans as NSNumbers whose type code is "c" (char).
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }
}
