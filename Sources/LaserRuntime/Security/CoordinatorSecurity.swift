import Logging
import ZeroMQ

extension CoordinatorService {
    /// CurveZMQ for the coordinator's ROUTER when `security.curve` is on: loads the server key and the
    /// allow-list, starts the ZAP handler on the socket's context, and makes the socket a CURVE
    /// server. Runs before `bind`, so no client ever gets a plaintext connection. Returns the
    /// handler, which must live as long as the socket (nil, and nothing changed, when curve is off).
    static func configureSecurity(_ settings: SecuritySettings, router: ZMQSocket, context: ZMQContext,
                                  logger: Logger) throws -> ZAPAuthenticator? {
        guard settings.curve else { return nil }
        guard let keyPath = settings.serverKey, let allowDirectory = settings.allowedClients else {
            throw ConfigError("security.curve is true but security.server_key or security.allowed_clients is missing; set server_key to the coordinator's NAME.key (laser keygen --out DIR --name coordinator) and allowed_clients to a folder of worker NAME.pub files, or set curve: false")
        }
        let pair = try CurveKeyFiles.readKeyPair(path: keyPath) { logger.warning("\($0)") }
        let allowed = try CurveKeyFiles.allowList(directory: allowDirectory)
        guard !allowed.isEmpty else {
            throw KeyFileError("\(allowDirectory): the allowed_clients folder has no *.pub files, so no worker could connect. Copy each worker's NAME.pub (from laser keygen --name NAME) into it.")
        }
        // Key -> file, so a log line says which worker's key got in.
        let files = Dictionary(allowed.map { ($0.key, $0.file) }, uniquingKeysWith: { first, _ in first })
        let authenticator = try ZAPAuthenticator(
            context: context, domain: SecuritySettings.zapDomain, allowedClientKeys: Set(files.keys)
        ) { decision in
            if decision.allowed {
                logger.debug("CURVE: admitted \(decision.address) with key \(files[decision.clientKey ?? ""] ?? "?")")
            } else {
                logger.warning("CURVE: refused \(decision.address) (\(decision.mechanism), key \(decision.clientKey ?? "-")): \(decision.reason)")
            }
        }
        try router.makeCurveServer(secretKey: pair.secretKey, zapDomain: SecuritySettings.zapDomain)
        logger.info("CURVE on: \(files.count) worker key(s) allowed from \(allowDirectory); coordinator public key \(pair.publicKey)")
        return authenticator
    }
}
