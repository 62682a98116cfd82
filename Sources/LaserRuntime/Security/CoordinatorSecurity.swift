import LaserSync
import Foundation
import LaserWire
import Logging
import ZeroMQ

extension CoordinatorService {
    /// CurveZMQ for the coordinator's ROUTER when `security.curve` is on: loads the server key and the
    /// allow-list, starts the ZAP handler on the socket's context, and makes the socket a CURVE
    /// server. Runs before `bind`, so no client ever gets a plaintext connection. Returns the
    /// handler, which must live as long as the socket (nil, and nothing changed, when curve is off).
    static func configureSecurity(
        _ settings: SecuritySettings, router: ZMQSocket, context: ZMQContext,
        logger: Logger
    ) throws -> (ZAPAuthenticator, PeerRoles)? {
        guard settings.curve else { return nil }
        guard let keyPath = settings.serverKey, let allowDirectory = settings.allowedClients else {
            throw ConfigError(
                "security.curve is true but security.server_key or security.allowed_workers is missing; set server_key to the coordinator's NAME.key (laser keygen --out DIR --name coordinator) and allowed_workers to a folder of worker NAME.pub files, or set curve: false"
            )
        }
        let pair = try CurveKeyFiles.readKeyPair(
            path: keyPath, allowInsecurePermissions: settings.allowInsecureKeyPermissions
        ) { logger.warning("\($0)") }
        let workerKeys = try CurveKeyFiles.allowList(directory: allowDirectory)
        guard !workerKeys.isEmpty else {
            throw KeyFileError(
                "\(allowDirectory): the allowed_workers folder has no *.pub files, so no worker could connect. Copy each worker's NAME.pub (from laser keygen --name NAME) into it."
            )
        }
        let trainerKeys = try settings.allowedTrainers.map { try CurveKeyFiles.allowList(directory: $0) } ?? []
        // Key -> file, so a log line says which peer's key got in.
        let files = Dictionary(
            (workerKeys + trainerKeys).map { ($0.key, $0.file) }, uniquingKeysWith: { first, _ in first })
        let roles = PeerRoles(workers: Set(workerKeys.map(\.key)), trainers: Set(trainerKeys.map(\.key)))
        let refusals = RefusalLog()
        let authenticator = try ZAPAuthenticator(
            context: context, domain: SecuritySettings.zapDomain, allowedClientKeys: Set(files.keys)
        ) { decision in
            if decision.allowed {
                logger.debug("CURVE: admitted \(decision.address) with key \(files[decision.clientKey ?? ""] ?? "?")")
            } else if refusals.allow() {
                logger.warning(
                    "CURVE: refused \(decision.address) (\(decision.mechanism), key \(decision.clientKey ?? "-")): \(decision.reason)\(refusals.suffix)"
                )
            }
        }
        try router.makeCurveServer(secretKey: pair.secretKey, zapDomain: SecuritySettings.zapDomain)
        logger.info(
            "CURVE on: \(workerKeys.count) worker key(s) allowed from \(allowDirectory), \(trainerKeys.count) trainer key(s)\(settings.allowedTrainers.map { " from \($0)" } ?? " (security.allowed_trainers not set: no trainer may connect)"); coordinator public key \(pair.publicKey)"
        )
        return (authenticator, roles)
    }
}

/// Which CURVE keys may take which role (security.allowed_workers, security.allowed_trainers). The ZAP
/// handler admits the union; the coordinator checks each message's key (its ZAP User-Id) against the
/// role the message asks for, so a worker key cannot act as the trainer, nor a trainer key as a worker.
struct PeerRoles: Sendable {
    var workers: Set<String>
    var trainers: Set<String>

    /// Why the peer with CURVE key `key` may not send `message`, or nil.
    func refusal(of message: WireMessage, key: String?) -> String? {
        switch message {
        case .hello:
            guard let key, workers.contains(key) else {
                return "this client's key is not allowed to act as a worker (security.allowed_workers)"
            }
        case .trainerHello, .batchFeedback:
            guard let key, trainers.contains(key) else {
                return "this client's key is not allowed to act as the trainer (security.allowed_trainers)"
            }
        default:
            break
        }
        return nil
    }
}

/// Handshake refusals logged sparingly (the first ten, then every 10,000th): a stranger retrying costs
/// no log space. Called from the ZAP and monitor threads.
final class RefusalLog: Sendable {
    private let count = Locked(0)

    func allow() -> Bool {
        count.withLock { count in
            count += 1
            return count <= 10 || count % 10_000 == 0
        }
    }

    var suffix: String {
        count.withLock { count in
            count == 10 ? " (further refusals: one in 10,000 logged)" : count > 10 ? " (\(count) so far)" : ""
        }
    }
}
