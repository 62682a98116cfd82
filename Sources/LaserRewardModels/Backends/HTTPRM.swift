import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A reward model behind an HTTP server: an OpenRLHF remote RM (`api: openrlhf`) or vLLM's score
/// API (`api: vllm-score`). Protocols and config in docs/rm-backends.md.
///
/// The candidates of a call are flattened (prompt by prompt, candidate by candidate), sent in
/// requests of at most `batch_size`, and the scores put back in order. Each request may take
/// `timeout_ms`; 5xx answers, connection errors and timeouts are retried up to `retries` times
/// with exponential backoff (`backoff_ms`, doubling, at most 30 s; jittered between half and
/// all of it, which changes only when a retry happens, never a score); 4xx answers are not
/// retried. A body that is not the expected JSON, the wrong number of scores, or a non-finite
/// score is an error naming the status and the start of the body.
///
/// Thread-safe: URLSession is, and the RM holds no other mutable state.
public final class HTTPRM: RewardModel, @unchecked Sendable {
    public enum API: String, Sendable, CaseIterable {
        /// POST `{"query": [prompt + separator + response, ...], "prompts": [...], "labels": [...]}`,
        /// answer `{"rewards": [...]}` (OpenRLHF's `serve_rm.py` and remote RM servers).
        case openrlhf
        /// POST `{"text_1": [prompt, ...], "text_2": [response, ...], "model"?}` to vLLM's `/score`,
        /// answer `{"data": [{"index": i, "score": s}, ...]}`.
        case vllmScore = "vllm-score"
    }

    public let name: String
    public let url: URL
    public let api: API
    public let batchSize: Int
    public let timeoutMs: Int
    public let retries: Int
    public let backoffMs: Int
    /// openrlhf: what goes between prompt and response in a query ("" by default: OpenRLHF's
    /// queries are the templated prompt followed directly by the response).
    public let separator: String
    /// vllm-score: the `model` field (optional for vLLM; the served model by default).
    public let model: String?
    /// The name of an environment variable of the worker holding a bearer token.
    public let apiKeyEnvironmentVariable: String?

    private let log: BackendLog
    /// Made on first use: building the RM (the coordinator does, to check the config) opens nothing.
    private var sessionStorage: URLSession?
    private var closed = false
    private let sessionLock = NSLock()
    private var session: URLSession {
        sessionLock.lock()
        defer { sessionLock.unlock() }
        if let session = sessionStorage { return session }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 16
        configuration.timeoutIntervalForRequest = Double(timeoutMs) / 1000 + 1
        configuration.timeoutIntervalForResource = Double(timeoutMs) / 1000 + 1
        let session = URLSession(configuration: configuration)
        sessionStorage = session
        return session
    }

    public init(name: String, url: URL, api: API, batchSize: Int = 64, timeoutMs: Int = 60_000, retries: Int = 3,
                backoffMs: Int = 500, separator: String = "", model: String? = nil, apiKeyEnvironmentVariable: String? = nil,
                log: @escaping BackendLog = standardErrorLog) {
        precondition(batchSize > 0 && timeoutMs > 0 && retries >= 0 && backoffMs >= 0)
        self.name = name
        self.url = url
        self.api = api
        self.batchSize = batchSize
        self.timeoutMs = timeoutMs
        self.retries = retries
        self.backoffMs = backoffMs
        self.separator = separator
        self.model = model
        self.apiKeyEnvironmentVariable = apiKeyEnvironmentVariable
        self.log = log
    }

    /// Builds the RM from config params: `url`, `api` (required), `batch_size`, `timeout_ms`,
    /// `retries`, `backoff_ms`, `separator` (openrlhf), `model` (vllm-score), `api_key_env`.
    public convenience init(name: String, params: [String: String], log: @escaping BackendLog = standardErrorLog) throws {
        var reader = ParamReader(rm: name, kind: "http", params: params)
        let urlText = try reader.requiredString("url", expected: "the endpoint's URL, for example http://127.0.0.1:5000/get_reward")
        guard let url = URL(string: urlText), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty
        else { throw reader.invalid("url", urlText, expected: "an http:// or https:// URL with a host") }
        let apiText = try reader.requiredString("api", expected: API.allCases.map(\.rawValue).joined(separator: " or "))
        guard let api = API(rawValue: apiText) else {
            throw reader.invalid("api", apiText, expected: API.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: " or "))
        }
        let batchSize = try reader.integer("batch_size", default: 64, range: 1...1_000_000, expected: "candidates per HTTP request, >= 1")
        let timeout = try reader.integer("timeout_ms", default: 60_000, range: 1...86_400_000, expected: "milliseconds, 1 to 86400000")
        let retries = try reader.integer("retries", default: 3, range: 0...100, expected: "a number of retries, 0 to 100")
        let backoff = try reader.integer("backoff_ms", default: 500, range: 0...600_000, expected: "milliseconds, 0 to 600000")
        var separator = ""
        var model: String?
        switch api {
        case .openrlhf:
            // Not trimmed: a separator may well be a newline.
            separator = params["separator"] ?? ""
            reader.markUsed(["separator"])
        case .vllmScore:
            model = reader.string("model").flatMap { $0.isEmpty ? nil : $0 }
        }
        let keyVariable = reader.string("api_key_env").flatMap { $0.isEmpty ? nil : $0 }
        try reader.rejectUnused()
        self.init(name: name, url: url, api: api, batchSize: batchSize, timeoutMs: timeout, retries: retries,
                  backoffMs: backoff, separator: separator, model: model, apiKeyEnvironmentVariable: keyVariable, log: log)
    }

    deinit { sessionStorage?.invalidateAndCancel() }

    private func error(_ message: String) -> RewardModelError {
        RewardModelError("reward model '\(name)' (http \(api.rawValue) \(url.absoluteString)): \(message)")
    }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        try scoreBatch([request])[0]
    }

    public func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
        // Flatten: every candidate of every prompt, in order.
        var flat: [(prompt: Int, candidate: Int)] = []
        for (p, request) in requests.enumerated() {
            for c in request.candidates.indices { flat.append((p, c)) }
        }
        var out = requests.map { [Double](repeating: .nan, count: $0.candidates.count) }
        var start = 0
        while start < flat.count {
            let chunk = Array(flat[start..<min(start + batchSize, flat.count)])
            let body = requestBody(chunk.map { (requests[$0.prompt], requests[$0.prompt].candidates[$0.candidate]) })
            let scores = try post(body, expecting: chunk.count, first: start, total: flat.count)
            for (position, score) in zip(chunk, scores) { out[position.prompt][position.candidate] = score }
            start += chunk.count
        }
        return out
    }

    /// Cancels requests in flight; later calls fail at once (the worker is stopping).
    public func close() {
        sessionLock.lock()
        let session = sessionStorage
        sessionStorage = nil
        closed = true
        sessionLock.unlock()
        session?.invalidateAndCancel()
    }

    private var isClosed: Bool {
        sessionLock.lock()
        defer { sessionLock.unlock() }
        return closed
    }

    // MARK: protocol

    func requestBody(_ items: [(request: ScoringRequest, response: String)]) -> [UInt8] {
        let json: JSONValue
        switch api {
        case .openrlhf:
            json = .object([
                "query": .array(items.map { .string($0.request.prompt + separator + $0.response) }),
                "prompts": .array(items.map { .string($0.request.prompt) }),
                "labels": .array(items.map { .string($0.request.reference ?? "") }),
            ])
        case .vllmScore:
            var members: [String: JSONValue] = [
                "text_1": .array(items.map { .string($0.request.prompt) }),
                "text_2": .array(items.map { .string($0.response) }),
            ]
            if let model { members["model"] = .string(model) }
            json = .object(members)
        }
        return Array(json.serialized.utf8)
    }

    /// The scores of a 2xx body, or a message saying what is wrong with it.
    func parseScores(_ body: [UInt8], count: Int) -> Result<[Double], RewardModelError> {
        func fail(_ message: String) -> Result<[Double], RewardModelError> { .failure(RewardModelError(message)) }
        guard let value = try? JSONValue.parse(body) else {
            return fail("the body is not JSON: \"\(excerpt(body))\"")
        }
        var scores: [Double] = []
        switch api {
        case .openrlhf:
            guard case .array(let rewards)? = value["rewards"] else {
                return fail("the body has no \"rewards\" list: \"\(excerpt(body))\"")
            }
            guard rewards.count == count else {
                return fail("\(rewards.count) rewards for \(count) queries: \"\(excerpt(body))\"")
            }
            for (i, reward) in rewards.enumerated() {
                guard case .number(let d) = reward else { return fail("reward \(i) is \(reward.typeName), not a number: \"\(excerpt(body))\"") }
                scores.append(d)
            }
        case .vllmScore:
            guard case .array(let data)? = value["data"] else {
                return fail("the body has no \"data\" list: \"\(excerpt(body))\"")
            }
            guard data.count == count else {
                return fail("\(data.count) scores for \(count) text pairs: \"\(excerpt(body))\"")
            }
            scores = [Double](repeating: .nan, count: count)
            var seen = Set<Int>()
            for (i, entry) in data.enumerated() {
                guard case .number(let indexValue)? = entry["index"], let index = Int(exactly: indexValue),
                      (0..<count).contains(index), seen.insert(index).inserted
                else { return fail("data[\(i)] has no valid \"index\" (0..<\(count), each once): \"\(excerpt(body))\"") }
                guard case .number(let d)? = entry["score"] else {
                    return fail("data[\(i)] has no numeric \"score\": \"\(excerpt(body))\"")
                }
                scores[index] = d
            }
        }
        if let bad = scores.firstIndex(where: { !$0.isFinite }) {
            return fail("score \(bad) is \(scores[bad]) (not finite)")
        }
        return .success(scores)
    }

    // MARK: transport

    private enum Attempt {
        case success([Double])
        /// Do not retry (4xx, a 2xx body that is wrong).
        case fatal(String)
        /// Retry (5xx, connection error, timeout).
        case transient(String)
    }

    private func post(_ body: [UInt8], expecting count: Int, first: Int, total: Int) throws -> [Double] {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        request.timeoutInterval = Double(timeoutMs) / 1000 + 1
        if let variable = apiKeyEnvironmentVariable {
            guard let key = ProcessInfo.processInfo.environment[variable], !key.isEmpty else {
                throw error("the environment variable \(variable) (api_key_env) is not set on this worker")
            }
            request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        }
        let what = total > count ? "candidates \(first + 1)-\(first + count) of \(total)" : "\(count) candidates"
        var attempt = 0
        while true {
            guard !isClosed else { throw error("closed (the worker is stopping)") }
            attempt += 1
            switch send(request, count: count) {
            case .success(let scores):
                return scores
            case .fatal(let message):
                throw error("\(what): \(message)")
            case .transient(let message):
                guard attempt <= retries else {
                    throw error("\(what): \(message) (gave up after \(attempt) attempt\(attempt == 1 ? "" : "s"))")
                }
                let delay = backoffDelayMs(afterAttempt: attempt)
                log("rm \(name): \(what): \(message); retry \(attempt) of \(retries) in \(delay) ms")
                if delay > 0 { usleep(useconds_t(delay * 1000)) }
            }
        }
    }

    /// Exponential backoff with jitter: between half and all of `backoff_ms * 2^(attempt-1)`,
    /// at most 30 s. The jitter only spreads retries in time; scores never depend on it.
    func backoffDelayMs(afterAttempt attempt: Int) -> Int {
        let full = min(30_000, backoffMs << min(attempt - 1, 20))
        guard full > 1 else { return full }
        return Int.random(in: (full / 2)...full)
    }

    private func send(_ request: URLRequest, count: Int) -> Attempt {
        let box = ResponseBox()
        let task = session.dataTask(with: request) { data, response, error in
            box.set(data: data, response: response as? HTTPURLResponse, error: error)
        }
        task.resume()
        guard box.wait(timeoutMs: timeoutMs) else {
            task.cancel()
            return .transient("no response within \(timeoutMs) ms (timeout_ms)")
        }
        let (data, response, failure) = box.result
        if let failure {
            let nsError = failure as NSError
            if nsError.domain == NSURLErrorDomain && nsError.code == NSURLErrorTimedOut {
                return .transient("no response within \(timeoutMs) ms (timeout_ms)")
            }
            return .transient("request failed: \(nsError.localizedDescription) (\(nsError.domain) \(nsError.code))")
        }
        guard let response else { return .transient("no HTTP response") }
        let body = data.map { [UInt8]($0) } ?? []
        let status = response.statusCode
        switch status {
        case 200..<300:
            switch parseScores(body, count: count) {
            case .success(let scores): return .success(scores)
            case .failure(let message): return .fatal("HTTP \(status), but \(message)")
            }
        case 500..<600:
            return .transient("HTTP \(status): \"\(excerpt(body))\"")
        default:
            return .fatal("HTTP \(status) (not retried): \"\(excerpt(body))\"")
        }
    }
}

/// Hands a URLSession completion to the waiting scoring thread.
private final class ResponseBox: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false
    private(set) var result: (Data?, HTTPURLResponse?, Error?) = (nil, nil, nil)

    func set(data: Data?, response: HTTPURLResponse?, error: Error?) {
        condition.lock()
        if !done {
            result = (data, response, error)
            done = true
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Whether the response came within the time.
    func wait(timeoutMs: Int) -> Bool {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        condition.lock()
        defer { condition.unlock() }
        while !done {
            if !condition.wait(until: deadline) { return done }
        }
        return true
    }
}
