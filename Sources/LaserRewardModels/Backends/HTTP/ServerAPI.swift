import LaserJSON
/// The request and response shapes of the RM servers laser speaks over HTTP, version by version.
/// Pure: bytes in, scores or a message out; the transport is ``HTTPClient``, the flow ``HTTPRM``.
///
/// Every shape here is written down, with the server source it was read from, in
/// docs/rm-backends.md; tests replay each version's documented JSON (HTTPRMTests).
public enum ServerAPI: String, Sendable, CaseIterable {
    /// OpenRLHF's `serve_rm.py` (`/get_reward`): `{"query", "prompts", "labels"}` →
    /// `{"rewards", "scores", "extra_logs"}`; `scores` is read, `rewards` when it is missing.
    case openrlhf
    /// A cross-encoder behind vLLM's `/score`: `{"text_1", "text_2", "model"?}` → `data[i].score`.
    /// Not for reward models: vLLM answers "The model does not support Score API" for them.
    case crossEncoder = "cross-encoder"
    /// vLLM's `/classify` (sequence-classification RMs): `{"input": [...]}` → `data[i].probs`.
    case vllmClassify = "vllm-classify"
    /// vLLM's `/pooling` (reward models, `--runner pooling`): `{"input": [...]}` → `data[i].data`,
    /// a number, a vector or per-token rows; the reward is the last token's value.
    case vllmPooling = "vllm-pooling"
    /// SGLang with `--is-embedding`: `/v1/embeddings` → `data[i].embedding`, the RM's raw scores.
    case sglangEmbeddings = "sglang-embeddings"
    /// SGLang's vLLM-compatible `/v1/classify` → `data[i].probs` (softmax over the labels).
    case sglangClassify = "sglang-classify"

    /// `vllm-score`, the name of `cross-encoder` before issue 15: still accepted.
    public init?(configName: String) {
        if configName == "vllm-score" { self = .crossEncoder } else { self.init(rawValue: configName) }
    }

    /// Whether the request depends on the server's version (`GET /version` or the `version` param).
    var needsVersion: Bool { self == .vllmClassify || self == .vllmPooling }

    /// Whether one request carries texts built from prompt and response (`input`, `query`).
    var joinsPromptAndResponse: Bool { self != .crossEncoder }
}

/// A server version such as "0.11.2", "0.10.1.1" or "0.11.1rc2.dev3" (compared by its leading numbers).
public struct ServerVersion: Sendable, Comparable, CustomStringConvertible {
    public let text: String
    let parts: [Int]

    public init?(_ text: String) {
        var parts: [Int] = []
        for piece in text.trimmingWhitespace().drop(while: { $0 == "v" }).split(
            separator: ".", omittingEmptySubsequences: false)
        {
            let digits = piece.prefix(while: \.isNumber)
            guard let n = Int(digits) else { break }
            parts.append(n)
            if digits.count != piece.count { break }  // "1rc2": stop after the 1
        }
        guard parts.count >= 2 else { return nil }
        self.text = text
        self.parts = parts
    }

    init(_ parts: Int...) {
        self.parts = parts
        self.text = parts.map(String.init).joined(separator: ".")
    }

    public var description: String { text }

    public static func < (a: ServerVersion, b: ServerVersion) -> Bool {
        for i in 0..<max(a.parts.count, b.parts.count) {
            let x = i < a.parts.count ? a.parts[i] : 0
            let y = i < b.parts.count ? b.parts[i] : 0
            if x != y { return x < y }
        }
        return false
    }

    public static func == (a: ServerVersion, b: ServerVersion) -> Bool { !(a < b) && !(b < a) }
}

/// How raw scores are asked for from a vLLM version. vLLM applies sigmoid (one label) or softmax by
/// default; the per-request switch changed name and had a precedence bug (docs/rm-backends.md).
enum ActivationSwitch: Equatable, Sendable {
    /// Send `"use_activation": false` (vLLM ≥ 0.11.1; never with `activation`, which 0.11.1–0.13.0
    /// read as *true* whatever its value).
    case useActivationFalse
    /// Send `"activation": false` (/classify in vLLM 0.10.1–0.11.0).
    case activationFalse
    /// The scores are raw already (/pooling before 0.10.1).
    case rawByDefault
    /// No per-request switch: the scores arrive after sigmoid/softmax, which keeps their order.
    case activatedNoSwitch(why: String)

    static func forVLLM(_ api: ServerAPI, _ version: ServerVersion) -> ActivationSwitch {
        if version >= ServerVersion(0, 11, 1) { return .useActivationFalse }
        switch api {
        case .vllmClassify:
            if version >= ServerVersion(0, 10, 1) { return .activationFalse }
            return .activatedNoSwitch(
                why: "vLLM \(version) /classify has no per-request activation switch (it came in 0.10.1)")
        default:
            if version >= ServerVersion(0, 10, 1) {
                return .activatedNoSwitch(
                    why: "vLLM \(version) /pooling applies sigmoid to reward models with no per-request switch "
                        + "(start the server with --override-pooler-config '{\"softmax\": false}' for raw values, or use vLLM >= 0.11.1)"
                )
            }
            return .rawByDefault
        }
    }

    var logText: String {
        switch self {
        case .useActivationFalse: return "sending \"use_activation\": false for raw scores"
        case .activationFalse: return "sending \"activation\": false for raw scores"
        case .rawByDefault: return "raw scores by default (no switch sent)"
        case .activatedNoSwitch(let why): return "scores are after sigmoid/softmax (order kept): \(why)"
        }
    }
}

/// One request's texts and what to send with them.
struct APIRequest {
    var api: ServerAPI
    var model: String?
    var activation: ActivationSwitch?
    /// vllm-pooling: the `task` field, when configured (`token_classify`, `classify`, `encode`).
    var task: String?

    /// `items`: (prompt, response, reference) in order; `separator` joins prompt and response.
    func body(_ items: [(prompt: String, response: String, reference: String?)], separator: String) -> [UInt8] {
        var members: [String: JSONValue] = [:]
        let joined = JSONValue.array(items.map { .string($0.prompt + separator + $0.response) })
        switch api {
        case .openrlhf:
            members["query"] = joined
            members["prompts"] = .array(items.map { .string($0.prompt) })
            members["labels"] = .array(items.map { .string($0.reference ?? "") })
        case .crossEncoder:
            members["text_1"] = .array(items.map { .string($0.prompt) })
            members["text_2"] = .array(items.map { .string($0.response) })
        case .vllmClassify, .vllmPooling, .sglangEmbeddings, .sglangClassify:
            members["input"] = joined
            switch activation {
            case .useActivationFalse?: members["use_activation"] = .bool(false)
            case .activationFalse?: members["activation"] = .bool(false)
            default: break
            }
            if let task { members["task"] = .string(task) }
            if api == .sglangEmbeddings { members["encoding_format"] = .string("float") }
        }
        if let model, api != .openrlhf { members["model"] = .string(model) }
        return Array(JSONValue.object(sorting: members).serialized.utf8)
    }
}

/// Reads the scores of a 2xx body.
struct APIResponse {
    var api: ServerAPI
    /// Which entry of a label vector is the reward (`label_index`; negative counts from the end).
    var labelIndex: Int = -1

    func scores(_ body: [UInt8], count: Int) -> Result<[Double], RewardModelError> {
        func fail(_ message: String) -> Result<[Double], RewardModelError> { .failure(RewardModelError(message)) }
        guard let value = try? JSONValue.parse(body) else { return fail("the body is not JSON: \"\(excerpt(body))\"") }
        if let message = ServerErrorBody.message(value) {
            return fail("the body is an error: \(message)\(ServerErrorBody.hint(message))")
        }
        var scores: [Double]
        if api == .openrlhf {
            // OpenRLHF's client reads "scores" and falls back to "rewards" (agent.py).
            let key = value["scores"] != nil ? "scores" : "rewards"
            guard case .array(let list)? = value[key] else {
                return fail("the body has no \"scores\" or \"rewards\" list: \"\(excerpt(body))\"")
            }
            guard list.count == count else {
                return fail("\(list.count) \(key) for \(count) queries: \"\(excerpt(body))\"")
            }
            scores = []
            for (i, item) in list.enumerated() {
                guard case .number(_, let d) = item else {
                    return fail("\(key)[\(i)] is \(item.typeName), not a number: \"\(excerpt(body))\"")
                }
                scores.append(d)
            }
        } else {
            guard case .array(let data)? = value["data"] else {
                return fail("the body has no \"data\" list: \"\(excerpt(body))\"")
            }
            guard data.count == count else {
                return fail("\(data.count) results for \(count) inputs: \"\(excerpt(body))\"")
            }
            scores = [Double](repeating: .nan, count: count)
            var seen = Set<Int>()
            for (i, entry) in data.enumerated() {
                guard case .number(_, let indexValue)? = entry["index"], let index = Int(exactly: indexValue),
                    (0..<count).contains(index), seen.insert(index).inserted
                else {
                    return fail("data[\(i)] has no valid \"index\" (0..<\(count), each once): \"\(excerpt(body))\"")
                }
                switch score(of: entry) {
                case .success(let d): scores[index] = d
                case .failure(let why): return fail("data[\(i)]: \(why.description): \"\(excerpt(body))\"")
                }
            }
            if api == .sglangClassify, count > 0,
                data.allSatisfy({ entry in
                    if case .array(let probs)? = entry["probs"] { return probs.count == 1 } else { return false }
                })
            {
                return fail(
                    "every result has one label, and SGLang's /v1/classify applies softmax over the labels, so each "
                        + "score is 1.0 whatever the response: use api: sglang-embeddings for a one-label reward model")
            }
        }
        if let bad = scores.firstIndex(where: { !$0.isFinite }) {
            return fail("score \(bad) is \(scores[bad]) (not finite)")
        }
        return .success(scores)
    }

    private func pick(_ vector: [JSONValue], _ what: String) -> Result<Double, RewardModelError> {
        guard !vector.isEmpty else { return .failure(RewardModelError("\(what) is empty")) }
        let i = labelIndex < 0 ? vector.count + labelIndex : labelIndex
        guard (0..<vector.count).contains(i) else {
            return .failure(
                RewardModelError("\(what) has \(vector.count) entries; label_index \(labelIndex) is outside it"))
        }
        guard case .number(_, let d) = vector[i] else {
            return .failure(RewardModelError("\(what)[\(i)] is \(vector[i].typeName)"))
        }
        return .success(d)
    }

    private func score(of entry: JSONValue) -> Result<Double, RewardModelError> {
        switch api {
        case .crossEncoder:
            guard case .number(_, let d)? = entry["score"] else {
                return .failure(RewardModelError("no numeric \"score\""))
            }
            return .success(d)
        case .vllmClassify, .sglangClassify:
            guard case .array(let probs)? = entry["probs"] else {
                return .failure(RewardModelError("no \"probs\" list"))
            }
            return pick(probs, "\"probs\"")
        case .sglangEmbeddings:
            guard case .array(let embedding)? = entry["embedding"] else {
                return .failure(RewardModelError("no \"embedding\" list"))
            }
            return pick(embedding, "\"embedding\"")
        case .vllmPooling:
            // A number; a vector (labels of the sequence); or per-token rows, of which the last
            // token's is the sequence's reward (*ForRewardModeling, token_classify).
            switch entry["data"] {
            case .number(_, let d)?: return .success(d)
            case .array(let rows)?
            where rows.contains(where: { if case .array = $0 { return true } else { return false } }):
                guard case .array(let last)? = rows.last else {
                    return .failure(RewardModelError("\"data\" mixes rows and numbers"))
                }
                return pick(last, "the last token's row of \"data\"")
            case .array(let vector)?: return pick(vector, "\"data\"")
            case .string?: return .failure(RewardModelError("\"data\" is a string (base64?): laser asks for floats"))
            default: return .failure(RewardModelError("no \"data\" number, vector or rows"))
            }
        case .openrlhf:
            return .failure(RewardModelError("unreachable"))
        }
    }
}

/// Errors that servers return in a body, sometimes with HTTP 200: vLLM up to 0.14 answers an
/// unsupported task with status 200 and `{"object": "error", ..., "code": 400}` (0.9) or
/// `{"error": {"message", "type", "code"}}` (0.10+); FastAPI's own errors are `{"detail": ...}`.
enum ServerErrorBody {
    static func message(_ value: JSONValue) -> String? {
        if case .string("error")? = value["object"] {
            return describe(value)
        }
        switch value["error"] {
        case .object?: return describe(value["error"]!)
        case .string(let s)?: return s
        default: return nil
        }
    }

    /// The message of a non-2xx body, when it is one of the shapes above or FastAPI's `detail`.
    static func messageOfFailure(_ body: [UInt8]) -> String? {
        guard let value = try? JSONValue.parse(body) else { return nil }
        if let message = message(value) { return message }
        if case .string(let detail)? = value["detail"] { return detail }
        return nil
    }

    private static func describe(_ error: JSONValue) -> String {
        var text = "\"error\""
        if case .string(let m)? = error["message"] { text = m }
        var extras: [String] = []
        if case .string(let t)? = error["type"] { extras.append(t) }
        if case .number(_, let c)? = error["code"] { extras.append("code \(Int(c))") }
        return extras.isEmpty ? text : "\(text) (\(extras.joined(separator: ", ")))"
    }

    /// What to do about the errors users meet first.
    static func hint(_ message: String) -> String {
        if message.contains("does not support Score API") {
            return
                "; this model is a reward model, not a cross-encoder: use api: vllm-pooling or vllm-classify (docs/rm-backends.md)"
        }
        if message.contains("does not support Classification API") {
            return "; the model is not a sequence classifier: for a *ForRewardModeling model use api: vllm-pooling"
        }
        if message.contains("does not support Pooling API") {
            return "; start vLLM with --runner pooling (--task reward before 0.10) for api: vllm-pooling"
        }
        return ""
    }
}
