import LaserSync
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The HTTP transport of the RMs behind servers: POSTs JSON with a timeout, retries, backoff and a
/// cap on requests in flight; GETs a server's version. Knows nothing of any API's shapes.
///
/// Each request may take `timeoutMs`; 5xx answers, connection errors and timeouts are retried up to
/// `retries` times with exponential backoff (`backoffMs`, doubling, at most 30 s, jittered between
/// half and all of it: only when a retry happens changes, never a score). 4xx answers and 2xx bodies
/// that fail to parse are not retried. At most `maxConcurrency` requests are in flight at once,
/// whichever threads send them.
///
/// Thread-safe: URLSession is, and the rest is behind a lock or a semaphore.
final class HTTPClient: @unchecked Sendable {  // URLSession is thread-safe; `closed` and the session are behind `lock`
    /// Prefixed to every error: "reward model 'x' (http vllm-pooling http://...)".
    let owner: String
    let timeoutMs: Int
    let retries: Int
    let backoffMs: Int
    let maxConcurrency: Int
    /// The name of an environment variable of the worker holding a bearer token.
    let apiKeyEnvironmentVariable: String?
    let log: BackendLog
    private let slots: DispatchSemaphore
    private let lock = NSLock()
    /// Made on first use: building an RM (the coordinator does, to check the config) opens nothing.
    private var sessionStorage: URLSession?
    private var closed = false

    init(
        owner: String, timeoutMs: Int, retries: Int, backoffMs: Int, maxConcurrency: Int,
        apiKeyEnvironmentVariable: String?, log: @escaping BackendLog
    ) {
        precondition(timeoutMs > 0 && retries >= 0 && backoffMs >= 0 && maxConcurrency > 0)
        self.owner = owner
        self.timeoutMs = timeoutMs
        self.retries = retries
        self.backoffMs = backoffMs
        self.maxConcurrency = maxConcurrency
        self.apiKeyEnvironmentVariable = apiKeyEnvironmentVariable
        self.log = log
        slots = DispatchSemaphore(value: maxConcurrency)
    }

    deinit { sessionStorage?.invalidateAndCancel() }

    private var session: URLSession? {
        lock.lock()
        defer { lock.unlock() }
        if closed { return nil }
        if let session = sessionStorage { return session }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = max(16, maxConcurrency)
        configuration.timeoutIntervalForRequest = Double(timeoutMs) / 1000 + 1
        configuration.timeoutIntervalForResource = Double(timeoutMs) / 1000 + 1
        let session = URLSession(configuration: configuration)
        sessionStorage = session
        return session
    }

    /// Cancels requests in flight; later calls fail at once (the worker is stopping).
    func close() {
        lock.lock()
        let session = sessionStorage
        sessionStorage = nil
        closed = true
        lock.unlock()
        session?.invalidateAndCancel()
    }

    func error(_ message: String) -> RewardModelError { RewardModelError("\(owner): \(message)") }

    /// POSTs `body` and parses a 2xx answer with `parse`, retrying what is transient. `what` names
    /// the request in errors and logs ("candidates 1-64 of 200").
    func post<T>(_ url: URL, body: [UInt8], what: String, parse: ([UInt8]) -> Result<T, RewardModelError>) throws -> T {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        return try exchange(request, what: what, parse: parse)
    }

    /// GETs `url` once per attempt (with the same retries) and parses the body.
    func get<T>(_ url: URL, what: String, parse: ([UInt8]) -> Result<T, RewardModelError>) throws -> T {
        var request = URLRequest(url: url)
        request.httpMethod = "GET"
        return try exchange(request, what: what, parse: parse)
    }

    private enum Attempt<T> {
        case success(T)
        /// Do not retry (4xx, a 2xx body that is wrong).
        case fatal(String)
        /// Retry (5xx, connection error, timeout).
        case transient(String)
    }

    private func exchange<T>(
        _ base: URLRequest, what: String, parse: ([UInt8]) -> Result<T, RewardModelError>
    ) throws -> T {
        var request = base
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        request.timeoutInterval = Double(timeoutMs) / 1000 + 1
        if let variable = apiKeyEnvironmentVariable {
            guard let key = ProcessInfo.processInfo.environment[variable], !key.isEmpty else {
                throw error("the environment variable \(variable) (api_key_env) is not set on this worker")
            }
            request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        }
        var attempt = 0
        while true {
            attempt += 1
            slots.wait()
            let outcome = send(request, parse: parse)
            slots.signal()
            switch outcome {
            case .success(let value):
                return value
            case .fatal(let message):
                throw error("\(what): \(message)")
            case .transient(let message):
                guard attempt <= retries else {
                    throw error("\(what): \(message) (gave up after \(attempt) attempt\(attempt == 1 ? "" : "s"))")
                }
                let delay = backoffDelayMs(afterAttempt: attempt)
                log("\(owner): \(what): \(message); retry \(attempt) of \(retries) in \(delay) ms")
                if delay > 0 { usleep(useconds_t(delay * 1000)) }
            }
        }
    }

    /// Exponential backoff with jitter: between half and all of `backoffMs * 2^(attempt-1)`, at most
    /// 30 s. The jitter only spreads retries in time; scores never depend on it.
    func backoffDelayMs(afterAttempt attempt: Int) -> Int {
        let full = min(30_000, backoffMs << min(attempt - 1, 20))
        guard full > 1 else { return full }
        return Int.random(in: (full / 2)...full)
    }

    private func send<T>(_ request: URLRequest, parse: ([UInt8]) -> Result<T, RewardModelError>) -> Attempt<T> {
        guard let session else { return .fatal("closed (the worker is stopping)") }
        let box = ResponseBox()
        let task = session.dataTask(with: request) { data, response, error in
            box.set(data: data, response: response as? HTTPURLResponse, error: error)
        }
        task.resume()
        guard let (data, response, failure) = box.wait(timeoutMs: timeoutMs) else {
            task.cancel()
            return .transient("no response within \(timeoutMs) ms (timeout_ms)")
        }
        if let failure {
            let nsError = failure as NSError
            if nsError.domain == NSURLErrorDomain && nsError.code == NSURLErrorTimedOut {
                return .transient("no response within \(timeoutMs) ms (timeout_ms)")
            }
            if sessionIfOpen == nil { return .fatal("closed (the worker is stopping)") }
            return .transient("request failed: \(nsError.localizedDescription) (\(nsError.domain) \(nsError.code))")
        }
        guard let response else { return .transient("no HTTP response") }
        let body = data.map { [UInt8]($0) } ?? []
        let status = response.statusCode
        let served = ServerErrorBody.messageOfFailure(body).map(ServerErrorBody.hint) ?? ""
        switch status {
        case 200..<300:
            switch parse(body) {
            case .success(let value): return .success(value)
            case .failure(let message): return .fatal("HTTP \(status), but \(message)")
            }
        case 500..<600:
            return .transient("HTTP \(status): \"\(excerpt(body))\"\(served)")
        default:
            return .fatal("HTTP \(status) (not retried): \"\(excerpt(body))\"\(served)")
        }
    }

    private var sessionIfOpen: URLSession? {
        lock.lock()
        defer { lock.unlock() }
        return closed ? nil : sessionStorage
    }
}

/// Hands a URLSession completion to the waiting scoring thread.
private struct ResponseBox: Sendable {
    private struct Answer: @unchecked Sendable {  // Data and URLResponse are immutable once delivered
        var data: Data?
        var response: HTTPURLResponse?
        var error: Error?
    }
    private let answer = Locked<Answer?>(nil)

    func set(data: Data?, response: HTTPURLResponse?, error: Error?) {
        answer.update { if $0 == nil { $0 = Answer(data: data, response: response, error: error) } }
    }

    /// The answer, or nil when it did not come within the time.
    func wait(timeoutMs: Int) -> (Data?, HTTPURLResponse?, Error?)? {
        answer.wait(until: { $0 != nil }, deadline: Date().addingTimeInterval(Double(timeoutMs) / 1000)) { a in
            (a!.data, a!.response, a!.error)
        }
    }
}

extension URL {
    /// scheme://host:port, no path: where `/version` and `/tokenize` live.
    var origin: URL? {
        var parts = URLComponents()
        parts.scheme = scheme
        parts.host = host
        parts.port = port
        return parts.url
    }
}
