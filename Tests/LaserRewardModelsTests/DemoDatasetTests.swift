import LaserDemo
import LaserRewardModels
import Testing

/// The demo is only useful if each task family has a different best RM; these tests pin that down.
@Suite struct DemoDatasetTests {
    static let rms: [any RewardModel] = [
        AnswerMatchRM(), SelfConsistencyRM(), ArithmeticCheckRM(),
        LengthRM(name: "length-shorter", prefer: .shorter), LengthRM(name: "length-longer", prefer: .longer),
        InstructionFollowingRM(),
    ]

    static let intended = [
        "arithmetic": "arithmetic-check", "instructions": "instruction-following", "trivia": "answer-match",
    ]

    /// Fraction of (correct, incorrect) pairs of the same prompt that the scores order correctly; ties count half.
    static func pairwiseAccuracy(_ prompts: [DemoPrompt], _ rm: any RewardModel) throws -> (accuracy: Double, pairs: Int) {
        var won = 0.0
        var pairs = 0
        for prompt in prompts {
            let request = ScoringRequest(
                promptID: prompt.id, prompt: prompt.prompt, candidates: prompt.candidates.map(\.text),
                reference: prompt.reference, iteration: 1)
            let scores = try rm.score(request)
            for (i, good) in prompt.candidates.enumerated() where good.correct {
                for (j, bad) in prompt.candidates.enumerated() where !bad.correct {
                    pairs += 1
                    if scores[i] > scores[j] { won += 1 } else if scores[i] == scores[j] { won += 0.5 }
                }
            }
        }
        return (pairs == 0 ? 0.5 : won / Double(pairs), pairs)
    }

    @Test(arguments: [UInt64(7), 12345])
    func intendedRMIsBestPerFamily(seed: UInt64) throws {
        let prompts = DemoDataset.generate(
            iteration: 1, seed: seed, promptsPerTask: 64, candidatesPerPrompt: 8, batchSize: 16)
        for task in DemoDataset.tasks {
            let family = prompts.filter { $0.task == task }
            var accuracies: [String: Double] = [:]
            var line = "demo seed \(seed) \(task):"
            for rm in Self.rms {
                let (accuracy, pairs) = try Self.pairwiseAccuracy(family, rm)
                accuracies[rm.name] = accuracy
                line += " \(rm.name)=\(String(format: "%.3f", accuracy)) (\(pairs) pairs)"
            }
            print(line)
            let best = try #require(Self.intended[task])
            let bestAccuracy = try #require(accuracies[best])
            for (name, accuracy) in accuracies where name != best {
                #expect(bestAccuracy > accuracy + 0.05, "\(task): \(best) \(bestAccuracy) vs \(name) \(accuracy)")
            }
        }
    }
}
