import Foundation
import Testing
import ZeroMQ
@testable import LaserRuntime

@Suite struct KeyFileTests {
    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    @Test func keygenRoundTripAndPermissions() throws {
        let dir = temporaryDirectory() + "/keys"
        let written = try CurveKeyFiles.generate(directory: dir, name: "worker1")
        #expect(written.secretKeyPath == dir + "/worker1.key" && written.publicKeyPath == dir + "/worker1.pub")
        #expect(try mode(dir) == 0o700)
        #expect(try mode(written.secretKeyPath) == 0o600)
        var warnings: [String] = []
        #expect(try CurveKeyFiles.readKeyPair(path: written.secretKeyPath) { warnings.append($0) } == written.keyPair)
        #expect(warnings.isEmpty)
        #expect(try CurveKeyFiles.readPublicKey(path: written.publicKeyPath) == written.keyPair.publicKey)
        let pub = try String(contentsOfFile: written.publicKeyPath, encoding: .utf8)
        #expect(!pub.contains(written.keyPair.secretKey) && !pub.contains("secret-key"))
        // Never replaces a key someone may already use.
        #expect(
            message { _ = try CurveKeyFiles.generate(directory: dir, name: "worker1") }.contains(
                "worker1.key already exists"))
        #expect(
            message { _ = try CurveKeyFiles.generate(directory: dir, name: "../x") }.contains("not a usable key name"))
    }

    @Test func aSecretKeyOthersCanReadIsRefusedUnlessAllowed() throws {
        let written = try CurveKeyFiles.generate(directory: temporaryDirectory(), name: "c")
        chmod(written.secretKeyPath, 0o640)
        // Refused by default, as ssh refuses such keys (issue 19 item 10).
        let refused = message { _ = try CurveKeyFiles.readKeyPair(path: written.secretKeyPath) }
        #expect(refused.contains("mode 640") && refused.contains("--allow-insecure-key-permissions"), "\(refused)")
        var warnings: [String] = []
        _ = try CurveKeyFiles.readKeyPair(path: written.secretKeyPath, allowInsecurePermissions: true) {
            warnings.append($0)
        }
        #expect(warnings.count == 1)
        #expect(
            warnings.first?.contains(
                "\(written.secretKeyPath): secret key file is accessible to group or others (mode 640); run: chmod 600")
                == true)
    }

    @Test func badFilesAreClearErrors() throws {
        let dir = temporaryDirectory()
        #expect(
            message { _ = try CurveKeyFiles.readKeyPair(path: dir + "/none.key") }
                .contains(
                    "\(dir)/none.key: no such key file. Create key pairs with: laser keygen --out DIR --name NAME"))
        try "curve\n    public-key = \"\(String(repeating: "~", count: 40))\"\n".write(
            toFile: dir + "/bad.pub", atomically: true, encoding: .utf8)
        let bad = message { _ = try CurveKeyFiles.readPublicKey(path: dir + "/bad.pub") }
        #expect(bad.contains("\(dir)/bad.pub: public-key:") && bad.contains("not valid Z85"), "\(bad)")
        try "curve\n    public-key = \"short\"\n".write(toFile: dir + "/short.pub", atomically: true, encoding: .utf8)
        #expect(
            message { _ = try CurveKeyFiles.readPublicKey(path: dir + "/short.pub") }.contains(
                "40 Z85 characters; got 5"))
        try "hello\n".write(toFile: dir + "/junk.pub", atomically: true, encoding: .utf8)
        #expect(
            message { _ = try CurveKeyFiles.readPublicKey(path: dir + "/junk.pub") }.contains("not a CURVE key file"))
        let written = try CurveKeyFiles.generate(directory: dir, name: "w")
        #expect(
            message { _ = try CurveKeyFiles.readKeyPair(path: written.publicKeyPath) }.contains(
                "has no curve secret-key"))
        // A secret key whose stored public key belongs to another pair.
        let other = try CurveKeyPair.generate()
        try "curve\n    public-key = \"\(other.publicKey)\"\n    secret-key = \"\(written.keyPair.secretKey)\"\n"
            .write(toFile: dir + "/mixed.key", atomically: true, encoding: .utf8)
        #expect(
            message { _ = try CurveKeyFiles.readKeyPair(path: dir + "/mixed.key") }.contains(
                "does not belong to this secret key"))
    }

    /// czmq's zcert and pyzmq's zmq.auth write the same ZPL layout.
    @Test func readsZcertStyleFiles() throws {
        let dir = temporaryDirectory()
        let pair = try CurveKeyPair.generate()
        try """
        #   ****  Generated on 2024-01-01 00:00:00 by pyzmq  ****
        #   ZeroMQ CURVE **Secret** Certificate
        #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

        metadata
        curve
            public-key = "\(pair.publicKey)"
            secret-key = "\(pair.secretKey)"
        """.write(toFile: dir + "/server.key_secret", atomically: true, encoding: .utf8)
        chmod(dir + "/server.key_secret", 0o600)
        #expect(try CurveKeyFiles.readKeyPair(path: dir + "/server.key_secret") == pair)
    }

    @Test func allowListIsEveryPubFile() throws {
        let dir = temporaryDirectory()
        let a = try CurveKeyFiles.generate(directory: dir, name: "a")
        let b = try CurveKeyFiles.generate(directory: dir, name: "b")
        try "notes".write(toFile: dir + "/README", atomically: true, encoding: .utf8)
        let list = try CurveKeyFiles.allowList(directory: dir)
        #expect(list.map(\.key) == [a.keyPair.publicKey, b.keyPair.publicKey])
        #expect(list.map(\.file) == [dir + "/a.pub", dir + "/b.pub"])
        #expect(
            message { _ = try CurveKeyFiles.allowList(directory: dir + "/missing") }.contains(
                "does not exist. Create it and copy each peer's NAME.pub into it"))
    }
}

@Suite struct SecurityConfigTests {
    let base = "input: a.jsonl\nreward_models: [{kind: length}]\n"

    func parse(_ yaml: String) throws -> RunConfig {
        try RunConfig.parse(yaml: yaml, source: "cfg.yaml", baseDirectory: "/data")
    }

    func error(_ yaml: String) -> String {
        do { _ = try parse(yaml); return "no error" } catch { return "\(error)" }
    }

    @Test func offByDefaultAndNotWritten() throws {
        let c = try parse(base)
        #expect(c.security == SecuritySettings())
        #expect(!c.yaml().contains("security"))
    }

    @Test func parsedWithPathsRelativeToTheConfigAndWrittenBack() throws {
        let c = try parse(
            base
                + "security:\n  curve: true\n  server_key: keys/coordinator.key\n  allowed_clients: /etc/laser/workers\n"
        )
        #expect(
            c.security
                == SecuritySettings(
                    curve: true, serverKey: "/data/keys/coordinator.key", allowedClients: "/etc/laser/workers"))
        let again = try RunConfig.parse(yaml: c.yaml(), source: "x", baseDirectory: "/elsewhere")
        #expect(again == c)
        // curve: false with paths (ready to switch on) parses and round-trips too.
        let off = try parse(base + "security: {curve: false, server_key: k.key}\n")
        #expect(off.security.curve == false && off.security.serverKey == "/data/k.key")
        #expect(try RunConfig.parse(yaml: off.yaml(), source: "x", baseDirectory: "/") == off)
    }

    @Test func errorsSayWhereAndWhat() {
        #expect(
            error(base + "security: {curve: true, allowed_clients: w}").contains(
                "cfg.yaml: security.server_key is required with curve: true"))
        #expect(
            error(base + "security: {curve: true, server_key: c.key}").contains(
                "cfg.yaml: security.allowed_workers is required with curve: true"))
        #expect(error(base + "security: {curve: yes please}").contains("security.curve must be true or false"))
        #expect(
            error(base + "security: {curve: true, server_key: c.key, allowed_clients: w, client_key: x}")
                .contains(
                    "security.client_key is not a known key here; known keys: allowed_clients, allowed_trainers, allowed_workers, curve, server_key"
                ))
        #expect(
            error(base + "security: {curve: true, server_key: c.key, allowed_clients: w, allowed_workers: w}")
                .contains("allowed_clients and allowed_workers are the same setting"))
        #expect(error(base + "security: on").contains("security must be a mapping"))
        #expect(
            error(base + "security: {server_key: [a, b]}").contains("security.server_key must be a path (a string)"))
    }
}

@Suite struct SecurityWiringTests {
    @Test func coordinatorRefusesAnEmptyAllowList() throws {
        let dir = temporaryDirectory()
        let server = try CurveKeyFiles.generate(directory: dir + "/keys", name: "coordinator")
        try FileManager.default.createDirectory(atPath: dir + "/allowed", withIntermediateDirectories: true)
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router)
        let settings = SecuritySettings(curve: true, serverKey: server.secretKeyPath, allowedClients: dir + "/allowed")
        do {
            _ = try CoordinatorService.configureSecurity(
                settings, router: router, context: context, logger: .init(label: "t"))
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("\(dir)/allowed: the allowed_workers folder has no *.pub files"))
        }
        #expect(
            try CoordinatorService.configureSecurity(
                SecuritySettings(), router: router, context: context, logger: .init(label: "t")) == nil)
    }

    @Test func localRunMakesAKeyPerWorkerAndKeepsExternalWorkersAllowed() throws {
        let dir = temporaryDirectory()
        let server = try CurveKeyFiles.generate(directory: dir + "/keys", name: "coordinator")
        let external = try CurveKeyFiles.generate(directory: dir + "/allowed", name: "gpu-node-1")
        var config = RunConfig(inputs: ["/x.jsonl"], iterations: 1, rewardModels: [])
        config.security = SecuritySettings(
            curve: true, serverKey: server.secretKeyPath, allowedClients: dir + "/allowed")
        let run = try RunDirectory(path: dir + "/run")
        for _ in 0..<2 {  // a second run into the same folder replaces the throwaway keys
            let prepared = try LocalRunSecurity.prepare(config, runDirectory: run, workers: 2)
            let allowed = try #require(prepared.coordinatorConfig.security.allowedClients)
            #expect(allowed == run.path + "/keys/allowed")
            let keys = try CurveKeyFiles.allowList(directory: allowed).map(\.key)
            let local1 = try CurveKeyFiles.readKeyPair(path: run.path + "/keys/local-1.key")
            #expect(
                Set(keys).count == 3 && keys.contains(external.keyPair.publicKey) && keys.contains(local1.publicKey))
            #expect(
                prepared.workerArguments[1] == [
                    "--server-key", run.path + "/keys/coordinator.pub", "--key", run.path + "/keys/local-1.key",
                ])
            #expect(
                try CurveKeyFiles.readPublicKey(path: run.path + "/keys/coordinator.pub") == server.keyPair.publicKey)
        }
        // Curve off: nothing written, nothing changed.
        let plain = RunConfig(inputs: ["/x.jsonl"], iterations: 1, rewardModels: [])
        let other = try RunDirectory(path: dir + "/run2")
        let prepared = try LocalRunSecurity.prepare(plain, runDirectory: other, workers: 2)
        #expect(prepared.coordinatorConfig == plain && prepared.workerArguments.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: other.path + "/keys"))
    }
}
