import Foundation
import LaserWire

/// reward.source: probe-progress. Before the first batch is selected, every RM scores the first
/// `probeSize` prompts of iteration 1 once (K x probeSize RM calls). The probe's pairs are the
/// consensus pairs: a pair of candidates on which at least two RMs have an opinion (different scores)
/// and every RM with an opinion prefers the same one. They go to the trainer once per session
/// (`ProbeSet`), and each batch's reward is the decrease of the trainer's loss on them across that
/// batch's step: a label-free measure of how much the batch taught the policy what every RM agrees on.
/// `reward.probe_consensus` chooses the pairs: unanimous (above), weighted (ProbeWeights) or balanced
/// (ProbeBalance: each RM's own pairs, the same number from each).
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
            fail(
                .probeImpossible,
                "reward.source probe-progress needs prompts in iteration 1 for its probe, and it has none", &actions)
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
        var batch = Batch(
            indexInIteration: 0, range: range, prompts: prompts,
            units: [SelectionUnit(offsets: range, selection: .ensemble, context: [])], scores: [:], remainingTasks: 0)
        var created: [UInt64] = []
        for rm in plan.armNames {
            batch.scores[rm] = Array(repeating: nil, count: range.count)
            for shard in Self.shards(
                Array(range), of: prompts, base: 0, size: plan.shardSize, maxBytes: plan.maxTaskBytes)
            {
                let id = nextTaskID
                nextTaskID += 1
                tasks[id] = ScoreTaskState(id: id, batch: Self.probeBatch, rm: rm, indices: shard)
                created.append(id)
                batch.remainingTasks += 1
            }
        }
        batches[Self.probeBatch] = batch
        actions.append(
            .log(
                .info,
                "probe: every RM scores the first \(prompts.count) prompts of iteration 1 (\(plan.armNames.count) x \(prompts.count) RM calls, once)"
            ))
        for id in created {
            let task = tasks[held: id]
            let key = Recovery.ShardKey(batch: Self.probeBatch, rm: task.rm, firstPrompt: task.indices[0])
            if let scores = recovery.scores.removeValue(forKey: key), validate(scores, for: task) == nil {
                complete(task, scores: scores, journaled: true, &actions)
            } else {
                queues[task.rm, default: []].append(id)
            }
        }
    }

    /// Every RM has scored the probe: its pairs, sent to the trainer if one is connected.
    mutating func finishProbe(_ actions: inout [CoordinatorAction]) {
        guard let b = batches.removeValue(forKey: Self.probeBatch) else { return }
        let scores = b.prompts.indices.map { offset in plan.armNames.map { b.scores[held: $0][offset]! } }
        let pairs = probePairs(scores, &actions).map { offset, c, r, shown in
            let p = b.prompts[offset]
            return TrainerPair(
                prompt: p.prompt, chosen: p.candidates[c].text, rejected: p.candidates[r].text,
                chosenScore: shown[c], rejectedScore: shown[r], promptID: p.id)
        }
        guard !pairs.isEmpty else {
            fail(
                .probeImpossible,
                plan.probeConsensus == .balanced
                    ? "the probe's \(b.prompts.count) prompts gave no RM \(ProbeBalance.minimumPairs) pairs or more; raise reward.probe_size, or choose another reward.source"
                    : "the probe's \(b.prompts.count) prompts gave no consensus pair (no pair of candidates that two or more RMs rank and all of them rank the same way); raise reward.probe_size, or choose another reward.source",
                &actions)
            return
        }
        let calls = b.prompts.reduce(0) { $0 + $1.candidates.count } * plan.armNames.count
        summary.probe = RunSummary.ProbeSummary(prompts: b.prompts.count, pairs: pairs.count, rmCalls: calls)
        actions.append(.log(.info, "probe ready: \(pairs.count) pairs from \(b.prompts.count) prompts"))
        probe = .ready(ProbeSet(pairs: pairs, prompts: UInt32(b.prompts.count)))
        if let t = trainer { actions.append(.send(to: t.peer, .probeSet(probeSet!))) }
    }

    /// The probe's pairs by reward.probe_consensus, as (prompt offset, chosen, rejected, the scores the
    /// pair shows): balanced takes each RM's own pairs with that RM's scores; the consensus rules take
    /// each prompt's pairs with the RMs' combined scores. `scores`: prompt, RM, candidate.
    func probePairs(_ scores: [[[Double]]], _ actions: inout [CoordinatorAction])
        -> [(offset: Int, chosen: Int, rejected: Int, scores: [Double])]
    {
        if plan.probeConsensus == .balanced {
            let picked = ProbeBalance.pairs(scores, policy: plan.pairPolicy, seed: plan.seed)
            let shown = zip(plan.armNames, picked.counts).map { "\($0) \($1)" }.joined(separator: ", ")
            actions.append(
                .log(
                    .info,
                    "probe: pairs each RM gives on the probe prompts: \(shown); \(picked.perRM) from each RM with at least \(ProbeBalance.minimumPairs)"
                ))
            return picked.pairs.map { ($0.offset, $0.chosen, $0.rejected, scores[$0.offset][$0.rm]) }
        }
        // Each prompt's pairs: by the weighted vote, or by unanimity.
        var chosenPairs: [[(chosen: Int, rejected: Int)]]?
        if plan.probeConsensus == .weighted {
            let competence = ProbeWeights.competences(scores)
            let weights = competence.map(ProbeWeights.logOdds)
            let shown = zip(plan.armNames, competence).map { "\($0) \(String(format: "%.2f", $1))" }.joined(
                separator: ", ")
            actions.append(.log(.info, "probe: RM competences estimated from their agreement (2p - 1): \(shown)"))
            // Too little agreement to estimate anything: the unanimous rule, said in the log.
            let weighted = scores.map { ProbeWeights.weightedPairs($0, weights: weights) }
            if competence.allSatisfy({ $0 == 0 }) || weighted.allSatisfy(\.isEmpty) {
                actions.append(
                    .log(
                        .warning,
                        "probe: the RMs' agreement on \(scores.count) prompts gives no usable competence estimate; using the unanimous rule (raise reward.probe_size)"
                    ))
            } else {
                chosenPairs = weighted
            }
        }
        var out: [(offset: Int, chosen: Int, rejected: Int, scores: [Double])] = []
        for (offset, perRM) in scores.enumerated() {
            let combined = ScoreEnsemble.combine(perRM)
            for (c, r) in chosenPairs?[offset] ?? Self.consensusPairs(perRM) { out.append((offset, c, r, combined)) }
        }
        return out
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

/// reward.probe_consensus: balanced. A consensus probe is a subset of what the densest RMs say: an RM
/// with an opinion on nearly every pair (a length prior, any RM with noise on its scores) must agree
/// with every consensus pair, so training on that RM's batches lowers the probe's loss most, right or
/// wrong (docs/evaluation.md). The balanced probe takes no vote: it holds each RM's own pairs on the
/// probe prompts, made by the run's pair policy (the pairs that RM would emit), and the same number m
/// from each RM (a seeded sample; m is the smallest count among RMs with at least `minimumPairs`).
/// The probe's mean loss is then the mean over RMs of the loss on each RM's pairs, so a batch's
/// reward is how much its step moved the policy towards what the RMs say on average: an RM's own view
/// is one of K equal parts, its errors count only where the others do not share them, and pairs the
/// RMs dispute enter both ways and cancel. A noisy RM's random pairs pull no direction.
enum ProbeBalance {
    /// An RM with fewer pairs than this on the probe stays out of it (it still is an arm).
    static let minimumPairs = 8

    struct Picked {
        /// (prompt offset, RM index, chosen, rejected), RM by RM.
        var pairs: [(offset: Int, rm: Int, chosen: Int, rejected: Int)]
        /// Pairs each RM gave before sampling.
        var counts: [Int]
        /// The number taken from each RM in the probe (m; 0 when no RM has minimumPairs).
        var perRM: Int
    }

    /// `scores`: prompt, RM, candidate.
    static func pairs(_ scores: [[[Double]]], policy: PairPolicy, seed: UInt64) -> Picked {
        let k = scores.first?.count ?? 0
        var own = Array(repeating: [(offset: Int, rm: Int, chosen: Int, rejected: Int)](), count: k)
        for (offset, perRM) in scores.enumerated() {
            for rm in 0..<k {
                for (c, r) in policy.pairs(scores: perRM[rm]) { own[rm].append((offset, rm, c, r)) }
            }
        }
        let counts = own.map(\.count)
        guard let m = counts.filter({ $0 >= minimumPairs }).min() else {
            return Picked(pairs: [], counts: counts, perRM: 0)
        }
        var out: [(offset: Int, rm: Int, chosen: Int, rejected: Int)] = []
        for rm in 0..<k where own[rm].count >= m {
            let order = BanditOptions.permutation(own[rm].count, seed: seed, tag: 0x9B0BE, UInt64(rm), 0)
            out += order.prefix(m).sorted().map { own[rm][$0] }
        }
        return Picked(pairs: out, counts: counts, perRM: m)
    }
}

/// reward.probe_consensus: weighted. Label-free RM weights from agreement between RMs, as in the
/// one-coin Dawid-Skene model: if RM a prefers the truly better candidate with probability p_a,
/// independently of the others, two RMs agree with probability p_a p_b + (1 - p_a)(1 - p_b), so their
/// agreement beyond chance k_ab = 2 * agree_ab - 1 = c_a * c_b with the competence c = 2p - 1, and
/// c_a^2 = k_ab * k_ac / k_bc for any two others b, c (the triad estimate; the median over triads is
/// used). An RM that is noise (c = 0), or agrees with nobody, gets weight 0 instead of a veto; the vote
/// weight is the log-odds log(p / (1 - p)), the optimal weighted majority under the model.
enum ProbeWeights {
    /// Pairs two RMs must both have opinions on before their agreement counts.
    static let minimumOverlap = 10
    /// Competence is capped below 1 so a weight stays finite.
    static let maximumCompetence = 0.98
    /// A pair is kept when the weighted vote's posterior is at least this.
    static let posterior = 0.9

    /// Each RM's competence c in [0, maximumCompetence] from the probe's scores (prompt, RM, candidate).
    /// With fewer than 3 RMs there is no triad: every RM gets 0.5 (equal weights).
    static func competences(_ scores: [[[Double]]]) -> [Double] {
        let k = scores.first?.count ?? 0
        guard k >= 3 else { return Array(repeating: 0.5, count: k) }
        var agree = Array(repeating: Array(repeating: 0, count: k), count: k)
        var both = agree
        for perRM in scores {
            let n = perRM.first?.count ?? 0
            for i in 0..<n {
                for j in (i + 1)..<max(i + 1, n) {
                    let opinion = perRM.map { $0[i] == $0[j] ? 0 : ($0[i] > $0[j] ? 1 : -1) }
                    for a in 0..<k where opinion[a] != 0 {
                        for b in (a + 1)..<k where opinion[b] != 0 {
                            both[a][b] += 1
                            if opinion[a] == opinion[b] { agree[a][b] += 1 }
                        }
                    }
                }
            }
        }
        func kappa(_ a: Int, _ b: Int) -> Double? {
            let (x, y) = (min(a, b), max(a, b))
            guard both[x][y] >= minimumOverlap else { return nil }
            return 2 * Double(agree[x][y]) / Double(both[x][y]) - 1
        }
        return (0..<k).map { a in
            var estimates: [Double] = []
            for b in 0..<k where b != a {
                for c in (b + 1)..<k where c != a {
                    guard let ab = kappa(a, b), let ac = kappa(a, c), let bc = kappa(b, c), bc > 0.05 else { continue }
                    estimates.append(ab * ac / bc)
                }
            }
            guard !estimates.isEmpty else { return 0 }
            estimates.sort()
            let m = estimates.count
            let median = m % 2 == 1 ? estimates[m / 2] : (estimates[m / 2 - 1] + estimates[m / 2]) / 2
            return min(maximumCompetence, max(0, median).squareRoot())
        }
    }

    static func logOdds(_ competence: Double) -> Double {
        let p = (1 + competence) / 2
        return log(p / (1 - p))
    }

    /// The probe pairs of one prompt, (chosen, rejected): at least two RMs with weight have an
    /// opinion, and the weighted vote's posterior (uniform prior) is at least `posterior`.
    static func weightedPairs(_ perRM: [[Double]], weights: [Double]) -> [(chosen: Int, rejected: Int)] {
        guard let n = perRM.first?.count else { return [] }
        let threshold = log(posterior / (1 - posterior))
        var out: [(Int, Int)] = []
        for i in 0..<n {
            for j in (i + 1)..<max(i + 1, n) {
                var vote = 0.0, voters = 0
                for (s, w) in zip(perRM, weights) where s[i] != s[j] && w > 0 {
                    voters += 1
                    vote += s[i] > s[j] ? w : -w
                }
                guard voters >= 2, abs(vote) >= threshold else { continue }
                out.append(vote > 0 ? (i, j) : (j, i))
            }
        }
        return out
    }
}
