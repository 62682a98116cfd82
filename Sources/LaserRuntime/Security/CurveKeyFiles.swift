import LaserErrors
import Foundation
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A problem with a key file or allow-list folder: the path, what is wrong, and what to do.
/// A CURVE key file that cannot be used (exit status 5).
public typealias KeyFileError = CodedError<KeyFileErrorCode>

/// The codes of ``KeyFileError``.
public enum KeyFileErrorCode: String, ErrorCode {
    /// Missing, unreadable or not a key.
    case invalid
    /// A secret key group or others may read (refused, as ssh does).
    case insecurePermissions = "insecure-permissions"

    public static var unspecified: Self { .invalid }
}

/// CURVE key files as `laser keygen` writes them.
///
/// Format: the ZPL text of czmq's `zcert` and pyzmq's `zmq.auth` certificates, so keys made by
/// those tools can be used too:
/// ```
/// #   laser CURVE secret key NAME.key: keep it private (mode 0600). Share NAME.pub instead.
/// metadata
///     name = "NAME"
/// curve
///     public-key = "<40 Z85 characters>"
///     secret-key = "<40 Z85 characters>"
/// ```
/// `NAME.key` holds both keys (a worker needs its public key too, and the pair is checked to
/// match); `NAME.pub` is the same without `secret-key`. An allow-list folder is every `*.pub` in it.
public enum CurveKeyFiles {
    /// Paths and keys of a freshly written pair.
    public struct Written: Sendable {
        public var secretKeyPath: String
        public var publicKeyPath: String
        public var keyPair: CurveKeyPair
    }

    /// Generates a key pair and writes `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub`.
    public static func generate(directory: String, name: String) throws -> Written {
        try write(CurveKeyPair.generate(), directory: directory, name: name)
    }

    /// Writes `pair` as `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub`; never overwrites a file.
    public static func write(_ pair: CurveKeyPair, directory: String, name: String) throws -> Written {
        try checkName(name)
        try makeKeyDirectory(directory)
        let secretPath = directory + "/" + name + ".key"
        let publicPath = directory + "/" + name + ".pub"
        for path in [secretPath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw KeyFileError(
                "\(path) already exists; laser keygen never replaces a key (workers and allow-lists may use it). Delete it first or choose another --name."
            )
        }
        let header = "#   laser CURVE secret key \(name).key: keep it private (mode 0600). Share \(name).pub instead.\n"
        try create(
            secretPath, mode: 0o600,
            text: header + body(name: name, publicKey: pair.publicKey, secretKey: pair.secretKey))
        try writePublicKey(pair.publicKey, directory: directory, name: name)
        return Written(secretKeyPath: secretPath, publicKeyPath: publicPath, keyPair: pair)
    }

    /// Writes only `DIR/NAME.pub` (an allow-list entry, or the coordinator's key for workers).
    @discardableResult
    public static func writePublicKey(_ publicKey: String, directory: String, name: String) throws -> String {
        try checkName(name)
        do { _ = try Z85.decodeKey(publicKey) } catch { throw KeyFileError("cannot write \(name).pub: \(error)") }
        try makeKeyDirectory(directory)
        let path = directory + "/" + name + ".pub"
        if FileManager.default.fileExists(atPath: path) {
            throw KeyFileError("\(path) already exists; delete it first or choose another name.")
        }
        let header =
            "#   laser CURVE public key \(name).pub: safe to share; put it in the coordinator's allowed_clients folder.\n"
        try create(path, mode: 0o644, text: header + body(name: name, publicKey: publicKey, secretKey: nil))
        return path
    }

    /// mkdir -p with mode 0700 for new folders: key folders hold secrets, so only the owner may list them.
    public static func makeKeyDirectory(_ directory: String) throws {
        guard !FileManager.default.fileExists(atPath: directory) else { return }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            throw KeyFileError("cannot create the key folder \(directory): \(error.localizedDescription)")
        }
    }

    private static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw KeyFileError(
                "'\(name)' is not a usable key name: use letters, digits, '-' or '_' (it becomes NAME.key and NAME.pub)"
            )
        }
    }

    /// Reads a `NAME.key` file. One that group or others may access is refused, as ssh refuses such
    /// keys, unless `allowInsecurePermissions` (`--allow-insecure-key-permissions`): then `onWarning`
    /// hears about it.
    public static func readKeyPair(
        path: String, allowInsecurePermissions: Bool = false,
        onWarning: (String) -> Void = { _ in }
    ) throws -> CurveKeyPair {
        let fields = try curveFields(path)
        guard let secret = fields["secret-key"] else {
            throw KeyFileError(
                "\(path): has no curve secret-key. Give the NAME.key file that laser keygen wrote (NAME.pub holds only the public key)."
            )
        }
        let pair: CurveKeyPair
        do {
            if let pub = fields["public-key"] {
                pair = try CurveKeyPair(publicKey: pub, secretKey: secret)
            } else {
                pair = try CurveKeyPair(secretKey: secret)
            }
        } catch {
            throw KeyFileError(
                "\(path): \(error). The file is damaged or was edited; generate a new pair with laser keygen.")
        }
        if let warning = permissionWarning(path: path) {
            guard allowInsecurePermissions else {
                throw KeyFileError(
                    "\(warning). A secret key others can read is refused; fix the mode, or pass --allow-insecure-key-permissions to use it anyway",
                    code: .insecurePermissions)
            }
            onWarning(warning)
        }
        return pair
    }

    /// Reads the public key of a `NAME.pub` (or `NAME.key`) file.
    public static func readPublicKey(path: String) throws -> String {
        let fields = try curveFields(path)
        guard let pub = fields["public-key"] else {
            throw KeyFileError("\(path): has no curve public-key. Give a NAME.pub file written by laser keygen.")
        }
        do { _ = try Z85.decodeKey(pub) } catch {
            throw KeyFileError(
                "\(path): public-key: \(error). The file is damaged or was edited; copy NAME.pub again from its owner.")
        }
        return pub
    }

    /// The public keys of every `*.pub` file in `directory`, each with the file it came from.
    public static func allowList(directory: String) throws -> [(key: String, file: String)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw KeyFileError(
                "\(directory): the key folder (security.allowed_workers / allowed_trainers) does not exist. Create it and copy each peer's NAME.pub into it."
            )
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw KeyFileError("\(directory): cannot list the key folder: \(error.localizedDescription)")
        }
        return try names.filter { $0.hasSuffix(".pub") }.sorted().map { name in
            let path = directory + "/" + name
            return (try readPublicKey(path: path), path)
        }
    }

    /// A warning when group or others may access a secret key file, else nil.
    public static func permissionWarning(path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let mode = st.st_mode & 0o777
        guard mode & 0o077 != 0 else { return nil }
        return
            "\(path): secret key file is accessible to group or others (mode \(String(mode, radix: 8))); run: chmod 600 \(path)"
    }

    // MARK: format

    static func body(name: String, publicKey: String, secretKey: String?) -> String {
        var s = "metadata\n    name = \"\(name)\"\ncurve\n    public-key = \"\(publicKey)\"\n"
        if let secretKey { s += "    secret-key = \"\(secretKey)\"\n" }
        return s
    }

    /// The `key = "value"` lines of the file's `curve` section.
    static func curveFields(_ path: String) throws -> [String: String] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw KeyFileError("\(path): no such key file. Create key pairs with: laser keygen --out DIR --name NAME")
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KeyFileError(
                "\(path): cannot read the key file (\(error.localizedDescription)); check its owner and permissions")
        }
        var section = ""
        var fields: [String: String] = [:]
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                section = line  // a ZPL section name ("metadata", "curve") sits alone on its line
                continue
            }
            guard section == "curve" else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            fields[key] = value
        }
        guard !fields.isEmpty else {
            throw KeyFileError(
                "\(path): not a CURVE key file (no curve section with public-key). Use the files laser keygen writes.")
        }
        return fields
    }

    /// Creates `path` with `mode` from the start (no window in which a secret is world-readable)
    /// and refuses to replace an existing file (O_EXCL).
    private static func create(_ path: String, mode: mode_t, text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw KeyFileError("\(StorageError.errno("cannot create", path))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw KeyFileError("\(StorageError.errno("cannot write", path))")
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw KeyFileError("\(StorageError.errno("cannot fsync", path))") }
    }
}
