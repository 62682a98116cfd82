import CZeroMQ

/// A problem with CurveZMQ key material (bad Z85 text, a key of the wrong length, no CURVE support).
public struct CurveKeyError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Z85 (ZeroMQ RFC 32) text for 32-byte CURVE keys.
public enum Z85 {
    /// Characters of a Z85-encoded 32-byte key.
    public static let keyLength = 40

    /// Decodes a 40-character Z85 key to its 32 bytes; throws a clear error for anything else.
    public static func decodeKey(_ text: String) throws -> [UInt8] {
        let utf8 = Array(text.utf8)
        // Check the length first: zmq_z85_decode writes length * 4 / 5 bytes, so a longer string
        // would overrun the 32-byte buffer.
        guard utf8.count == keyLength else {
            throw CurveKeyError("a CURVE key is \(keyLength) Z85 characters; got \(utf8.count)")
        }
        guard !utf8.contains(0) else { throw CurveKeyError("a CURVE key must not contain NUL characters") }
        var out = [UInt8](repeating: 0, count: 32)
        // libzmq checks every character against the Z85 alphabet and returns NULL on a bad one.
        let ok = out.withUnsafeMutableBufferPointer { buffer in
            text.withCString { zmq_z85_decode(buffer.baseAddress, $0) } != nil
        }
        guard ok else { throw CurveKeyError("'\(text)' is not valid Z85 (characters outside the Z85 alphabet)") }
        return out
    }

    /// True when `text` is a well-formed Z85 CURVE key.
    public static func isValidKey(_ text: String) -> Bool { (try? decodeKey(text)) != nil }

    /// Encodes 32 key bytes as 40 Z85 characters.
    public static func encodeKey(_ bytes: [UInt8]) throws -> String {
        guard bytes.count == 32 else { throw CurveKeyError("a CURVE key is 32 bytes; got \(bytes.count)") }
        var buffer = [CChar](repeating: 0, count: keyLength + 1)  // + NUL
        guard zmq_z85_encode(&buffer, bytes, bytes.count) != nil else { throw CurveKeyError("zmq_z85_encode failed") }
        return String(decoding: buffer.prefix(keyLength).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A CurveZMQ (Curve25519) key pair as Z85 text.
public struct CurveKeyPair: Equatable, Sendable {
    /// 40 Z85 characters; safe to share.
    public let publicKey: String
    /// 40 Z85 characters; never leaves the holder.
    public let secretKey: String

    /// True when this libzmq was built with CURVE (libsodium or tweetnacl).
    public static var isAvailable: Bool { zmq_has("curve") != 0 }

    /// A fresh random key pair from libzmq.
    public static func generate() throws -> CurveKeyPair {
        try requireCurve()
        // 40 Z85 characters plus the NUL libzmq writes after them.
        var pub = [CChar](repeating: 0, count: Z85.keyLength + 1)
        var sec = [CChar](repeating: 0, count: Z85.keyLength + 1)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return CurveKeyPair(unchecked: text(pub), secretKey: text(sec))
    }

    /// The pair for a secret key, deriving the public key (zmq_curve_public).
    public init(secretKey: String) throws {
        try CurveKeyPair.requireCurve()
        _ = try Z85.decodeKey(secretKey)
        var pub = [CChar](repeating: 0, count: Z85.keyLength + 1)
        guard zmq_curve_public(&pub, secretKey) == 0 else { throw ZMQError.last("zmq_curve_public") }
        self.init(unchecked: CurveKeyPair.text(pub), secretKey: secretKey)
    }

    /// Both keys as stored; throws unless the public key belongs to the secret key.
    public init(publicKey: String, secretKey: String) throws {
        _ = try Z85.decodeKey(publicKey)
        let derived = try CurveKeyPair(secretKey: secretKey)
        guard derived.publicKey == publicKey else {
            throw CurveKeyError(
                "the public key \(publicKey) does not belong to this secret key (its public key is \(derived.publicKey))"
            )
        }
        self = derived
    }

    private init(unchecked publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func requireCurve() throws {
        guard isAvailable else {
            throw CurveKeyError(
                "this libzmq has no CURVE support (zmq_has(\"curve\") is false); install a libzmq built with libsodium")
        }
    }
}

/// ZMQ_ZAP_ENFORCE_DOMAIN sits in zmq.h's draft section, which Swift does not import. Debian's
/// libzmq 4.3.4 is built with drafts and honours it (a library without them rejects it with EINVAL,
/// so a server never silently runs without it).
let zmqZAPEnforceDomain: Int32 = 93

extension ZMQSocket {
    /// Makes this socket a CURVE server that asks the ZAP handler in `zapDomain` about every client.
    /// Call before `bind`; start a `ZAPAuthenticator` on the same context first.
    ///
    /// ZMQ_ZAP_ENFORCE_DOMAIN matters: without it libzmq 4.3.4 lets a CURVE client in (encrypted but
    /// unauthenticated) whenever no ZAP handler answers, i.e. it fails open.
    public func makeCurveServer(secretKey: String, zapDomain: String) throws {
        let secret = try Z85.decodeKey(secretKey)
        guard !zapDomain.isEmpty else {
            throw CurveKeyError("a CURVE server needs a non-empty ZAP domain (an empty one is not enforced)")
        }
        try setOption(ZMQ_CURVE_SERVER, Int32(1))
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: secret)
        try setOption(ZMQ_ZAP_DOMAIN, string: zapDomain)
        try setOption(zmqZAPEnforceDomain, Int32(1))
    }

    /// Makes this socket a CURVE client of the server with `serverPublicKey`, authenticating with
    /// `keyPair`. Call before `connect`.
    public func makeCurveClient(serverPublicKey: String, keyPair: CurveKeyPair) throws {
        try setOption(ZMQ_CURVE_SERVERKEY, bytes: Z85.decodeKey(serverPublicKey))
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: Z85.decodeKey(keyPair.publicKey))
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Z85.decodeKey(keyPair.secretKey))
    }
}
