import LaserWire

/// The trainer endpoint: batches out in order, losses back, the loss as the bandit's reward.
///
/// Delivery to the trainer is at least once (a batch whose loss was not yet recorded is sent again to
/// the next trainer after a trainer or coordinator restart); the reward is applied exactly once (a
/// loss is journaled before it is acknowledged, and a second loss for the same batch is refused).
extension Coordinator {
    mutating func registerTrainer(_ hello: TrainerHello, peer: PeerID, now: Instant, _ actions: inout [CoordinatorAction]) {
        guard !hello.trainerID.isEmpty, hello.window >= 1 else {
            let reason = hello.trainerID.isEmpty ? "trainer_id is empty" : "window must be at least 1"
            actions.append(.log(.warning, "rejected trainer \(peer): \(reason)"))
            actions.append(.send(to: peer, .reject(reason: reason)))
            return
        }
        if let old = trainer, old.peer != peer {
            actions.append(.log(.warning, "trainer \(old.trainerID) replaced by \(hello.trainerID); \(old.sent.count) batch(es) without a loss go to the new one"))
        }
        trainer = Trainer(peer: peer, trainerID: hello.trainerID, window: Int(hello.window), lastHeard: now, lastSent: now)
        actions.append(.log(.info, "trainer \(hello.trainerID) connected (window \(hello.window))"))
        actions.append(.send(to: peer, .trainerWelcome(TrainerWelcome(
            coordinatorID: plan.coordinatorID, heartbeatIntervalMs: UInt32(clamping: plan.scheduler.heartbeatIntervalMs),
            liveness: plan.scheduler.liveness, wantsLoss: plan.rewardSource == .trainerLoss))))
        deliverToTrainer(&actions)
    }

    /// Sends the batches that wait for a loss, oldest first, up to the trainer's window.
    mutating func deliverToTrainer(_ actions: inout [CoordinatorAction]) {
        guard var t = trainer, plan.rewardSource == .trainerLoss else { return }
        for g in awaitingLoss.keys.sorted() where !t.sent.contains(g) && t.sent.count < t.window {
            t.sent.insert(g)
            actions.append(.send(to: t.peer, .preferenceBatch(Self.message(for: awaitingLoss[g]!.batch))))
        }
        trainer = t
    }

    /// In label-reward runs a connected trainer gets each batch as it is emitted; nothing waits for it.
    mutating func streamToTrainer(_ batch: EmittedBatch, _ actions: inout [CoordinatorAction]) {
        guard let t = trainer, plan.rewardSource != .trainerLoss, !batch.pairs.isEmpty else { return }
        actions.append(.send(to: t.peer, .preferenceBatch(Self.message(for: batch))))
    }

    static func message(for b: EmittedBatch) -> PreferenceBatch {
        PreferenceBatch(
            globalBatch: UInt64(b.globalIndex), iteration: UInt32(b.iteration), batch: UInt32(b.batch), rewardModel: b.rm,
            pairs: b.pairs.map {
                TrainerPair(prompt: $0.prompt, chosen: $0.chosen, rejected: $0.rejected, chosenScore: $0.chosenScore,
                            rejectedScore: $0.rejectedScore, promptID: $0.promptID)
            },
            path: b.relativePath)
    }

    /// A loss from the trainer (or from `laser feedback`): validated, journaled, acknowledged.
    mutating func receiveLoss(_ f: BatchFeedback, from peer: PeerID, _ actions: inout [CoordinatorAction]) {
        var global = Int(clamping: f.globalBatch)
        if f.iteration > 0 {
            guard let hit = batchLog.first(where: { $0.iteration == Int(f.iteration) && $0.batch == Int(f.batch) }) else {
                refuseLoss(f, global: -1, "batch \(f.iteration)/\(f.batch) has not been emitted (yet)", peer, &actions)
                return
            }
            global = hit.globalIndex
        }
        guard plan.rewardSource == .trainerLoss else {
            refuseLoss(f, global: global, "this run's reward is \(plan.rewardSource.rawValue); it takes no losses (set reward.source: trainer-loss)", peer, &actions)
            return
        }
        guard f.loss.isFinite else {
            refuseLoss(f, global: global, "loss \(f.loss) is not a finite number; report the batch again with a finite loss", peer, &actions)
            return
        }
        guard awaitingLoss[global] != nil else {
            let reason: String
            if global >= nextToEmit || global < 0 { reason = "batch \(global) has not been emitted (yet)" }
            else if batchLog[global].pairs == 0 { reason = "batch \(global) has no pairs; no loss is expected for it" }
            else { reason = "batch \(global) already has a loss (\(batchLog[global].loss.map { "\($0)" } ?? "?")); a batch is rewarded once" }
            refuseLoss(f, global: global, reason, peer, &actions)
            return
        }
        acceptLoss(f.loss, batch: global, journaled: false, &actions)
        actions.append(.send(to: peer, .feedbackAck(FeedbackAck(globalBatch: UInt64(global), accepted: true, reason: ""))))
    }

    mutating func refuseLoss(_ f: BatchFeedback, global: Int, _ reason: String, _ peer: PeerID, _ actions: inout [CoordinatorAction]) {
        summary.counters.lossesRejected += 1
        if Self.worthLogging(summary.counters.lossesRejected) {
            actions.append(.log(.warning, "refused a loss from \(peer): \(reason)"))
        }
        actions.append(.send(to: peer, .feedbackAck(FeedbackAck(globalBatch: UInt64(max(global, 0)), accepted: false, reason: reason))))
    }

    /// Records the loss as the batch's feedback (applied in batch order by `advance`).
    mutating func acceptLoss(_ loss: Double, batch g: Int, journaled: Bool, _ actions: inout [CoordinatorAction]) {
        guard let pending = awaitingLoss.removeValue(forKey: g) else { return }
        // Every unit that produced pairs shares the batch's loss (the trainer reports one per batch).
        feedback[g] = (pendingUpdates.removeValue(forKey: g) ?? []) + pending.updates.map { .reward(raw: -loss, arm: $0.arm, context: $0.context, probability: $0.probability) }
        if !journaled { actions.append(.journal(.feedback(batch: g, loss: loss), sync: true)) }
        batchLog[g].loss = loss
        batchLog[g].rawReward = -loss
        trainer?.sent.remove(g)
        summary.counters.lossesAccepted += 1
        deliverToTrainer(&actions)
    }

    mutating func trainerTick(now: Instant, _ actions: inout [CoordinatorAction]) {
        guard let t = trainer else { return }
        let interval = plan.scheduler.heartbeatIntervalMs
        let deadAfter = interval * UInt64(plan.scheduler.liveness)
        if now.milliseconds(since: t.lastHeard) > Double(deadAfter) {
            actions.append(.log(.warning, "trainer \(t.trainerID) silent for more than \(deadAfter) ms; its \(t.sent.count) batch(es) without a loss go to the next trainer that connects"))
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
