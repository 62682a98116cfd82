import Foundation
import LaserRewardModels
import LaserWire
import Testing
@testable import LaserRuntime

/// Issue 19 item 1: what a worker agrees to build from a Welcome.
@Suite struct LocalRewardModelsTests {
    let shell = RewardModelDefinition(name: "judge", kind: "subprocess", params: ["command": "touch /tmp/pwned"])
    let url = RewardModelDefinition(
        name: "remote", kind: "http", params: ["url": "http://attacker.invalid/", "api_key_env": "HOME"])

    @Test func backendsFromTheWireAreRefused() throws {
        let stock = try LocalRewardModels(selected: ["length"])
        for def in [shell, url] {
            #expect(throws: LocalRewardModels.Refusal.self) { try stock.resolve([def]) }
        }
        let any = try LocalRewardModels()  // offers nothing by name: built-in kinds only
        #expect(throws: LocalRewardModels.Refusal.self) { try any.resolve([shell]) }
        // Wrappers around a backend are backends too.
        for kind in ["noisy", "simulated-latency"] {
            let wrapped = RewardModelDefinition(
                name: "w", kind: kind, params: ["base": "subprocess", "command": "id", "sigma": "0.1", "ms": "1"])
            #expect(throws: LocalRewardModels.Refusal.self) { try any.resolve([wrapped]) }
        }
    }

    @Test func anRMTheWorkerDidNotOfferIsRefused() throws {
        let stock = try LocalRewardModels(selected: ["length"])
        let other = RewardModelDefinition(name: "other", kind: "length", params: [:])
        #expect(throws: LocalRewardModels.Refusal.self) { try stock.resolve([other]) }
        let own = RewardModelDefinition(name: "length", kind: "length", params: ["prefer": "shorter"])
        #expect(
            try stock.resolve([own]) == [RewardModelSpec(name: "length", kind: "length", params: ["prefer": "shorter"])]
        )
    }

    @Test func localDefinitionsWinAndMustMatchTheKind() throws {
        let mine = RewardModelSpec(name: "judge", kind: "subprocess", params: ["command": "python3 my_rm.py"])
        let local = try LocalRewardModels(definitions: [mine])
        #expect(local.offered == ["judge"])
        // The Welcome names it (no params, as the coordinator sends backends); the local command is used.
        #expect(try local.resolve([RewardModelDefinition(name: "judge", kind: "subprocess", params: [:])]) == [mine])
        // A command in the Welcome is ignored: the local definition is built.
        #expect(try local.resolve([shell]) == [mine])
        #expect(throws: LocalRewardModels.Refusal.self) {
            try local.resolve([RewardModelDefinition(name: "judge", kind: "http", params: [:])])
        }
    }

    @Test func theCoordinatorSendsBackendsByNameOnly() throws {
        var config = RunConfig(
            inputs: ["/x.jsonl"], iterations: 1,
            rewardModels: [
                RewardModelSpec(name: "judge", kind: "subprocess", params: ["command": "python3 rm.py"]),
                RewardModelSpec(name: "len", kind: "length", params: ["prefer": "shorter"]),
            ])
        config.seed = 1
        let plan = config.plan(coordinatorID: "c")
        #expect(plan.rewardModels.first { $0.name == "judge" }?.params == [:])
        #expect(plan.rewardModels.first { $0.name == "len" }?.params == ["prefer": "shorter"])
        #expect(plan.workerDefinedRMs == ["judge"])
    }
}

/// Issue 14 item 5: paths keep their `..`.
@Suite struct CLIPathTests {
    @Test func dotDotIsResolvedNotDropped() {
        #expect(CLIPath.absolute("../X", base: "/a/b") == "/a/X")
        #expect(CLIPath.absolute("../../../X", base: "/a") == "/X")
        #expect(CLIPath.absolute("./y/../z", base: "/a") == "/a/z")
        #expect(CLIPath.absolute("/abs/./p//q/") == "/abs/p/q")
        let cwd = FileManager.default.currentDirectoryPath
        #expect(
            CLIPath.absolute("../X")
                == URL(fileURLWithPath: cwd).deletingLastPathComponent().appendingPathComponent("X").path)
    }
}

/// Issue 14 item 3: one writer per run directory.
@Suite struct RunDirectoryLockTests {
    @Test func aSecondProcessIsRefusedNamingTheHolderAndADeadHolderBlocksNothing() throws {
        let dir = temporaryDirectory()
        try RunDirectoryLock.acquire(dir)
        try RunDirectoryLock.acquire(dir)  // the same process again: a no-op
        let note = try String(contentsOfFile: dir + "/.lock", encoding: .utf8)
        #expect(note.contains("pid \(getpid())"))
        // Another process trying the same lock (flock(1) from util-linux) fails at once.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        p.arguments = ["--nonblock", "--conflict-exit-code", "7", dir + "/.lock", "true"]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 7)
        // A lock held by a process that died is gone with it.
        let other = temporaryDirectory()
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["-o", other + "/.lock", "sleep", "2"]  // -o: the lock stays with flock itself
        try holder.run()
        usleep(200_000)
        #expect(throws: StorageError.self) { try RunDirectoryLock.acquire(other) }
        holder.terminate()
        holder.waitUntilExit()
        try RunDirectoryLock.acquire(other)
    }
}

/// Issue 19 item 8: a slow client does not delay other scrapes.
@Suite struct MetricsSlowClientTests {
    @Test func aSlowlorisClientDelaysNobody() throws {
        let server = try MetricsHTTPServer(host: "127.0.0.1", port: 0) { Array("laser_up 1\n".utf8) }
        server.start()
        defer { server.stop() }
        // A client that sends one byte and then nothing.
        let slow = try connectTo(port: server.port)
        defer { close(slow) }
        _ = send(slow, "G", 1, 0)
        usleep(100_000)
        let start = Date()
        #expect(try fetch(port: server.port).contains("laser_up 1"))
        #expect(Date().timeIntervalSince(start) < 1.0, "a scrape waited for the slow client")
        // The slow client is cut off at its deadline.
        var tv = timeval(tv_sec: 4, tv_usec: 0)
        setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 16)
        let began = Date()
        let n = recv(slow, &buffer, buffer.count, 0)
        #expect(n == 0 && Date().timeIntervalSince(began) < 3.5, "the slow connection was not closed at its deadline")
    }

    /// GET /metrics over a plain socket; the whole answer (the server closes the connection).
    func fetch(port: Int) throws -> String {
        let fd = try connectTo(port: port)
        defer { close(fd) }
        let request = Array("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func connectTo(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(rc == 0)
        return fd
    }
}

/// Issue 19 item 4: under CURVE, each message is checked against the role its sender's key has.
@Suite struct PeerRoleTests {
    @Test func aWorkerKeyCannotActAsTheTrainerNorATrainerKeyAsAWorker() throws {
        let roles = PeerRoles(workers: ["W-key"], trainers: ["T-key"])
        let hello = WireCodec.encode(.hello(Hello(workerID: "w", rewardModels: [], slots: 1, softwareVersion: "")))
        let trainer = WireCodec.encode(.trainerHello(TrainerHello(trainerID: "t", window: 1, softwareVersion: "")))
        let loss = WireCodec.encode(.batchFeedback(BatchFeedback(globalBatch: 0, loss: 1)))
        func event(_ payload: [UInt8], key: String?) -> String {
            "\(CoordinatorService.event(from: .init(frames: [[1], payload], userID: key), roles: roles))"
        }
        #expect(event(hello, key: "W-key").hasPrefix("message"))
        #expect(
            event(hello, key: "T-key").contains("forbidden") && event(hello, key: "T-key").contains("allowed_workers"))
        #expect(event(trainer, key: "T-key").hasPrefix("message"))
        #expect(event(trainer, key: "W-key").contains("forbidden"))
        #expect(
            event(loss, key: "W-key").contains("forbidden") && event(loss, key: "W-key").contains("allowed_trainers"))
        #expect(event(loss, key: nil).contains("forbidden"))
        // More frames than one payload: undecodable, whatever the key.
        #expect(
            "\(CoordinatorService.event(from: .init(frames: [[1], hello, hello], userID: "W-key"), roles: roles))"
                .hasPrefix("undecodable"))
    }
}
