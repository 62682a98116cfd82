/// Checks the calculator annotations `<<expr=result>>` of GSM8K-style solutions: rewards a solution
/// whose arithmetic is right and whose final answer follows from its own last calculation.
///
/// Score = (correct - wrong) / annotations, in [-1, 1]; an annotation that cannot be parsed or
/// divides by zero is wrong. When the final answer (``FinalAnswer``) differs from the result of the
/// last annotation, 0.5 is subtracted. A solution without annotations scores 0 (no information).
/// Results match with a relative tolerance of 1e-6, or when they equal the exact value rounded to
/// the nearest 0.01, as GSM8K writes repeating decimals.
public struct ArithmeticCheckRM: RewardModel {
    public let name: String

    /// What a final answer that ignores the solution's own last calculation costs.
    public static let unsupportedAnswerPenalty = 0.5

    /// An annotation checker under the given arm name.
    public init(name: String = "arithmetic-check") {
        self.name = name
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        request.candidates.map(Self.score(solution:))
    }

    static func score(solution: String) -> Double {
        let annotations = CalculatorAnnotation.all(in: solution)
        guard let last = annotations.last else { return 0 }
        let correct = annotations.filter(\.isCorrect).count
        var score = Double(correct - (annotations.count - correct)) / Double(annotations.count)
        if let lastResult = CalculatorAnnotation.number(last.result),
            FinalAnswer.key(of: solution) != FinalAnswer.canonical(lastResult)
        {
            score -= unsupportedAnswerPenalty
        }
        return score
    }
}
