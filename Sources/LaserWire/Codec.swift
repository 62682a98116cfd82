import CProtobufC
import CProtoCheck
import LaserProtoC
#if canImport(Glibc)
import Glibc
#endif

/// Encodes and decodes `WireMessage`s with protobuf-c. No C pointer leaves this file.
public enum WireCodec {
    /// Serialises a message into one Envelope.
    public static func encode(_ message: WireMessage) -> [UInt8] {
        withEnvelope(message) { env in
            let size = laser__v1__envelope__get_packed_size(env)
            return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                let written = laser__v1__envelope__pack(env, buffer.baseAddress)
                precondition(written == size, "protobuf-c packed \(written) bytes, expected \(size)")
                count = size
            }
        }
    }

    /// The same bytes as `encode`, in memory from malloc that the caller frees (or hands to
    /// `ZMQSocket.send(_:thenMalloced:)`, which sends them without a copy).
    public static func encodeMalloced(_ message: WireMessage) -> UnsafeMutableRawBufferPointer {
        withEnvelope(message) { env in
            let size = laser__v1__envelope__get_packed_size(env)
            let base = malloc(max(size, 1))!
            let written = laser__v1__envelope__pack(env, base.assumingMemoryBound(to: UInt8.self))
            precondition(written == size, "protobuf-c packed \(written) bytes, expected \(size)")
            return UnsafeMutableRawBufferPointer(start: base, count: size)
        }
    }

    /// Builds the message's Envelope and runs `body` on it while everything it points at is alive.
    private static func withEnvelope<R>(_ message: WireMessage, _ body: (UnsafePointer<Laser__V1__Envelope>) -> R) -> R
    {
        let arena = Arena()
        var env = Laser__V1__Envelope()
        laser__v1__envelope__init(&env)
        env.protocol_version = laserProtocolVersion
        switch message {
        case .hello(let h):
            env.body_case = LASER__V1__ENVELOPE__BODY_HELLO
            env.hello = build(h, arena)
        case .welcome(let w):
            env.body_case = LASER__V1__ENVELOPE__BODY_WELCOME
            env.welcome = build(w, arena)
        case .reject(let reason, let retryAfterMs):
            let m = arena.make(Laser__V1__Reject.self, laser__v1__reject__init)
            m.pointee.reason = arena.string(reason)
            m.pointee.retry_after_ms = retryAfterMs
            env.body_case = LASER__V1__ENVELOPE__BODY_REJECT
            env.reject = m
        case .heartbeat:
            let m = arena.make(Laser__V1__Heartbeat.self, laser__v1__heartbeat__init)
            env.body_case = LASER__V1__ENVELOPE__BODY_HEARTBEAT
            env.heartbeat = m
        case .scoreTask(let t):
            env.body_case = LASER__V1__ENVELOPE__BODY_SCORE_TASK
            env.score_task = build(t, arena)
        case .scoreResult(let r):
            env.body_case = LASER__V1__ENVELOPE__BODY_SCORE_RESULT
            env.score_result = build(r, arena)
        case .disconnect(let reason):
            let m = arena.make(Laser__V1__Disconnect.self, laser__v1__disconnect__init)
            m.pointee.reason = arena.string(reason)
            env.body_case = LASER__V1__ENVELOPE__BODY_DISCONNECT
            env.disconnect = m
        case .shutdown(let reason):
            let m = arena.make(Laser__V1__Shutdown.self, laser__v1__shutdown__init)
            m.pointee.reason = arena.string(reason)
            env.body_case = LASER__V1__ENVELOPE__BODY_SHUTDOWN
            env.shutdown = m
        case .loadRM(let l):
            env.body_case = LASER__V1__ENVELOPE__BODY_LOAD_RM
            env.load_rm = build(l, arena)
        case .rmState(let r):
            env.body_case = LASER__V1__ENVELOPE__BODY_RM_STATE
            env.rm_state = build(r, arena)
        case .trainerHello(let h):
            env.body_case = LASER__V1__ENVELOPE__BODY_TRAINER_HELLO
            env.trainer_hello = build(h, arena)
        case .trainerWelcome(let w):
            env.body_case = LASER__V1__ENVELOPE__BODY_TRAINER_WELCOME
            env.trainer_welcome = build(w, arena)
        case .preferenceBatch(let b):
            env.body_case = LASER__V1__ENVELOPE__BODY_PREFERENCE_BATCH
            env.preference_batch = build(b, arena)
        case .probeSet(let p):
            env.body_case = LASER__V1__ENVELOPE__BODY_PROBE_SET
            env.probe_set = build(p, arena)
        case .batchFeedback(let f):
            env.body_case = LASER__V1__ENVELOPE__BODY_BATCH_FEEDBACK
            env.batch_feedback = build(f, arena)
        case .feedbackAck(let a):
            env.body_case = LASER__V1__ENVELOPE__BODY_FEEDBACK_ACK
            env.feedback_ack = build(a, arena)
        }
        // The arena (and the texts it keeps) back every pointer in `env`: alive until packed.
        return withExtendedLifetime(arena) { withUnsafePointer(to: &env) { body($0) } }
    }

    // One builder per message with fields: its protobuf-c struct, allocated in the arena.

    private static func build(_ h: Hello, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__Hello> {
        let m = arena.make(Laser__V1__Hello.self, laser__v1__hello__init)
        m.pointee.worker_id = arena.string(h.workerID)
        (m.pointee.n_reward_models, m.pointee.reward_models) = arena.strings(h.rewardModels)
        m.pointee.slots = h.slots
        m.pointee.software_version = arena.string(h.softwareVersion)
        (m.pointee.n_labels, m.pointee.labels) = arena.strings(h.labels)
        m.pointee.json_candidates = h.acceptsJSONCandidates ? 1 : 0
        m.pointee.rm_capacity = h.rmCapacity
        (m.pointee.n_loaded, m.pointee.loaded) = arena.strings(h.loaded)
        m.pointee.memory_budget = h.memoryBudget
        let names = h.rmMemory.keys.sorted()
        let weights = arena.array(UnsafeMutablePointer<Laser__V1__RMWeight>?.self, count: names.count)
        for (i, name) in names.enumerated() {
            let w = arena.make(Laser__V1__RMWeight.self, laser__v1__rmweight__init)
            w.pointee.name = arena.string(name)
            w.pointee.memory = h.rmMemory[name]!
            weights[i] = w
        }
        m.pointee.n_rm_memory = names.count
        m.pointee.rm_memory = weights
        return m
    }

    private static func build(_ w: Welcome, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__Welcome> {
        let m = arena.make(Laser__V1__Welcome.self, laser__v1__welcome__init)
        m.pointee.coordinator_id = arena.string(w.coordinatorID)
        m.pointee.heartbeat_interval_ms = w.heartbeatIntervalMs
        m.pointee.liveness = w.liveness
        m.pointee.run_seed = w.runSeed
        let specs = arena.array(UnsafeMutablePointer<Laser__V1__RewardModelSpec>?.self, count: w.rewardModels.count)
        for (i, def) in w.rewardModels.enumerated() {
            let s = arena.make(Laser__V1__RewardModelSpec.self, laser__v1__reward_model_spec__init)
            s.pointee.name = arena.string(def.name)
            s.pointee.kind = arena.string(def.kind)
            let keys = def.params.keys.sorted()  // sorted: identical bytes for identical specs
            let params = arena.array(UnsafeMutablePointer<Laser__V1__Param>?.self, count: keys.count)
            for (j, key) in keys.enumerated() {
                let p = arena.make(Laser__V1__Param.self, laser__v1__param__init)
                p.pointee.key = arena.string(key)
                p.pointee.value = arena.string(def.params[key]!)
                params[j] = p
            }
            s.pointee.n_params = keys.count
            s.pointee.params = params
            specs[i] = s
        }
        m.pointee.n_reward_models = w.rewardModels.count
        m.pointee.reward_models = specs
        return m
    }

    private static func build(_ t: ScoreTask, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__ScoreTask> {
        let m = arena.make(Laser__V1__ScoreTask.self, laser__v1__score_task__init)
        m.pointee.task_id = t.taskID
        m.pointee.attempt = t.attempt
        m.pointee.reward_model = arena.string(t.rewardModel)
        m.pointee.iteration = t.iteration
        let items = arena.array(UnsafeMutablePointer<Laser__V1__ScoreItem>?.self, count: t.items.count)
        for (i, item) in t.items.enumerated() {
            let s = arena.make(Laser__V1__ScoreItem.self, laser__v1__score_item__init)
            s.pointee.prompt_id = arena.string(item.promptID)
            s.pointee.prompt = arena.string(item.prompt)
            if t.candidatesAsJSON {
                // No copy: protobuf-c packs straight from the texts' storage (kept by the arena).
                let candidates = item.candidateTexts
                let texts = arena.array(ProtobufCBinaryData.self, count: candidates.count)
                for (j, text) in candidates.enumerated() {
                    arena.keep(text.storage)
                    texts[j] = ProtobufCBinaryData(
                        len: text.escapedCount,
                        data: UnsafeMutablePointer(
                            mutating: text.escapedPointer.assumingMemoryBound(to: UInt8.self)))
                }
                s.pointee.n_candidates_json = candidates.count
                s.pointee.candidates_json = texts
            } else {
                (s.pointee.n_candidates, s.pointee.candidates) = arena.strings(item.candidates)
            }
            if let reference = item.reference {
                s.pointee.reference = arena.string(reference)
                s.pointee.has_reference = 1
            }
            items[i] = s
        }
        m.pointee.n_items = t.items.count
        m.pointee.items = items
        return m
    }

    private static func build(_ r: ScoreResult, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__ScoreResult> {
        let m = arena.make(Laser__V1__ScoreResult.self, laser__v1__score_result__init)
        m.pointee.task_id = r.taskID
        m.pointee.attempt = r.attempt
        m.pointee.elapsed_us = r.elapsedMicros
        switch r.outcome {
        case .success(let perItem):
            let s = arena.make(Laser__V1__ScoreSuccess.self, laser__v1__score_success__init)
            let items = arena.array(UnsafeMutablePointer<Laser__V1__ItemScores>?.self, count: perItem.count)
            for (i, scores) in perItem.enumerated() {
                let it = arena.make(Laser__V1__ItemScores.self, laser__v1__item_scores__init)
                let values = arena.array(Double.self, count: scores.count)
                for (j, v) in scores.enumerated() { values[j] = v }
                it.pointee.n_scores = scores.count
                it.pointee.scores = values
                items[i] = it
            }
            s.pointee.n_items = perItem.count
            s.pointee.items = items
            m.pointee.outcome_case = LASER__V1__SCORE_RESULT__OUTCOME_SUCCESS
            m.pointee.success = s
        case .failure(let text):
            let f = arena.make(Laser__V1__ScoreFailure.self, laser__v1__score_failure__init)
            f.pointee.message = arena.string(text)
            m.pointee.outcome_case = LASER__V1__SCORE_RESULT__OUTCOME_FAILURE
            m.pointee.failure = f
        }
        return m
    }

    private static func build(_ l: LoadRM, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__LoadRM> {
        let m = arena.make(Laser__V1__LoadRM.self, laser__v1__load_rm__init)
        m.pointee.request_id = l.requestID
        (m.pointee.n_load, m.pointee.load) = arena.strings(l.load)
        (m.pointee.n_unload, m.pointee.unload) = arena.strings(l.unload)
        return m
    }

    private static func build(_ r: RMState, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__RMState> {
        let m = arena.make(Laser__V1__RMState.self, laser__v1__rmstate__init)
        m.pointee.request_id = r.requestID
        (m.pointee.n_loaded, m.pointee.loaded) = arena.strings(r.loaded)
        let loads = arena.array(UnsafeMutablePointer<Laser__V1__RMLoad>?.self, count: r.loads.count)
        for (i, load) in r.loads.enumerated() {
            let one = arena.make(Laser__V1__RMLoad.self, laser__v1__rmload__init)
            one.pointee.name = arena.string(load.name)
            one.pointee.load_ms = load.loadMs
            one.pointee.error = arena.string(load.error)
            loads[i] = one
        }
        m.pointee.n_loads = r.loads.count
        m.pointee.loads = loads
        return m
    }

    private static func build(_ h: TrainerHello, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__TrainerHello> {
        let m = arena.make(Laser__V1__TrainerHello.self, laser__v1__trainer_hello__init)
        m.pointee.trainer_id = arena.string(h.trainerID)
        m.pointee.window = h.window
        m.pointee.software_version = arena.string(h.softwareVersion)
        return m
    }

    private static func build(_ w: TrainerWelcome, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__TrainerWelcome> {
        let m = arena.make(Laser__V1__TrainerWelcome.self, laser__v1__trainer_welcome__init)
        m.pointee.coordinator_id = arena.string(w.coordinatorID)
        m.pointee.heartbeat_interval_ms = w.heartbeatIntervalMs
        m.pointee.liveness = w.liveness
        m.pointee.wants_loss = w.wantsLoss ? 1 : 0
        m.pointee.wants_loss_after = w.wantsLossAfter ? 1 : 0
        m.pointee.wants_probe_losses = w.wantsProbeLosses ? 1 : 0
        return m
    }

    private static func build(_ b: PreferenceBatch, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__PreferenceBatch> {
        let m = arena.make(Laser__V1__PreferenceBatch.self, laser__v1__preference_batch__init)
        m.pointee.global_batch = b.globalBatch
        m.pointee.iteration = b.iteration
        m.pointee.batch = b.batch
        m.pointee.reward_model = arena.string(b.rewardModel)
        m.pointee.path = arena.string(b.path)
        m.pointee.n_pairs = b.pairs.count
        m.pointee.pairs = encodePairs(b.pairs, arena)
        return m
    }

    private static func build(_ p: ProbeSet, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__ProbeSet> {
        let m = arena.make(Laser__V1__ProbeSet.self, laser__v1__probe_set__init)
        m.pointee.prompts = p.prompts
        m.pointee.n_pairs = p.pairs.count
        m.pointee.pairs = encodePairs(p.pairs, arena)
        return m
    }

    private static func build(_ f: BatchFeedback, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__BatchFeedback> {
        let m = arena.make(Laser__V1__BatchFeedback.self, laser__v1__batch_feedback__init)
        m.pointee.global_batch = f.globalBatch
        m.pointee.loss = f.loss
        m.pointee.iteration = f.iteration
        m.pointee.batch = f.batch
        if let after = f.lossAfter {
            m.pointee.loss_after = after
            m.pointee.has_loss_after = 1
        }
        if let probe = f.probeLosses {
            m.pointee.probe_loss_before = probe.before
            m.pointee.probe_loss_after = probe.after
            m.pointee.has_probe_losses = 1
        }
        return m
    }

    private static func build(_ a: FeedbackAck, _ arena: Arena) -> UnsafeMutablePointer<Laser__V1__FeedbackAck> {
        let m = arena.make(Laser__V1__FeedbackAck.self, laser__v1__feedback_ack__init)
        m.pointee.global_batch = a.globalBatch
        m.pointee.accepted = a.accepted ? 1 : 0
        m.pointee.reason = arena.string(a.reason)
        return m
    }

    /// Decodes one Envelope. Throws `WireError` for anything that is not a well-formed message of
    /// this protocol version (protobuf-c's unpack reports every failure the same way, as NULL).
    public static func decode(_ bytes: [UInt8]) throws -> WireMessage {
        // protobuf-c cuts a string at its first NUL ("ghost\0hidden" would read as "ghost"): such a
        // message is malformed, not quietly something else.
        let check = bytes.withUnsafeBufferPointer { buf in
            withUnsafePointer(to: laser__v1__envelope__descriptor) {
                laser_proto_check_strings($0, buf.baseAddress, buf.count)
            }
        }
        if check == 1 {
            throw WireError("a string field holds a NUL byte (\(bytes.count) bytes); strings must not contain NUL")
        }
        if check != 0 {
            throw WireError("not a laser protobuf Envelope (\(bytes.count) bytes are not well-formed protobuf)")
        }
        let unpacked = bytes.withUnsafeBufferPointer { buf -> UnsafeMutablePointer<Laser__V1__Envelope>? in
            // protobuf-c wants a non-NULL pointer even for zero bytes.
            guard let base = buf.baseAddress else {
                var empty: UInt8 = 0
                return laser__v1__envelope__unpack(nil, 0, &empty)
            }
            return laser__v1__envelope__unpack(nil, buf.count, base)
        }
        guard let env = unpacked else {
            throw WireError("not a laser protobuf Envelope (\(bytes.count) bytes do not decode)")
        }
        defer { laser__v1__envelope__free_unpacked(env, nil) }
        let e = env.pointee
        guard e.protocol_version == laserProtocolVersion else {
            throw WireError(
                "unsupported protocol version \(e.protocol_version) (this build speaks \(laserProtocolVersion)); run the same laser version on every node"
            )
        }
        switch e.body_case {
        case LASER__V1__ENVELOPE__BODY_HELLO:
            let h = e.hello!.pointee
            var hello = Hello(
                workerID: try text(h.worker_id, "Hello.worker_id"),
                rewardModels: try texts(h.n_reward_models, h.reward_models, "Hello.reward_models"),
                slots: h.slots,
                softwareVersion: try text(h.software_version, "Hello.software_version"),
                labels: try texts(h.n_labels, h.labels, "Hello.labels"),
                acceptsJSONCandidates: h.json_candidates != 0, rmCapacity: h.rm_capacity,
                loaded: try texts(h.n_loaded, h.loaded, "Hello.loaded"))
            hello.memoryBudget = h.memory_budget
            for i in 0..<h.n_rm_memory {
                let w = h.rm_memory[i]!.pointee
                hello.rmMemory[try text(w.name, "RMWeight.name")] = w.memory
            }
            return .hello(hello)
        case LASER__V1__ENVELOPE__BODY_WELCOME:
            let w = e.welcome!.pointee
            var defs: [RewardModelDefinition] = []
            for i in 0..<w.n_reward_models {
                let s = w.reward_models[i]!.pointee
                var params: [String: String] = [:]
                for j in 0..<s.n_params {
                    let p = s.params[j]!.pointee
                    params[try text(p.key, "Param.key")] = try text(p.value, "Param.value")
                }
                defs.append(
                    RewardModelDefinition(
                        name: try text(s.name, "RewardModelSpec.name"), kind: try text(s.kind, "RewardModelSpec.kind"),
                        params: params))
            }
            return .welcome(
                Welcome(
                    coordinatorID: try text(w.coordinator_id, "Welcome.coordinator_id"),
                    heartbeatIntervalMs: w.heartbeat_interval_ms, liveness: w.liveness,
                    rewardModels: defs, runSeed: w.run_seed))
        case LASER__V1__ENVELOPE__BODY_REJECT:
            return .reject(
                reason: try text(e.reject!.pointee.reason, "Reject.reason"),
                retryAfterMs: e.reject!.pointee.retry_after_ms)
        case LASER__V1__ENVELOPE__BODY_HEARTBEAT:
            return .heartbeat
        case LASER__V1__ENVELOPE__BODY_SCORE_TASK:
            let t = e.score_task!.pointee
            var items: [ScoreItem] = []
            items.reserveCapacity(t.n_items)
            var asJSON = false
            for i in 0..<t.n_items {
                let s = t.items[i]!.pointee
                var candidates: [String]
                if s.n_candidates_json > 0 {
                    guard s.n_candidates == 0 else {
                        throw WireError("ScoreItem has both candidates and candidates_json; a sender fills one of them")
                    }
                    asJSON = true
                    candidates = []
                    candidates.reserveCapacity(s.n_candidates_json)
                    for j in 0..<s.n_candidates_json {
                        let b = s.candidates_json[j]
                        // Decoded here, in one pass that also checks them: what the RM reads.
                        do {
                            candidates.append(
                                try JSONText.decode(body: UnsafeRawBufferPointer(start: b.data, count: b.len)))
                        } catch {
                            throw WireError(
                                "ScoreItem.candidates_json[\(j)] is not the body of a JSON string: \(error)")
                        }
                    }
                } else {
                    candidates = try texts(s.n_candidates, s.candidates, "ScoreItem.candidates")
                }
                items.append(
                    ScoreItem(
                        promptID: try text(s.prompt_id, "ScoreItem.prompt_id"),
                        prompt: try text(s.prompt, "ScoreItem.prompt"),
                        candidates: candidates,
                        reference: s.has_reference != 0 ? try text(s.reference, "ScoreItem.reference") : nil))
            }
            return .scoreTask(
                ScoreTask(
                    taskID: t.task_id, attempt: t.attempt,
                    rewardModel: try text(t.reward_model, "ScoreTask.reward_model"),
                    iteration: t.iteration, items: items, candidatesAsJSON: asJSON))
        case LASER__V1__ENVELOPE__BODY_SCORE_RESULT:
            let r = e.score_result!.pointee
            let outcome: ScoreResult.Outcome
            switch r.outcome_case {
            case LASER__V1__SCORE_RESULT__OUTCOME_SUCCESS:
                let s = r.success!.pointee
                var perItem: [[Double]] = []
                perItem.reserveCapacity(s.n_items)
                for i in 0..<s.n_items {
                    let it = s.items[i]!.pointee
                    perItem.append(Array(UnsafeBufferPointer(start: it.scores, count: it.n_scores)))
                }
                outcome = .success(perItem)
            case LASER__V1__SCORE_RESULT__OUTCOME_FAILURE:
                outcome = .failure(try text(r.failure!.pointee.message, "ScoreFailure.message"))
            default:
                throw WireError("ScoreResult for task \(r.task_id) has neither success nor failure")
            }
            return .scoreResult(
                ScoreResult(taskID: r.task_id, attempt: r.attempt, outcome: outcome, elapsedMicros: r.elapsed_us))
        case LASER__V1__ENVELOPE__BODY_DISCONNECT:
            return .disconnect(reason: try text(e.disconnect!.pointee.reason, "Disconnect.reason"))
        case LASER__V1__ENVELOPE__BODY_SHUTDOWN:
            return .shutdown(reason: try text(e.shutdown!.pointee.reason, "Shutdown.reason"))
        case LASER__V1__ENVELOPE__BODY_LOAD_RM:
            let l = e.load_rm!.pointee
            return .loadRM(
                LoadRM(
                    requestID: l.request_id, load: try texts(l.n_load, l.load, "LoadRM.load"),
                    unload: try texts(l.n_unload, l.unload, "LoadRM.unload")))
        case LASER__V1__ENVELOPE__BODY_RM_STATE:
            let r = e.rm_state!.pointee
            var loads: [RMState.Load] = []
            for i in 0..<r.n_loads {
                let one = r.loads[i]!.pointee
                loads.append(
                    RMState.Load(
                        name: try text(one.name, "RMLoad.name"), loadMs: one.load_ms,
                        error: try text(one.error, "RMLoad.error")))
            }
            return .rmState(
                RMState(requestID: r.request_id, loaded: try texts(r.n_loaded, r.loaded, "RMState.loaded"), loads: loads))
        case LASER__V1__ENVELOPE__BODY_TRAINER_HELLO:
            let h = e.trainer_hello!.pointee
            return .trainerHello(
                TrainerHello(
                    trainerID: try text(h.trainer_id, "TrainerHello.trainer_id"), window: h.window,
                    softwareVersion: try text(h.software_version, "TrainerHello.software_version")))
        case LASER__V1__ENVELOPE__BODY_TRAINER_WELCOME:
            let w = e.trainer_welcome!.pointee
            return .trainerWelcome(
                TrainerWelcome(
                    coordinatorID: try text(w.coordinator_id, "TrainerWelcome.coordinator_id"),
                    heartbeatIntervalMs: w.heartbeat_interval_ms, liveness: w.liveness, wantsLoss: w.wants_loss != 0,
                    wantsLossAfter: w.wants_loss_after != 0, wantsProbeLosses: w.wants_probe_losses != 0))
        case LASER__V1__ENVELOPE__BODY_PREFERENCE_BATCH:
            let b = e.preference_batch!.pointee
            let pairs = try decodePairs(b.pairs, b.n_pairs)
            return .preferenceBatch(
                PreferenceBatch(
                    globalBatch: b.global_batch, iteration: b.iteration, batch: b.batch,
                    rewardModel: try text(b.reward_model, "PreferenceBatch.reward_model"), pairs: pairs,
                    path: try text(b.path, "PreferenceBatch.path")))
        case LASER__V1__ENVELOPE__BODY_BATCH_FEEDBACK:
            let f = e.batch_feedback!.pointee
            return .batchFeedback(
                BatchFeedback(
                    globalBatch: f.global_batch, loss: f.loss, iteration: f.iteration, batch: f.batch,
                    lossAfter: f.has_loss_after != 0 ? f.loss_after : nil,
                    probeLosses: f.has_probe_losses != 0 ? (f.probe_loss_before, f.probe_loss_after) : nil))
        case LASER__V1__ENVELOPE__BODY_PROBE_SET:
            let p = e.probe_set!.pointee
            return .probeSet(ProbeSet(pairs: try decodePairs(p.pairs, p.n_pairs), prompts: p.prompts))
        case LASER__V1__ENVELOPE__BODY_FEEDBACK_ACK:
            let a = e.feedback_ack!.pointee
            return .feedbackAck(
                FeedbackAck(
                    globalBatch: a.global_batch, accepted: a.accepted != 0,
                    reason: try text(a.reason, "FeedbackAck.reason")))
        default:
            throw WireError("Envelope carries no message this build knows (body field \(e.body_case.rawValue))")
        }
    }

    private static func text(_ p: UnsafeMutablePointer<CChar>?, _ field: String) throws -> String {
        guard let p else { return "" }
        guard let s = String(validatingCString: p) else { throw WireError("\(field) is not valid UTF-8") }
        return s
    }

    /// PreferencePair messages (PreferenceBatch.pairs, ProbeSet.pairs) from the arena's memory.
    private static func encodePairs(
        _ pairs: [TrainerPair], _ arena: Arena
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<Laser__V1__PreferencePair>?> {
        let out = arena.array(UnsafeMutablePointer<Laser__V1__PreferencePair>?.self, count: pairs.count)
        for (i, p) in pairs.enumerated() {
            let q = arena.make(Laser__V1__PreferencePair.self, laser__v1__preference_pair__init)
            q.pointee.prompt = arena.string(p.prompt)
            q.pointee.chosen = arena.string(p.chosen)
            q.pointee.rejected = arena.string(p.rejected)
            q.pointee.chosen_score = p.chosenScore
            q.pointee.rejected_score = p.rejectedScore
            q.pointee.prompt_id = arena.string(p.promptID)
            out[i] = q
        }
        return out
    }

    private static func decodePairs(
        _ p: UnsafeMutablePointer<UnsafeMutablePointer<Laser__V1__PreferencePair>?>?, _ n: Int
    ) throws -> [TrainerPair] {
        var pairs: [TrainerPair] = []
        pairs.reserveCapacity(n)
        for i in 0..<n {
            let q = p![i]!.pointee
            pairs.append(
                TrainerPair(
                    prompt: try text(q.prompt, "PreferencePair.prompt"),
                    chosen: try text(q.chosen, "PreferencePair.chosen"),
                    rejected: try text(q.rejected, "PreferencePair.rejected"), chosenScore: q.chosen_score,
                    rejectedScore: q.rejected_score, promptID: try text(q.prompt_id, "PreferencePair.prompt_id")))
        }
        return pairs
    }

    private static func texts(
        _ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ field: String
    ) throws -> [String] {
        guard n > 0, let p else { return [] }
        var out: [String] = []
        out.reserveCapacity(n)
        for i in 0..<n { out.append(try text(p[i], field)) }
        return out
    }
}

/// Owns every C allocation made while building one message, freed together after packing.
private final class Arena {
    /// Memory is carved from blocks (a message's strings and structs: a few mallocs, not one each),
    /// all freed with the arena.
    private var blocks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer?
    private var left = 0
    private static let blockBytes = 16 << 10

    /// Objects whose memory `env` points into (texts' storage).
    private var kept: [AnyObject] = []

    deinit { for p in blocks { free(p) } }

    func keep(_ object: AnyObject) {
        if kept.last !== object { kept.append(object) }
    }

    /// `bytes` bytes aligned to 16.
    private func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        let need = (bytes + 15) & ~15
        if need > left {
            let size = max(need, Self.blockBytes << min(blocks.count, 6))
            let block = malloc(size)!
            blocks.append(block)
            cursor = block
            left = size
        }
        let p = cursor!
        cursor = p + need
        left -= need
        return p
    }

    func make<T>(_ type: T.Type, _ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = array(T.self, count: 1)
        initialise(p)
        return p
    }

    /// Zeroed, as calloc's.
    func array<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<T>.alignment <= 16)
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        let raw = allocate(bytes)
        memset(raw, 0, bytes)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// A NUL-terminated copy. Strings with embedded NULs are cut there; the ingest layer rejects them.
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        // One copy, from the String's own UTF-8 (strdup(s) would first bridge to a temporary C string).
        var s = s
        return s.withUTF8 { utf8 -> UnsafeMutablePointer<CChar> in
            let p = allocate(utf8.count + 1).bindMemory(to: CChar.self, capacity: utf8.count + 1)
            if let base = utf8.baseAddress { memcpy(p, base, utf8.count) }
            p[utf8.count] = 0
            return p
        }
    }

    func strings(_ list: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !list.isEmpty else { return (0, nil) }
        let arr = array(UnsafeMutablePointer<CChar>?.self, count: list.count)
        for (i, s) in list.enumerated() { arr[i] = string(s) }
        return (list.count, arr)
    }
}
