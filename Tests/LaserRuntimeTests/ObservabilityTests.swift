import Foundation
import LaserCore
import LaserRewardModels
import Logging
import Testing
@testable import LaserRuntime

/// A status as the coordinator would report it mid-run (2 workers, 3 RMs, LinUCB).
func sampleStatus() -> CoordinatorStatus {
    var counters = RunSummary.Counters()
    counters.tasksRetried = 2
    counters.invalidResults = 1
    return CoordinatorStatus(
        phase: .running, strategy: "linucb", iteration: 2, iterations: 5, promptsInIteration: 288,
        promptsScoredInIteration: 144,
        batchesInIteration: 36, batchesEmittedInIteration: 17, batchesEmitted: 53,
        candidatesScored: [("length", 600), ("answer-match", 300), ("judge \"big\"", 12)],
        tasksQueued: [("length", 3), ("answer-match", 0), ("judge \"big\"", 1)],
        tasksInFlight: [("length", 2), ("answer-match", 1), ("judge \"big\"", 0)],
        workers: [
            WorkerStatus(
                workerID: "gpu-0", rewardModels: ["length", "answer-match", "judge \"big\""], slots: 2, inFlight: 2,
                secondsSinceHeard: 0.2, secondsConnected: 30),
            WorkerStatus(
                workerID: "gpu-1", rewardModels: ["answer-match"], slots: 4, inFlight: 1, secondsSinceHeard: 7,
                secondsConnected: 30),
        ],
        arms: [
            ArmStatus(
                name: "length", selections: 30, rewards: 29, meanRawReward: 0.5, upperConfidenceBound: 1.25,
                probability: nil),
            ArmStatus(
                name: "answer-match", selections: 20, rewards: 20, meanRawReward: 0.9, upperConfidenceBound: 1.5,
                probability: nil),
            ArmStatus(
                name: "judge \"big\"", selections: 3, rewards: 0, meanRawReward: nil, upperConfidenceBound: 2,
                probability: nil),
        ],
        batchesAwaitingLoss: 0, trainer: nil, counters: counters)
}

@Suite struct MetricsTests {
    @Test func metricsTextRebuildsTheStatus() throws {
        let s = sampleStatus()
        let metrics = LaserMetrics(strategy: "linucb", rewardModels: s.arms.map(\.name))
        metrics.update(s, candidatesPerSecond: 123.5)
        metrics.recordResult(rm: "length", worker: "gpu-0", elapsedMicros: 1500, roundTripSeconds: 0.002, failed: false)
        metrics.recordResult(rm: "length", worker: "gpu-0", elapsedMicros: 0, roundTripSeconds: 0.001, failed: true)
        metrics.recordJournalWrite(seconds: 0.0001, sync: true)
        let text = String(decoding: metrics.render(), as: UTF8.self)
        for name in [
            "laser_tasks_queued", "laser_tasks_in_flight", "laser_tasks_retried_total", "laser_task_failures_total",
            "laser_candidates_scored_total", "laser_rm_call_seconds_bucket", "laser_worker_slots",
            "laser_worker_utilisation",
            "laser_slot_utilisation", "laser_bandit_selections_total", "laser_bandit_mean_reward", "laser_bandit_ucb",
            "laser_feedback_awaiting_batches", "laser_journal_write_seconds_bucket",
            "laser_task_round_trip_seconds_count",
        ] {
            #expect(text.contains(name), "missing \(name)")
        }
        #expect(text.contains("laser_rm_call_seconds_count{rm=\"length\",worker=\"gpu-0\"} 2"))
        let live = try LiveStatus(prometheusText: text, source: "test")
        #expect(live.phase == "running" && live.strategy == "linucb")
        #expect(
            live.iteration == 2 && live.iterations == 5 && live.promptsScoredInIteration == 144
                && live.batchesEmitted == 53)
        #expect(live.candidatesScored == 912 && live.candidatesPerSecond == 123.5)
        #expect(live.queue.map(\.rm) == ["length", "answer-match", "judge \"big\""])  // the run's order, quotes unescaped
        #expect(live.queue.map(\.queued) == [3, 0, 1] && live.queue.map(\.inFlight) == [2, 1, 0])
        #expect(live.workers.map(\.id) == ["gpu-0", "gpu-1"])
        #expect(
            live.workers[1].rewardModels == ["answer-match"] && live.workers[1].slots == 4
                && live.workers[1].inFlight == 1)
        #expect(live.arms.map(\.selections) == [30, 20, 3] && live.arms[1].meanReward == 0.9 && live.arms[2].ucb == 2)
        #expect(live.tasksRetried == 2 && live.tasksFailed == 2)  // one RM error + one invalid result

        // A worker that leaves loses its series; counters only grow.
        var later = s
        later.workers.removeLast()
        later.arms[0].selections = 31
        metrics.update(later, candidatesPerSecond: 0)
        let again = try LiveStatus(prometheusText: String(decoding: metrics.render(), as: UTF8.self), source: "test")
        #expect(again.workers.map(\.id) == ["gpu-0"])
        #expect(again.arms[0].selections == 31)
    }

    @Test func prometheusParserHandlesLabelsAndSpecialValues() {
        let samples = PrometheusSample.parse(
            """
            # HELP x help
            # TYPE x gauge
            x 1.5
            y{a="1",b="q\\"uote\\\\d",c="line\\nbreak"} +Inf
            z{le="0.5"} 3 1700000000
            broken{a="1" 2
            """)
        #expect(samples.count == 3)
        #expect(samples[0] == PrometheusSample(name: "x", labels: [:], value: 1.5))
        #expect(
            samples[1].labels == ["a": "1", "b": "q\"uote\\d", "c": "line\nbreak"] && samples[1].value == .infinity)
        #expect(samples[2].labels["le"] == "0.5" && samples[2].value == 3)
    }

    @Test func httpResponderServesOnlyMetrics() {
        func ask(_ request: String) -> (String, [UInt8]) {
            let (status, _, body) = MetricsHTTPServer.respond(to: Array(request.utf8)) { Array("laser_info 1\n".utf8) }
            return (status, body)
        }
        #expect(ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").0 == "200 OK")
        #expect(ask("GET /metrics?x=1 HTTP/1.0\r\n\r\n").1 == Array("laser_info 1\n".utf8))
        #expect(ask("HEAD /metrics HTTP/1.1\r\n\r\n").1.isEmpty)
        #expect(ask("GET / HTTP/1.1\r\n\r\n").0 == "404 Not Found")
        #expect(ask("GET /status HTTP/1.1\r\n\r\n").0 == "404 Not Found")
        #expect(ask("POST /metrics HTTP/1.1\r\n\r\n").0 == "405 Method Not Allowed")
        #expect(ask("garbage").0 == "400 Bad Request")
        #expect(ask("\r\n").0 == "400 Bad Request")
    }

    @Test func realEndpointAnswersAndAPortInUseIsRefusedClearly() throws {
        let server = try MetricsHTTPServer(host: "127.0.0.1", port: 0) { Array("laser_info{strategy=\"x\"} 1\n".utf8) }
        server.start()
        defer { server.stop() }
        #expect(server.port > 0 && server.url == "http://127.0.0.1:\(server.port)/metrics")
        let text = try HTTPGet.fetch(host: "127.0.0.1", port: server.port, path: "/metrics", timeoutSeconds: 5)
        #expect(text == "laser_info{strategy=\"x\"} 1\n")
        #expect(throws: StorageError.self) {
            try HTTPGet.fetch(host: "127.0.0.1", port: server.port, path: "/nope", timeoutSeconds: 5)
        }
        do {
            _ = try MetricsHTTPServer(host: "127.0.0.1", port: server.port) { [] }
            Issue.record("a second server on the same port should fail")
        } catch let e as ConfigError {
            #expect(e.description.contains("already in use") && e.description.contains("--metrics-port"), "\(e)")
        }
        #expect(throws: ConfigError.self) { try MetricsHTTPServer(host: "no-such-host.invalid", port: 0) { [] } }
    }

    @Test func statusFromAnEndpointThatDoesNotAnswer() throws {
        // A port that was just free: connection refused.
        let port = try { try MetricsHTTPServer(host: "127.0.0.1", port: 0) { [] }.port }()
        do {
            _ = try StatusSource.metrics(host: "127.0.0.1", port: port, path: "/metrics").read(timeoutSeconds: 2)
            Issue.record("expected no answer")
        } catch let e as StorageError {
            #expect(
                e.description.contains("no answer from http://127.0.0.1:\(port)/metrics")
                    && e.description.contains("laser status RUN_DIR"), "\(e)")
        }
    }

    @Test func statusSourcesParse() throws {
        let dir = temporaryDirectory()
        #expect(try StatusSource.parse(dir) == .runDirectory(dir))
        #expect(try StatusSource.parse("node3:9100") == .metrics(host: "node3", port: 9100, path: "/metrics"))
        #expect(
            try StatusSource.parse("http://10.0.0.5:9100/metrics")
                == .metrics(host: "10.0.0.5", port: 9100, path: "/metrics"))
        #expect(try StatusSource.parse("[::1]:9100") == .metrics(host: "::1", port: 9100, path: "/metrics"))
        for bad in ["tcp://127.0.0.1:5555", "no-such-folder", "host:99999", "https://x:1"] {
            #expect(throws: StorageError.self, "\(bad)") { try StatusSource.parse(bad) }
        }
        // A folder that is not a run directory, and one whose run has not written status yet.
        #expect(throws: StorageError.self) { try LiveStatus.read(runDirectory: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/config.yaml", contents: Data("x: 1\n".utf8))
        do { _ = try LiveStatus.read(runDirectory: dir) } catch let e as StorageError {
            #expect(e.description.contains("has not started yet"))
        }
    }

    @Test func statusJSONRoundTripsAndRenders() throws {
        let live = LiveStatus(
            sampleStatus(), updatedAt: 1000, elapsedSeconds: 42, candidatesPerSecond: 99.5,
            endpoint: "tcp://127.0.0.1:5555", metricsAddress: nil, tasksFailed: 1)
        let dir = temporaryDirectory()
        try Data(live.json()).write(to: URL(fileURLWithPath: dir + "/status.json"))
        #expect(try LiveStatus.read(runDirectory: dir) == live)
        let text = StatusTable.render(live, source: dir, now: 1001)
        for part in [
            "phase: running", "iteration 2/5: 144/288 prompts scored (50%)", "99.5 candidates/s",
            "workers: 2 connected, 6 slots, 50% busy",
            "gpu-0", "all (3)", "2/2", "silent for 7 s", "UCB", "1.500", "answer-match",
        ] {
            #expect(text.contains(part), "missing '\(part)' in\n\(text)")
        }
        #expect(StatusTable.render(live, source: dir, now: 1100).contains("may have stopped"))
    }
}

@Suite struct ProgressAndLogTests {
    func live(scored: Int, at t: Double, iteration: Int = 1) -> LiveStatus {
        var s = sampleStatus()
        s.iteration = iteration
        s.promptsInIteration = 100
        s.promptsScoredInIteration = scored
        return LiveStatus(
            s, updatedAt: t, elapsedSeconds: t, candidatesPerSecond: 250, endpoint: nil, metricsAddress: nil,
            tasksFailed: 0)
    }

    @Test func terminalLinesShowWhatIsAskedAndFitTheWidth() {
        var rate = PromptRate()
        rate.add(live(scored: 10, at: 1))
        rate.add(live(scored: 30, at: 3))
        let eta = rate.eta(live(scored: 30, at: 3))
        #expect(eta != nil && abs(eta!.iteration - 7) < 1e-9)  // 70 left at 10 prompts/s
        #expect(abs(eta!.run - (70 + 4 * 100) / 10) < 1e-9)  // plus 4 more iterations of 100
        let lines = ProgressPrinter.render(live(scored: 30, at: 3), eta: eta, width: 400)
        #expect(lines.count == 2)
        for part in [
            "iteration 1/5", "30/100 prompts", "batches 17/36", "250 cand/s", "ETA 7s (run ~47s)",
            "workers 2 (6 slots, 50% busy)",
        ] {
            #expect(lines[0].contains(part), "missing '\(part)' in \(lines[0])")
        }
        #expect(lines[1] == "RMs so far: length 57% · answer-match 38% · judge \"big\" 6%")
        #expect(ProgressPrinter.render(live(scored: 30, at: 3), eta: eta, width: 40).allSatisfy { $0.count <= 40 })
        let plain = ProgressPrinter.plain(live(scored: 30, at: 3), eta: nil)
        #expect(
            plain.contains("30/100 prompts scored (30%)") && plain.contains("tasks 4 queued 3 running")
                && !plain.contains("\u{1B}"))
        #expect(ProgressPrinter.duration(3725) == "1h02m" && ProgressPrinter.duration(61) == "1m01s")
    }

    @Test func etaCarriesAcrossIterations() {
        var rate = PromptRate()
        rate.add(live(scored: 90, at: 1, iteration: 1))
        rate.add(live(scored: 10, at: 3, iteration: 2))  // 10 left of it. 1 + 10 of it. 2 in 2 s
        let eta = rate.eta(live(scored: 10, at: 3, iteration: 2))
        #expect(eta.map { abs($0.iteration - 90 / 10) < 1e-9 } == true)
    }

    @Test func jsonLogLinesAreJSON() throws {
        let line = JSONLogHandler.line(
            timestamp: Date(timeIntervalSince1970: 0), level: .warning, label: "laser.coordinator",
            message: "worker \"w1\" removed\n",
            metadata: ["worker": "w1", "n": .stringConvertible(3), "l": .array(["a"])])
        #expect(line.hasSuffix("}\n") && line.hasPrefix("{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"warning\""))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "worker \"w1\" removed\n")
        #expect((object["metadata"] as? [String: Any])?["n"] as? String == "3")
        // Through a real Logger.
        let captured = Captured()
        var logger = Logger(label: "t") { JSONLogHandler(label: $0, write: { captured.append($0) }) }
        logger.logLevel = .debug
        logger[metadataKey: "run"] = "r1"
        logger.info("hello")
        #expect(captured.lines.count == 1 && captured.lines[0].contains("\"metadata\":{\"run\":\"r1\"}"))
    }

    @Test func metricsConfigKeys() throws {
        let base = "input: [a.jsonl]\nreward_models: [{kind: length}]\n"
        let off = try RunConfig.parse(yaml: base, source: "t", baseDirectory: "/")
        #expect(off.metrics.port == nil && !off.yaml().contains("metrics"))
        let on = try RunConfig.parse(
            yaml: base + "metrics: {port: 9100, bind: 0.0.0.0}\n", source: "t", baseDirectory: "/")
        #expect(on.metrics == MetricsSettings(port: 9100, bind: "0.0.0.0"))
        #expect(try RunConfig.parse(yaml: on.yaml(), source: "t", baseDirectory: "/").metrics == on.metrics)
        // Not output-shaping: a resume may turn metrics on or off.
        #expect(on.semanticDigest == off.semanticDigest)
        for bad in ["metrics: {port: 70000}", "metrics: {port: -1}", "metrics: {prot: 1}", "metrics: 9100"] {
            #expect(throws: ConfigError.self, "\(bad)") {
                try RunConfig.parse(yaml: base + bad + "\n", source: "t", baseDirectory: "/")
            }
        }
    }
}

final class Captured: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    func append(_ s: String) { lock.lock(); stored.append(s); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return stored }
}

@Suite struct ReportTests {
    /// A run directory as an older laser left it: no timeline, no journal, fewer summary fields.
    func oldRun() throws -> String {
        let dir = temporaryDirectory()
        try "input: [in.jsonl]\nreward_models: [{kind: length}, {kind: answer-match}]\n".write(
            toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        try """
        {"strategy": "linucb", "reward_models": ["length", "answer-match"], "arms": [{"name": "length", "batches": 2}],
         "iterations": [{"iteration": 1, "prompts": 16, "batches": 2, "pairs": 20, "labelled_pairs": 20, "label_accuracy": 0.75,
           "rm_calls": {"length": 64}, "wall_seconds": 0.5,
           "tasks": [{"task": "math", "prompts": 16, "selections": {"length": 16}, "pairs": 20, "labelled_pairs": 20, "label_accuracy": 0.75}]}],
         "counters": {"tasks_dispatched": 8}}
        """.write(toFile: dir + "/summary.json", atomically: true, encoding: .utf8)
        try """
        {"iteration":1,"batch":1,"global_batch":0,"rm":"length","prompts":8,"pairs":10,"label_accuracy":0.7,"raw_reward":0.7}
        {"iteration":1,"batch":2,"global_batch":1,"rm":"length","prompts":8,"pairs":10,"label_accuracy":0.8,"raw_reward":0.8}

        """.write(toFile: dir + "/selections.jsonl", atomically: true, encoding: .utf8)
        return dir
    }

    @Test func anOlderRunStillGetsAReportWithNotes() throws {
        let dir = try oldRun()
        let path = try RunReport.write(runDirectory: dir)
        #expect(path == dir + "/report.html")
        let html = try String(contentsOfFile: path, encoding: .utf8)
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
        #expect(
            html.contains("id=\"chart-rm-family-0\"") && html.contains("id=\"chart-reward\"")
                && html.contains("id=\"chart-accuracy\""))
        #expect(html.contains("No <code>timeline.jsonl</code>"))
        #expect(html.contains("needs prompts scored by more than one RM") || html.contains("journal could not be read"))
        // Nothing fetched from anywhere.
        #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("href=\"http"))
    }

    @Test func incompleteOrForeignDirectoriesAreRefusedWithoutAFile() throws {
        let notARun = temporaryDirectory()
        #expect(throws: StorageError.self) { try RunReport.write(runDirectory: notARun) }
        let running = temporaryDirectory()
        try "x: 1\n".write(toFile: running + "/config.yaml", atomically: true, encoding: .utf8)
        do { try RunReport.write(runDirectory: running); Issue.record("expected an error") } catch let e as StorageError
        {
            #expect(e.description.contains("no summary.json yet") && e.description.contains("--resume"), "\(e)")
        }
        try "{\"something\": \"else\"}".write(toFile: running + "/summary.json", atomically: true, encoding: .utf8)
        do { try RunReport.write(runDirectory: running); Issue.record("expected an error") } catch let e as StorageError
        {
            #expect(e.description.contains("another laser version"), "\(e)")
        }
        #expect(!FileManager.default.fileExists(atPath: running + "/report.html"))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: running).sorted() == ["config.yaml", "summary.json"])
        #expect(throws: StorageError.self) { try RunReport.write(runDirectory: running + "/missing") }
    }

    @Test func agreementCountsPairsBothRMsRankStrictly() throws {
        // Prompt with 3 candidates: A ranks 2 > 1 > 0; B ranks 0 > 1 = 2 (one tie).
        let a = ReportData.agreement(
            [(0, "A", 0, [[0, 1, 2]]), (0, "B", 0, [[2, 1, 1]]), (0, "C", 0, [[0, 1, 2]])], rms: ["A", "B", "C"])
        let m = try #require(a)
        #expect(m.prompts == 1)
        #expect(m.count[0][1] == 2 && m.agree[0][1] == 0)  // (0,1) and (0,2): opposite; (1,2) tied for B
        #expect(m.value(0, 2) == 1 && m.count[0][2] == 3)
        #expect(m.value(1, 0) == 0)  // symmetric
        #expect(m.value(0, 0) == 1)
        #expect(ReportData.agreement([(0, "A", 0, [[0, 1]]), (1, "B", 0, [[1, 0]])], rms: ["A", "B"]) == nil)
    }

    /// An RM's (and a family's) colour is its own: the same in a report whose arms come in another order
    /// or with other RMs beside it, and never shared within one report.
    @Test func colorsAreStablePerNameAndDistinct() {
        let rms = ["length", "self-consistency", "arithmetic-check", "instruction-following", "answer-match"]
        let a = SVGChart.stableColors(rms), b = SVGChart.stableColors(rms.reversed())
        #expect(a == b)
        #expect(Set(a.values).count == rms.count)
        let many = (0..<20).map { "rm-\($0)" }
        #expect(Set(SVGChart.stableColors(many).values).count == 20)
        // A name keeps its preferred colour when others come and go, unless one of them wanted it first.
        let alone = SVGChart.stableColors(["length"])["length"]
        #expect(alone == a["length"] || rms.contains { $0 < "length" })
    }

    /// Iteration and batch axes are counted: a two-iteration chart has ticks 1 and 2, not 1.5.
    @Test func countedAxesHaveWholeTicks() {
        let svg = SVGChart.lines(
            id: "x", title: "t", xTitle: "iteration", yTitle: "y",
            series: [.init(name: "s", color: "#000", points: [(1, 0.5), (2, 0.7)])], yRange: 0...1, integerX: true)
        #expect(svg.contains(">1</text>") && svg.contains(">2</text>"))
        #expect(!svg.contains(">1.5</text>") && !svg.contains(">1.2</text>"))
        #expect(SVGChart.wholeTicks(0, 12) == [0, 5, 10])
        #expect(SVGChart.wholeTicks(1, 290) == [100, 200])
        #expect(SVGChart.wholeTicks(1, 3) == [1, 2, 3])
    }

    /// Families take turns in the run's batches; each family's bars are binned over its own prompts, so
    /// no bar of its chart is empty (a white gap) where the run was busy with another family.
    @Test func familyBarsHaveNoEmptyBins() throws {
        let dir = temporaryDirectory()
        // 12 batches of 2 prompts: batches alternate between family a and family b.
        let lines = (0..<24).map {
            #"{"task": "\#($0 / 2 % 2 == 0 ? "a" : "b")", "prompt": "p", "candidates": ["x", "y"]}"#
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        var config = RunConfig(
            inputs: [dir + "/in.jsonl"], iterations: 1, rewardModels: [RewardModelSpec(name: "length", kind: "length")])
        config.batchSize = 2
        let selections = (0..<12).map {
            ReportData.SelectionLine(
                iteration: 1, batch: $0 + 1, global: $0, rm: "length", prompts: 2, rawReward: nil, loss: nil)
        }
        let selected = Dictionary(uniqueKeysWithValues: (0..<12).map { ($0, [Selection.arm(0)]) })
        let bins = try #require(
            try ReportData.familyBins(config: config, selections: selections, selected: selected, rms: ["length"]))
        #expect(bins.map(\.family) == ["a", "b"])
        for f in bins {
            #expect(f.counts.count == 12 && f.counts.allSatisfy { ($0["length"] ?? 0) == 1 }, "\(f)")
        }
        #expect(bins[0].bins.first == "1" && bins[1].bins.first == "2")
    }

    /// The throughput chart covers the scoring, not the wait for workers before it: the wait is named.
    @Test func throughputLeavesOutTheWaitForWorkers() throws {
        let dir = try oldRun()
        let samples = (0..<30).map { i -> String in
            let scored = i < 20 ? 0 : (i - 19) * 100
            return
                #"{"time":\#(1000 + i),"iteration":1,"batches_emitted":0,"prompts_scored_in_iteration":0,"candidates_scored":\#(scored),"candidates_per_second":0,"tasks_queued":0,"tasks_in_flight":0,"workers":\#(i < 20 ? 0 : 2),"slots":4,"busy_slots":2}"#
        }
        try samples.joined(separator: "\n").write(toFile: dir + "/timeline.jsonl", atomically: true, encoding: .utf8)
        let html = try String(contentsOfFile: try RunReport.write(runDirectory: dir), encoding: .utf8)
        #expect(html.contains("Not shown: 19 s before the first candidate was scored (waiting for workers)"), "\(html)")
        let throughput = try #require(
            html.components(separatedBy: "id=\"chart-throughput\"").last?.components(separatedBy: "</svg>").first)
        #expect(!throughput.contains(">15</text>"))
    }

    @Test func ticksAreRound() {
        #expect(SVGChart.ticks(0, 1).count == 6)
        #expect(SVGChart.ticks(0, 100).first == 0 && SVGChart.ticks(0, 100).last == 100)
        #expect(SVGChart.escape("<a & \"b\">") == "&lt;a &amp; &quot;b&quot;&gt;")
    }
}
