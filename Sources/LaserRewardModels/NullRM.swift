/// The NULL RM, for measuring laser's own overhead, not a reward model: it reads nothing of the
/// request and returns the same constant scores for every prompt, `0, -1, -2, ...` by candidate
/// position. Constant per position rather than one constant for all: equal scores are ties, which
/// form no preference pairs, and a benchmark whose batches are empty would not measure pair building
/// and batch writing. Kind `null-rm`, no params.
public struct NullRM: RewardModel {
    public let name: String

    public init(name: String = "null-rm") { self.name = name }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        (0..<request.candidates.count).map { -Double($0) }
    }
}
