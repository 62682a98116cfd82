import LaserRewardModels
import LaserWire

/// What a worker agrees to run: the rule that keeps a coordinator (or anyone who can pose as one) from
/// making a worker start a process, call a URL or read an environment variable (docs/security.md).
///
/// - RMs defined on the worker's side (`--rm-config`) are built from that definition, whatever kind;
///   the Welcome only names them.
/// - Other RMs are built from the Welcome's definition only when they are of a built-in kind that only
///   computes on the text it is given (``RewardModelCatalog/isBuiltIn(_:)``).
/// - An RM the worker did not offer (when it offered a list) is refused, and so is a subprocess or HTTP
///   RM it does not define itself.
public struct LocalRewardModels: Sendable, Equatable {
    /// The worker's own definitions, by name (`--rm-config`).
    public var definitions: [String: RewardModelSpec]
    /// The names the worker offers in its Hello (empty: any built-in RM the coordinator assigns).
    public var offered: [String]

    /// `selected`: the `--rm` names (empty: offer every local definition, or, without any, nothing by name).
    public init(definitions: [RewardModelSpec] = [], selected: [String] = []) throws {
        var byName: [String: RewardModelSpec] = [:]
        for d in definitions { byName[d.name] = d }
        self.definitions = byName
        if !selected.isEmpty {
            offered = selected
        } else {
            offered = definitions.map(\.name)
        }
        if let dup = Dictionary(grouping: offered, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw ConfigError("--rm \(dup) is given twice")
        }
    }

    /// A refusal: the Welcome asked for something this worker does not run. The message says what and why.
    public struct Refusal: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The specs to build for a Welcome's definitions, or the reason to refuse the whole Welcome.
    public func resolve(_ welcome: [RewardModelDefinition]) throws -> [RewardModelSpec] {
        try welcome.map { def in
            let name = PeerText.printable(def.name), kind = PeerText.printable(def.kind)
            if !offered.isEmpty && !offered.contains(def.name) {
                throw Refusal(
                    description:
                        "the coordinator assigned RM '\(name)', which this worker did not offer (it offers \(offered.joined(separator: ", ")) through --rm/--rm-config); refusing"
                )
            }
            let remote = RewardModelSpec(name: def.name, kind: def.kind, params: def.params)
            if let local = definitions[def.name] {
                guard local.kind == def.kind else {
                    throw Refusal(
                        description:
                            "RM '\(name)' is of kind '\(local.kind)' in this worker's --rm-config but '\(kind)' on the coordinator; use the same definition on both sides"
                    )
                }
                // A built-in RM must score the same on every worker; a backend's params stay on this side.
                if RewardModelCatalog.isBuiltIn(local) && local.params != def.params {
                    throw Refusal(
                        description:
                            "RM '\(name)' has params \(Self.describe(local.params)) in this worker's --rm-config but \(Self.describe(def.params)) on the coordinator; use the same definition on both sides"
                    )
                }
                return local
            }
            guard RewardModelCatalog.isBuiltIn(remote) else {
                throw Refusal(
                    description:
                        "the coordinator asked this worker to run RM '\(name)' of kind '\(kind)'; subprocess and http RMs (and noisy wrappers of them) run only from the worker's own --rm-config, never from a coordinator's message; refusing (define '\(name)' in a file passed with --rm-config)"
                )
            }
            return remote
        }
    }

    static func describe(_ params: [String: String]) -> String {
        "{"
            + params.keys.sorted().map { "\($0): \(PeerText.printable(params[$0]!, limit: 40))" }.joined(
                separator: ", ") + "}"
    }
}
