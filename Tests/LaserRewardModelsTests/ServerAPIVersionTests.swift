import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
@testable import LaserRewardModels
import Testing

/// The HTTP RM APIs against Tests/simulations/rm_api_replay.py: a SIMULATION that answers with each
/// server version's documented JSON shapes and quirks (docs/rm-backends.md). Its texts score
/// `utf8 bytes / 10 - 2`, so every expected value here is computed, not copied.
@Suite(.serialized) struct ServerAPIVersionTests {
    final class Replay: @unchecked Sendable {
        let server: ServerProcess
        let urls: [String: String]
        init() throws {
            server = try ServerProcess(script: Backends.repositoryRoot + "/Tests/simulations/rm_api_replay.py")
            urls = try JSONSerialization.jsonObject(with: Data(server.url.utf8)) as! [String: String]
        }
        func posts(_ flavor: String, _ path: String) throws -> Int {
            let text = try ServerProcess.fetch(urls[flavor]! + "/counts")
            let counts = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Int]
            return counts[flavor + " " + path] ?? 0
        }
        deinit { server.stop() }
    }

    let replay: Replay
    init() throws { replay = try Replay() }

    let requests = Backends.requests
    func raw(_ text: String) -> Double { Double(text.utf8.count) / 10 - 2 }
    func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
    func expected(_ separator: String = "", _ f: (Double) -> Double = { $0 }) -> [[Double]] {
        requests.map { r in r.candidates.map { f(raw(r.prompt + separator + $0)) } }
    }
    func close(_ a: [[Double]], _ b: [[Double]], _ tolerance: Double = 1e-9) -> Bool {
        a.count == b.count
            && zip(a, b).allSatisfy { $0.count == $1.count && zip($0, $1).allSatisfy { abs($0 - $1) < tolerance } }
    }
    func httpRM(
        _ flavor: String, _ path: String, _ api: String, _ extra: [String: String] = [:], sink: Backends.LogSink
    ) throws -> HTTPRM {
        try HTTPRM(
            name: "rm",
            params: ["url": replay.urls[flavor]! + path, "api": api, "backoff_ms": "5"].merging(extra) { $1 },
            log: sink.log)
    }
    func failure(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    @Test(arguments: ["0.9.2", "0.10.1.1", "0.11.0", "0.11.2", "0.13.0", "0.14.1", "0.16.0", "0.34.0"])
    func vllmClassifyAndPoolingGiveRawScoresWhereTheVersionAllows(version: String) throws {
        let flavor = "vllm-" + version
        let sink = Backends.LogSink()
        let classify = try httpRM(flavor, "/classify", "vllm-classify", ["separator": "\n"], sink: sink).scoreBatch(
            requests)
        let pooling = try httpRM(flavor, "/pooling", "vllm-pooling", ["separator": "\n"], sink: sink).scoreBatch(
            requests)
        // 0.9.2 /classify has no switch; 0.10.1-0.11.0 /pooling applies sigmoid with no switch.
        let classifyRaw = version != "0.9.2"
        let poolingRaw = !["0.10.1.1", "0.11.0"].contains(version)
        #expect(close(classify, expected("\n", classifyRaw ? { $0 } : sigmoid)), "\(version) classify \(classify)")
        #expect(close(pooling, expected("\n", poolingRaw ? { $0 } : sigmoid)), "\(version) pooling \(pooling)")
        #expect(sink.text.contains("vLLM \(version) (from GET \(replay.urls[flavor]!)/version)"), "\(sink.text)")
        if ServerVersion(version)! >= ServerVersion(0, 11, 1) {
            #expect(sink.text.contains("sending \"use_activation\": false"), "\(sink.text)")
        }
        if !classifyRaw || !poolingRaw { #expect(sink.text.contains("after sigmoid/softmax (order kept)")) }
        // One request each: 5 candidates fit max_batch 64; the version is asked once per RM.
        #expect(try replay.posts(flavor, "/classify") == 1 && replay.posts(flavor, "/pooling") == 1)
    }

    /// Dynamic placement's hooks (docs/placement.md): unload POSTs `unload_url` (vLLM: /sleep?level=1), after
    /// which the server answers 503; load POSTs `load_url` (/wake_up) and scoring works again.
    @Test func placementHooksPutAVLLMServerToSleepAndWakeItUp() throws {
        let flavor = "vllm-0.13.0"
        let base = replay.urls[flavor]!
        let sink = Backends.LogSink()
        let rm = try httpRM(
            flavor, "/classify", "vllm-classify",
            ["retries": "0", "load_url": base + "/wake_up", "unload_url": base + "/sleep?level=1"], sink: sink)
        #expect(close(try rm.scoreBatch(requests), expected()))
        try rm.unload()
        #expect(try replay.posts(flavor, "/sleep?level=1") == 1)
        #expect(failure { _ = try rm.scoreBatch(requests) }.contains("503"))
        try rm.load()
        #expect(try replay.posts(flavor, "/wake_up") == 1)
        #expect(close(try rm.scoreBatch(requests), expected()))
        // A hook URL is checked like any URL.
        #expect(
            failure { _ = try httpRM(flavor, "/classify", "vllm-classify", ["load_url": "ftp://x"], sink: sink) }
                .contains("load_url"))
    }

    /// The command hooks run on the worker (/bin/sh -c, from its own definition): a failing one and one
    /// that overruns `hook_timeout_ms` fail the step with what to look at.
    @Test func placementHookCommandsRunOnTheWorker() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hooks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = Backends.LogSink()
        let rm = try httpRM(
            "vllm-0.13.0", "/classify", "vllm-classify",
            ["load_command": "touch '\(dir)/loaded'", "unload_command": "exit 3"], sink: sink)
        try rm.load()
        #expect(FileManager.default.fileExists(atPath: dir + "/loaded"))
        #expect(failure { try rm.unload() }.contains("unload_command ended with exit status 3"))
        let slow = try httpRM(
            "vllm-0.13.0", "/classify", "vllm-classify", ["load_command": "sleep 5", "hook_timeout_ms": "100"],
            sink: sink)
        let start = Date()
        #expect(failure { try slow.load() }.contains("did not finish within 100 ms"))
        #expect(Date().timeIntervalSince(start) < 4)
        // A server the load command starts in the background keeps running after the command returns.
        let background = try httpRM(
            "vllm-0.13.0", "/classify", "vllm-classify", ["load_command": "sleep 30 & echo $! > '\(dir)/server.pid'"],
            sink: sink)
        try background.load()
        let pid = Int32(try String(contentsOfFile: dir + "/server.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
        #expect(kill(pid, 0) == 0, "the background process was killed with its hook")
        kill(pid, SIGKILL)
    }

    @Test func theAliasPrecedenceBugOfVLLM0_11_1To0_13_0IsWhyTheVersionMatters() throws {
        // Told (wrongly) that the server is 0.11.0, laser sends "activation": false, which vLLM 0.13.0
        // reads as use_activation=true: the scores come back after sigmoid.
        let sink = Backends.LogSink()
        let wrong = try httpRM("vllm-0.13.0", "/classify", "vllm-classify", ["version": "0.11.0"], sink: sink)
            .scoreBatch(requests)
        #expect(close(wrong, expected("", sigmoid)))
        #expect(sink.text.contains("vLLM 0.11.0 (from the version param)"), "\(sink.text)")
        let right = try httpRM("vllm-0.13.0", "/classify", "vllm-classify", ["version": "0.13.0"], sink: sink)
            .scoreBatch(requests)
        #expect(close(right, expected()))
    }

    @Test func aRewardModelBehindScoreIsAClearErrorInEveryVersion() throws {
        let sink = Backends.LogSink()
        for version in ["0.9.2", "0.11.2", "0.16.0"] {
            let message = failure {
                _ = try httpRM("vllm-" + version, "/score", "cross-encoder", sink: sink).scoreBatch(requests)
            }
            if version == "0.16.0" {
                #expect(message.contains("HTTP 404 (not retried)") && message.contains("Not Found"), "\(message)")
            } else {
                #expect(
                    message.contains(
                        "HTTP 200, but the body is an error: The model does not support Score API (BadRequestError, code 400)"
                    ), "\(message)")
                #expect(message.contains("use api: vllm-pooling or vllm-classify"), "\(message)")
            }
        }
        #expect(try replay.posts("vllm-0.9.2", "/score") == 1, "a 200 with an error body is not retried")
        let unknownVersion = failure {
            _ = try httpRM("sglang-0.5.5", "/classify", "vllm-classify", ["retries": "0"], sink: sink).scoreBatch(
                requests)
        }
        #expect(
            unknownVersion.contains("cannot learn the vLLM version") && unknownVersion.contains("set params.version"),
            "\(unknownVersion)")
    }

    @Test func sglangOpenRLHFAndCrossEncoderShapes() throws {
        let sink = Backends.LogSink()
        #expect(
            close(
                try httpRM("sglang-0.5.5", "/v1/embeddings", "sglang-embeddings", sink: sink).scoreBatch(requests),
                expected()))
        let classify = failure {
            _ = try httpRM("sglang-0.5.5", "/v1/classify", "sglang-classify", sink: sink).scoreBatch(requests)
        }
        #expect(
            classify.contains("SGLang's /v1/classify applies softmax")
                && classify.contains("use api: sglang-embeddings"), "\(classify)")
        #expect(
            close(
                try httpRM("openrlhf", "/get_reward", "openrlhf", ["separator": " "], sink: sink).scoreBatch(requests),
                expected(" ")))
        let crossEncoder = try httpRM("cross-encoder", "/score", "cross-encoder", sink: sink).scoreBatch(requests)
        let oldName = try httpRM("cross-encoder", "/score", "vllm-score", sink: sink).scoreBatch(requests)
        #expect(close(crossEncoder, expected()) && crossEncoder == oldName)
    }

    @Test func requestsCarryWholePromptsUpToMaxBatchAndRunInParallel() throws {
        let sink = Backends.LogSink()
        let many = (0..<10).map { p in
            ScoringRequest(promptID: "p\(p)", prompt: "prompt \(p)", candidates: (0..<4).map { "answer \($0) to \(p)" })
        }
        let model = try httpRM(
            "vllm-0.14.1", "/pooling", "vllm-pooling", ["max_batch": "10", "max_concurrency": "3"], sink: sink)
        let scores = try model.scoreBatch(many)
        #expect(close(scores, many.map { r in r.candidates.map { raw(r.prompt + $0) } }))
        #expect(
            try replay.posts("vllm-0.14.1", "/pooling") == 5, "40 candidates, 2 prompts (8) per request of at most 10")
        #expect(model.maxBatchCandidates == 10)
        let chunks = CandidateChunks([3, 12, 2], maxBatch: 5)
        #expect(
            chunks.ranges.map(\.count) == [3, 5, 5, 4] && chunks.total == 17,
            "a split prompt's tail shares a request with the next prompt")
    }

    func expectedLogLikelihood(
        _ prompts: [String], _ responses: [String], template: String, separator: String = "", flavor: String = "loglik"
    ) throws -> [Double] {
        var request = URLRequest(url: URL(string: replay.urls[flavor]! + "/expected")!)
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: [
            "prompts": prompts, "responses": responses, "template": template, "separator": separator,
        ])
        let text = try ServerProcess.fetch(request)
        return (try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: [Double]])["sums"]!
    }

    @Test func logLikelihoodSumsTheResponseTokensEvenWhenTheBoundaryFallsInsideAToken() throws {
        // "?" + "\n..." and "the" + " red" merge across the boundary in the simulation's tokenizer.
        let batch = [
            ScoringRequest(promptID: "a", prompt: "Is it?", candidates: ["\nyes it is", "no"]),
            ScoringRequest(promptID: "b", prompt: "Say the", candidates: [" red thing", "the end"]),
        ]
        let prompts = batch.flatMap { r in r.candidates.map { _ in r.prompt } }
        let responses = batch.flatMap(\.candidates)
        for template in ["none", "chat"] {
            let model = try LogLikelihoodRM(
                name: "ll",
                params: ["url": replay.urls["loglik"]! + "/v1/completions", "api": "loglik", "template": template])
            let sums = try model.scoreBatch(batch).flatMap { $0 }
            let want = try expectedLogLikelihood(prompts, responses, template: template)
            #expect(
                zip(sums, want).allSatisfy { abs($0 - $1) < 1e-9 } && sums.count == 4, "\(template): \(sums) vs \(want)"
            )
        }
        // The straddling token really straddles: the plain-text boundary is inside "?\n" and "e r".
        #expect(LogLikelihood.responseStart(prompt: [1, 2, 3], full: [1, 2, 9, 4]) == 2)
        let mean = try LogLikelihoodRM(
            name: "m", params: ["url": replay.urls["loglik"]! + "/v1/completions", "api": "loglik", "reduce": "mean"]
        )
        .scoreBatch(batch).flatMap { $0 }
        #expect(mean.allSatisfy { $0 < 0 } && mean.count == 4)
        let dpo = try LogLikelihoodRM(
            name: "d",
            params: [
                "url": replay.urls["loglik"]! + "/v1/completions", "api": "loglik", "reduce": "dpo",
                "beta": "0.2", "ref_url": replay.urls["loglik-ref"]! + "/v1/completions",
            ]
        )
        .scoreBatch(batch).flatMap { $0 }
        let policy = try expectedLogLikelihood(prompts, responses, template: "chat")
        #expect(zip(dpo, policy).allSatisfy { abs($0 - 0.2 * ($1 - 0.5 * $1)) < 1e-9 }, "\(dpo) vs \(policy)")
    }

    @Test func logLikelihoodParamsAreValidated() {
        func message(_ params: [String: String]) -> String {
            do { _ = try LogLikelihoodRM(name: "l", params: params); return "" } catch { return "\(error)" }
        }
        let base = ["url": "http://127.0.0.1:8000/v1/completions", "api": "loglik"]
        #expect(message(base) == "")
        #expect(message(base.merging(["reduce": "dpo"]) { $1 }).contains("missing param 'ref_url'"))
        #expect(message(base.merging(["reduce": "max"]) { $1 }).contains("param 'reduce' must be"))
        #expect(message(base.merging(["template": "jinja"]) { $1 }).contains("param 'template' must be"))
        #expect(message(base.merging(["beta": "0.1"]) { $1 }).contains("unknown param 'beta'"))
        #expect(
            message(base.merging(["separator": " "]) { $1 }).contains("unknown param 'separator'"),
            "chat template: no separator")
        #expect(message(base.merging(["template": "none", "separator": " "]) { $1 }) == "")
    }
}
