import Foundation
import Testing

/// `laser worker --metrics-port`: the worker's own Prometheus endpoint, scraped while it works.
@Suite(.serialized) struct WorkerMetricsTests {
    @Test func aWorkerServesItsOwnMetrics() throws {
        let (_, config) = try SlowJob.make(ms: 100, iterations: 1, promptsPerTask: 8)
        let out = Laser.temporaryDirectory() + "/wm"
        let coordinator = LaserProcess([
            "coordinator", config, "--bind", "tcp://127.0.0.1:*", "--out", out, "--log-level", "warning",
        ])
        try coordinator.start()
        defer { hardKill(coordinator) }
        let endpoint = try coordinator.waitForLine(startingWith: "coordinator listening on ").components(
            separatedBy: ";")[0]
        let worker = LaserProcess([
            "worker", "--connect", endpoint, "--id", "wm", "--slots", "2", "--metrics-port", "0", "--give-up-after",
            "60",
        ])
        try worker.start()
        defer { hardKill(worker) }
        var url: String?
        let deadline = Date().addingTimeInterval(30)
        while url == nil && Date() < deadline {
            url =
                worker.stderr.split(separator: "\n").compactMap {
                    $0.range(of: "metrics on ").map {
                        String(
                            $0.upperBound == $0.upperBound
                                ? worker.stderr[$0.upperBound...].prefix { !$0.isWhitespace } : "")
                    }
                }.first
            usleep(50_000)
        }
        let metricsURL = try #require(url, "the worker did not announce its metrics endpoint: \(worker.stderr)")
        var scraped = ""
        while Date() < deadline {
            scraped = ObservabilityTests.get(metricsURL) ?? ""
            if scraped.contains("laser_worker_tasks_scored_total{rm=") && scraped.contains("laser_worker_registered 1")
            {
                break
            }
            usleep(100_000)
        }
        for name in [
            "laser_worker_info{worker=\"wm\"", "laser_worker_slots 2", "laser_worker_registered 1",
            "laser_worker_busy_slots",
            "laser_worker_tasks_scored_total{rm=", "laser_worker_candidates_scored_total{rm=",
            "laser_worker_rm_call_seconds_bucket{",
        ] {
            #expect(scraped.contains(name), "missing \(name) in:\n\(scraped.prefix(2000))")
        }
        let (code, _, err) = try coordinator.wait(timeout: 120)
        #expect(code == 0, "\(err)")
    }
}
