/// Scores 1 for a candidate whose final answer equals the reference's, 0 otherwise (see ``FinalAnswer``).
///
/// Without a reference it has no information and scores every candidate 0, so the pairing step
/// emits no pairs rather than arbitrary ones.
public struct AnswerMatchRM: RewardModel {
    public let name: String

    /// An answer matcher under the given arm name.
    public init(name: String = "answer-match") {
        self.name = name
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        guard let reference = request.reference, let expected = FinalAnswer.referenceKey(reference) else {
            return Array(repeating: 0, count: request.candidates.count)
        }
        return request.candidates.map { FinalAnswer.key(of: $0) == expected ? 1 : 0 }
    }
}
