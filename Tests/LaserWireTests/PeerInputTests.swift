import LaserWire
import Testing

/// Issue 19 items 6 and 11: text from peers is printed safely, and strings with NUL are malformed.
@Suite struct PeerInputTests {
    @Test func controlCharactersAreEscapedAndLongTextCut() {
        #expect(PeerText.printable("w1\n2026 error forged line") == "w1\\u{a}2026 error forged line")
        #expect(PeerText.printable("\u{1B}[2J\u{7}\u{9B}ok") == "\\u{1b}[2J\\u{7}\\u{9b}ok")
        #expect(PeerText.printable("a\u{202E}b") == "a\\u{202e}b")
        let long = PeerText.printable(String(repeating: "x", count: 70_000))
        #expect(long.count < 260 && long.hasSuffix("...(70000 bytes)"))
        #expect(PeerText.identifierProblem("node3-gpu1", what: "worker_id") == nil)
        #expect(
            PeerText.identifierProblem(String(repeating: "x", count: 129), what: "worker_id")?.contains("at most 128")
                == true)
        #expect(PeerText.identifierProblem("a\u{1B}b", what: "worker_id")?.contains("control characters") == true)
    }

    @Test func aStringWithNULDoesNotDecode() throws {
        let clean = WireCodec.encode(.hello(Hello(workerID: "ghost", rewardModels: [], slots: 1, softwareVersion: "")))
        #expect(
            try WireCodec.decode(clean)
                == .hello(Hello(workerID: "ghost", rewardModels: [], slots: 1, softwareVersion: "")))
        // The same message with worker_id "ghost\0hidden", as a foreign encoder would write it.
        let withNUL = WireCodec.encode(
            .hello(Hello(workerID: "ghostXhidden", rewardModels: [], slots: 1, softwareVersion: "")))
        let x = withNUL.firstIndex(of: UInt8(ascii: "X"))!
        var forged = withNUL
        forged[x] = 0
        do {
            _ = try WireCodec.decode(forged)
            Issue.record("a worker_id with NUL decoded")
        } catch {
            #expect("\(error)".contains("NUL"), "\(error)")
        }
        // NUL inside a nested string (a candidate of a score task).
        let task = WireCodec.encode(
            .scoreTask(
                ScoreTask(
                    taskID: 1, attempt: 1, rewardModel: "rm", iteration: 1,
                    items: [ScoreItem(promptID: "p", prompt: "q", candidates: ["aXb", "c"], reference: nil)])))
        var nested = task
        nested[nested.firstIndex(of: UInt8(ascii: "X"))!] = 0
        #expect(throws: (any Error).self) { try WireCodec.decode(nested) }
    }
}
