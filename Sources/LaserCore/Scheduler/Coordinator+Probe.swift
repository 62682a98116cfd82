import LaserWire

/// reward.source: probe-progress. Before the first batch is selected, every RM scores the first
/// `probeSize` prompts of iteration 1 once (K x probeSize RM calls). The probe's pairs are the
/// consensus pairs: a pair of candidates on which at least two RMs have an opinion (different scores)
/// and every RM with an opinion prefers the same one. They go to the trainer once per session
/// (`ProbeSet`), and each batch's reward is the decrease of the trainer's loss on them across that
/// batch's step: a label-free measure of how much the batch taught the policy what every RM agrees on.
///
/// The probe is a batch of its own (key `probeBatch` in `batches`, never emitted): its score tasks,
/// their journal records and their replay after a crash are those of any batch, so a resumed run
/// rebuilds the same probe from the journal without scoring it again.
extension Coordinator {
    static let probeBatch = -1

    enum ProbeState: Sendable, Equatable {
        /// No probe (another reward source), or not asked for yet.
        case none, waiting
        /// Its prompts are being read, then scored.
        case reading, scoring
        case ready(ProbeSet)
    }

    /// Whether selection must wait for the probe (the trainer needs it before its first batch).
    var probePending: Bool {
        guard plan.rewardSource == .probeProgress else { return false }
        if case .ready = probe { return false }
        return true
    }

    /// The probe's pairs, once made.
    var probeSet: ProbeSet? {
        if case .ready(let set) = probe { return set }
        return nil
    }

    /// Asks for the probe's prompts when iteration 1 opens.
    mutating func requestProbe(promptCount: Int, _ actions: inout [CoordinatorAction]) {
        guard probe == .waiting, iteration == 1 else { return }
        guard promptCount >= 1 else {
            fail("reward.source probe-progress needs prompts in iteration 1 for its probe, and it has none", &actions)
            return
        }
        probe = .reading
        actions.append(.readProbePrompts(iteration: 1, count: min(plan.probeSize, promptCount)))
    }

    /// The probe's prompts are in: one ensemble unit over them, a score task per RM and shard (or the
    /// journal's scores after a restart).
    mutating func startProbe(_ prompts: [PromptRecord], _ actions: inout [CoordinatorAction]) {
        probe = .scoring
        let range = 0..<prompts.count
        var batch = Batch(indexInIteration: 0, range: range, prompts: prompts,
                          units: [SelectionUnit(offsets: range, selection: .ensemble, context: [])], scores: [:], remainingTasks: 0)
        var created: [UInt64] = []
        for rm in plan.armNames {
            batch.scores[rm] = Array(repeating: nil, count: range.count)
            for shard in Self.shards(Array(range), of: prompts, base: 0, size: plan.shardSize, maxBytes: plan.maxTaskBytes) {
                let id = nextTaskID
                nextTaskID += 1
                tasks[id] = ScoreTaskState(id: id, batch: Self.probeBatch, rm: rm, indices: shard)
                created.append(id)
                batch.remainingTasks += 1
            }
        }
        batches[Self.probeBatch] = batch
        actions.append(.log(.info, "probe: every RM scores the first \(prompts.count) prompts of iteration 1 (\(plan.armNames.count) x \(prompts.count) RM calls, once)"))
        for id in created {
            let task = tasks[id]!
            let key = Recovery.ShardKey(batch: Self.probeBatch, rm: task.rm, firstPrompt: task.indices[0])
            if let scores = recovery.scores.removeValue(forKey: key), validate(scores, for: task) == nil {
                complete(task, scores: scores, journaled: true, &actions)
            } else {
                queues[task.rm, default: []].append(id)
            }
        }
    }

    /// Every RM has scored the probe: its consensus pairs, sent to the trainer if one is connected.
    mutating func finishProbe(_ actions: inout [CoordinatorAction]) {
        guard let b = batches.removeValue(forKey: Self.probeBatch) else { return }
        var pairs: [TrainerPair] = []
        for (offset, p) in b.prompts.enumerated() {
            let perRM = plan.armNames.map { b.scores[$0]![offset]! }
            let combined = ScoreEnsemble.combine(perRM)
            for (c, r) in Self.consensusPairs(perRM) {
                pairs.append(TrainerPair(prompt: p.prompt, chosen: p.candidates[c].text, rejected: p.candidates[r].text,
                                         chosenScore: combined[c], rejectedScore: combined[r], promptID: p.id))
            }
        }
        guard !pairs.isEmpty else {
            fail("the probe's \(b.prompts.count) prompts gave no consensus pair (no pair of candidates that two or more RMs rank and all of them rank the same way); raise reward.probe_size, or choose another reward.source", &actions)
            return
        }
        let calls = b.prompts.reduce(0) { $0 + $1.candidates.count } * plan.armNames.count
        summary.probe = RunSummary.ProbeSummary(prompts: b.prompts.count, pairs: pairs.count, rmCalls: calls)
        actions.append(.log(.info, "probe ready: \(pairs.count) consensus pairs from \(b.prompts.count) prompts"))
        probe = .ready(ProbeSet(pairs: pairs, prompts: UInt32(b.prompts.count)))
        if let t = trainer { actions.append(.send(to: t.peer, .probeSet(probeSet!))) }
    }

    /// The consensus pairs of one prompt, (chosen, rejected) in candidate order: at least two RMs score
    /// the two candidates differently, and all that do prefer the same one.
    static func consensusPairs(_ perRM: [[Double]]) -> [(chosen: Int, rejected: Int)] {
        guard let n = perRM.first?.count else { return [] }
        var out: [(Int, Int)] = []
        for i in 0..<n {
            for j in (i + 1)..<max(i + 1, n) {
                var opinions = 0, forFirst = 0
                for s in perRM where s[i] != s[j] {
                    opinions += 1
                    if s[i] > s[j] { forFirst += 1 }
                }
                guard opinions >= 2 else { continue }
                if forFirst == opinions { out.append((i, j)) } else if forFirst == 0 { out.append((j, i)) }
            }
        }
        return out
    }
}
