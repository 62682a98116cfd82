import LaserJSON
import Foundation

/// A reward model that scores a response by its log-likelihood under a language model served with an
/// OpenAI-compatible completions endpoint (vLLM's `/v1/completions`, with its `/tokenize`): the
/// paper's own RMs were chat LMs scored this way. `api: loglik`; docs/rm-backends.md.
///
/// For each candidate:
/// 1. The server tokenizes the prompt alone and the prompt with the response: as chat messages
///    through the server's chat template (`template: chat`, the default; the prompt alone with the
///    generation prompt added), or as plain text joined by `separator` (`template: none`).
/// 2. The response's tokens are those after the longest common prefix of the two token lists. When
///    the boundary falls inside a token (the last prompt characters and the first response ones merge
///    into one token), that token differs between the lists and counts as the response's.
/// 3. One completions request per `max_batch` candidates sends the full token lists with
///    `echo: true, logprobs: 1, max_tokens: 1, temperature: 0`; `choices[i].logprobs.token_logprobs`
///    gives each prompt token's log-probability (the first is null).
/// 4. The score is the response tokens' sum (`reduce: sum`), their mean (`mean`), or the implicit
///    DPO reward `beta * (sum - sum_ref)` (`dpo`), with `sum_ref` from `ref_url` (the reference
///    model, same tokenizer) as RewardBench scores DPO models.
public final class LogLikelihoodRM: RewardModel, Sendable {
    public enum Reduce: String, Sendable, CaseIterable { case sum, mean, dpo }
    public enum Template: String, Sendable, CaseIterable { case chat, none }

    public let name: String
    public let url: URL
    public let referenceURL: URL?
    public let tokenizeURL: URL
    public let reduce: Reduce
    public let template: Template
    public let beta: Double
    public let separator: String
    public let model: String?
    public let referenceModel: String?
    public let maxBatch: Int
    let client: HTTPClient
    /// Dynamic placement's hooks (`load_url`, `unload_url`, `load_command`, `unload_command`).
    public let hooks: PlacementHooks

    public var maxBatchCandidates: Int? { maxBatch }

    public init(
        name: String, url: URL, reduce: Reduce = .sum, template: Template = .chat, beta: Double = 0.1,
        separator: String = "",
        model: String? = nil, referenceURL: URL? = nil, referenceModel: String? = nil, tokenizeURL: URL? = nil,
        maxBatch: Int = 64, maxConcurrency: Int = 8, timeoutMs: Int = 60_000, retries: Int = 3, backoffMs: Int = 500,
        apiKeyEnvironmentVariable: String? = nil, hooks: PlacementHooks = PlacementHooks(),
        log: @escaping BackendLog = standardErrorLog
    ) {
        precondition(maxBatch > 0 && (reduce != .dpo || referenceURL != nil))
        self.hooks = hooks
        self.name = name
        self.url = url
        self.reduce = reduce
        self.template = template
        self.beta = beta
        self.separator = separator
        self.model = model
        self.referenceURL = referenceURL
        self.referenceModel = referenceModel ?? model
        self.tokenizeURL = tokenizeURL ?? url.origin!.appendingPathComponent("tokenize")
        self.maxBatch = maxBatch
        client = HTTPClient(
            owner: "reward model '\(name)' (http loglik \(url.absoluteString))", timeoutMs: timeoutMs, retries: retries,
            backoffMs: backoffMs, maxConcurrency: maxConcurrency, apiKeyEnvironmentVariable: apiKeyEnvironmentVariable,
            log: log)
    }

    /// Params: the shared HTTP ones, plus `model`, `reduce`, `template`, `separator` (template none),
    /// `beta`, `ref_url` and `ref_model` (dpo), `tokenize_url`.
    public convenience init(name: String, params: [String: String], log: @escaping BackendLog = standardErrorLog) throws
    {
        var reader = ParamReader(rm: name, kind: "http", params: params)
        let common = try HTTPParams(&reader, apiNames: ["loglik"])
        let reduceText = reader.string("reduce") ?? "sum"
        guard let reduce = Reduce(rawValue: reduceText) else {
            throw reader.invalid(
                "reduce", reduceText, expected: Reduce.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
        }
        let templateText = reader.string("template") ?? "chat"
        guard let template = Template(rawValue: templateText) else {
            throw reader.invalid(
                "template", templateText, expected: "\"chat\" (the server's chat template) or \"none\" (plain text)")
        }
        let separator = template == .none ? (params["separator"] ?? "") : ""
        if template == .none { reader.markUsed(["separator"]) }
        let model = reader.string("model").flatMap { $0.isEmpty ? nil : $0 }
        var beta = 0.1, referenceURL: URL?, referenceModel: String?
        if reduce == .dpo {
            if let text = reader.string("beta"), !text.isEmpty {
                guard let b = Double(text), b.isFinite, b > 0 else {
                    throw reader.invalid("beta", text, expected: "a number > 0")
                }
                beta = b
            }
            referenceURL = try HTTPParams.url(
                &reader, "ref_url", example: "http://127.0.0.1:8001/v1/completions (the reference model)")
            referenceModel = reader.string("ref_model").flatMap { $0.isEmpty ? nil : $0 }
        }
        var tokenizeURL: URL?
        if let text = reader.string("tokenize_url"), !text.isEmpty {
            tokenizeURL = try HTTPParams.parseURL(reader, "tokenize_url", text)
        }
        try reader.rejectUnused()
        guard common.url.origin != nil else {
            throw reader.invalid("url", common.url.absoluteString, expected: "a URL with a host")
        }
        self.init(
            name: name, url: common.url, reduce: reduce, template: template, beta: beta, separator: separator,
            model: model,
            referenceURL: referenceURL, referenceModel: referenceModel, tokenizeURL: tokenizeURL,
            maxBatch: common.maxBatch,
            maxConcurrency: common.maxConcurrency, timeoutMs: common.timeoutMs, retries: common.retries,
            backoffMs: common.backoffMs, apiKeyEnvironmentVariable: common.apiKeyEnvironmentVariable,
            hooks: common.hooks, log: log)
    }

    public func close() { client.close() }

    public func load() throws { try hooks.load(client) }

    public func unload() throws { try hooks.unload(client) }

    public func score(_ request: ScoringRequest) throws -> [Double] {
        try scoreBatch([request])[0]
    }

    public func scoreBatch(_ requests: [ScoringRequest]) throws -> [[Double]] {
        // 1. Token ids: each prompt alone once, then each prompt with each response.
        var jobs: [(prompt: Int, candidate: Int?)] = []
        for (p, request) in requests.enumerated() {
            jobs.append((p, nil))
            for c in request.candidates.indices { jobs.append((p, c)) }
        }
        let tokenized = ParallelResults<[Int]>(count: jobs.count)
        let allJobs = jobs
        inParallel(min(jobs.count, client.maxConcurrency)) { [self] lane in
            for j in stride(from: lane, to: allJobs.count, by: client.maxConcurrency) {
                let job = allJobs[j]
                let request = requests[job.prompt]
                tokenized.set(j) {
                    try tokenize(prompt: request.prompt, response: job.candidate.map { request.candidates[$0] })
                }
            }
        }
        let ids = try tokenized.values()
        // 2. The response's tokens: after the common prefix with the prompt's.
        var full: [[[Int]]] = requests.map { _ in [] }
        var starts: [[Int]] = requests.map { _ in [] }
        var promptIDs: [Int] = []
        for (j, job) in jobs.enumerated() {
            guard let c = job.candidate else { promptIDs = ids[j]; continue }
            let start = max(1, LogLikelihood.responseStart(prompt: promptIDs, full: ids[j]))
            guard start < ids[j].count else {
                throw client.error(
                    "prompt \(requests[job.prompt].promptID) candidate \(c + 1): the response adds no tokens after the prompt "
                        + "(\(ids[j].count) tokens in all, \(promptIDs.count) for the prompt alone)")
            }
            full[job.prompt].append(ids[j])
            starts[job.prompt].append(start)
        }
        // 3. Log-probabilities of the response tokens, summed.
        let policy = try responseLogProbabilitySums(full: full, starts: starts, url: url, model: model)
        switch reduce {
        case .sum:
            return policy
        case .mean:
            return policy.enumerated().map { p, sums in
                sums.enumerated().map { c, sum in sum / Double(full[p][c].count - starts[p][c]) }
            }
        case .dpo:
            let reference = try responseLogProbabilitySums(
                full: full, starts: starts, url: referenceURL!, model: referenceModel)
            return zip(policy, reference).map { zip($0, $1).map { beta * ($0 - $1) } }
        }
    }

    private func tokenize(prompt: String, response: String?) throws -> [Int] {
        let body = LogLikelihood.tokenizeBody(
            prompt: prompt, response: response, template: template, separator: separator, model: model)
        let what = response == nil ? "tokenizing a prompt" : "tokenizing a prompt with a response"
        return try client.post(tokenizeURL, body: body, what: what, parse: LogLikelihood.tokens)
    }

    private func responseLogProbabilitySums(
        full: [[[Int]]], starts: [[Int]], url: URL, model: String?
    ) throws -> [[Double]] {
        let chunks = CandidateChunks(full.map(\.count), maxBatch: maxBatch)
        let results = ParallelResults<[Double]>(count: chunks.ranges.count)
        inParallel(chunks.ranges.count) { [self] c in
            let positions = chunks.ranges[c]
            let sequences = positions.map { full[$0.prompt][$0.candidate] }
            let body = LogLikelihood.completionsBody(sequences, model: model)
            let what =
                "log-probabilities of candidates \(chunks.first(c) + 1)-\(chunks.first(c) + positions.count) of \(chunks.total)"
            results.set(c) {
                let rows = try client.post(url, body: body, what: what) {
                    LogLikelihood.tokenLogProbabilities($0, lengths: sequences.map(\.count))
                }
                return zip(positions, rows).map { position, row in
                    row[starts[position.prompt][position.candidate]...].reduce(0, +)
                }
            }
        }
        var out = full.map { [Double](repeating: .nan, count: $0.count) }
        for (c, sums) in try results.values().enumerated() {
            for (position, sum) in zip(chunks.ranges[c], sums) { out[position.prompt][position.candidate] = sum }
        }
        return out
    }
}

/// The pure parts of log-likelihood scoring: request bodies, reply parsing, the token boundary.
enum LogLikelihood {
    /// Where the response's tokens start: the length of the longest common prefix of the prompt's
    /// tokens and the full text's. A token that straddles the boundary differs and so counts as the
    /// response's.
    static func responseStart(prompt: [Int], full: [Int]) -> Int {
        var i = 0
        while i < prompt.count && i < full.count && prompt[i] == full[i] { i += 1 }
        return i
    }

    /// vLLM's `/tokenize`: the chat form (`messages`, the template's generation prompt for the prompt
    /// alone) or the completion form (`prompt`, special tokens added as for a completion).
    static func tokenizeBody(
        prompt: String, response: String?, template: LogLikelihoodRM.Template, separator: String, model: String?
    ) -> [UInt8] {
        var members: [String: JSONValue] = [:]
        switch template {
        case .chat:
            var messages: [JSONValue] = [.object(sorting: ["role": .string("user"), "content": .string(prompt)])]
            if let response { messages.append(.object(sorting: ["role": .string("assistant"), "content": .string(response)])) }
            members["messages"] = .array(messages)
            members["add_generation_prompt"] = .bool(response == nil)
            members["add_special_tokens"] = .bool(false)  // the template writes them
        case .none:
            members["prompt"] = .string(response.map { prompt + separator + $0 } ?? prompt)
            members["add_special_tokens"] = .bool(true)
        }
        if let model { members["model"] = .string(model) }
        return Array(JSONValue.object(sorting: members).serialized.utf8)
    }

    static func tokens(_ body: [UInt8]) -> Result<[Int], RewardModelError> {
        guard let value = try? JSONValue.parse(body) else {
            return .failure(RewardModelError("the body is not JSON: \"\(excerpt(body))\""))
        }
        if let message = ServerErrorBody.message(value) {
            return .failure(RewardModelError("the body is an error: \(message)"))
        }
        guard case .array(let list)? = value["tokens"] else {
            return .failure(RewardModelError("the body has no \"tokens\" list: \"\(excerpt(body))\""))
        }
        var ids: [Int] = []
        for item in list {
            guard case .number(_, let d) = item, let id = Int(exactly: d) else {
                return .failure(RewardModelError("a token id is not an integer: \"\(excerpt(body))\""))
            }
            ids.append(id)
        }
        return .success(ids)
    }

    /// `/v1/completions` echoing the token lists with their log-probabilities, generating 1 token.
    static func completionsBody(_ sequences: [[Int]], model: String?) -> [UInt8] {
        var members: [String: JSONValue] = [
            "prompt": .array(sequences.map { .array($0.map { .number(Double($0)) }) }),
            "echo": .bool(true),
            "logprobs": .number(1),  // SGLang counts 0 as off (docs/notes/loglik-api.md); vLLM accepts 0 or 1
            "max_tokens": .number(1),
            "temperature": .number(0),
        ]
        if let model { members["model"] = .string(model) }
        return Array(JSONValue.object(sorting: members).serialized.utf8)
    }

    /// Each sequence's token log-probabilities (the first, which has none, as 0), placed by `index`.
    static func tokenLogProbabilities(_ body: [UInt8], lengths: [Int]) -> Result<[[Double]], RewardModelError> {
        func fail(_ message: String) -> Result<[[Double]], RewardModelError> { .failure(RewardModelError(message)) }
        guard let value = try? JSONValue.parse(body) else { return fail("the body is not JSON: \"\(excerpt(body))\"") }
        if let message = ServerErrorBody.message(value) { return fail("the body is an error: \(message)") }
        guard case .array(let choices)? = value["choices"] else {
            return fail("the body has no \"choices\" list: \"\(excerpt(body))\"")
        }
        guard choices.count == lengths.count else {
            return fail("\(choices.count) choices for \(lengths.count) prompts: \"\(excerpt(body))\"")
        }
        var out = [[Double]?](repeating: nil, count: lengths.count)
        for (i, choice) in choices.enumerated() {
            guard case .number(_, let indexValue)? = choice["index"], let index = Int(exactly: indexValue),
                (0..<lengths.count).contains(index), out[index] == nil
            else {
                return fail(
                    "choices[\(i)] has no valid \"index\" (0..<\(lengths.count), each once): \"\(excerpt(body))\"")
            }
            guard case .array(let list)? = choice["logprobs"]?["token_logprobs"] else {
                return fail(
                    "choices[\(i)] has no \"logprobs.token_logprobs\" (does the server support echo with logprobs?): \"\(excerpt(body))\""
                )
            }
            guard list.count >= lengths[index] else {
                return fail(
                    "choices[\(i)] has \(list.count) token log-probabilities for a prompt of \(lengths[index]) tokens (echo ignored?)"
                )
            }
            var row: [Double] = []
            for (t, item) in list.prefix(lengths[index]).enumerated() {
                switch item {
                case .number(_, let d) where d.isFinite && d <= 1e-9: row.append(d)
                case .null where t == 0: row.append(0)
                default:
                    return fail(
                        "choices[\(i)] token \(t): log-probability \(item.serialized) is not a finite number <= 0")
                }
            }
            out[index] = row
        }
        return .success(out.map { $0! })
    }
}
