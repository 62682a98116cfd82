import Foundation
import Logging

/// swift-log handler that writes one JSON object per line to stderr (`--log-format json`), for log
/// shippers: `{"ts":"2026-11-29T01:30:00.123Z","level":"warning","label":"laser.coordinator","message":"...",
/// "metadata":{...}}`. Keys in that order; metadata only when there is some.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit = event.metadata { merged.merge(explicit) { _, new in new } }
        write(
            Self.line(
                timestamp: Date(), level: event.level, label: label, message: event.message.description,
                metadata: merged))
    }

    static func line(
        timestamp: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata
    ) -> String {
        var s = "{\"ts\":\(JSONLines.quoted(Self.timestamp(timestamp))),\"level\":\(JSONLines.quoted(level.rawValue))"
        s += ",\"label\":\(JSONLines.quoted(label)),\"message\":\(JSONLines.quoted(message))"
        if !metadata.isEmpty {
            s +=
                ",\"metadata\":{"
                + metadata.keys.sorted().map { "\(JSONLines.quoted($0)):\(value(metadata[$0]!))" }.joined(
                    separator: ",") + "}"
        }
        return s + "}\n"
    }

    static func value(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return JSONLines.quoted(s)
        case .stringConvertible(let c): return JSONLines.quoted(c.description)
        case .array(let a): return "[" + a.map(value).joined(separator: ",") + "]"
        case .dictionary(let d):
            return "{" + d.keys.sorted().map { "\(JSONLines.quoted($0)):\(value(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    static func timestamp(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}
