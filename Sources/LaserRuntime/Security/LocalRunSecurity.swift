import Foundation
import ZeroMQ

/// `laser run` with `security.curve` on: a throwaway key pair per local worker.
///
/// Layout (RUN_DIR/keys, mode 0700, replaced on every run):
/// - `local-N.key`, `local-N.pub`: local worker N's pair;
/// - `coordinator.pub`: the public half of `security.server_key`, for the workers' `--server-key`;
/// - `allowed/`: copies of every `*.pub` in `security.allowed_clients` plus `local-N.pub`; the
///   coordinator of this run reads this folder instead, so external workers still get in.
/// The run's config.yaml keeps the user's `allowed_clients`; only the in-memory coordinator config
/// points at `keys/allowed`.
enum LocalRunSecurity {
    /// What the launcher needs: the coordinator's config and each local worker's key arguments.
    struct Prepared {
        /// The config the coordinator of this run uses.
        var coordinatorConfig: RunConfig
        /// Extra `laser worker` arguments per 1-based local worker.
        var workerArguments: [Int: [String]]
    }

    static func prepare(_ config: RunConfig, runDirectory: RunDirectory, workers: Int) throws -> Prepared {
        guard config.security.curve else { return Prepared(coordinatorConfig: config, workerArguments: [:]) }
        guard let serverKey = config.security.serverKey, let allowedClients = config.security.allowedClients else {
            throw ConfigError(
                "security.curve is true but security.server_key or security.allowed_clients is missing; set server_key to the coordinator's NAME.key (laser keygen --out DIR --name coordinator) and allowed_clients to a folder of worker NAME.pub files, or set curve: false"
            )
        }
        let keys = runDirectory.path + "/keys"
        let allowed = keys + "/allowed"
        // Throwaway keys from an earlier run into the same folder must not linger in the allow-list.
        if FileManager.default.fileExists(atPath: keys) {
            do { try FileManager.default.removeItem(atPath: keys) } catch {
                throw KeyFileError("cannot remove the old local keys \(keys): \(error.localizedDescription)")
            }
        }
        let server = try CurveKeyFiles.readKeyPair(
            path: serverKey, allowInsecurePermissions: config.security.allowInsecureKeyPermissions)
        try CurveKeyFiles.writePublicKey(server.publicKey, directory: keys, name: "coordinator")
        // Created even when there is nothing to copy: an empty allow-list is reported by the coordinator.
        try CurveKeyFiles.makeKeyDirectory(allowed)
        for entry in try CurveKeyFiles.allowList(directory: allowedClients) {
            let name = URL(fileURLWithPath: entry.file).deletingPathExtension().lastPathComponent
            try CurveKeyFiles.writePublicKey(entry.key, directory: allowed, name: name)
        }
        var arguments: [Int: [String]] = [:]
        for i in stride(from: 1, through: workers, by: 1) {
            let written = try CurveKeyFiles.generate(directory: keys, name: "local-\(i)")
            try CurveKeyFiles.writePublicKey(written.keyPair.publicKey, directory: allowed, name: "local-\(i)")
            arguments[i] = ["--server-key", keys + "/coordinator.pub", "--key", written.secretKeyPath]
        }
        var coordinatorConfig = config
        coordinatorConfig.security.allowedClients = allowed
        return Prepared(coordinatorConfig: coordinatorConfig, workerArguments: arguments)
    }
}
