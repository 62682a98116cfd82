import Foundation
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
    static func pairwiseAccuracy(
        _ prompts: [DemoPrompt], _ rm: any RewardModel
    ) throws -> (accuracy: Double, pairs: Int) {
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

    static func generate(
        iteration: Int = 1, seed: UInt64 = 7, prompts: Int = 32, candidates: Int = 8, batch: Int = 8
    ) -> [DemoPrompt] {
        DemoDataset.generate(
            iteration: iteration, seed: seed, promptsPerTask: prompts, candidatesPerPrompt: candidates, batchSize: batch
        )
    }

    #if compiler(>=6.2)  // exit tests arrived with Swift 6.2; the manifest still admits 6.0 toolchains
    @Test func tooFewCandidatesIsAProgrammingError() async {
        await #expect(processExitsWith: .failure) {
            _ = DemoDataset.generate(iteration: 1, seed: 1, promptsPerTask: 1, candidatesPerPrompt: 1, batchSize: 1)
        }
    }
    #endif

    @Test func sameSeedSameData() {
        #expect(Self.generate() == Self.generate())
    }

    @Test func otherIterationOrSeedResamples() {
        let base = Self.generate()
        let nextIteration = Self.generate(iteration: 2)
        let otherSeed = Self.generate(seed: 8)
        #expect(base != nextIteration)
        #expect(base != otherSeed)
        let texts = Set(base.flatMap { $0.candidates.map(\.text) })
        let shared = nextIteration.flatMap { $0.candidates.map(\.text) }.filter(texts.contains).count
        #expect(shared < nextIteration.count * 8 / 2, "iterations should mostly differ, \(shared) shared")
    }

    @Test func shapeAndIds() throws {
        let prompts = Self.generate(iteration: 2, prompts: 24, candidates: 5, batch: 8)
        #expect(prompts.count == 3 * 24)
        #expect(Set(prompts.map(\.id)).count == prompts.count)
        #expect(prompts.allSatisfy { $0.candidates.count == 5 })
        #expect(prompts.contains { $0.id == "it2-arith-0007" })
        #expect(prompts.contains { $0.id == "it2-instr-0023" })
        #expect(prompts.contains { $0.id == "it2-trivia-0000" })
        for task in DemoDataset.tasks {
            #expect(prompts.filter { $0.task == task }.count == 24)
        }
        #expect(prompts.filter { $0.task == "trivia" }.allSatisfy { $0.reference != nil })
        #expect(prompts.filter { $0.task != "trivia" }.allSatisfy { $0.reference == nil })
    }

    @Test func miniBatchesAreHomogeneousAndTasksInterleave() {
        let prompts = Self.generate(prompts: 32, batch: 8)
        let batches = stride(from: 0, to: prompts.count, by: 8).map { Array(prompts[$0..<($0 + 8)]) }
        #expect(batches.allSatisfy { batch in batch.allSatisfy { $0.task == batch[0].task } })
        let taskOrder = batches.map { $0[0].task }
        #expect(taskOrder != taskOrder.sorted(), "runs should be shuffled, got \(taskOrder)")
        // Different iterations order the runs differently.
        let orders = (1...4).map { iteration in
            stride(from: 0, to: 96, by: 8).map { Self.generate(iteration: iteration, prompts: 32, batch: 8)[$0].task }
        }
        #expect(Set(orders.map { $0.joined(separator: ",") }).count > 1)
    }

    @Test func shortRunsGoLast() {
        let prompts = Self.generate(prompts: 10, batch: 4)
        #expect(prompts.count == 30)
        // Six full runs of four, then three runs of two.
        for start in stride(from: 0, to: 24, by: 4) {
            #expect(Set(prompts[start..<(start + 4)].map(\.task)).count == 1)
        }
        for start in stride(from: 24, to: 30, by: 2) {
            #expect(Set(prompts[start..<(start + 2)].map(\.task)).count == 1)
        }
    }

    @Test func labelsAgreeWithTheTasksGroundTruth() throws {
        let prompts = Self.generate(prompts: 48)
        for prompt in prompts {
            let texts = prompt.candidates.map(\.text)
            switch prompt.task {
            case "trivia":
                let reference = try #require(prompt.reference)
                for candidate in prompt.candidates {
                    #expect(
                        FinalAnswer.matches(candidate.text, reference: reference) == candidate.correct,
                        "\(candidate.text)")
                }
            case "arithmetic":
                let checks = try ArithmeticCheckRM().score(
                    ScoringRequest(promptID: prompt.id, prompt: prompt.prompt, candidates: texts))
                let rightKeys = Set(prompt.candidates.filter(\.correct).map { FinalAnswer.key(of: $0.text) })
                #expect(rightKeys.count <= 1)
                for (candidate, check) in zip(prompt.candidates, checks) {
                    if candidate.correct { #expect(check == 1, "\(candidate.text)") }
                    if !candidate.correct, let right = rightKeys.first {
                        #expect(FinalAnswer.key(of: candidate.text) != right, "\(candidate.text)")
                    }
                }
            case "instructions":
                let scores = try InstructionFollowingRM().score(
                    ScoringRequest(promptID: prompt.id, prompt: prompt.prompt, candidates: texts))
                for (candidate, score) in zip(prompt.candidates, scores) {
                    #expect((score == 1) == candidate.correct, "\(prompt.prompt)\n\(candidate.text)")
                }
            default:
                Issue.record("unknown task \(prompt.task)")
            }
        }
    }

    @Test func mixOfRightAndWrongWithSimilarLengths() {
        let prompts = Self.generate(prompts: 96)
        for task in DemoDataset.tasks {
            let family = prompts.filter { $0.task == task }
            let candidates = family.flatMap(\.candidates)
            let right = candidates.filter(\.correct)
            let wrong = candidates.filter { !$0.correct }
            let share = Double(right.count) / Double(candidates.count)
            #expect(share > 0.3 && share < 0.5, "\(task): \(share) correct")
            #expect(family.contains { $0.candidates.allSatisfy(\.correct) }, "\(task): no all-right prompt")
            #expect(family.contains { $0.candidates.allSatisfy { !$0.correct } }, "\(task): no all-wrong prompt")
            let rightLength = Double(right.map(\.text.count).reduce(0, +)) / Double(right.count)
            let wrongLength = Double(wrong.map(\.text.count).reduce(0, +)) / Double(wrong.count)
            print(
                "demo \(task): \(String(format: "%.2f", share)) correct, mean length right \(Int(rightLength)) wrong \(Int(wrongLength))"
            )
            #expect(abs(rightLength / wrongLength - 1) < 0.1, "\(task): lengths \(rightLength) vs \(wrongLength)")
        }
    }

    @Test func onlyInstructionPromptsStateInstructions() throws {
        for prompt in Self.generate(prompts: 48) where prompt.task != "instructions" {
            let scores = try InstructionFollowingRM().score(
                ScoringRequest(promptID: prompt.id, prompt: prompt.prompt, candidates: prompt.candidates.map(\.text)))
            #expect(scores.allSatisfy { $0 == 0 }, "\(prompt.prompt)")
        }
    }
}
