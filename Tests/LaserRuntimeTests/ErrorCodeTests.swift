import Foundation
import LaserRewardModels
import Testing

@testable import LaserRuntime

/// Typed errors: each refusal carries a code a caller can match on (the wording users see is the same
/// as before; the CLI's exit status follows from the error's kind, docs/user-guide.md#exit-status).
@Suite struct ErrorCodeTests {
    func caught<T>(_ body: () throws -> T) -> Error? {
        do { _ = try body(); return nil } catch { return error }
    }

    @Test func configInputStorageKeyAndRMErrorsCarryTheirCodes() throws {
        let dir = temporaryDirectory()
        let minimal = "input: [in.jsonl]\nreward_models: [{name: len, kind: length}]\n"
        try minimal.write(toFile: dir + "/ok.yaml", atomically: true, encoding: .utf8)
        try (minimal + "bogus: 1\n").write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        #expect((caught { try RunConfig.load(path: dir + "/bad.yaml") } as? ConfigError)?.code == .invalid)

        // A missing input: unreadable; a line past the limit: lineTooLong.
        let config = try RunConfig.load(path: dir + "/ok.yaml")
        #expect((caught { try ValidatedInputs.check(config) } as? InputError)?.code == .unreadable)
        var small = config
        small.maxMessageBytes = 1 << 16
        let long = "{\"id\": \"a\", \"prompt\": \"p\", \"candidates\": [\"\(String(repeating: "x", count: 70_000))\", \"b\"]}\n"
        try long.write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        #expect((caught { try ValidatedInputs.check(small) } as? InputError)?.code == .lineTooLong)

        // Unlabelled input with the label reward: rewardUnavailable.
        try "{\"id\": \"a\", \"prompt\": \"p\", \"candidates\": [\"a\", \"bb\"]}\n".write(
            toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        #expect((caught { try ValidatedInputs.check(config) } as? ConfigError)?.code == .rewardUnavailable)

        // Export of a folder that is no run: notARun.
        #expect((caught { try DatasetExport.run(runDirectory: dir, format: .jsonl, out: dir + "/x") } as? StorageError)?.code == .notARun)

        // A secret key others may read: insecurePermissions.
        let keys = try CurveKeyFiles.generate(directory: dir + "/keys", name: "w")
        chmod(keys.secretKeyPath, 0o644)
        #expect((caught { try CurveKeyFiles.readKeyPair(path: keys.secretKeyPath) } as? KeyFileError)?.code == .insecurePermissions)

        // An RM definition that cannot be built: definition (exit status 6 at start).
        let rm = caught { try RewardModelCatalog.make(RewardModelSpec(name: "h", kind: "http", params: ["api": "openrlhf"]), runSeed: 0) }
        #expect((rm as? RewardModelError)?.code == .definition, "\(String(describing: rm))")
    }

    /// A run started with reward.allow_unrewarded resumes: its config.yaml keeps the key (the throughput
    /// benchmark's resume of a finished run failed without it), and the key does not change the digest.
    @Test func allowUnrewardedSurvivesTheRunsConfigFile() throws {
        let dir = temporaryDirectory()
        let text = "input: [in.jsonl]\nreward: {allow_unrewarded: true}\nreward_models: [{name: len, kind: length}]\n"
        try text.write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let config = try RunConfig.load(path: dir + "/c.yaml")
        #expect(config.allowUnrewarded)
        let again = try RunConfig.parse(yaml: config.yaml(), source: "config.yaml", baseDirectory: dir)
        #expect(again.allowUnrewarded && again.semanticDigest == config.semanticDigest)
        var strict = config
        strict.allowUnrewarded = false
        #expect(strict.semanticDigest == config.semanticDigest)
    }
}
