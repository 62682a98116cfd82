import LaserWire

/// One entry of the run's append-only journal. Replaying the journal into a fresh `Coordinator`
/// rebuilds its state: selections stay made, scored shards are not scored again, emitted batches are
/// not emitted again.
public enum JournalRecord: Equatable, Sendable, Codable {
    /// Written by the shell as the first record: what the run started with.
    case runStarted(configDigest: String, version: String)
    /// A coordinator (first or resumed) started; `epoch` counts them, 0-based, and prefixes task ids
    /// so a late result addressed to an earlier incarnation can never match a new task.
    case started(epoch: UInt32)
    /// An iteration's input was read; a resume refuses input that changed since.
    case iterationLoaded(iteration: Int, inputDigest: String, prompts: Int)
    /// The decisions for global batch `batch` (0-based over the run): one for batch-level selection,
    /// one per prompt for instance-level.
    case selected(batch: Int, selections: [Selection])
    /// Valid scores from reward model `rm` for the score task of batch `batch` whose first prompt (index
    /// within the iteration) is `firstPrompt`; the task's prompts follow from the batch's selections.
    case scored(batch: Int, rm: String, firstPrompt: Int, scores: [[Double]])
    /// The batch's file is durable. The shell appends this after the atomic write, then syncs.
    case emitted(batch: Int)
    /// The trainer's loss on a batch (reward.source: trainer-loss), durable before it is acknowledged;
    /// with prediction-gain also its loss on the same pairs after the step, with probe-progress its loss
    /// on the probe before and after the step (absent in older journals).
    case feedback(
        batch: Int, loss: Double, lossAfter: Double? = nil, probeBefore: Double? = nil, probeAfter: Double? = nil)
}

/// What a trainer reported for a batch (`BatchFeedback`), as the reward needs it.
struct TrainerReport: Sendable {
    var loss: Double
    var lossAfter: Double?
    var probe: (before: Double, after: Double)?

    init(loss: Double, lossAfter: Double? = nil, probe: (before: Double, after: Double)? = nil) {
        self.loss = loss
        self.lossAfter = lossAfter
        self.probe = probe
    }

    init(_ f: BatchFeedback) { self.init(loss: f.loss, lossAfter: f.lossAfter, probe: f.probeLosses) }

    var record: (lossAfter: Double?, probeBefore: Double?, probeAfter: Double?) {
        (lossAfter, probe?.before, probe?.after)
    }
}

/// What a journal says about a run so far, in the form the coordinator consults while it replays.
struct Recovery: Sendable {
    struct ShardKey: Hashable, Sendable {
        var batch: Int
        var rm: String
        var firstPrompt: Int
    }

    var epochs: UInt32 = 0
    var inputDigests: [Int: String] = [:]
    var selections: [Int: [Selection]] = [:]
    var scores: [ShardKey: [[Double]]] = [:]
    var emitted: Set<Int> = []
    var losses: [Int: TrainerReport] = [:]

    init(_ records: [JournalRecord]) {
        for r in records {
            switch r {
            case .runStarted: break
            case .started(let epoch): epochs = max(epochs, epoch + 1)
            case .iterationLoaded(let n, let digest, _): inputDigests[n] = digest
            case .selected(let batch, let s): selections[batch] = s
            case .scored(let batch, let rm, let first, let s):
                scores[ShardKey(batch: batch, rm: rm, firstPrompt: first)] = s
            case .emitted(let batch): emitted.insert(batch)
            case .feedback(let batch, let loss, let after, let probeBefore, let probeAfter):
                losses[batch] = TrainerReport(
                    loss: loss, lossAfter: after,
                    probe: probeBefore.flatMap { b in probeAfter.map { (b, $0) } })
            }
        }
    }

    var isEmpty: Bool { epochs == 0 && selections.isEmpty && scores.isEmpty && emitted.isEmpty && inputDigests.isEmpty }
}
