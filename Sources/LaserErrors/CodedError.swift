/// The codes of one kind of error (config, input, storage, ...), with the one an error gets when its
/// thrower names none.
public protocol ErrorCode: Equatable, Sendable {
    static var unspecified: Self { get }
}

/// An error laser reports in words (what, where, what to do) with a code that callers and tests match
/// on instead of the words. Each kind is a typealias with its own code enum, for example
/// `typealias ConfigError = CodedError<ConfigErrorCode>`, so `catch let e as ConfigError` and
/// `e.code == .configChanged` work, and the CLI's exit status follows from the kind
/// (docs/user-guide.md#exit-status).
public struct CodedError<Code: ErrorCode>: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public var code: Code

    public init(_ description: String, code: Code = .unspecified) {
        self.description = description
        self.code = code
    }
}
