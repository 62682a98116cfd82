import LaserSync
import Foundation
import LaserCore

/// Reads an iteration's prompts ahead of the coordinator, on a thread of its own: the next `depth`
/// mini-batches are parsed while the coordinator's thread serves sockets, so parsing (the largest
/// share of a coordinator's CPU time with long candidates) overlaps everything else. Batches come
/// out in order, `batchSize` prompts each (the last one shorter), as the core asks for them.
final class PromptPrefetcher: @unchecked Sendable {  // `stream` (not Sendable) is used by its thread only; the rest is Locked
    private let stream: PromptStream
    private let batchSize: Int
    private let depth: Int
    private struct Queue {
        /// Parsed batches not yet taken, in order, with the index of their first prompt.
        var ready: [(first: Int, result: Result<[PromptRecord], Error>)] = []
        var stopped = false
        var done = false
    }
    private let queue = Locked(Queue())
    /// Whether the batch at this position in the iteration (0-based) needs its candidate texts.
    private let textsNeeded: @Sendable (Int) -> Bool

    init(
        stream: PromptStream, batchSize: Int, depth: Int, textsNeeded: @escaping @Sendable (Int) -> Bool = { _ in true }
    ) {
        self.stream = stream
        self.batchSize = batchSize
        self.depth = max(1, depth)
        self.textsNeeded = textsNeeded
        startThread(named: "laser-input") { [self] in run() }
    }

    deinit { stop() }

    private func run() {
        let depth = self.depth
        while queue.wait(until: { $0.ready.count < depth || $0.stopped }, { !$0.stopped }) == true {
            let first = stream.position
            let result = Result { try stream.next(batchSize, texts: textsNeeded(first / batchSize)) }
            let last: Bool
            switch result {
            case .success(let records): last = records.count < batchSize || stream.position >= stream.scan.prompts
            case .failure: last = true
            }
            queue.update {
                $0.ready.append((first, result))
                if last { $0.done = true }
            }
            if last { return }
        }
    }

    /// The prompts of `range` (the next batch in order), waiting for the thread if needed.
    func take(_ range: Range<Int>) throws -> [PromptRecord] {
        let next = queue.wait(until: { !$0.ready.isEmpty || $0.done }, notify: true) { q in
            q.ready.isEmpty ? nil : q.ready.removeFirst()
        }
        // The file ended: the core reports the short read.
        guard let (first, result) = next ?? nil else { return [] }
        let records = try result.get()
        guard first == range.lowerBound else {
            throw RunFailure("internal error: prompts \(range) asked for, but the input is at \(first)")
        }
        return records
    }

    /// Lets the thread finish (after the batch it is parsing, if any).
    func stop() { queue.update { $0.stopped = true } }
}

/// Validates an iteration's input on a thread of its own, so the coordinator keeps serving its socket
/// (Hellos, heartbeats, results) while a big file is scanned.
final class InputLoader: Sendable {
    let iteration: Int
    private let result = Locked<Result<(scan: PromptReader.Scan, stream: PromptStream), Error>?>(nil)

    /// `recorded`: the journal's digest and prompt count for this input (a resume), if any.
    /// `validated`: the scan made at start (InputValidation) when the file is still the one scanned then.
    init(
        iteration: Int, path: String, reader: PromptReader, recorded: (digest: String, prompts: Int)?,
        validated: PromptReader.Scan? = nil
    ) {
        self.iteration = iteration
        startThread(named: "laser-scan") { [result] in
            let r = Result { () -> (scan: PromptReader.Scan, stream: PromptStream) in
                // Scanned at start and unchanged since (the stream checks the file's identity): no second
                // pass. (An earlier digest that differs goes the long way, for the legacy digest rule.)
                if let validated, recorded == nil || recorded?.digest == validated.digest {
                    return (validated, try PromptStream(path: path, scan: validated, reader: reader))
                }
                // A resume re-validates an input whose bytes are unchanged by its digest alone.
                let scan =
                    try recorded.map { try reader.rescan(path: path, digest: $0.digest, prompts: $0.prompts) }
                    ?? reader.scan(path: path)
                return (scan, try PromptStream(path: path, scan: scan, reader: reader))
            }
            result.withLock { $0 = r }
        }
    }

    /// The outcome once the scan is over; nil while it runs.
    func poll() -> Result<(scan: PromptReader.Scan, stream: PromptStream), Error>? {
        result.withLock { $0 }
    }
}
