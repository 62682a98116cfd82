import LaserJSON
import Foundation
import LaserCore

/// The journal's record encoding: JSON, as `JSONEncoder` writes `JournalRecord` (so either side can
/// read the other's records), with hand-written paths for the three records a run writes per batch
/// and per score task. JSONEncoder/JSONDecoder took a tenth of the coordinator's time on a
/// 100,000-prompt iteration and most of its replay (docs/performance.md); the rare records still go
/// through them.
enum JournalCodec {
    static func encode(_ record: JournalRecord, fallback: JSONEncoder) throws -> [UInt8] {
        var out: [UInt8] = []
        try encode(record, into: &out, fallback: fallback)
        return out
    }

    /// Appends the record's JSON to `out` (the journal writes frames straight into its pending buffer).
    static func encode(_ record: JournalRecord, into out: inout [UInt8], fallback: JSONEncoder) throws {
        let mark = out.count
        if fastEncode(record, into: &out) { return }
        out.removeSubrange(mark...)
        out.append(contentsOf: try fallback.encode(record))
    }

    /// False (with `out` partly written) for a record the fast path does not cover. Numbers are
    /// written as bytes, the same digits as `description` (a String per score cost a tenth of the
    /// output thread).
    private static func fastEncode(_ record: JournalRecord, into out: inout [UInt8]) -> Bool {
        switch record {
        case .scored(let batch, let rm, let firstPrompt, let scores):
            JSONLines.appendLiteral(#"{"scored":{"batch":"#, to: &out)
            JSONLines.appendInteger(batch, to: &out)
            JSONLines.appendLiteral(#","firstPrompt":"#, to: &out)
            JSONLines.appendInteger(firstPrompt, to: &out)
            JSONLines.appendLiteral(#","rm":"#, to: &out)
            JSONLines.appendString(rm, to: &out)
            JSONLines.appendLiteral(#","scores":["#, to: &out)
            var firstRow = true
            for list in scores {
                if !firstRow { out.append(0x2C) }
                firstRow = false
                out.append(0x5B)
                var firstItem = true
                for x in list {
                    if !firstItem { out.append(0x2C) }
                    firstItem = false
                    guard x.isFinite else { return false }
                    if x == 0 && x.sign == .minus {
                        JSONLines.appendLiteral("-0.0", to: &out)
                    } else {
                        JSONLines.appendNumber(x, to: &out)
                    }
                }
                out.append(0x5D)
            }
            JSONLines.appendLiteral("]}}", to: &out)
        case .selected(let batch, let selections):
            JSONLines.appendLiteral(#"{"selected":{"batch":"#, to: &out)
            JSONLines.appendInteger(batch, to: &out)
            JSONLines.appendLiteral(#","selections":["#, to: &out)
            var first = true
            for selection in selections {
                if !first { out.append(0x2C) }
                first = false
                switch selection {
                case .arm(let k):
                    JSONLines.appendLiteral(#"{"arm":{"_0":"#, to: &out)
                    JSONLines.appendInteger(k, to: &out)
                    JSONLines.appendLiteral("}}", to: &out)
                case .ensemble: JSONLines.appendLiteral(#"{"ensemble":{}}"#, to: &out)
                }
            }
            JSONLines.appendLiteral("]}}", to: &out)
        case .emitted(let batch):
            JSONLines.appendLiteral(#"{"emitted":{"batch":"#, to: &out)
            JSONLines.appendInteger(batch, to: &out)
            JSONLines.appendLiteral("}}", to: &out)
        default:
            return false
        }
        return true
    }

    static func decode(_ payload: UnsafeRawBufferPointer, fallback: JSONDecoder) throws -> JournalRecord {
        if let record = fast(payload) { return record }
        return try fallback.decode(JournalRecord.self, from: Data(payload))
    }

    private static func integer(_ value: JSONValue?) -> Int? {
        guard let value, case .number(_, let v) = value, v == v.rounded(), abs(v) < 9e15 else { return nil }
        return Int(v)
    }

    /// The hand-written path; nil when the payload is anything else (the fallback then decides).
    private static func fast(_ payload: UnsafeRawBufferPointer) -> JournalRecord? {
        guard let value = try? JSONLineParser.parse(payload), case .object(let top) = value, top.count == 1 else {
            return nil
        }
        let body: JSONValue = top[0].value
        let int = { (key: String) -> Int? in integer(body[key]) }
        switch top[0].key {
        case "scored":
            guard case .object(let members) = body, members.count == 4, let batch = int("batch"),
                let first = int("firstPrompt"),
                case .string(let rm)? = body["rm"], case .array(let lists)? = body["scores"]
            else { return nil }
            var scores: [[Double]] = []
            scores.reserveCapacity(lists.count)
            for list in lists {
                guard case .array(let items) = list else { return nil }
                var row: [Double] = []
                row.reserveCapacity(items.count)
                for item in items {
                    guard case .number(_, let x) = item else { return nil }
                    row.append(x)
                }
                scores.append(row)
            }
            return .scored(batch: batch, rm: rm, firstPrompt: first, scores: scores)
        case "selected":
            guard case .object(let members) = body, members.count == 2, let batch = int("batch"),
                case .array(let items)? = body["selections"]
            else { return nil }
            var selections: [Selection] = []
            for item in items {
                if case .object(let m) = item, m.count == 1, m[0].key == "arm", case .object(let inner) = m[0].value,
                    inner.count == 1, inner[0].key == "_0", case .number(_, let k) = inner[0].value, k == k.rounded(),
                    k >= 0, k < 1e9
                {
                    selections.append(.arm(Int(k)))
                } else if case .object(let m) = item, m.count == 1, m[0].key == "ensemble",
                    case .object(let inner) = m[0].value, inner.isEmpty
                {
                    selections.append(.ensemble)
                } else {
                    return nil
                }
            }
            return .selected(batch: batch, selections: selections)
        case "emitted":
            guard case .object(let members) = body, members.count == 1, let batch = int("batch") else { return nil }
            return .emitted(batch: batch)
        default:
            return nil
        }
    }
}
