/// The config's `security` section: CurveZMQ between coordinator and workers (docs/configuration.md).
public struct SecuritySettings: Equatable, Sendable {
    /// Encrypt and authenticate every connection; off by default (loopback demo, trusted networks).
    public var curve = false
    /// The coordinator's secret key file (`laser keygen --name coordinator` writes NAME.key); absolute once loaded.
    public var serverKey: String?
    /// A folder whose `*.pub` files are the worker keys the coordinator admits (`allowed_workers`, or its
    /// earlier name `allowed_clients`); absolute once loaded.
    public var allowedClients: String?
    /// A folder whose `*.pub` files are the keys that may act as the trainer (`allowed_trainers`): take
    /// preference batches and report losses. None: no trainer may connect under CURVE.
    public var allowedTrainers: String?

    /// Use secret key files that group or others may read (`--allow-insecure-key-permissions`; a
    /// command-line choice, never written to a config).
    public var allowInsecureKeyPermissions = false

    public init(
        curve: Bool = false, serverKey: String? = nil, allowedClients: String? = nil, allowedTrainers: String? = nil
    ) {
        self.curve = curve
        self.serverKey = serverKey
        self.allowedClients = allowedClients
        self.allowedTrainers = allowedTrainers
    }

    /// The ZAP domain the coordinator's ROUTER uses. Fixed: the handler serves only this one socket.
    public static let zapDomain = "laser"
}
