import Foundation
import LaserCore

/// The journal's record encoding: JSON, as `JSONEncoder` writes `JournalRecord` (so either side can
/// read the other's records), with hand-written paths for the three records a run writes per batch
/// and per score task. JSONEncoder/JSONDecoder took a tenth of the coordinator's time on a
/// 100,000-prompt iteration and most of its replay (docs/performance.md); the rare records still go
/// through them.
enum JournalCodec {
    static func encode(_ record: JournalRecord, fallback: JSONEncoder) throws -> [UInt8] {
        if let bytes = fastEncode(record) { return bytes }
        return Array(try fallback.encode(record))
    }

    private static func fastEncode(_ record: JournalRecord) -> [UInt8]? {
        var out: [UInt8] = []
        switch record {
        case .scored(let batch, let rm, let firstPrompt, let scores):
            out.reserveCapacity(96 + rm.utf8.count + 20 * scores.count * (scores.first?.count ?? 0))
            out.append(contentsOf: Array("{\"scored\":{\"batch\":\(batch),\"firstPrompt\":\(firstPrompt),\"rm\":".utf8))
            JSONLines.appendString(rm, to: &out)
            out.append(contentsOf: Array(",\"scores\":[".utf8))
            var firstRow = true
            for list in scores {
                if !firstRow { out.append(0x2C) }
                firstRow = false
                out.append(0x5B)
                var firstItem = true
                for x in list {
                    if !firstItem { out.append(0x2C) }
                    firstItem = false
                    if !x.isFinite { return nil }
                    out.append(contentsOf: Array(x.description.utf8))
                }
                out.append(0x5D)
            }
            out.append(contentsOf: Array("]}}".utf8))
        case .selected(let batch, let selections):
            out.append(contentsOf: Array("{\"selected\":{\"batch\":\(batch),\"selections\":[".utf8))
            var first = true
            for selection in selections {
                if !first { out.append(0x2C) }
                first = false
                switch selection {
                case .arm(let k): out.append(contentsOf: Array("{\"arm\":{\"_0\":\(k)}}".utf8))
                case .ensemble: out.append(contentsOf: Array("{\"ensemble\":{}}".utf8))
                }
            }
            out.append(contentsOf: Array("]}}".utf8))
        case .emitted(let batch):
            out.append(contentsOf: Array("{\"emitted\":{\"batch\":\(batch)}}".utf8))
        default:
            return nil
        }
        return out
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
        guard let value = try? JSONLineParser.parse(payload), case .object(let top) = value, top.count == 1 else { return nil }
        let body: JSONValue = top[0].value
        let int = { (key: String) -> Int? in integer(body[key]) }
        switch top[0].key {
        case "scored":
            guard case .object(let members) = body, members.count == 4, let batch = int("batch"), let first = int("firstPrompt"),
                  case .string(let rm)? = body["rm"], case .array(let lists)? = body["scores"] else { return nil }
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
                  case .array(let items)? = body["selections"] else { return nil }
            var selections: [Selection] = []
            for item in items {
                if case .object(let m) = item, m.count == 1, m[0].key == "arm", case .object(let inner) = m[0].value,
                   inner.count == 1, inner[0].key == "_0", case .number(_, let k) = inner[0].value, k == k.rounded(), k >= 0, k < 1e9 {
                    selections.append(.arm(Int(k)))
                } else if case .object(let m) = item, m.count == 1, m[0].key == "ensemble", case .object(let inner) = m[0].value, inner.isEmpty {
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
