import Foundation
@testable import LaserRewardModels
import Testing

/// The HTTP backend against real servers on loopback: the example server, and a server whose
/// routes misbehave (written here). Each test starts its own server, so request counts are its own.
@Suite struct HTTPRMTests {
    /// Routes: `/len` answers rewards = characters of each query (OpenRLHF) or text_2 (vLLM);
    /// the others misbehave as named. GET anything: the number of POSTs per path so far.
    static let serverScript = """
        import json, sys, threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        counts, lock = {}, threading.Lock()
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                with lock:
                    self.send(200, json.dumps(counts).encode())
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with lock:
                    counts[self.path] = count = counts.get(self.path, 0) + 1
                texts = body.get("query") or body.get("text_2")
                lens = [float(len(t)) for t in texts]
                if self.path == "/flaky" and count == 1:
                    return self.send(500, b'{"detail": "model is warming up"}')
                if self.path == "/bad-request":
                    return self.send(400, b'{"detail": "query must be a list of strings"}')
                if self.path == "/html":
                    return self.send(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html")
                if self.path == "/html502":
                    return self.send(502, b"<html><head><title>502 Bad Gateway</title></head></html>", "text/html")
                if self.path == "/auth" and self.headers.get("Authorization") != "Bearer sekrit":
                    return self.send(401, b'{"detail": "bad token"}')
                if self.path == "/hang":
                    time.sleep(30)
                if self.path == "/short":
                    lens = lens[:-1]
                if self.path == "/nan":
                    lens[0] = float("nan")
                if self.path == "/vllm-reversed":
                    data = [{"index": i, "object": "score", "score": lens[i]} for i in reversed(range(len(lens)))]
                    return self.send(200, json.dumps({"object": "list", "data": data}).encode())
                self.send(200, json.dumps({"rewards": lens}).encode())
            def send(self, status, data, kind="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def log_message(self, *args):
                pass
        server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
        server.daemon_threads = True
        print("misbehaving server listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
        server.serve_forever()
        """

    static func misbehavingServer() throws -> ServerProcess {
        let dir = Backends.temporaryDirectory()
        try Backends.write(Self.serverScript, to: dir + "/server.py")
        return try ServerProcess(script: dir + "/server.py")
    }

    func rm(
        _ server: ServerProcess, _ path: String, api: String = "openrlhf", sink: Backends.LogSink = .init(),
        _ extra: [String: String] = [:]
    ) throws -> HTTPRM {
        try HTTPRM(
            name: "remote", params: ["url": server.url + path, "api": api, "backoff_ms": "10"].merging(extra) { $1 },
            log: sink.log)
    }

    func posts(_ server: ServerProcess, _ path: String) throws -> Int {
        let counts = try JSONSerialization.jsonObject(with: Data(server.get("/counts").utf8)) as! [String: Int]
        return counts[path] ?? 0
    }

    func failure(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    let requests = Backends.requests
    var lengths: [[Double]] { requests.map { r in r.candidates.map { Double(r.prompt.count + $0.count) } } }

    @Test func exampleServerSpeaksBothAPIsWithThePlaceholderScores() throws {
        let server = try ServerProcess(script: Backends.httpExample)
        defer { server.stop() }
        let expected = requests.map { r in
            r.candidates.map { Backends.placeholderScore(prompt: r.prompt, response: $0) }
        }
        func close(_ a: [[Double]], _ b: [[Double]]) -> Bool {
            a.count == b.count
                && zip(a, b).allSatisfy { $0.count == $1.count && zip($0, $1).allSatisfy { abs($0 - $1) < 1e-9 } }
        }
        let openrlhf = try rm(server, "/get_reward").scoreBatch(requests)
        let vllm = try rm(server, "/score", api: "vllm-score", ["model": "example"]).scoreBatch(requests)
        let small = try rm(server, "/v1/score", api: "vllm-score", ["batch_size": "1"]).scoreBatch(requests)
        #expect(close(openrlhf, expected), "\(openrlhf) vs \(expected)")
        #expect(vllm == openrlhf && small == openrlhf)
    }

    @Test func batchesLargerThanBatchSizeAreSplitAndReassembledInOrder() throws {
        let server = try Self.misbehavingServer()
        defer { server.stop() }
        #expect(try rm(server, "/len", ["batch_size": "2"]).scoreBatch(requests) == lengths)
        #expect(try posts(server, "/len") == 3, "5 candidates in requests of at most 2")
        #expect(try rm(server, "/len", ["separator": "\n"]).scoreBatch(requests) == lengths.map { $0.map { $0 + 1 } })
        #expect(try posts(server, "/len") == 4)
        // vLLM: placed by "index", whatever the order of "data".
        let vllm = try rm(server, "/vllm-reversed", api: "vllm-score", ["batch_size": "4"]).scoreBatch(requests)
        #expect(vllm == requests.map { $0.candidates.map { Double($0.count) } })
        #expect(try posts(server, "/vllm-reversed") == 2)
    }

    @Test func a500IsRetriedAndTheRetrySucceeds() throws {
        let server = try Self.misbehavingServer()
        defer { server.stop() }
        let sink = Backends.LogSink()
        #expect(try rm(server, "/flaky", sink: sink).scoreBatch(requests) == lengths)
        #expect(try posts(server, "/flaky") == 2)
        #expect(sink.text.contains("HTTP 500: \"{\"detail\": \"model is warming up\"}\"; retry 1 of 3"), "\(sink.text)")
    }

    @Test func a400IsNotRetried() throws {
        let server = try Self.misbehavingServer()
        defer { server.stop() }
        let message = failure { _ = try rm(server, "/bad-request").scoreBatch(requests) }
        #expect(
            message.contains("HTTP 400 (not retried)") && message.contains("query must be a list of strings"),
            "\(message)")
        #expect(message.contains("reward model 'remote'"))
        #expect(try posts(server, "/bad-request") == 1)
    }

    @Test func anHTMLBodyIsAClearError() throws {
        let server = try Self.misbehavingServer()
        defer { server.stop() }
        let ok = failure { _ = try rm(server, "/html").scoreBatch(requests) }
        #expect(ok.contains("HTTP 200, but the body is not JSON: \"<html><body><h1>Welcome to nginx!</h1>"), "\(ok)")
        #expect(try posts(server, "/html") == 1)
        let gateway = failure { _ = try rm(server, "/html502", ["retries": "2"]).scoreBatch(requests) }
        #expect(gateway.contains("HTTP 502: \"<html><head><title>502 Bad Gateway</title>"), "\(gateway)")
        #expect(gateway.contains("gave up after 3 attempts"), "\(gateway)")
        #expect(try posts(server, "/html502") == 3)
    }

    @Test func aHangingServerTimesOutAndIsRetried() throws {
        let server = try Self.misbehavingServer()
        defer { server.stop() }
        let start = Date()
        let message = failure {
            _ = try rm(server, "/hang", ["timeout_ms": "300", "retries": "1"]).scoreBatch(requests)
        }
        #expect(
            message.contains("no response within 300 ms") && message.contains("gave up after 2 attempts"), "\(message)")
        #expect(Date().timeIntervalSince(start) < 3)
        #expect(try posts(server, "/hang") == 2)
    }

    @Test func wrongLengthsAndNonFiniteScoresAreErrors() throws {
        let server = try Self.misbehavingServer()
        defer { server.stop() }
        let short = failure { _ = try rm(server, "/short").scoreBatch(requests) }
        #expect(short.contains("4 rewards for 5 queries"), "\(short)")
        let nan = failure { _ = try rm(server, "/nan").scoreBatch(requests) }
        #expect(nan.contains("score 0 is nan (not finite)"), "\(nan)")
        let vllm = failure { _ = try rm(server, "/len", api: "vllm-score").scoreBatch(requests) }
        #expect(vllm.contains("the body has no \"data\" list"), "\(vllm)")
        #expect(try posts(server, "/short") == 1 && posts(server, "/nan") == 1)
    }

    @Test func connectionErrorsAreRetriedThenReported() {
        let rm = HTTPRM(
            name: "nobody", url: URL(string: "http://127.0.0.1:1/get_reward")!, api: .openrlhf, retries: 2,
            backoffMs: 5,
            log: { _ in })
        let message = failure { _ = try rm.scoreBatch(Backends.requests) }
        #expect(message.contains("request failed") && message.contains("gave up after 3 attempts"), "\(message)")
    }

    @Test func bearerTokenFromTheWorkersEnvironment() throws {
        let server = try Self.misbehavingServer()
        defer { server.stop() }
        let missing = failure {
            _ = try rm(server, "/auth", ["api_key_env": "LASER_TEST_MISSING_KEY"]).scoreBatch(requests)
        }
        #expect(missing.contains("LASER_TEST_MISSING_KEY (api_key_env) is not set"), "\(missing)")
        setenv("LASER_TEST_RM_KEY", "sekrit", 1)
        #expect(try rm(server, "/auth", ["api_key_env": "LASER_TEST_RM_KEY"]).scoreBatch(requests) == lengths)
    }

    @Test func requestBodiesHaveTheDocumentedShapes() throws {
        let items = [(requests[0], "two plus two is 4"), (requests[1], "red")]
        func body(_ api: ServerAPI, _ model: String? = nil, _ separator: String = "") -> String {
            String(
                decoding: APIRequest(api: api, model: model).body(
                    items.map { ($0.0.prompt, $0.1, $0.0.reference) }, separator: separator), as: UTF8.self)
        }
        #expect(
            body(.openrlhf, nil, " ")
                == #"{"labels":["4",""],"prompts":["What is two plus two?","Name a colour"],"query":["What is two plus two? two plus two is 4","Name a colour red"]}"#
        )
        #expect(
            body(.crossEncoder, "BAAI/bge-reranker-v2-m3")
                == #"{"model":"BAAI/bge-reranker-v2-m3","text_1":["What is two plus two?","Name a colour"],"text_2":["two plus two is 4","red"]}"#
        )
        var classify = APIRequest(api: .vllmClassify, model: "rm", activation: .useActivationFalse)
        #expect(
            String(decoding: classify.body([("P", "R", nil)], separator: "\n"), as: UTF8.self)
                == #"{"input":["P\nR"],"model":"rm","use_activation":false}"#)
        classify.activation = .activationFalse
        #expect(
            String(decoding: classify.body([("P", "R", nil)], separator: ""), as: UTF8.self)
                == #"{"activation":false,"input":["PR"],"model":"rm"}"#)
        #expect(
            String(decoding: APIRequest(api: .sglangEmbeddings).body([("P", "R", nil)], separator: ""), as: UTF8.self)
                == #"{"encoding_format":"float","input":["PR"]}"#)
    }

    @Test func backoffDoublesWithJitterAndACap() {
        let rm = HTTPRM(name: "b", url: URL(string: "http://h/x")!, api: .openrlhf, backoffMs: 100)
        for _ in 0..<50 {
            #expect((50...100).contains(rm.client.backoffDelayMs(afterAttempt: 1)))
            #expect((100...200).contains(rm.client.backoffDelayMs(afterAttempt: 2)))
            #expect((15_000...30_000).contains(rm.client.backoffDelayMs(afterAttempt: 40)))
        }
    }

    @Test func paramsAreValidated() {
        func message(_ params: [String: String]) -> String {
            do { _ = try HTTPRM(name: "h", params: params); return "" } catch { return "\(error)" }
        }
        let base = ["url": "http://127.0.0.1:5000/get_reward", "api": "openrlhf"]
        #expect(message(["api": "openrlhf"]).contains("missing param 'url'"))
        #expect(
            message(["url": "ftp://x/y", "api": "openrlhf"]).contains("param 'url' must be an http:// or https:// URL"))
        #expect(
            message(["url": "http://x/y", "api": "tgi"]).contains(
                "param 'api' must be \"openrlhf\", \"cross-encoder\", \"vllm-classify\""))
        #expect(
            message(base.merging(["max_batch": "8", "batch_size": "8"]) { $1 }).contains(
                "left out when max_batch is set"))
        #expect(message(base.merging(["max_concurrency": "0"]) { $1 }).contains("param 'max_concurrency'"))
        #expect(
            message(["url": "http://x/classify", "api": "vllm-classify", "version": "latest"]).contains(
                "param 'version' must be a vLLM version"))
        #expect(
            message([
                "url": "http://x/pooling", "api": "vllm-pooling", "version": "0.11.2", "task": "token_classify",
                "label_index": "0",
            ]) == "")
        #expect(message(base.merging(["batch_size": "0"]) { $1 }).contains("param 'batch_size'"))
        #expect(message(base.merging(["retries": "-1"]) { $1 }).contains("param 'retries'"))
        #expect(message(base.merging(["model": "m"]) { $1 }).contains("unknown param 'model'"))
        #expect(
            message(["url": "http://x/score", "api": "vllm-score", "separator": "\n"]).contains(
                "unknown param 'separator'"))
        #expect(
            message(
                base.merging([
                    "timeout_ms": "5000", "retries": "0", "backoff_ms": "0", "batch_size": "8", "api_key_env": "K",
                ]) { $1 }) == "")
    }
}
