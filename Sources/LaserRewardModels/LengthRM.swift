import Foundation

/// Scores by response length on a log scale: the classic length-bias baseline, and a tie-breaker that
/// a bandit should learn to avoid where length says nothing about quality.
public struct LengthRM: RewardModel {
    /// Which end of the length scale scores higher.
    public enum Preference: String, Sendable, CaseIterable {
        /// Score = -log(1 + characters).
        case shorter
        /// Score = +log(1 + characters).
        case longer
    }

    public let name: String
    /// Which end of the length scale scores higher.
    public let prefer: Preference

    /// A length scorer under the given arm name.
    public init(name: String = "length", prefer: Preference = .shorter) {
        self.name = name
        self.prefer = prefer
    }

    /// Builds the RM from catalog params: `prefer` = `shorter` (default) or `longer`.
    public init(name: String, params: [String: String]) throws {
        var reader = ParamReader(rm: name, kind: "length", params: params)
        let raw = reader.string("prefer") ?? Preference.shorter.rawValue
        guard let prefer = Preference(rawValue: raw.lowercased()) else {
            throw reader.invalid("prefer", raw, expected: "\"shorter\" or \"longer\"")
        }
        try reader.rejectUnused()
        self.init(name: name, prefer: prefer)
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        request.candidates.map { candidate in
            // log keeps a 10,000-character answer from dwarfing every other RM's scale.
            let magnitude = log(1 + Double(candidate.count))
            return prefer == .shorter ? -magnitude : magnitude
        }
    }
}
