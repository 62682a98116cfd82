import Foundation
import LaserCore
import Logging
import Testing
@testable import LaserRuntime

@Suite struct JournalTests {
    static let records: [JournalRecord] = [
        .runStarted(configDigest: "abc", version: "1.0"),
        .started(epoch: 2),
        .iterationLoaded(iteration: 1, inputDigest: "00ff", prompts: 100_000),
        .selected(batch: 7, selections: [.arm(0), .ensemble, .arm(3)]),
        .selected(batch: 8, selections: []),
        .scored(
            batch: 7, rm: "judge \"q\" é", firstPrompt: 12,
            scores: [[1, -2.5, 0.1 + 0.2, 1e-300, -0.0, 123_456_789.125, 5e307], [], [Double.leastNonzeroMagnitude]]),
        .emitted(batch: 7),
        .feedback(batch: 7, loss: 0.693),
        .feedback(batch: 8, loss: 0.693, lossAfter: 0.0),
    ]

    /// The hand-written codec and JSONEncoder/JSONDecoder read each other's records.
    @Test func codecMatchesFoundationBothWays() throws {
        let encoder = JSONEncoder(), decoder = JSONDecoder()
        encoder.outputFormatting = [.sortedKeys]
        for record in Self.records {
            let fast = try JournalCodec.encode(record, fallback: encoder)
            #expect(
                try decoder.decode(JournalRecord.self, from: Data(fast)) == record,
                "\(String(decoding: fast, as: UTF8.self))")
            let slow = Array(try encoder.encode(record))
            #expect(try slow.withUnsafeBytes { try JournalCodec.decode($0, fallback: decoder) } == record)
        }
    }

    @Test func appendReopenAndCutATornTail() throws {
        let path = temporaryDirectory() + "/journal"
        do {
            let (journal, existing, torn) = try JournalFile.open(path: path)
            #expect(existing.isEmpty && torn == 0)
            for r in Self.records { try journal.append(r, sync: false) }
            try journal.sync()
        }
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data([40, 0, 0, 0, 1, 2, 3, 4, 9, 9]))  // a frame cut short by a crash
        handle.closeFile()
        let (journal, records, torn) = try JournalFile.open(path: path)
        #expect(records == Self.records)
        #expect(torn == 10)
        try journal.append(.emitted(batch: 8), sync: true)
        let (_, again, tornAgain) = try JournalFile.open(path: path)
        #expect(again == Self.records + [.emitted(batch: 8)] && tornAgain == 0)
    }
}

/// The output thread is woken at once only for batch files and records that must be durable; other
/// records wait for those, for a backlog, or for the thread's next look (`OutputWriter.maxDelay`).
@Suite struct OutputWriterTests {
    @Test func aLoneScoreRecordStillReachesTheJournalSoon() throws {
        let dir = temporaryDirectory()
        let (journal, _, _) = try JournalFile.open(path: dir + "/journal")
        let writer = OutputWriter(
            runDirectory: try RunDirectory(path: dir + "/run"), journal: journal, logger: Logger(label: "test"))
        defer { writer.stop() }
        let record = JournalRecord.scored(batch: 0, rm: "a", firstPrompt: 0, scores: [[1, 2]])
        Thread.sleep(forTimeInterval: 0.2)  // the thread is waiting by now: the submit alone does not wake it
        #expect(writer.submit(.journal(record, sync: false)))
        // No flush, no batch, no sync: the thread's own look writes it.
        var found: [JournalRecord] = []
        for _ in 0..<50 where found.isEmpty {
            Thread.sleep(forTimeInterval: 0.02)
            found = try JournalFile.decode(Data(contentsOf: URL(fileURLWithPath: dir + "/journal")), path: "journal").0
        }
        #expect(found == [record])
        // A flush writes what is queued at once, in order, and a sync record is durable on return.
        let more: [(JournalRecord, Bool)] = [
            (.selected(batch: 1, selections: [.arm(0)]), false), (.emitted(batch: 0), true),
            (.scored(batch: 1, rm: "a", firstPrompt: 64, scores: [[3]]), false),
        ]
        for (r, sync) in more { #expect(writer.submit(.journal(r, sync: sync))) }
        #expect(writer.flush() == nil)
        let all = try JournalFile.decode(Data(contentsOf: URL(fileURLWithPath: dir + "/journal")), path: "journal").0
        #expect(all == [record] + more.map(\.0))
    }
}
