/// The config's `security` section: CurveZMQ between coordinator and workers (docs/configuration.md).
public struct SecuritySettings: Equatable, Sendable {
    /// Encrypt and authenticate every connection; off by default (loopback demo, trusted networks).
    public var curve = false
    /// The coordinator's secret key file (`laser keygen --name coordinator` writes NAME.key); absolute once loaded.
    public var serverKey: String?
    /// A folder whose `*.pub` files are the worker keys the coordinator admits; absolute once loaded.
    public var allowedClients: String?

    public init(curve: Bool = false, serverKey: String? = nil, allowedClients: String? = nil) {
        self.curve = curve
        self.serverKey = serverKey
        self.allowedClients = allowedClients
    }

    /// The ZAP domain the coordinator's ROUTER uses. Fixed: the handler serves only this one socket.
    public static let zapDomain = "laser"
}
