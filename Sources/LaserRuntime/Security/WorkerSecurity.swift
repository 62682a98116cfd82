import ZeroMQ

extension WorkerOptions {
    /// Loads `--server-key` (the coordinator's NAME.pub) and `--key` (this worker's NAME.key), so the
    /// worker connects as a CURVE client. `onWarning` hears about a secret key others may read.
    public mutating func useCurve(
        serverKeyFile: String, keyFile: String, allowInsecurePermissions: Bool = false,
        onWarning: (String) -> Void = { _ in }
    ) throws {
        curveServerKey = try CurveKeyFiles.readPublicKey(path: serverKeyFile)
        curveKeyPair = try CurveKeyFiles.readKeyPair(
            path: keyFile, allowInsecurePermissions: allowInsecurePermissions, onWarning: onWarning)
    }
}

extension WorkerService {
    /// Makes a fresh DEALER a CURVE client when the options carry keys. `connect()` calls it on every
    /// new socket, before `connect`, since CURVE options only apply to later connections.
    func applySecurity(to socket: ZMQSocket) throws {
        guard let server = options.curveServerKey, let pair = options.curveKeyPair else { return }
        try socket.makeCurveClient(serverPublicKey: server, keyPair: pair)
    }
}
