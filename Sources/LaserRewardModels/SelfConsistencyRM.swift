/// Scores a candidate by how many of the other candidates reach the same final answer (majority voting
/// without a reference): the fraction of the others whose ``FinalAnswer`` key equals its own.
///
/// A candidate without an extractable answer agrees with nobody and scores 0; so does a lone candidate.
public struct SelfConsistencyRM: RewardModel {
    public let name: String

    /// A majority voter under the given arm name.
    public init(name: String = "self-consistency") {
        self.name = name
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        let keys = request.candidates.map(FinalAnswer.key(of:))
        guard keys.count > 1 else { return Array(repeating: 0, count: keys.count) }
        var votes: [String: Int] = [:]
        for case let key? in keys { votes[key, default: 0] += 1 }
        let others = Double(keys.count - 1)
        return keys.map { key in
            guard let key, let count = votes[key] else { return 0 }
            return Double(count - 1) / others
        }
    }
}
