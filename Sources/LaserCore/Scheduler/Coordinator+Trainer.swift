import LaserWire

/// The trainer endpoint: batches out in order, losses back, the loss as the bandit's reward.
///
/// Delivery to the trainer is at least once (a batch whose loss was not yet recorded is sent again to
/// the next trainer after a trainer or coordinator restart); the reward is applied exactly once (a
/// loss is journaled before it is acknowledged, and a second loss for the same batch is refused).
extension Coordinator {
    mutating func registerTrainer(
        _ hello: TrainerHello, peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]
    ) {
        if let problem = PeerText.identifierProblem(hello.trainerID, what: "trainer_id", maxBytes: Self.maxIDBytes) {
            refuseHello(peer, problem, &actions)
            return
        }
        guard hello.window >= 1 else {
            refuseHello(peer, "window must be at least 1", &actions)
            return
        }
        let id = PeerText.printable(hello.trainerID)
        if let old = trainer, old.peer != peer {
            // One trainer at a time, and a live one keeps the role: another connection is refused for now
            // (it retries), so nobody takes a live trainer's batches. A silent one is replaced.
            let retry = plan.scheduler.deadAfterMs
            if now.milliseconds(since: old.lastHeard) <= Double(retry) {
                refuseHello(
                    peer,
                    "trainer '\(PeerText.printable(old.trainerID))' is connected and alive; one trainer at a time (retrying in \(retry) ms)",
                    retryAfterMs: UInt32(clamping: retry), &actions)
                return
            }
            actions.append(
                .log(
                    .warning,
                    "trainer \(PeerText.printable(old.trainerID)) (silent) replaced by \(id); \(old.sent.count) batch(es) without a loss go to the new one"
                ))
        }
        trainer = Trainer(
            peer: peer, trainerID: hello.trainerID, window: Int(hello.window), lastHeard: now, lastSent: now)
        actions.append(.log(.info, "trainer \(id) connected (window \(hello.window))"))
        actions.append(
            .send(
                to: peer,
                .trainerWelcome(
                    TrainerWelcome(
                        coordinatorID: plan.coordinatorID,
                        heartbeatIntervalMs: UInt32(clamping: plan.scheduler.heartbeatIntervalMs),
                        liveness: plan.scheduler.liveness, wantsLoss: plan.rewardSource.fromTrainer,
                        wantsLossAfter: plan.rewardSource == .predictionGain,
                        wantsProbeLosses: plan.rewardSource == .probeProgress))))
        // The probe comes before any batch, once per session (a new trainer has not seen it).
        if let set = probeSet { actions.append(.send(to: peer, .probeSet(set))) }
        deliverToTrainer(&actions)
    }

    /// Sends the batches that wait for a loss, oldest first, up to the trainer's window.
    mutating func deliverToTrainer(_ actions: inout [CoordinatorAction]) {
        guard var t = trainer, plan.rewardSource.fromTrainer, !probePending else { return }
        for g in awaitingLoss.keys.sorted() where !t.sent.contains(g) && t.sent.count < t.window {
            t.sent.insert(g)
            actions.append(.send(to: t.peer, .preferenceBatch(Self.message(for: awaitingLoss[held: g].batch))))
        }
        trainer = t
    }

    /// In label-reward runs a connected trainer gets each batch as it is emitted; nothing waits for it.
    mutating func streamToTrainer(_ batch: EmittedBatch, _ actions: inout [CoordinatorAction]) {
        guard let t = trainer, !plan.rewardSource.fromTrainer, !batch.pairs.isEmpty else { return }
        actions.append(.send(to: t.peer, .preferenceBatch(Self.message(for: batch))))
    }

    static func message(for b: EmittedBatch) -> PreferenceBatch {
        PreferenceBatch(
            globalBatch: UInt64(b.globalIndex), iteration: UInt32(b.iteration), batch: UInt32(b.batch),
            rewardModel: b.rm,
            pairs: b.pairs.map {
                TrainerPair(
                    prompt: $0.prompt, chosen: $0.chosen, rejected: $0.rejected, chosenScore: $0.chosenScore,
                    rejectedScore: $0.rejectedScore, promptID: $0.promptID)
            },
            path: b.relativePath)
    }

    /// A loss from the trainer (`laser feedback` registers as one too): validated, journaled, acknowledged.
    /// Only the registered trainer's connection may report, and only for batches it was sent.
    mutating func receiveLoss(_ f: BatchFeedback, from peer: PeerID, _ actions: inout [CoordinatorAction]) {
        var global = Int(clamping: f.globalBatch)
        guard let t = trainer, t.peer == peer else {
            refuseLoss(
                f, global: global,
                "only the registered trainer reports losses: send TrainerHello first (a connected, live trainer keeps the role)",
                peer, &actions)
            return
        }
        if f.iteration > 0 {
            guard let hit = batchLog.first(where: { $0.iteration == Int(f.iteration) && $0.batch == Int(f.batch) })
            else {
                refuseLoss(f, global: -1, "batch \(f.iteration)/\(f.batch) has not been emitted (yet)", peer, &actions)
                return
            }
            global = hit.globalIndex
        }
        guard plan.rewardSource.fromTrainer else {
            refuseLoss(
                f, global: global,
                "this run's reward is \(plan.rewardSource.rawValue); it takes no losses (set reward.source: trainer-loss or prediction-gain)",
                peer, &actions)
            return
        }
        for (name, value) in [
            ("loss", f.loss), ("loss_after", f.lossAfter), ("probe_loss_before", f.probeLosses?.before),
            ("probe_loss_after", f.probeLosses?.after),
        ] {
            guard let value else { continue }
            guard value.isFinite else {
                refuseLoss(
                    f, global: global,
                    "\(name) \(value) is not a finite number; report the batch again with a finite \(name)", peer,
                    &actions)
                return
            }
            guard abs(value) <= plan.maxAbsLoss else {
                refuseLoss(
                    f, global: global,
                    "\(name) \(value) is outside [-\(plan.maxAbsLoss), \(plan.maxAbsLoss)] (reward.max_abs_loss); report the batch again with the loss of its step",
                    peer, &actions)
                return
            }
        }
        if plan.rewardSource == .predictionGain && f.lossAfter == nil {
            refuseLoss(
                f, global: global,
                "this run's reward is prediction-gain: report the batch's loss before the step (loss) and on the same pairs after it (loss_after, with has_loss_after set)",
                peer, &actions)
            return
        }
        guard awaitingLoss[global] != nil else {
            let reason: String
            if global >= nextToEmit || global < 0 {
                reason = "batch \(global) has not been emitted (yet)"
            } else if batchLog[global].pairs == 0 {
                reason = "batch \(global) has no pairs; no loss is expected for it"
            } else {
                reason =
                    "batch \(global) already has a loss (\(batchLog[global].loss.map { "\($0)" } ?? "?")); a batch is rewarded once"
            }
            refuseLoss(f, global: global, reason, peer, &actions)
            return
        }
        guard t.sent.contains(global) else {
            refuseLoss(
                f, global: global,
                "batch \(global) was not sent to this trainer; report losses only for the PreferenceBatch messages it received",
                peer, &actions)
            return
        }
        if plan.rewardSource == .probeProgress && f.probeLosses == nil {
            refuseLoss(
                f, global: global,
                "this run's reward is probe-progress: report the mean loss on the ProbeSet's pairs just before and just after the step (probe_loss_before, probe_loss_after, with has_probe_losses set)",
                peer, &actions)
            return
        }
        acceptLoss(TrainerReport(f), batch: global, journaled: false, &actions)
        actions.append(
            .send(to: peer, .feedbackAck(FeedbackAck(globalBatch: UInt64(global), accepted: true, reason: ""))))
    }

    mutating func refuseLoss(
        _ f: BatchFeedback, global: Int, _ reason: String, _ peer: PeerID, _ actions: inout [CoordinatorAction]
    ) {
        summary.counters.lossesRejected += 1
        logLimited(.warning, "loss-refused", "refused a loss from \(peer): \(reason)", &actions)
        actions.append(
            .send(
                to: peer,
                .feedbackAck(FeedbackAck(globalBatch: UInt64(max(global, 0)), accepted: false, reason: reason))))
    }

    /// Records the loss as the batch's feedback (applied in batch order by `advance`). The raw reward is
    /// `-loss` (trainer-loss), `loss - loss_after` (prediction-gain: how much the step on this batch
    /// lowered the loss on its own pairs) or `probe_before - probe_after` (probe-progress: how much it
    /// lowered the loss on the probe's consensus pairs).
    mutating func acceptLoss(
        _ report: TrainerReport, batch g: Int, journaled: Bool, _ actions: inout [CoordinatorAction]
    ) {
        let loss = report.loss
        guard let pending = awaitingLoss.removeValue(forKey: g) else { return }
        // Every unit that produced pairs shares the batch's loss (the trainer reports one per batch).
        // New losses outside the bound are refused (receiveLoss); one an earlier version journaled is clamped
        // here, so a resume of such a journal finishes with finite statistics.
        func bounded(_ x: Double) -> Double { min(max(x, -plan.maxAbsLoss), plan.maxAbsLoss) }
        // A journal record without the fields its reward needs (not written by this version) gains nothing.
        let raw: Double
        switch plan.rewardSource {
        case .predictionGain: raw = bounded(loss) - bounded(report.lossAfter ?? loss)
        case .probeProgress: raw = report.probe.map { bounded($0.before) - bounded($0.after) } ?? 0
        default: raw = -bounded(loss)
        }
        feedback[g] =
            (pendingUpdates.removeValue(forKey: g) ?? [])
            + pending.updates.map { .reward(raw: raw, arm: $0.arm, context: $0.context, probability: $0.probability) }
        if !journaled {
            let r = report.record
            actions.append(
                .journal(
                    .feedback(
                        batch: g, loss: loss, lossAfter: r.lossAfter, probeBefore: r.probeBefore,
                        probeAfter: r.probeAfter), sync: true))
        }
        batchLog[g].loss = loss
        batchLog[g].rawReward = raw
        trainer?.sent.remove(g)
        summary.counters.lossesAccepted += 1
        deliverToTrainer(&actions)
    }

    mutating func trainerTick(now: Instant, _ actions: inout [CoordinatorAction]) {
        guard let t = trainer else {
            // Losses are the reward and nobody reports them: say so now and then, not only in the report.
            if plan.rewardSource.fromTrainer, !awaitingLoss.isEmpty,
                lastNoTrainerWarning.map({ now.milliseconds(since: $0) > 30_000 }) ?? true
            {
                lastNoTrainerWarning = now
                actions.append(
                    .log(
                        .warning,
                        "\(awaitingLoss.count) batch(es) wait for the trainer's loss (reward.source: trainer-loss) and no trainer is connected; the run cannot finish without one. Connect one (clients/python, laser feedback), or use another reward.source"
                    ))
            }
            return
        }
        let interval = plan.scheduler.heartbeatIntervalMs
        let deadAfter = interval * UInt64(plan.scheduler.liveness)
        if now.milliseconds(since: t.lastHeard) > Double(deadAfter) {
            actions.append(
                .log(
                    .warning,
                    "trainer \(PeerText.printable(t.trainerID)) silent for more than \(deadAfter) ms; its \(t.sent.count) batch(es) without a loss go to the next trainer that connects"
                ))
            trainer = nil
        } else if now.milliseconds(since: t.lastSent) >= Double(interval) {
            trainer!.lastSent = now
            actions.append(.send(to: t.peer, .heartbeat))
        }
    }
}

extension EmittedBatch {
    /// Where the batch's file lives inside the run directory.
    public var relativePath: String {
        "iterations/" + String(iteration).leftPadded(4) + "/batch-" + String(batch).leftPadded(4) + ".jsonl"
    }
}
