// swift-tools-version: 6.0
import PackageDescription

// Dependencies are chosen deliberately (each adds CI build time); see docs/architecture.md#dependencies.
let package = Package(
    name: "laser",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "laser", targets: ["laser"]),
        .library(name: "LaserCore", targets: ["LaserCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // The coordinator's /metrics endpoint (Prometheus text format); pulls swift-metrics and swift-atomics.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries named by the mission, through pkg-config.
        .systemLibrary(
            name: "CZeroMQ", path: "Sources/CZeroMQ", pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(
            name: "CProtobufC", path: "Sources/CProtobufC", pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]),
        // protoc-c output for proto/laser.proto (regenerate with scripts/generate-proto.sh).
        .target(name: "LaserProtoC", dependencies: ["CProtobufC"], path: "Sources/LaserProtoC"),

        // The JSON string scan of the input parser and batch-file writer (SSE2; see its header).
        .target(name: "CJSONScan", path: "Sources/CJSONScan"),
        // Refuses protobuf wire bytes whose string fields hold a NUL (protobuf-c would cut them silently).
        .target(name: "CProtoCheck", dependencies: ["CProtobufC"]),
        // A small Swift face for libzmq: context, sockets, multipart frames, poll.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ", "LaserSync"]),
        // Wire messages as Swift value types; the only module that touches protobuf-c structs.
        // Typed errors: CodedError, one code enum per kind of error (docs/user-guide.md#exit-status).
        .target(name: "LaserErrors"),
        // Threads and locked state: Locked<State>, startThread, SendablePointer (the one home of each).
        .target(name: "LaserSync"),
        // JSON: the one JSONValue, the input reader's strict line parser, the lenient parser and sorted writer
        // of the RM backends, and JSONText (candidates kept escaped), over the SSE2 scan of CJSONScan.
        .target(name: "LaserJSON", dependencies: ["CJSONScan"]),
        .target(
            name: "LaserWire",
            dependencies: ["LaserProtoC", "CProtobufC", "CJSONScan", "CProtoCheck", "LaserErrors", "LaserJSON"]),
        // Seeded PRNG and stable hashes: the same numbers in every process, so runs replay exactly.
        .target(name: "StableRandom"),
        // The functional core: bandit, pairs, rewards, contexts, the coordinator state machine. No I/O.
        .target(name: "LaserCore", dependencies: ["LaserWire", "StableRandom", "LaserSync"]),
        // Built-in deterministic rule-based reward models.
        .target(name: "LaserRewardModels", dependencies: ["StableRandom", "LaserErrors", "LaserSync", "LaserJSON"]),
        // The embedded demo dataset, generated from a seed.
        .target(name: "LaserDemo", dependencies: ["StableRandom"]),
        // The imperative shell: config, files, sockets, processes.
        .target(
            name: "LaserRuntime",
            dependencies: [
                "LaserCore", "LaserWire", "ZeroMQ", "LaserRewardModels", "LaserDemo", "StableRandom", "CJSONScan",
                "LaserSync", "LaserJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .executableTarget(
            name: "laser",
            dependencies: [
                "LaserRuntime", "LaserDemo", "LaserWire", "LaserRewardModels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Micro-benchmarks quoted in docs/performance.md (swift run -c release laser-bench ...).
        .executableTarget(
            name: "laser-bench", dependencies: ["LaserCore", "LaserRuntime", "StableRandom", "CJSONScan"]),

        .testTarget(name: "LaserCoreTests", dependencies: ["LaserCore", "StableRandom"]),
        .testTarget(name: "LaserWireTests", dependencies: ["LaserWire", "ZeroMQ", "CJSONScan", "LaserJSON"]),
        .testTarget(name: "LaserRewardModelsTests", dependencies: ["LaserRewardModels", "LaserDemo", "LaserJSON"]),
        .testTarget(name: "LaserRuntimeTests", dependencies: ["LaserRuntime", "CJSONScan", "LaserSync", "LaserJSON"]),
        .testTarget(name: "IntegrationTests", dependencies: ["LaserWire", "ZeroMQ"]),
    ]
)
