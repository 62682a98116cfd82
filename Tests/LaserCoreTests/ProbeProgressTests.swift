import LaserWire
import StableRandom
import Testing
@testable import LaserCore

/// reward.source probe-progress: the probe (every RM scores the first prompts once), its consensus
/// pairs, the ProbeSet to the trainer, the reward from the probe's losses, and all of it across crashes.
@Suite struct ProbeProgressTests {
    let data = Fixtures.iterations(2, prompts: 40, seed: 11)

    func plan(depth: Int = 1, probeSize: Int = 12, consensus: ProbeConsensus = .unanimous) -> RunPlan {
        var p = Fixtures.plan(depth: depth)
        p.probeConsensus = consensus
        p.rewardSource = .probeProgress
        p.probeSize = probeSize
        p.bandit = BanditOptions(warmStart: .roundRobin, ties: .seeded, firstReward: .neutral)
        return p
    }

    func run(
        _ plan: RunPlan, workers: [(String, UInt32, SimBehaviour)] = [("solo", 1, .good)], seed: UInt64 = 0,
        crashRate: UInt64 = 0, maxCrashes: Int = 0
    ) -> Simulation {
        var sim = Simulation(plan: plan, iterations: data, workers: workers, seed: seed)
        sim.trainerPeer = PeerID([0xEE])
        sim.trainerWindow = 2
        sim.crashRate = crashRate
        sim.maxCrashes = maxCrashes
        sim.run()
        return sim
    }

    /// The definition, written out: a pair counts when two or more RMs score its candidates differently
    /// and all of those put the same one first.
    @Test func consensusPairsMatchTheirDefinition() {
        var rng = SplitMix64(seed: 4)
        for _ in 0..<500 {
            let k = 1 + Int(rng.next() % 4), n = 2 + Int(rng.next() % 4)
            let perRM = (0..<k).map { _ in (0..<n).map { _ in Double(rng.next() % 3) } }
            var expected: [(Int, Int)] = []
            for i in 0..<n {
                for j in (i + 1)..<n {
                    let signs = perRM.map { ($0[i] - $0[j]).sign == .minus ? -1 : ($0[i] == $0[j] ? 0 : 1) }.filter {
                        $0 != 0
                    }
                    if signs.count >= 2 && Set(signs).count == 1 { expected.append(signs[0] > 0 ? (i, j) : (j, i)) }
                }
            }
            let got = Coordinator.consensusPairs(perRM)
            #expect(got.map { [$0.chosen, $0.rejected] } == expected.map { [$0.0, $0.1] }, "\(perRM)")
        }
    }

    @Test func theProbeIsScoredOnceByEveryRMAndTheRewardIsItsLossDecrease() throws {
        let sim = run(plan())
        let summary = try sim.requireSummary()
        let probe = try #require(summary.probe)
        #expect(probe.prompts == 12 && probe.pairs > 0)
        let candidates = data[0].prefix(12).reduce(0) { $0 + $1.candidates.count }
        #expect(probe.rmCalls == 3 * candidates)
        // The probe's calls are counted in iteration 1 beside the batches' own (one RM per batch).
        let batchCalls = data[0].reduce(0) { $0 + $1.candidates.count }
        #expect(summary.iterations[0].rmCalls.values.reduce(0, +) == batchCalls + probe.rmCalls)
        #expect(sim.probeSetsReceived >= 1)
        let set = try #require(sim.probeSeen)
        #expect(set.pairs.count == probe.pairs && set.prompts == 12)
        // Every probe pair is a consensus pair of its prompt under the three simulated RMs.
        for pair in set.pairs {
            let p = try #require(data[0].first { $0.id == pair.promptID })
            let item = ScoreItem(
                promptID: p.id, prompt: p.prompt, candidates: p.candidates.map(\.text), reference: p.reference)
            let perRM = Fixtures.rms.map { Simulation.score(rm: $0.name, item: item) }
            let (c, r) = (
                p.candidates.firstIndex { $0.text == pair.chosen }!,
                p.candidates.firstIndex { $0.text == pair.rejected }!
            )
            #expect(Coordinator.consensusPairs(perRM).contains { $0.chosen == c && $0.rejected == r })
        }
        for b in sim.emitted where !b.pairs.isEmpty {
            let losses = Simulation.probeLosses(Coordinator.message(for: b), probe: set)
            #expect(abs(sim.core.batchLog[b.globalIndex].rawReward! - (losses.before - losses.after)) < 1e-12)
        }
    }

    @Test func theProbeComesBeforeAnyBatchAndLossesWithoutItAreRefused() {
        var sim = Simulation(plan: plan(), iterations: data, workers: [("w", 1, .good)], seed: 0)
        sim.feed(.start)
        sim.feed(
            .message(from: PeerID([0xCC]), .trainerHello(TrainerHello(trainerID: "t", window: 4, softwareVersion: ""))))
        #expect(
            sim.sentToPeers.contains {
                if case .trainerWelcome(let w) = $0.1 { return w.wantsProbeLosses } else { return false }
            })
        sim.feed(
            .message(
                from: sim.workers[0].peer, .hello(Hello(workerID: "w", rewardModels: [], slots: 1, softwareVersion: ""))
            ))
        var steps = 0
        while !sim.emitted.contains(where: { !$0.pairs.isEmpty }) && steps < 20_000 {
            steps += 1
            if let (peer, m) = sim.toWorkers.first {
                sim.toWorkers.removeFirst(); if peer != PeerID([0xCC]) { sim.deliver(m, to: peer) }
            }
        }
        let toTrainer = sim.sentToPeers.filter { $0.0 == PeerID([0xCC]) }.map(\.1)
        let probeAt = toTrainer.firstIndex { if case .probeSet = $0 { return true } else { return false } }
        let batchAt = toTrainer.firstIndex { if case .preferenceBatch = $0 { return true } else { return false } }
        #expect(probeAt != nil && batchAt != nil && probeAt! < batchAt!)
        guard let first = sim.emitted.first(where: { !$0.pairs.isEmpty }) else {
            Issue.record("no batch with pairs"); return
        }
        let before = sim.sentToPeers.count
        sim.feed(
            .message(
                from: PeerID([0xCC]), .batchFeedback(BatchFeedback(globalBatch: UInt64(first.globalIndex), loss: 0.7))))
        let ack = sim.sentToPeers[before...].compactMap {
            if case .feedbackAck(let a) = $0.1 { return a } else { return nil }
        }.first
        #expect(ack?.reason.contains("probe_loss_before, probe_loss_after") == true)
    }

    @Test func aProbeWithoutConsensusStopsTheRunSayingWhatToChange() {
        var p = plan()
        p.rewardModels = [Fixtures.rms[0]]  // one RM: no pair can have two opinions
        var sim = Simulation(plan: p, iterations: data, workers: [("w", 1, .good)], seed: 0)
        sim.trainerPeer = PeerID([0xEE])
        sim.run(maxSteps: 20_000)
        #expect(sim.failure?.contains("gave no consensus pair") == true, "\(sim.failure ?? "no failure")")
        #expect(sim.failureCode == .probeImpossible)
        #expect(sim.emitted.isEmpty)
    }

    /// The determinism matrix and the fault campaign for probe-progress: worker counts, message order,
    /// pipeline depth and coordinator crashes (during the probe too) give the same bytes and bandit state.
    @Test(arguments: [(1, ProbeConsensus.unanimous), (2, .unanimous), (2, .weighted), (2, .balanced)])
    func deterministicAndCrashSafe(depth: Int, consensus: ProbeConsensus) throws {
        let probeSize = consensus == .unanimous ? 12 : 40
        var base = plan(depth: depth, probeSize: probeSize, consensus: consensus)
        if consensus == .weighted {
            // Weights need RMs that agree beyond chance: two more oracles ("oracle..." scores "right..." high).
            base.rewardModels += ["oracle-b", "oracle-c"].map {
                RewardModelDefinition(name: $0, kind: "sim", params: [:])
            }
        }
        let expected = run(base)
        _ = try expected.requireSummary()
        if consensus == .weighted {
            #expect(
                expected.logs.contains { $0.hasPrefix("probe: RM competences estimated") }
                    && !expected.logs.contains { $0.contains("using the unanimous rule") },
                "\(expected.logs.filter { $0.hasPrefix("probe") })")
        }
        if consensus == .balanced {
            #expect(expected.logs.contains { $0.hasPrefix("probe: pairs each RM gives on the probe prompts") })
        }
        var crashes = 0
        for seed in 0..<12 as Range<UInt64> {
            let sim = run(
                base, workers: [("a", 2, .good), ("b", 1, .good)], seed: seed,
                crashRate: seed % 3 == 0 ? 0 : 10, maxCrashes: 5)
            _ = try sim.requireSummary()
            crashes += sim.crashes
            #expect(sim.output == expected.output, "seed \(seed)")
            #expect(sim.core.selector == expected.core.selector, "seed \(seed)")
            #expect(sim.probeSeen == expected.probeSeen, "seed \(seed)")
            #expect(sim.conflicts == 0)
        }
        #expect(crashes > 0)
    }

    /// reward.probe_consensus weighted: the competence of each RM is the triad estimate from agreement
    /// counts, checked against a brute-force computation; noise gets no weight and no veto.
    @Test func weightedConsensusTrustsRMsByTheirAgreementAndIgnoresNoise() {
        var rng = SplitMix64(seed: 9)
        func uniform() -> Double { Double(rng.next() % 1_000_000) / 1_000_000 }
        // 80 prompts of 6 candidates; a true quality per candidate; RMs see it with less or more noise.
        var scores: [[[Double]]] = []
        for _ in 0..<80 {
            let truth = (0..<6).map { _ in uniform() }
            let sharp = truth.map { $0 + 0.05 * uniform() }
            let fair = truth.map { $0 + 0.4 * uniform() }
            let fairToo = truth.map { $0 + 0.4 * uniform() }
            let noise = truth.map { _ in uniform() }
            scores.append([sharp, fair, fairToo, noise])
        }
        let c = ProbeWeights.competences(scores)
        #expect(c[0] > c[1] && c[0] > c[2] && c[1] > c[3] + 0.3 && c[2] > c[3] + 0.3, "\(c)")
        #expect(c[3] < 0.2, "noise: \(c[3])")
        // The triad formula against a brute-force count, with three RMs (one triad each).
        let three = scores.map { Array($0.prefix(3)) }
        func kappa(_ a: Int, _ b: Int) -> Double {
            var agree = 0, both = 0
            for perRM in three {
                for i in 0..<6 {
                    for j in (i + 1)..<6 {
                        let x = perRM[a][i] - perRM[a][j], y = perRM[b][i] - perRM[b][j]
                        guard x != 0 && y != 0 else { continue }
                        both += 1
                        if (x > 0) == (y > 0) { agree += 1 }
                    }
                }
            }
            return 2 * Double(agree) / Double(both) - 1
        }
        let reference = [
            kappa(0, 1) * kappa(0, 2) / kappa(1, 2), kappa(0, 1) * kappa(1, 2) / kappa(0, 2),
            kappa(0, 2) * kappa(1, 2) / kappa(0, 1),
        ]
        .map { min(ProbeWeights.maximumCompetence, max(0, $0).squareRoot()) }
        let got = ProbeWeights.competences(three)
        #expect(zip(got, reference).allSatisfy { abs($0 - $1) < 1e-12 }, "\(got) vs \(reference)")
        // A pair the trusted RMs agree on is kept though the noise RM disagrees (unanimity would drop it).
        let weights = c.map(ProbeWeights.logOdds)
        let prompt: [[Double]] = [[2, 1], [2, 1], [2, 1], [1, 2]]
        #expect(ProbeWeights.weightedPairs(prompt, weights: weights).map { [$0.chosen, $0.rejected] } == [[0, 1]])
        #expect(Coordinator.consensusPairs(prompt).isEmpty)
        // Two weak voters that disagree leave the pair out.
        #expect(ProbeWeights.weightedPairs([[2, 1], [1, 2]], weights: [1, 1]).isEmpty)
    }

    /// reward.probe_consensus balanced, against its definition written out: each RM's own pairs (the
    /// run's pair policy) on every probe prompt; m = the smallest count among RMs with at least
    /// minimumPairs; exactly m distinct pairs of each such RM, none of the others; seeded.
    @Test func balancedProbeTakesTheSameNumberOfEachRMsOwnPairs() {
        var rng = SplitMix64(seed: 21)
        let policy = PairPolicy(mode: .bestVsRest, maxPairs: 3)
        var sampledDiffers = false
        for round in 0..<200 {
            let k = 1 + Int(rng.next() % 4), prompts = 1 + Int(rng.next() % 12)
            // Per RM a share of ties, so some RMs give few pairs (below the minimum) and some many.
            let levels = (0..<k).map { _ in 1 + Int(rng.next() % 6) }
            let aligned = (0..<prompts).map { _ in
                let n = 2 + Int(rng.next() % 4)
                return (0..<k).map { a in (0..<n).map { _ in Double(rng.next() % UInt64(levels[a])) } }
            }
            var own: [[[Int]]] = Array(repeating: [], count: k)
            for (offset, perRM) in aligned.enumerated() {
                for a in 0..<k {
                    own[a] += policy.pairs(scores: perRM[a]).map { [offset, $0.chosen, $0.rejected] }
                }
            }
            let eligible = own.map(\.count).filter { $0 >= ProbeBalance.minimumPairs }
            let picked = ProbeBalance.pairs(aligned, policy: policy, seed: UInt64(round))
            #expect(picked.counts == own.map(\.count))
            guard let m = eligible.min() else {
                #expect(picked.pairs.isEmpty && picked.perRM == 0)
                continue
            }
            #expect(picked.perRM == m)
            for a in 0..<k {
                let mine = picked.pairs.filter { $0.rm == a }.map { [$0.offset, $0.chosen, $0.rejected] }
                if own[a].count < ProbeBalance.minimumPairs {
                    #expect(mine.isEmpty)
                    continue
                }
                #expect(mine.count == m && Set(mine).count == m)
                #expect(mine.allSatisfy { own[a].contains($0) })
                if own[a].count > m && mine != Array(own[a].prefix(m)) { sampledDiffers = true }
            }
            let again = ProbeBalance.pairs(aligned, policy: policy, seed: UInt64(round))
            #expect(again.pairs.map { [$0.offset, $0.rm, $0.chosen, $0.rejected] } == picked.pairs.map {
                [$0.offset, $0.rm, $0.chosen, $0.rejected]
            })
        }
        // The sample is a seeded draw, not the first m.
        #expect(sampledDiffers)
    }
}
