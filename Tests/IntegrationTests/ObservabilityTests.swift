import Foundation
import Testing

/// Metrics, live status and the run report with real processes.
@Suite(.serialized) struct ObservabilityTests {
    /// GET over loopback with curl-free sockets: the test's own tiny client (not laser's).
    static func get(_ url: String) -> String? {
        guard let u = URL(string: url), let host = u.host, let port = u.port else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard ok == 0 else { return nil }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(u.path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func scrapeARunningCoordinatorThenStatusAndReport() throws {
        let (_, config) = try SlowJob.make(ms: 250, iterations: 2, promptsPerTask: 16)
        let out = Laser.temporaryDirectory() + "/run"
        let coordinator = LaserProcess([
            "coordinator", config, "--out", out, "--metrics-port", "0", "--log-level", "warning",
        ])
        try coordinator.start()
        defer { hardKill(coordinator) }
        let endpoint = try coordinator.waitForLine(startingWith: "coordinator listening on ").components(
            separatedBy: ";")[0]
        let metricsURL = try coordinator.waitForLine(startingWith: "metrics on ")
        #expect(metricsURL.hasPrefix("http://127.0.0.1:") && metricsURL.hasSuffix("/metrics"))
        let hostPort = String(metricsURL.dropFirst("http://".count).dropLast("/metrics".count))
        // Before any worker: the endpoint answers, the run is idle or running, no worker.
        let early = try #require(Self.get(metricsURL))
        #expect(early.hasPrefix("HTTP/1.1 200 OK"), "\(early)")
        #expect(early.contains("laser_info{strategy=\"linucb\""))
        #expect(early.contains("laser_reward_model{rm=\"answer-match\"} 4"))
        #expect(Self.get(metricsURL.replacingOccurrences(of: "/metrics", with: "/"))?.hasPrefix("HTTP/1.1 404") == true)

        var workers: [LaserProcess] = []
        defer { workers.forEach(hardKill) }
        for i in 0..<2 {
            let w = LaserProcess([
                "worker", "--connect", endpoint, "--id", "obs-w\(i)", "--slots", "2", "--give-up-after", "60",
            ])
            try w.start()
            workers.append(w)
        }
        // Scrape while it runs, until RM latencies of both workers and scored candidates show up.
        var scraped = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            scraped = Self.get(metricsURL) ?? ""
            if scraped.contains("laser_rm_call_seconds_count{rm=") && scraped.contains("worker=\"obs-w0\"")
                && scraped.contains("worker=\"obs-w1\"") && scraped.contains("laser_workers 2")
            {
                break
            }
            usleep(200_000)
        }
        for name in [
            "laser_tasks_queued{rm=", "laser_tasks_in_flight{rm=", "laser_tasks_dispatched_total",
            "laser_candidates_scored_total{rm=",
            "laser_rm_call_seconds_bucket{", "laser_worker_slots{worker=\"obs-w0\"} 2",
            "laser_worker_utilisation{worker=",
            "laser_slot_utilisation", "laser_bandit_selections_total{rm=", "laser_feedback_awaiting_batches",
            "laser_journal_write_seconds_bucket{", "laser_run_phase{phase=\"running\"} 1",
        ] {
            #expect(scraped.contains(name), "missing \(name) in:\n\(scraped.prefix(3000))")
        }
        // laser status, from the endpoint and from the run directory, while the run goes on.
        let (code1, fromEndpoint, err1) = try Laser.run(["status", hostPort])
        #expect(code1 == 0, "\(err1)")
        #expect(
            fromEndpoint.contains("obs-w0") && fromEndpoint.contains("bandit arms")
                && fromEndpoint.contains("queue per RM"), "\(fromEndpoint)")
        let (code2, fromDir, err2) = try Laser.run(["status", out])
        #expect(code2 == 0, "\(err2)")
        #expect(fromDir.contains("obs-w1") && fromDir.contains("candidates/s"), "\(fromDir)")

        let (code, _, stderr) = try coordinator.wait(timeout: 180)
        #expect(code == 0, "\(stderr)")
        #expect(!stderr.contains("Fatal error"))
        // After the run: status.json says finished; the endpoint is gone and status says so plainly.
        let (_, finished, _) = try Laser.run(["status", out])
        #expect(finished.contains("phase: finished"), "\(finished)")
        let (gone, _, goneErr) = try Laser.run(["status", hostPort, "--timeout", "2"])
        #expect(gone != 0)
        #expect(goneErr.hasPrefix("error: no answer from http://\(hostPort)/metrics"), "\(goneErr)")
        #expect(!goneErr.contains("Fatal error") && goneErr.split(separator: "\n").count == 1)
        // The timeline has one line a second.
        let timeline = try String(contentsOfFile: out + "/timeline.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(timeline.count >= 2)
        #expect(timeline.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        // The report of that run.
        let (rc, reportOut, reportErr) = try Laser.run(["report", out])
        #expect(rc == 0, "\(reportErr)")
        #expect(reportOut == "report: \(out)/report.html\n")
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        for id in ["chart-rm-family-0", "chart-reward", "chart-accuracy", "chart-throughput", "chart-utilisation"] {
            #expect(html.contains("id=\"\(id)\""), "missing \(id)")
        }
    }

    @Test func aMetricsPortInUseIsAClearErrorAndLeavesNothing() throws {
        let (_, config) = try SlowJob.make(ms: 200, iterations: 1, promptsPerTask: 8)
        let base = Laser.temporaryDirectory()
        let first = LaserProcess(["coordinator", config, "--out", base + "/a", "--metrics-port", "0"])
        try first.start()
        // SIGKILL: a child started from a test thread inherits that thread's blocked SIGTERM.
        defer { hardKill(first) }
        let url = try first.waitForLine(startingWith: "metrics on ")
        let port = String(url.split(separator: ":").last!.split(separator: "/").first!)
        for args in [
            ["coordinator", config, "--out", base + "/b"], ["run", config, "--out", base + "/b", "--no-progress"],
        ] {
            let (code, stdout, stderr) = try Laser.run(args + ["--metrics-port", port])
            #expect(code != 0)
            #expect(
                stderr.contains("port \(port) on 127.0.0.1 is already in use") && stderr.contains("--metrics-port"),
                "\(stderr)")
            #expect(!stderr.contains("Fatal error") && !stdout.contains("metrics"))
            #expect(!FileManager.default.fileExists(atPath: base + "/b"), "\(args[0]) left \(base)/b behind")
        }
        // The same port from the config file, through laser run: the run directory made for it is removed again.
        let withPort = base + "/with-port.yaml"
        try (String(contentsOfFile: config, encoding: .utf8) + "\nmetrics: {port: \(port)}\n").write(
            toFile: withPort, atomically: true, encoding: .utf8)
        let (code, _, stderr) = try Laser.run(["run", withPort, "--out", base + "/c", "--no-progress"])
        #expect(code != 0 && stderr.contains("already in use"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: base + "/c"))
    }

    @Test func laserRunWritesTheReportAndEnsembleRunsGetTheAgreementMatrix() throws {
        let data = Laser.temporaryDirectory()
        let (dc, _, derr) = try Laser.run(["demo-data", "--out", data, "--iterations", "2", "--prompts-per-task", "16"])
        try #require(dc == 0, "\(derr)")
        let out = data + "/run"
        let (code, stdout, stderr) = try Laser.run([
            "run", data + "/config.yaml", "--out", out, "--strategy", "ensemble", "--no-progress",
            "--log-format", "json", "--log-level", "info",
        ])
        #expect(code == 0, "\(stderr)")
        #expect(stdout.contains("report: \(out)/report.html"), "\(stdout)")
        // --log-format json: every stderr line is a JSON object.
        let lines = stderr.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            #expect(
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] != nil, "not JSON: \(line)"
            )
        }
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        #expect(html.contains("id=\"chart-agreement\""))
        #expect(!html.contains("needs prompts scored by more than one RM"))
        if let browser = Browser.path {
            try Browser.checkRenders(
                out + "/report.html", browser: browser,
                charts: ["chart-rm-family-0", "chart-accuracy", "chart-agreement"])
        }
    }

    /// Opens a report in headless Chromium: the DOM it built has every chart with drawn content, and
    /// a screenshot comes out. Skipped (with the reason printed) where Chromium cannot be had.
    @Test(.enabled(if: Browser.path != nil, "needs Chromium (Debian's chromium package); see the printed reason"))
    func theReportRendersInABrowser() throws {
        let (_, config) = try SlowJob.make(ms: 200, iterations: 2, promptsPerTask: 16)
        let out = Laser.temporaryDirectory() + "/run"
        let (code, _, stderr) = try Laser.run(["run", config, "--out", out, "--no-progress"])
        #expect(code == 0, "\(stderr)")
        try Browser.checkRenders(
            out + "/report.html", browser: Browser.path!,
            charts: ["chart-rm-family-0", "chart-reward", "chart-accuracy", "chart-throughput", "chart-utilisation"])
    }
}

/// Stops a child for good. `LaserProcess.kill` sends SIGTERM, which a child started from a Dispatch
/// thread of the test runner has blocked (it inherits the thread's signal mask), so it can hang.
func hardKill(_ p: LaserProcess) {
    if p.process.isRunning { kill(p.process.processIdentifier, SIGKILL) }
    p.process.waitUntilExit()
}

/// Headless Chromium for the report test: found on PATH, or installed from Debian's packages when the
/// test runs as root with apt (CI), unless LASER_NO_BROWSER_INSTALL is set.
enum Browser {
    static let path: String? = locate()

    static func locate() -> String? {
        let names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        func find() -> String? {
            for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
                for n in names where FileManager.default.isExecutableFile(atPath: "\(dir)/\(n)") {
                    return "\(dir)/\(n)"
                }
            }
            return nil
        }
        if let found = find() { return found }
        guard ProcessInfo.processInfo.environment["LASER_NO_BROWSER_INSTALL"] == nil else {
            print("skipping the browser test: no Chromium on PATH and LASER_NO_BROWSER_INSTALL is set")
            return nil
        }
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get") else {
            print(
                "skipping the browser test: no Chromium on PATH, and installing it needs root and apt-get (apt-get install chromium)"
            )
            return nil
        }
        print("installing chromium from Debian's packages for the report test (about 30 s) ...")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = [
            "-c",
            "export DEBIAN_FRONTEND=noninteractive; (apt-get install -y -qq --no-install-recommends chromium || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)) >/tmp/laser-chromium-install.log 2>&1",
        ]
        do { try p.run() } catch {
            print("skipping the browser test: cannot run apt-get (\(error))")
            return nil
        }
        p.waitUntilExit()
        if let found = find() { return found }
        print(
            "skipping the browser test: apt-get install chromium failed (exit \(p.terminationStatus)); see /tmp/laser-chromium-install.log"
        )
        return nil
    }

    static func run(_ browser: String, _ args: [String], timeout: Double = 90) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: browser)
        p.arguments =
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--disable-dev-shm-usage",
            ] + args
        let output = NSTemporaryDirectory() + "laser-browser-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: output)
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        defer { try? FileManager.default.removeItem(atPath: output) }
        return String(decoding: FileManager.default.contents(atPath: output) ?? Data(), as: UTF8.self)
    }

    static func checkRenders(_ report: String, browser: String, charts: [String]) throws {
        let dom = try run(browser, ["--dump-dom", "file://" + report])
        #expect(dom.contains("laser run report"), "Chromium produced no DOM: \(dom.prefix(500))")
        for id in charts {
            // The chart's <svg> as Chromium parsed it, with drawn marks inside.
            guard let start = dom.range(of: "<svg id=\"\(id)\"") else {
                Issue.record("chart \(id) missing from the DOM"); continue
            }
            let rest = dom[start.upperBound...]
            let end = rest.range(of: "</svg>")?.lowerBound ?? rest.endIndex
            let body = rest[..<end]
            let marks = ["<path", "<rect class=\"bar\"", "<rect class=\"cell\"", "<circle"].reduce(0) {
                $0 + body.components(separatedBy: $1).count - 1
            }
            #expect(marks > 0, "chart \(id) has nothing drawn")
        }
        let shot = NSTemporaryDirectory() + "laser-report-\(UUID().uuidString).png"
        _ = try run(browser, ["--screenshot=\(shot)", "--window-size=900,2400", "file://" + report])
        let png = FileManager.default.contents(atPath: shot) ?? Data()
        #expect(
            png.count > 20_000 && png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "screenshot \(shot): \(png.count) bytes")
    }
}
