import LaserWire
import Testing
@testable import LaserCore

/// Instance-level selection (one RM per prompt) and best-of-n mode.
@Suite struct GranularityTests {
    let data = Fixtures.iterations(2, prompts: 40, seed: 11)

    func plan(
        _ strategy: StrategyKind = .linucb, granularity: Granularity = .instance, mode: OutputMode = .pairs,
        depth: Int = 1
    ) -> RunPlan {
        var p = Fixtures.plan(strategy: strategy, depth: depth)
        p.granularity = granularity
        p.mode = mode
        return p
    }

    func run(
        _ plan: RunPlan, workers: [(String, UInt32, SimBehaviour)] = [("solo", 1, .good)], seed: UInt64 = 0,
        crashRate: UInt64 = 0, maxCrashes: Int = 0, data: [[PromptRecord]]? = nil
    ) -> Simulation {
        var sim = Simulation(plan: plan, iterations: data ?? self.data, workers: workers, seed: seed)
        sim.crashRate = crashRate
        sim.maxCrashes = maxCrashes
        sim.run()
        return sim
    }

    @Test func eachPromptGetsItsOwnRM() throws {
        let sim = run(plan(.random))
        let summary = try sim.requireSummary()
        // Within one batch, pairs of different prompts come from different RMs.
        #expect(sim.emitted.contains { Set($0.pairs.map(\.rm)).count > 1 })
        #expect(sim.emitted.contains { $0.rm == "mixed" })
        // Every prompt was ranked by exactly one RM.
        let selected = summary.iterations.flatMap(\.tasks).reduce(0) { $0 + $1.selections.values.reduce(0, +) }
        #expect(selected == data.joined().count)
        let candidates = data.joined().reduce(0) { $0 + $1.candidates.count }
        #expect(summary.iterations.reduce(0) { $0 + $1.rmCalls.values.reduce(0, +) } == candidates)
    }

    @Test(arguments: [StrategyKind.linucb, .random, .sequential, .ensemble], [OutputMode.pairs, .bestOfN])
    func outputDoesNotDependOnTimingOrCrashes(strategy: StrategyKind, mode: OutputMode) throws {
        let p = plan(strategy, mode: mode, depth: 2)
        let expected = run(p)
        _ = try expected.requireSummary()
        for seed in 0..<5 as Range<UInt64> {
            let sim = run(
                p, workers: [("a", 2, .good), ("b", 3, .duplicates)], seed: seed, crashRate: 20, maxCrashes: 3)
            _ = try sim.requireSummary()
            #expect(sim.output == expected.output, "seed \(seed)")
            #expect(sim.choicesOutput == expected.choicesOutput, "seed \(seed)")
            #expect(sim.core.selector == expected.core.selector)
        }
    }

    @Test func bestOfNPicksOneResponsePerPromptAndLearnsTheOracle() throws {
        let long = Fixtures.iterations(6, prompts: 64, seed: 5)
        var p = plan(.linucb, mode: .bestOfN)
        p.iterations = 6
        let sim = run(p, workers: [("w", 2, .good)], data: long)
        let summary = try sim.requireSummary()
        #expect(sim.emitted.allSatisfy { $0.pairs.isEmpty && $0.choices.count == $0.promptCount })
        let last = try #require(summary.iterations.last)
        let oracle = Double(last.tasks.reduce(0) { $0 + ($1.selections["oracle"] ?? 0) }) / Double(last.prompts)
        #expect(oracle > 0.6, "oracle chose for \(oracle) of the last iteration's prompts")
        // Label accuracy in best-of-n: the share of chosen responses that are correct.
        let first = try #require(summary.iterations.first?.labelAccuracy)
        #expect((last.labelAccuracy ?? 0) > first)
    }
}

extension Simulation {
    /// Best-of-n outputs in a comparable form.
    var choicesOutput: [[String]] {
        emittedByKey.map { $0.choices.map { "\($0.promptID)=\($0.response)" } }
    }
}
