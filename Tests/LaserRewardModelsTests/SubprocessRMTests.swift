import Foundation
@testable import LaserRewardModels
import Testing

/// The subprocess backend against real Python processes: the example script, and scripts that
/// misbehave on their first request (a marker file tells a restarted child to behave).
@Suite struct SubprocessRMTests {
    /// A JSON-lines RM that misbehaves in `mode` on the first request of its first incarnation, then
    /// answers properly (score = number of characters of the candidate).
    static let misbehavingScript = """
        import json, os, sys, time
        mode, marker = sys.argv[1], sys.argv[2]
        first = not os.path.exists(marker)
        open(marker, "a").close()
        print("misbehaving rm: started in mode " + mode, file=sys.stderr, flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            reply = {"id": request["id"], "scores": [[float(len(c)) for c in p["candidates"]] for p in request["prompts"]]}
            if first:
                first = False
                if mode == "nonjson":
                    print("Loading model weights... done", flush=True)
                    continue
                if mode == "count":
                    reply["scores"][0] = reply["scores"][0][:-1]
                if mode == "nan":
                    reply["scores"][0][1] = float("nan")
                if mode == "die":
                    print("fatal: CUDA error: an illegal memory access", file=sys.stderr, flush=True)
                    sys.exit(3)
                if mode == "hang":
                    time.sleep(60)
                if mode == "wrongid":
                    reply["id"] = request["id"] + 1
                if mode == "error":
                    reply = {"id": request["id"], "error": "CUDA out of memory"}
                if mode == "string":
                    reply["scores"][0][0] = "0.5"
            print(json.dumps(reply), flush=True)
        """

    func misbehaving(_ mode: String, timeoutMs: Int = 10_000, sink: Backends.LogSink = .init()) throws -> SubprocessRM {
        let dir = Backends.temporaryDirectory()
        try Backends.write(Self.misbehavingScript, to: dir + "/rm.py")
        return SubprocessRM(
            name: "rm-\(mode)", argv: ["python3", dir + "/rm.py", mode, dir + "/started-once"],
            timeoutMs: timeoutMs, killGraceMs: 1000, log: sink.log)
    }

    /// The scores the misbehaving script gives when it behaves.
    let lengths = Backends.requests.map { $0.candidates.map { Double($0.count) } }

    /// Dynamic placement's load starts the child at once (its start-up is the load time); the first
    /// request then uses it, and close (the unload) stops it.
    @Test func loadStartsTheChildAndTheFirstRequestUsesIt() throws {
        let sink = Backends.LogSink()
        let rm = try SubprocessRM(
            name: "example", params: ["command": "python3 '\(Backends.subprocessExample)'"], log: sink.log)
        defer { rm.close() }
        #expect(rm.childPIDs.isEmpty)
        try rm.load()
        let pid = rm.childPIDs
        #expect(pid.count == 1)
        _ = try rm.scoreBatch(Backends.requests)
        #expect(rm.childPIDs == pid, "the loaded child scores the first request")
        try rm.unload()
        rm.close()
        #expect(rm.childPIDs.isEmpty)
    }

    @Test func exampleScriptScoresABatchAndIsKept() throws {
        let sink = Backends.LogSink()
        let rm = try SubprocessRM(
            name: "example", params: ["command": "python3 '\(Backends.subprocessExample)'"], log: sink.log)
        defer { rm.close() }
        #expect(rm.childPIDs.isEmpty, "started lazily: nothing runs before the first request")
        let scores = try rm.scoreBatch(Backends.requests)
        for (request, list) in zip(Backends.requests, scores) {
            #expect(list.count == request.candidates.count)
            for (candidate, score) in zip(request.candidates, list) {
                #expect(abs(score - Backends.placeholderScore(prompt: request.prompt, response: candidate)) < 1e-9)
            }
        }
        let pid = rm.childPIDs
        #expect(pid.count == 1)
        #expect(try rm.score(Backends.requests[1]) == scores[1])
        #expect(rm.childPIDs == pid, "the child is kept between requests")
        // The child's stderr is read on its own thread: give it a moment on a loaded machine.
        let deadline = Date().addingTimeInterval(5)
        while !sink.text.contains("subprocess_rm: ready") && Date() < deadline { usleep(20_000) }
        #expect(sink.text.contains("subprocess_rm: ready"), "the child's stderr goes to the log: \(sink.text)")
        rm.close()
        #expect(rm.childPIDs.isEmpty)
        #expect(kill(pid[0], 0) != 0, "close() stops the child")
    }

    @Test(arguments: [
        ("nonjson", "reply is not JSON"),
        ("count", "reply has 2 scores for the 3 candidates of prompt 'q1'"),
        ("nan", "score 1 of prompt 'q1' is nan (not finite)"),
        ("wrongid", "does not match the request id"),
        ("string", "score 0 of prompt 'q1' is a string, not a number"),
        ("die", "exited during a request (exit status 3)"),
    ])
    func misbehaviourIsAClearErrorAndTheNextRequestGetsAFreshChild(mode: String, expected: String) throws {
        let sink = Backends.LogSink()
        let rm = try misbehaving(mode, sink: sink)
        defer { rm.close() }
        #expect {
            _ = try rm.scoreBatch(Backends.requests)
        } throws: { error in
            let message = "\(error)"
            #expect(message.contains(expected), "\(message)")
            #expect(message.contains("rm-\(mode)"), "names the RM: \(message)")
            if mode == "nonjson" { #expect(message.contains("Loading model weights"), "\(message)") }
            if mode == "die" { #expect(message.contains("illegal memory access"), "stderr in the error: \(message)") }
            return true
        }
        #expect(rm.childPIDs.isEmpty, "the misbehaving child was stopped")
        #expect(try rm.scoreBatch(Backends.requests) == lengths, "a fresh child answers the next request")
        #expect(rm.childPIDs.count == 1)
    }

    /// (The timeout also covers the next child's start, Python's included: 1.5 s leaves room on a
    /// loaded machine.)
    @Test func aHangingChildIsKilledAfterTheTimeout() throws {
        let rm = try misbehaving("hang", timeoutMs: 1500)
        defer { rm.close() }
        let start = Date()
        #expect {
            _ = try rm.scoreBatch(Backends.requests)
        } throws: { error in
            "\(error)".contains("no reply within 1500 ms") && "\(error)".contains("SIGTERM")
        }
        #expect(Date().timeIntervalSince(start) < 6, "the hang sleeps 60 s; the timeout and SIGTERM end it")
        #expect(try rm.scoreBatch(Backends.requests) == lengths)
    }

    @Test func anErrorReplyFailsTheRequestButKeepsTheChild() throws {
        let rm = try misbehaving("error")
        defer { rm.close() }
        #expect {
            _ = try rm.scoreBatch(Backends.requests)
        } throws: { error in
            "\(error)".contains("the child reported an error: CUDA out of memory")
        }
        let pid = rm.childPIDs
        #expect(try rm.scoreBatch(Backends.requests) == lengths)
        #expect(rm.childPIDs == pid)
    }

    @Test func aChildThatDiedWhileIdleIsRestarted() throws {
        let sink = Backends.LogSink()
        let rm = try misbehaving("none", sink: sink)
        defer { rm.close() }
        #expect(try rm.scoreBatch(Backends.requests) == lengths)
        let pid = try #require(rm.childPIDs.first)
        kill(pid, SIGKILL)
        usleep(100_000)
        #expect(try rm.scoreBatch(Backends.requests) == lengths)
        #expect(rm.childPIDs.count == 1 && rm.childPIDs != [pid])
        #expect(sink.text.contains("exited while idle (killed by signal 9 (SIGKILL))"), "\(sink.text)")
    }

    /// The child exits without reading a request too big for the pipe: the write fails (EPIPE, not
    /// a SIGPIPE that would kill this process) and the error is the child's exit.
    @Test func aChildThatExitsBeforeReadingIsReportedNotFatal() throws {
        let rm = try SubprocessRM(
            name: "quitter", params: ["command": "echo 'no GPU found' >&2; exit 5"], log: { _ in })
        let big = ScoringRequest(
            promptID: "big", prompt: String(repeating: "x", count: 1 << 20), candidates: ["a", "b"])
        for _ in 0..<3 {
            #expect { _ = try rm.score(big) } throws: { error in
                "\(error)".contains("exited during a request (exit status 5)") && "\(error)".contains("no GPU found")
            }
        }
    }

    @Test func aCommandThatCannotStartSaysSo() throws {
        let argv = SubprocessRM(name: "missing", argv: ["/nonexistent/rm-server"], log: { _ in })
        #expect { _ = try argv.scoreBatch(Backends.requests) } throws: { error in
            "\(error)".contains("cannot start /nonexistent/rm-server") && "\(error)".contains("No such file")
        }
        let shell = try SubprocessRM(name: "missing", params: ["command": "no-such-rm-command --gpu 0"], log: { _ in })
        #expect { _ = try shell.scoreBatch(Backends.requests) } throws: { error in
            "\(error)".contains("exit status 127") && "\(error)".contains("not found")
        }
    }

    @Test func environmentAndWorkingDirectoryReachTheChild() throws {
        let dir = Backends.temporaryDirectory()
        try Backends.write(
            """
            import json, os, sys
            for line in sys.stdin:
                request = json.loads(line)
                value = float(os.environ["LASER_TEST_EXTRA"]) + float(os.environ["LASER_TEST_INHERITED"])
                here = float(open("here.txt").read())
                print(json.dumps({"id": request["id"], "scores": [[value, here] for p in request["prompts"]]}), flush=True)
            """, to: dir + "/rm.py")
        try Backends.write("0.25", to: dir + "/here.txt")
        setenv("LASER_TEST_INHERITED", "10", 1)
        // As the config gives them: a YAML list becomes a JSON list, a mapping a JSON object.
        let rm = try SubprocessRM(
            name: "env",
            params: [
                "command": "[\"python3\", \"rm.py\"]", "workdir": dir, "env": "{\"LASER_TEST_EXTRA\":2}",
            ], log: { _ in })
        defer { rm.close() }
        let request = ScoringRequest(promptID: "p", prompt: "x", candidates: ["a", "b"])
        #expect(try rm.score(request) == [12, 0.25])
    }

    @Test func concurrentCallersShareAPoolOfChildren() throws {
        let rm = try SubprocessRM(
            name: "pool", params: ["command": "python3 '\(Backends.subprocessExample)'", "processes": "2"],
            log: { _ in })
        defer { rm.close() }
        let expected = try rm.scoreBatch(Backends.requests)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var values: [[[Double]]] = []
            var errors: [String] = []
            var maxChildren = 0
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            do {
                let scores = try rm.scoreBatch(Backends.requests)
                let children = rm.childPIDs.count
                results.lock.lock()
                results.values.append(scores)
                results.maxChildren = max(results.maxChildren, children)
                results.lock.unlock()
            } catch {
                results.lock.lock()
                results.errors.append("\(error)")
                results.lock.unlock()
            }
        }
        #expect(results.errors.isEmpty, "\(results.errors)")
        #expect(results.values.count == 8 && results.values.allSatisfy { $0 == expected })
        #expect(results.maxChildren <= 2)
    }

    @Test func paramsAreValidated() throws {
        func message(_ params: [String: String]) -> String {
            do { _ = try SubprocessRM(name: "s", params: params); return "" } catch { return "\(error)" }
        }
        #expect(message([:]).contains("missing param 'command'"))
        #expect(message(["command": "[]"]).contains("param 'command' must be a non-empty list of strings"))
        #expect(message(["command": "[1, 2]"]).contains("param 'command'"))
        #expect(message(["command": "x", "timeout_ms": "0"]).contains("param 'timeout_ms'"))
        #expect(message(["command": "x", "env": "CUDA_VISIBLE_DEVICES=1"]).contains("param 'env' must be a mapping"))
        #expect(message(["command": "x", "gpu": "1"]).contains("unknown param 'gpu'"))
        #expect(message(["command": "x", "processes": "2", "kill_grace_ms": "100", "workdir": "/tmp"]) == "")
    }

    @Test func requestLinesAreDocumentedShapeWithSortedKeys() {
        let requests = [
            ScoringRequest(promptID: "q1", prompt: "Say \"hi\"\n", candidates: ["hi", "ünï"], reference: "hi"),
            ScoringRequest(promptID: "q2", prompt: "p", candidates: ["a", "b"]),
        ]
        #expect(
            SubprocessRM.requestLine(id: 7, requests)
                == #"{"id":7,"prompts":[{"candidates":["hi","ünï"],"prompt":"Say \"hi\"\n","prompt_id":"q1","reference":"hi"},{"candidates":["a","b"],"prompt":"p","prompt_id":"q2"}]}"#
        )
    }
}
