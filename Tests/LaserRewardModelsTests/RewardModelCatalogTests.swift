import LaserRewardModels
import Testing

@Suite struct RewardModelCatalogTests {
    @Test func buildsEveryKindUnderItsName() throws {
        for kind in RewardModelCatalog.kinds {
            let params =
                kind == "noisy"
                ? ["base": "self-consistency", "sigma": "0.1"]
                : kind == "simulated-latency" || kind == "simulated-load"
                    ? ["base": "length", "ms": "0", "load_ms": kind == "simulated-load" ? "0" : nil].compactMapValues { $0 }
                    : kind == "subprocess"
                        ? ["command": "python3 rm.py"]  // builds without starting anything
                        : kind == "http" ? ["url": "http://127.0.0.1:1/get_reward", "api": "openrlhf"] : [:]  // connects to nothing
            let rm = try RewardModelCatalog.make(
                RewardModelSpec(name: "my-\(kind)", kind: kind, params: params), runSeed: 1)
            #expect(rm.name == "my-\(kind)")
        }
        #expect(
            Set(RewardModelCatalog.kinds) == [
                "answer-match", "self-consistency", "arithmetic-check", "length", "instruction-following", "noisy",
                "simulated-latency", "simulated-load", "null-rm", "subprocess", "http",
            ])
    }

    /// The simulated-load SIMULATION: its load sleeps `load_ms` (dynamic placement's tests and benchmark),
    /// `load_fail: "yes"` makes it fail, and it scores as its base.
    @Test func simulatedLoadSleepsOnLoadAndCanFail() throws {
        let rm = try RewardModelCatalog.make(
            RewardModelSpec(name: "s", kind: "simulated-load", params: ["base": "length", "load_ms": "50"]), runSeed: 1)
        let start = ContinuousClock.now
        try rm.load()
        #expect(ContinuousClock.now - start >= .milliseconds(45))
        let request = ScoringRequest(promptID: "a", prompt: "p", candidates: ["x", "yy"])
        let base = try RewardModelCatalog.make(RewardModelSpec(name: "b", kind: "length"), runSeed: 1)
        #expect(try rm.score(request) == base.score(request))
        let failing = try RewardModelCatalog.make(
            RewardModelSpec(name: "f", kind: "simulated-load", params: ["base": "length", "load_ms": "0", "load_fail": "yes"]),
            runSeed: 1)
        #expect(throws: RewardModelError.self) { try failing.load() }
        #expect(throws: RewardModelError.self) {
            try RewardModelCatalog.make(RewardModelSpec(name: "m", kind: "simulated-load", params: ["base": "length"]), runSeed: 1)
        }
    }

    /// The NULL RM's scores do not depend on the request: 0, -1, -2, ... by position.
    @Test func nullRMScoresByPositionOnly() throws {
        let rm = try RewardModelCatalog.make(RewardModelSpec(name: "n", kind: "null-rm"), runSeed: 1)
        #expect(
            try rm.score(ScoringRequest(promptID: "a", prompt: "p", candidates: ["x", "yy", "zzz"])) == [0, -1, -2])
        #expect(try rm.score(ScoringRequest(promptID: "b", prompt: "q", candidates: ["long answer", "?"])) == [0, -1])
        #expect(throws: RewardModelError.self) {
            try RewardModelCatalog.make(RewardModelSpec(name: "n", kind: "null-rm", params: ["x": "1"]), runSeed: 1)
        }
    }

    @Test func unknownKindNamesItAndListsTheKnownOnes() {
        #expect {
            _ = try RewardModelCatalog.make(RewardModelSpec(name: "judge", kind: "llm-judge"), runSeed: 0)
        } throws: { error in
            let message = (error as? RewardModelError)?.description ?? ""
            return message.contains("llm-judge") && RewardModelCatalog.kinds.allSatisfy(message.contains)
        }
    }

    @Test func unknownParamIsReported() {
        #expect {
            _ = try RewardModelCatalog.make(
                RewardModelSpec(name: "am", kind: "answer-match", params: ["treshold": "1"]), runSeed: 0)
        } throws: { error in
            let message = (error as? RewardModelError)?.description ?? ""
            return message.contains("'am'") && message.contains("treshold")
        }
    }

    /// Whatever the input, every RM returns one finite score per candidate.
    @Test func scoresAreFiniteAndOnePerCandidate() throws {
        let candidates = [
            "", " ", "A:", "####", "\\boxed{", "<<", ">>", "<<1e308*1e308=1>>", "<<1/3=0.3333333>>\nA: 1e999",
            String(repeating: "9", count: 400), "A: " + String(repeating: "9", count: 400),
            "<<" + String(repeating: "9", count: 400) + "=1>>", "\u{1F600} émoji, ünïcode\nA: naïve",
            "- a\n* b", "\"\"", "A: -0", "A: 0.0000001",
        ]
        let prompts = [
            "", "Write exactly 3 words, all in lowercase, as 2 bullet points, without commas.", "What is 2+2?",
        ]
        // The subprocess and http backends score what their server says: SubprocessRMTests, HTTPRMTests.
        for kind in RewardModelCatalog.kinds where !["subprocess", "http"].contains(kind) {
            let params =
                kind == "noisy"
                ? ["base": "arithmetic-check", "sigma": "2"]
                : kind == "simulated-latency" ? ["base": "answer-match", "ms": "0"]
                    : kind == "simulated-load" ? ["base": "answer-match", "load_ms": "0"] : [:]
            let rm = try RewardModelCatalog.make(RewardModelSpec(name: kind, kind: kind, params: params), runSeed: 7)
            for prompt in prompts {
                for reference in [nil, "", "9", String(repeating: "9", count: 400)] as [String?] {
                    let scores = try rm.score(request(candidates, prompt: prompt, reference: reference))
                    #expect(scores.count == candidates.count)
                    #expect(scores.allSatisfy { $0.isFinite }, "\(kind)")
                }
            }
        }
    }
}

@Suite struct SimulatedLatencyRMTests {
    @Test func waitsThenReturnsTheBaseScores() throws {
        let rm = try RewardModelCatalog.make(
            RewardModelSpec(
                name: "slow", kind: "simulated-latency", params: ["base": "length", "ms": "30", "prefer": "longer"]),
            runSeed: 0)
        let request = ScoringRequest(promptID: "p", prompt: "q", candidates: ["a", "bbb"])
        let start = ContinuousClock.now
        let scores = try rm.score(request)
        #expect(ContinuousClock.now - start >= .milliseconds(30))
        #expect(scores == (try LengthRM(name: "x", params: ["prefer": "longer"]).score(request)))
    }

    @Test func badParamsAreClear() {
        for params in [["base": "length"], ["base": "length", "ms": "-1"], ["ms": "5"], ["base": "nope", "ms": "1"]] {
            #expect(throws: RewardModelError.self) {
                _ = try RewardModelCatalog.make(
                    RewardModelSpec(name: "slow", kind: "simulated-latency", params: params), runSeed: 0)
            }
        }
    }
}
