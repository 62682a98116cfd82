import LaserWire
import Testing

@Suite struct WireCodecTests {
    static let samples: [WireMessage] = [
        .hello(
            Hello(
                workerID: "node3-gpu1", rewardModels: ["answer-match", "längd ✓"], slots: 4, softwareVersion: "0.1.0")),
        .hello(Hello(workerID: "w", rewardModels: [], slots: 1, softwareVersion: "")),
        .hello(Hello(workerID: "w", rewardModels: [], slots: 1, softwareVersion: "", labels: ["a100", "node-7"])),
        .hello(Hello(workerID: "w", rewardModels: [], slots: 1, softwareVersion: "", acceptsJSONCandidates: true)),
        // Dynamic placement: capacity, what is loaded, a memory budget and weights.
        .hello(
            Hello(
                workerID: "gpu0", rewardModels: ["a", "b"], slots: 2, softwareVersion: "", rmCapacity: 2, loaded: ["b"],
                memoryBudget: 80, rmMemory: ["a": 70, "b": 17.5])),
        .loadRM(LoadRM(requestID: 7, load: ["a"], unload: ["b"])),
        .rmState(
            RMState(
                requestID: 7, loaded: ["a"],
                loads: [RMState.Load(name: "a", loadMs: 2150), RMState.Load(name: "c", loadMs: 0, error: "out of memory")])),
        .welcome(
            Welcome(
                coordinatorID: "c", heartbeatIntervalMs: 1000, liveness: 5,
                rewardModels: [
                    RewardModelDefinition(name: "noisy", kind: "noisy", params: ["base": "length", "sigma": "0.3"]),
                    RewardModelDefinition(name: "am", kind: "answer-match", params: [:]),
                ],
                runSeed: 0xFFFF_FFFF_FFFF_FFFF)),
        .reject(reason: "unknown RM"),
        .reject(reason: "worker id in use", retryAfterMs: 5000),
        .heartbeat,
        .scoreTask(
            ScoreTask(
                taskID: 1 << 40, attempt: 3, rewardModel: "am", iteration: 7,
                items: [
                    ScoreItem(promptID: "p1", prompt: "2+2?", candidates: ["4", "five", ""], reference: "4"),
                    ScoreItem(
                        promptID: "p2", prompt: "emoji 🚀 and \"quotes\"\n", candidates: ["a", "b"], reference: nil),
                    ScoreItem(promptID: "p3", prompt: "", candidates: ["x", "y"], reference: ""),
                ])),
        .scoreTask(
            ScoreTask(
                taskID: 2, attempt: 1, rewardModel: "am", iteration: 7,
                items: [
                    ScoreItem(
                        promptID: "p1", prompt: "2+2?", candidates: ["4", "five", "", "tab\t \"q\" é \u{1} \\ 🚀"],
                        reference: "4"),
                    ScoreItem(promptID: "p2", prompt: "p", candidates: ["a", "b"], reference: nil),
                ], candidatesAsJSON: true)),
        .scoreResult(
            ScoreResult(
                taskID: 9, attempt: 1, outcome: .success([[1.5, -0.25, 0], [1e-300, -1e300]]), elapsedMicros: 1234)),
        .scoreResult(ScoreResult(taskID: 9, attempt: 2, outcome: .success([]), elapsedMicros: 0)),
        .scoreResult(ScoreResult(taskID: 10, attempt: 2, outcome: .failure("CUDA OOM"), elapsedMicros: 5)),
        .disconnect(reason: "unknown peer"),
        .shutdown(reason: "run complete"),
        .trainerHello(TrainerHello(trainerID: "rank0", window: 2, softwareVersion: "py")),
        .trainerWelcome(TrainerWelcome(coordinatorID: "c", heartbeatIntervalMs: 500, liveness: 5, wantsLoss: true)),
        .preferenceBatch(
            PreferenceBatch(
                globalBatch: 41, iteration: 3, batch: 7, rewardModel: "am",
                pairs: [
                    TrainerPair(
                        prompt: "p", chosen: "c ✓", rejected: "r", chosenScore: 1, rejectedScore: -0.5, promptID: "id")
                ], path: "/runs/x/iterations/0003/batch-0007.jsonl")),
        .preferenceBatch(
            PreferenceBatch(globalBatch: 0, iteration: 1, batch: 1, rewardModel: "ensemble", pairs: [], path: "")),
        .batchFeedback(BatchFeedback(globalBatch: 41, loss: 0.6931)),
        .batchFeedback(BatchFeedback(globalBatch: 42, loss: 0.6931, lossAfter: 0)),
        .trainerWelcome(
            TrainerWelcome(
                coordinatorID: "c", heartbeatIntervalMs: 500, liveness: 5, wantsLoss: true, wantsLossAfter: true)),
        .batchFeedback(BatchFeedback(globalBatch: 0, loss: -2, iteration: 3, batch: 7)),
        .feedbackAck(FeedbackAck(globalBatch: 41, accepted: false, reason: "already rewarded")),
    ]

    @Test(arguments: samples)
    func roundTrips(_ message: WireMessage) throws {
        let bytes = WireCodec.encode(message)
        #expect(try WireCodec.decode(bytes) == message)
        // Deterministic bytes (params are sorted).
        #expect(WireCodec.encode(message) == bytes)
    }

    /// Candidates sent as JSON bytes arrive as the same texts as candidates sent as strings; bodies
    /// that are not JSON string bodies are refused with the field named.
    @Test func jsonCandidatesDecodeToTheSameTextsAndBadBodiesAreRefused() throws {
        let texts = ["4", "", "tab\t \"q\" é \u{1} \\ 🚀\n"]
        let item = ScoreItem(promptID: "p", prompt: "q", candidates: texts, reference: nil)
        for asJSON in [false, true] {
            let task = ScoreTask(
                taskID: 1, attempt: 1, rewardModel: "am", iteration: 1, items: [item], candidatesAsJSON: asJSON)
            guard case .scoreTask(let back) = try WireCodec.decode(WireCodec.encode(.scoreTask(task))) else {
                Issue.record("not a ScoreTask"); continue
            }
            #expect(back.items[0].candidates == texts)
            #expect(back.candidatesAsJSON == asJSON)
        }
        for bad in [#"a"b"#, #"a\x"#, "a\u{1}b", #"ends\"#, #"\u12"#] {
            let storage = JSONTextStorage.copying(Array(bad.utf8))
            let raw = JSONText(storage: storage, range: 0..<storage.count)
            let task = ScoreTask(
                taskID: 1, attempt: 1, rewardModel: "am", iteration: 1,
                items: [ScoreItem(promptID: "p", prompt: "q", candidateTexts: [raw], reference: nil)],
                candidatesAsJSON: true)
            #expect(throws: WireError.self, "\(bad)") { try WireCodec.decode(WireCodec.encode(.scoreTask(task))) }
            do { _ = try WireCodec.decode(WireCodec.encode(.scoreTask(task))) } catch {
                #expect("\(error)".contains("candidates_json[0]"))
            }
        }
    }

    @Test func truncatedMessagesFailCleanly() {
        let bytes = WireCodec.encode(Self.samples[5])
        var failures = 0
        for n in 0..<bytes.count {
            // Either an error or some well-formed message: never a crash or a wrong "success".
            if let m = try? WireCodec.decode(Array(bytes[0..<n])) {
                #expect(m != Self.samples[5])
            } else {
                failures += 1
            }
        }
        #expect(failures > bytes.count / 2)
    }

    @Test func randomBytesFailCleanly() {
        var state: UInt64 = 0x1234
        var decoded = 0
        for len in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<(len % 300) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                bytes.append(UInt8(truncatingIfNeeded: state >> 33))
            }
            if (try? WireCodec.decode(bytes)) != nil { decoded += 1 }
        }
        #expect(decoded < 100)
    }

    @Test func emptyAndVersionMismatchAreErrors() throws {
        #expect(throws: WireError.self) { try WireCodec.decode([]) }
        // field 1 (protocol_version) = 2, then an empty Heartbeat (field 13, length 0).
        let future: [UInt8] = [0x08, 0x02, 0x6A, 0x00]
        do {
            _ = try WireCodec.decode(future)
            Issue.record("version 2 accepted")
        } catch let e as WireError {
            #expect(e.description.contains("unsupported protocol version 2"))
        }
        // Same bytes with version 1 decode.
        #expect(try WireCodec.decode([0x08, 0x01, 0x6A, 0x00]) == .heartbeat)
    }

    @Test func invalidUTF8IsRejected() {
        // Reject { reason = "\xFF" } in an Envelope (field 12).
        let bytes: [UInt8] = [0x08, 0x01, 0x62, 0x03, 0x0A, 0x01, 0xFF]
        #expect(throws: WireError.self) { try WireCodec.decode(bytes) }
    }
}
