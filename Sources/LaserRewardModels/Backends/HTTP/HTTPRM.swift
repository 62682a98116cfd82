import LaserJSON
import Foundation
import LaserSync

/// A reward model behind an HTTP server: OpenRLHF's `/get_reward`, vLLM's `/classify` and `/pooling`,
/// SGLang's `/v1/embeddings` and `/v1/classify`, or a cross-encoder behind `/score`
/// (``ServerAPI``). Log-likelihood scoring through a completions endpoint is ``LogLikelihoodRM``.
/// Shapes, versions and config: docs/rm-backends.md.
///
/// A call's prompts are packed into requests of at most `max_batch` candidates, a prompt's
/// candidates together (so a server's prefix cache shares the prompt; a prompt with more candidates
/// than `max_batch` is split). The requests go out in parallel, at most `max_concurrency` in flight
/// for this RM on this worker, and the scores are put back in order. vLLM APIs learn the server's
/// version once, from `GET /version` or the `version` param, to send the right raw-score switch.
public final class HTTPRM: RewardModel, Sendable {
    /// Kept for callers of the old name.
    public typealias API = ServerAPI

    public let name: String
    public let url: URL
    public let api: ServerAPI
    /// Candidates per request, at most.
    public let maxBatch: Int
    /// What goes between prompt and response in a joined text ("" by default: OpenRLHF's queries and
    /// a chat-templated prompt are followed directly by the response).
    public let separator: String
    /// The `model` field (optional for vLLM and SGLang: the served model by default).
    public let model: String?
    /// vllm-pooling: the `task` field, when set.
    public let task: String?
    public let labelIndex: Int
    /// The configured server version (vLLM APIs), instead of asking `GET /version`.
    public let configuredVersion: ServerVersion?

    let client: HTTPClient
    /// Dynamic placement's hooks (`load_url`, `unload_url`, `load_command`, `unload_command`).
    public let hooks: PlacementHooks
    private let log: BackendLog
    /// The raw-score switch, learnt once (the lock is held across the first GET /version, so parallel
    /// first calls ask once).
    private let activation = Locked<ActivationSwitch?>(nil)

    public var maxBatchCandidates: Int? { maxBatch }

    public init(
        name: String, url: URL, api: ServerAPI, maxBatch: Int = 64, maxConcurrency: Int = 8, timeoutMs: Int = 60_000,
        retries: Int = 3, backoffMs: Int = 500, separator: String = "", model: String? = nil, task: String? = nil,
        labelIndex: Int = -1, version: ServerVersion? = nil, apiKeyEnvironmentVariable: String? = nil,
        hooks: PlacementHooks = PlacementHooks(), log: @escaping BackendLog = standardErrorLog
    ) {
        precondition(maxBatch > 0)
        self.hooks = hooks
        self.name = name
        self.url = url
        self.api = api
        self.maxBatch = maxBatch
        self.separator = separator
        self.model = model
        self.task = task
        self.labelIndex = labelIndex
        self.configuredVersion = version
        self.log = log
        client = HTTPClient(
            owner: "reward model '\(name)' (http \(api.rawValue) \(url.absoluteString))", timeoutMs: timeoutMs,
            retries: retries, backoffMs: backoffMs, maxConcurrency: maxConcurrency,
            apiKeyEnvironmentVariable: apiKeyEnvironmentVariable, log: log)
    }

    /// Builds the RM from config params (docs/rm-backends.md lists them per API).
    public convenience init(name: String, params: [String: String], log: @escaping BackendLog = standardErrorLog) throws
    {
        var reader = ParamReader(rm: name, kind: "http", params: params)
        let common = try HTTPParams(&reader, apiNames: ServerAPI.allCases.map(\.rawValue) + ["loglik"])
        guard let api = ServerAPI(configName: common.apiName) else {
            throw reader.invalid(
                "api", common.apiName,
                expected: (ServerAPI.allCases.map(\.rawValue) + ["loglik"]).map { "\"\($0)\"" }.joined(separator: ", "))
        }
        // Not trimmed: a separator may well be a newline.
        let separator = api.joinsPromptAndResponse ? (params["separator"] ?? "") : ""
        if api.joinsPromptAndResponse { reader.markUsed(["separator"]) }
        let model = api == .openrlhf ? nil : reader.string("model").flatMap { $0.isEmpty ? nil : $0 }
        var task: String?
        if api == .vllmPooling { task = reader.string("task").flatMap { $0.isEmpty ? nil : $0 } }
        var labelIndex = -1
        if [.vllmClassify, .vllmPooling, .sglangEmbeddings, .sglangClassify].contains(api) {
            labelIndex = try reader.integer(
                "label_index", default: -1, range: -4096...4096,
                expected: "which entry of the label vector is the reward (0-based; -1: the last)")
        }
        var version: ServerVersion?
        if api.needsVersion, let text = reader.string("version"), !text.isEmpty {
            guard let parsed = ServerVersion(text) else {
                throw reader.invalid("version", text, expected: "a vLLM version such as \"0.11.2\"")
            }
            version = parsed
        }
        try reader.rejectUnused()
        self.init(
            name: name, url: common.url, api: api, maxBatch: common.maxBatch, maxConcurrency: common.maxConcurrency,
            timeoutMs: common.timeoutMs, retries: common.retries, backoffMs: common.backoffMs, separator: separator,
            model: model, task: task, labelIndex: labelIndex, version: version,
            apiKeyEnvironmentVariable: common.apiKeyEnvironmentVariable, hooks: common.hooks, log: log)
    }

    public func load() throws { try hooks.load(client) }

    public func unload() throws { try hooks.unload(client) }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        try scoreBatch([request])[0]
    }

    public func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
        let shape = APIRequest(api: api, model: model, activation: try activationSwitch(), task: task)
        let reader = APIResponse(api: api, labelIndex: labelIndex)
        let chunks = CandidateChunks(requests.map(\.candidates.count), maxBatch: maxBatch)
        let total = chunks.total
        let results = ParallelResults<[Double]>(count: chunks.ranges.count)
        inParallel(chunks.ranges.count) { [self] c in
            let positions = chunks.ranges[c]
            let items = positions.map {
                (
                    requests[$0.prompt].prompt, requests[$0.prompt].candidates[$0.candidate],
                    requests[$0.prompt].reference
                )
            }
            let what =
                chunks.ranges.count > 1
                ? "candidates \(chunks.first(c) + 1)-\(chunks.first(c) + positions.count) of \(total)"
                : "\(positions.count) candidates"
            results.set(c) {
                try client.post(url, body: shape.body(items, separator: separator), what: what) {
                    reader.scores($0, count: positions.count)
                }
            }
        }
        var out = requests.map { [Double](repeating: .nan, count: $0.candidates.count) }
        for (c, scores) in try results.values().enumerated() {
            for (position, score) in zip(chunks.ranges[c], scores) { out[position.prompt][position.candidate] = score }
        }
        return out
    }

    /// Cancels requests in flight; later calls fail at once (the worker is stopping).
    public func close() { client.close() }

    /// The raw-score switch for this server's version, learnt once (vLLM APIs; nil for the others).
    func activationSwitch() throws -> ActivationSwitch? {
        guard api.needsVersion else { return nil }
        return try activation.withLock { learnt in
            if let learnt { return learnt }
            let chosen = try learnActivationSwitch()
            learnt = chosen
            return chosen
        }
    }

    private func learnActivationSwitch() throws -> ActivationSwitch {
        let version: ServerVersion
        let source: String
        if let configuredVersion {
            version = configuredVersion
            source = "the version param"
        } else {
            guard let versionURL = url.origin?.appendingPathComponent("version") else {
                throw client.error("the URL has no origin")
            }
            do {
                version = try client.get(versionURL, what: "GET \(versionURL.absoluteString)") { body in
                    guard let value = try? JSONValue.parse(body), case .string(let text)? = value["version"],
                        let v = ServerVersion(text)
                    else {
                        return .failure(
                            RewardModelError("the body is not {\"version\": \"x.y.z\"}: \"\(excerpt(body))\""))
                    }
                    return .success(v)
                }
            } catch {
                throw client.error(
                    "cannot learn the vLLM version (\(error)); set params.version to the server's vLLM version, for example \"0.11.2\""
                )
            }
            source = "GET \(versionURL.absoluteString)"
        }
        let chosen = ActivationSwitch.forVLLM(api, version)
        log("rm \(name): vLLM \(version) (from \(source)), \(api.rawValue): \(chosen.logText)")
        return chosen
    }
}

/// The params every HTTP RM shares: `url`, `api`, `max_batch` (alias `batch_size`),
/// `max_concurrency`, `timeout_ms`, `retries`, `backoff_ms`, `api_key_env`.
struct HTTPParams {
    var url: URL
    var apiName: String
    var maxBatch: Int
    var maxConcurrency: Int
    var timeoutMs: Int
    var retries: Int
    var backoffMs: Int
    var apiKeyEnvironmentVariable: String?
    /// Dynamic placement's load and unload steps (`load_url`, `unload_url`, `load_command`,
    /// `unload_command`, `hook_timeout_ms`; ``PlacementHooks``).
    var hooks = PlacementHooks()

    init(_ reader: inout ParamReader, apiNames: [String]) throws {
        url = try Self.url(&reader, "url", example: "http://127.0.0.1:5000/get_reward")
        apiName = try reader.requiredString("api", expected: apiNames.joined(separator: ", "))
        let batchKey = reader.string("max_batch") != nil ? "max_batch" : "batch_size"
        if batchKey == "max_batch", reader.string("batch_size") != nil {
            throw reader.invalid(
                "batch_size", "set", expected: "left out when max_batch is set (batch_size is its old name)")
        }
        maxBatch = try reader.integer(
            batchKey, default: 64, range: 1...1_000_000, expected: "candidates per HTTP request, >= 1")
        maxConcurrency = try reader.integer(
            "max_concurrency", default: 8, range: 1...1024, expected: "requests in flight per worker, 1 to 1024")
        timeoutMs = try reader.integer(
            "timeout_ms", default: 60_000, range: 1...86_400_000, expected: "milliseconds, 1 to 86400000")
        retries = try reader.integer("retries", default: 3, range: 0...100, expected: "a number of retries, 0 to 100")
        backoffMs = try reader.integer(
            "backoff_ms", default: 500, range: 0...600_000, expected: "milliseconds, 0 to 600000")
        apiKeyEnvironmentVariable = reader.string("api_key_env").flatMap { $0.isEmpty ? nil : $0 }
        for (key, target) in [("load_url", \PlacementHooks.loadURL), ("unload_url", \PlacementHooks.unloadURL)]
            as [(String, WritableKeyPath<PlacementHooks, URL?>)]
        {
            if let text = reader.string(key), !text.isEmpty { hooks[keyPath: target] = try Self.parseURL(reader, key, text) }
        }
        hooks.loadCommand = reader.string("load_command").flatMap { $0.isEmpty ? nil : $0 }
        hooks.unloadCommand = reader.string("unload_command").flatMap { $0.isEmpty ? nil : $0 }
        hooks.timeoutMs = try reader.integer(
            "hook_timeout_ms", default: 900_000, range: 1...86_400_000,
            expected: "milliseconds a load or unload command may take, 1 to 86400000")
    }



    static func url(_ reader: inout ParamReader, _ key: String, example: String) throws -> URL {
        let text = try reader.requiredString(key, expected: "the endpoint's URL, for example \(example)")
        return try parseURL(reader, key, text)
    }

    static func parseURL(_ reader: ParamReader, _ key: String, _ text: String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = url.host, !host.isEmpty
        else { throw reader.invalid(key, text, expected: "an http:// or https:// URL with a host") }
        return url
    }
}

/// A call's candidates packed into requests of at most `maxBatch`, each prompt's candidates together
/// unless the prompt alone has more than `maxBatch`.
struct CandidateChunks {
    typealias Position = (prompt: Int, candidate: Int)
    private(set) var ranges: [[Position]] = []
    private var starts: [Int] = []
    private(set) var total = 0

    init(_ candidateCounts: [Int], maxBatch: Int) {
        var current: [Position] = []
        func flush() {
            if !current.isEmpty { starts.append(total - current.count); ranges.append(current); current = [] }
        }
        for (p, count) in candidateCounts.enumerated() {
            if current.count + count > maxBatch { flush() }
            for c in 0..<count {
                if current.count == maxBatch { flush() }
                current.append((p, c))
                total += 1
            }
        }
        flush()
    }

    func first(_ chunk: Int) -> Int { starts[chunk] }
}

/// Results filled in by parallel iterations: each slot once, then read in order (the first error,
/// by slot, is thrown).
struct ParallelResults<T>: Sendable {
    private let slots: Locked<[Result<T, Error>?]>

    init(count: Int) { slots = Locked(Array(repeating: nil, count: count)) }

    func set(_ i: Int, _ body: () throws -> T) {
        let result = Result { try body() }
        slots.withLock { $0[i] = result }
    }

    func values() throws -> [T] {
        try slots.withLock { try $0.map { try $0!.get() } }
    }
}

/// Runs `body(0..<count)` on threads of their own and waits for all (one runs on the caller's thread).
/// Threads, not GCD's pool: the work blocks on network I/O, and GCD on Linux runs as many blocked
/// items at once as there are cores.
func inParallel(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    guard count > 1 else {
        if count == 1 { body(0) }
        return
    }
    let group = DispatchGroup()
    for i in 1..<count {
        group.enter()
        startThread(named: "laser-http", stackSize: 1 << 20) {
            body(i)
            group.leave()
        }
    }
    body(0)
    group.wait()
}

/// Dynamic placement's load and unload steps of an HTTP RM (docs/placement.md): a URL to POST (vLLM
/// sleep mode's `/wake_up` and `/sleep?level=1`), and/or a command the worker runs (`/bin/sh -c`, from
/// its own `--rm-config` only, never from the coordinator). The command's output goes to the worker's
/// log; a non-zero exit status or a timeout fails the load.
public struct PlacementHooks: Sendable, Equatable {
    public var loadURL: URL?
    public var unloadURL: URL?
    public var loadCommand: String?
    public var unloadCommand: String?
    public var timeoutMs = 900_000

    public init() {}

    func load(_ client: HTTPClient) throws {
        try run(loadCommand, "load_command", client)
        try post(loadURL, "load (load_url)", client)
    }

    func unload(_ client: HTTPClient) throws {
        try post(unloadURL, "unload (unload_url)", client)
        try run(unloadCommand, "unload_command", client)
    }

    private func post(_ url: URL?, _ what: String, _ client: HTTPClient) throws {
        guard let url else { return }
        _ = try client.post(url, body: Array("{}".utf8), what: what) { _ in .success(()) }
    }

    private func run(_ command: String?, _ key: String, _ client: HTTPClient) throws {
        guard let command else { return }
        let outcome: String?
        do {
            outcome = try ChildProcess.runToCompletion(
                command, timeoutMs: timeoutMs, logPrefix: "\(key): ", log: client.log)
        } catch { throw client.error("\(key) could not start: \(error)") }
        if let outcome {
            let hint = outcome.hasPrefix("did not finish") ? " (hook_timeout_ms)" : ""
            let how = outcome.hasPrefix("did not finish") ? outcome : "ended with \(outcome)"
            throw client.error("\(key) \(how)\(hint) (its output is in the worker's log): \(command)")
        }
    }
}
