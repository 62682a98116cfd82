/// ZeroMQ endpoints as users type them (`--connect`, `--bind`, `network.bind`), checked before libzmq
/// sees them: libzmq answers a missing `tcp://` with "Invalid argument (errno 22)" and accepts port 99999
/// silently on some paths.
public enum Endpoint {
    /// Why `text` is not a usable endpoint (with what to write instead), or nil. `bind`: `*` is allowed
    /// as host and port.
    public static func problem(_ text: String, bind: Bool) -> String? {
        let schemes = ["tcp://", "ipc://", "inproc://"]
        guard let scheme = schemes.first(where: { text.hasPrefix($0) }) else {
            if text.contains(":") && !text.contains("://") {
                return "'\(text)' has no transport; write tcp://\(text)"
            }
            return "'\(text)' is not a ZeroMQ endpoint; write tcp://HOST:PORT (for example tcp://10.0.0.5:5555)"
        }
        guard scheme == "tcp://" else { return nil }
        let rest = String(text.dropFirst(scheme.count))
        guard let colon = rest.lastIndex(of: ":") else {
            return "'\(text)' has no port; write tcp://HOST:PORT"
        }
        let host = String(rest[..<colon]), port = String(rest[rest.index(after: colon)...])
        if host.isEmpty {
            return
                "'\(text)' has no host; write tcp://HOST:PORT\(bind ? " (or tcp://*:PORT to listen on every interface)" : "")"
        }
        if bind && port == "*" { return nil }
        guard let n = Int(port), (1...65535).contains(n) else {
            return "'\(text)': port '\(port)' is not a TCP port (1-65535\(bind ? ", or * for any free one" : ""))"
        }
        return nil
    }
}
