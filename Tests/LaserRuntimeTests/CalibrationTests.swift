import Foundation
import LaserCore
import LaserRewardModels
import Testing
@testable import LaserRuntime

/// `laser calibrate`: per-RM priors from a labelled set, written as a file `thompson.priors` reads.
@Suite struct CalibrationTests {
    @Test func priorsRankTheRMsByTheirLabelAccuracyAndLoadBack() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let demo = try DemoJob.prepare(in: dir + "/demo", seed: 3, iterations: 1, promptsPerTask: 16)
        let result = try Calibration.run(config: demo, input: demo.inputs[0], batchSize: 8)
        #expect(result.prompts == 48 && result.batchSize == 8)
        // The reference-based RM is the label on the demo's arithmetic and trivia: it tops the priors.
        let means = result.priors.mapValues(\.mean)
        #expect(means["answer-match"]! > means["length"]!, "\(means)")
        #expect(result.priors.values.allSatisfy { $0.mean >= 0 && $0.mean <= 1 && $0.variance > 0 })
        // Reference: answer-match's first batch, computed here from its scores and the labels.
        let prompts = try PromptReader(contextDimension: demo.contextDimension).read(path: demo.inputs[0])
        let rm = try RewardModelCatalog.make(demo.rewardModels.first { $0.name == "length" }!, runSeed: demo.seed)
        var per: [Double] = []
        for start in stride(from: 0, to: prompts.count, by: 8) {
            var acc = LabelPairAccuracy()
            for p in prompts[start..<start + 8] {
                let s = try rm.score(
                    ScoringRequest(
                        promptID: p.id, prompt: p.prompt, candidates: p.candidates.map(\.text), reference: p.reference))
                for (c, r) in demo.pairs.pairs(scores: s) {
                    acc.add(chosenCorrect: p.candidates[c].correct, rejectedCorrect: p.candidates[r].correct)
                }
            }
            if let v = acc.value { per.append(v) }
        }
        let mean = per.reduce(0, +) / Double(per.count)
        #expect(abs(result.priors["length"]!.mean - mean) < 1e-12)
        // The file loads as thompson.priors, in arm order, and into the plan.
        let file = dir + "/priors.yaml"
        try Calibration.yaml(result, rms: demo.rewardModels.map(\.name), input: "in.jsonl").write(
            toFile: file, atomically: true, encoding: .utf8)
        var config = demo
        config.strategy = .thompson
        let yaml = config.yaml() + "thompson:\n  v: 0.4\n  priors: \(file)\n"
        let loaded = try RunConfig.parse(
            yaml: yaml.replacingOccurrences(of: "thompson:\n  v: 0.5\n", with: ""), source: "c.yaml", baseDirectory: dir
        )
        #expect(loaded.thompsonV == 0.4 && loaded.priors == result.priors.mapValues { $0 })
        #expect(
            loaded.plan(coordinatorID: "c").thompson.priors.map(\.mean)
                == demo.rewardModels.map { result.priors[$0.name]!.mean })
        // The run's config.yaml carries the priors inline (a resume needs their values, not a path).
        #expect(try RunConfig.parse(yaml: loaded.yaml(), source: "x", baseDirectory: "/") == loaded)
    }

    @Test func unlabelledInputAndMissingPriorsAreClearErrors() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try #"{"prompt": "q", "candidates": ["a", "b"]}"#.write(
            toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        let config = RunConfig(
            inputs: [dir + "/in.jsonl"], iterations: 1, rewardModels: [RewardModelSpec(name: "length", kind: "length")])
        #expect(throws: InputError.self) { try Calibration.run(config: config, input: dir + "/in.jsonl") }
        let yaml =
            "input: in.jsonl\nstrategy: thompson\nreward_models: [{kind: length}, {kind: answer-match}]\nthompson: {priors: {length: {mean: 0.5, variance: 0.1}}}\n"
        do {
            _ = try RunConfig.parse(yaml: yaml, source: "c.yaml", baseDirectory: dir); Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("has no prior for RM 'answer-match'"), "\(error)")
        }
    }
}
