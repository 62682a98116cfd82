import Foundation
import Testing
import ZeroMQ

/// Real processes killed with SIGKILL at random moments, resumed, and compared byte for byte with a
/// clean run.
@Suite(.serialized) struct ChaosTests {
    func slowJob(
        ms: Int, iterations: Int = 3, promptsPerTask: Int = 16, pairs: String = "best-vs-rest"
    ) throws -> (data: String, config: String) {
        try SlowJob.make(
            ms: ms, iterations: iterations, promptsPerTask: promptsPerTask, extra: "pairs: {mode: \(pairs)}")
    }

    func cleanRun(_ config: String) throws -> [String: Data] {
        let out = Laser.temporaryDirectory() + "/clean"
        let (code, _, err) = try Laser.run(["run", config, "--out", out, "--no-progress"])
        try #require(code == 0, "\(err)")
        return try batchFiles(out)
    }

    static func freePort() throws -> Int {
        let ctx = try ZMQContext()
        let s = try ZMQSocket(ctx, type: .router)
        try s.bind("tcp://127.0.0.1:*")
        let endpoint = try s.lastEndpoint()
        s.close()
        return Int(endpoint.split(separator: ":").last!)!
    }

    @Test func coordinatorAndWorkersKilledAtRandomResumeToTheSameBytes() throws {
        let (_, fast) = try slowJob(ms: 0)
        let expected = try cleanRun(fast)
        // Workers score their slots in parallel (one thread each), so the latency is per slot.
        let (_, slow) = try slowJob(ms: 100)
        let out = Laser.temporaryDirectory() + "/chaos"
        let endpoint = "tcp://127.0.0.1:\(try Self.freePort())"
        var rng = SystemRandomNumberGenerator()
        var coordinator = LaserProcess(["coordinator", slow, "--bind", endpoint, "--out", out, "--log-level", "info"])
        try coordinator.start()
        var workers = (0..<3).map {
            LaserProcess(["worker", "--connect", endpoint, "--id", "w\($0)", "--give-up-after", "60"])
        }
        for w in workers { try w.start() }
        defer { workers.forEach { $0.kill() }; coordinator.kill() }
        var coordinatorKills = 0, workerKills = 0
        var resumedLogs = ""
        let deadline = Date().addingTimeInterval(240)
        while Date() < deadline {
            usleep(UInt32.random(in: 200_000...700_000, using: &rng))
            if !coordinator.process.isRunning { break }
            // The first three kills are the coordinator's (a resume now takes well under a second, and a
            // run that ended after two was seen in CI); then either, at random.
            if (coordinatorKills <= workerKills && Bool.random(using: &rng)) || coordinatorKills < 3 {
                kill(coordinator.process.processIdentifier, SIGKILL)
                coordinator.process.waitUntilExit()
                if coordinator.process.terminationStatus == 0 && coordinator.process.terminationReason == .exit {
                    break
                }
                coordinatorKills += 1
                resumedLogs += coordinator.stderr
                coordinator = LaserProcess(["coordinator", "--resume", out, "--bind", endpoint, "--log-level", "info"])
                try coordinator.start()
            } else {
                let i = Int.random(in: 0..<workers.count, using: &rng)
                kill(workers[i].process.processIdentifier, SIGKILL)
                workers[i].process.waitUntilExit()
                workerKills += 1
                workers[i] = LaserProcess(["worker", "--connect", endpoint, "--id", "w\(i)", "--give-up-after", "60"])
                try workers[i].start()
            }
        }
        let (code, _, err) = try coordinator.wait(timeout: 120)
        #expect(code == 0, "\(err)")
        #expect(
            coordinatorKills >= 3 && workerKills >= 2,
            "the run ended before enough kills (\(coordinatorKills), \(workerKills)); make it slower")
        #expect(err.contains("resuming (incarnation"), "\(err)")
        let got = try batchFiles(out)
        #expect(got.keys.sorted() == expected.keys.sorted())
        for key in expected.keys.sorted() {
            #expect(
                got[key] == expected[key],
                "\(key) differs after \(coordinatorKills) coordinator and \(workerKills) worker kills")
        }
        print(
            "chaos: \(coordinatorKills) coordinator SIGKILLs and \(workerKills) worker SIGKILLs; \(got.count) batch files identical to the clean run"
        )
    }

    @Test func aKilledLaserRunResumesAndLeavesNoOrphans() throws {
        let (_, fast) = try slowJob(ms: 0)
        let expected = try cleanRun(fast)
        let (_, slow) = try slowJob(ms: 40)
        let out = Laser.temporaryDirectory() + "/killed"
        let first = LaserProcess(["run", slow, "--out", out, "--no-progress"])
        try first.start()
        usleep(1_500_000)
        let pid = first.process.processIdentifier
        kill(pid, SIGKILL)
        first.process.waitUntilExit()
        // Local workers notice their launcher is gone and exit.
        usleep(1_000_000)
        let orphans = try Laser.processesMentioning("--parent-pid \(pid)")
        #expect(orphans.isEmpty, "orphaned workers: \(orphans)")
        let (code, _, err) = try Laser.run(["run", "--resume", out, "--no-progress"], timeout: 180)
        #expect(code == 0, "\(err)")
        let got = try batchFiles(out)
        #expect(got == expected)
        // A second resume of a finished run changes nothing.
        let (again, _, _) = try Laser.run(["run", "--resume", out, "--no-progress"], timeout: 60)
        #expect(again == 0)
        #expect(try batchFiles(out) == expected)
    }

    /// A file-size limit (`ulimit -f`, in KiB) stands in for a full disk: a write fails with EFBIG
    /// part-way through the run. With one pair per prompt, batch files stay small and the journal is
    /// the biggest file: 3 KiB stops at an early batch file, 12 KiB at a journal append late in the run.
    @Test(arguments: [3, 12])
    func aFullDiskStopsCleanlyAndTheRunResumes(limitKiB: Int) throws {
        let (_, config) = try slowJob(ms: 0, pairs: "best-vs-worst")
        let expected = try cleanRun(config)
        let out = Laser.temporaryDirectory() + "/full"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [
            "-c", "ulimit -f \(limitKiB); exec \"$0\" run \"$1\" --out \"$2\" --no-progress", Laser.binary, config, out,
        ]
        let errPipe = Pipe()
        p.standardError = errPipe
        p.standardOutput = Pipe()
        try p.run()
        let errData = errPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let stderr = String(decoding: errData, as: UTF8.self)
        #expect(p.terminationStatus != 0)
        #expect(stderr.contains("File too large") && stderr.contains("resume"), "\(stderr)")
        #expect(!stderr.contains("Fatal error"))
        // Whatever was written is whole: every batch file there equals the clean run's.
        let partial = try batchFiles(out)
        #expect(partial.count < expected.count)
        for (key, bytes) in partial { #expect(expected[key] == bytes, "\(key) is not a clean batch") }
        let (code, _, err) = try Laser.run(["run", "--resume", out, "--no-progress"], timeout: 120)
        #expect(code == 0, "\(err)")
        #expect(try batchFiles(out) == expected)
        print(
            "full disk at \(limitKiB) KiB: stopped after \(partial.count) of \(expected.count) batch files; resumed to identical output"
        )
    }

    @Test func aDifferentConfigIsRefusedOnResume() throws {
        let (data, config) = try slowJob(ms: 0, iterations: 1, promptsPerTask: 8)
        let out = Laser.temporaryDirectory() + "/done"
        let (code, _, _) = try Laser.run(["run", config, "--out", out, "--no-progress"])
        try #require(code == 0)
        let changed = data + "/changed.yaml"
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "seed: 5", with: "seed: 6")
            .write(toFile: changed, atomically: true, encoding: .utf8)
        let (refused, _, err) = try Laser.run(["run", changed, "--resume", out, "--no-progress"])
        #expect(refused != 0)
        #expect(err.contains("the config differs in seed from the one"), "\(err)")
        let (again, _, err2) = try Laser.run(["run", config, "--out", out, "--no-progress"])
        #expect(again != 0)
        #expect(err2.contains("already holds a run"), "\(err2)")
    }
}

extension Laser {
    /// Command lines of running processes that contain `text`.
    static func processesMentioning(_ text: String) throws -> [String] {
        var found: [String] = []
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") where Int(entry) != nil {
            guard let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let cmdline = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            if cmdline.contains(text) && cmdline.contains("worker") { found.append(cmdline) }
        }
        return found
    }
}
