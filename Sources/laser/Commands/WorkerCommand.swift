import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker that hosts reward models and scores candidates for a coordinator.")

    @Option(help: "The coordinator's endpoint, e.g. tcp://10.0.0.5:5555.")
    var connect: String

    @Option(help: "Unique worker name (default: HOST-PID).")
    var id: String?

    @Option(
        name: .customLong("rm"),
        help:
            "An RM (by its name in the run config) to offer; repeat for several. Default: every RM of --rm-config, or else any built-in RM the coordinator assigns."
    )
    var rewardModels: [String] = []

    @Option(
        help:
            "YAML file with this worker's own reward_models list (a run config will do). Subprocess and http RMs run only from here, never from the coordinator's message (docs/security.md)."
    )
    var rmConfig: String?

    @Option(help: "Score tasks accepted at once.")
    var slots: UInt32 = 2

    @Option(
        help:
            "How many of its RMs this worker holds loaded at once (0: all, loaded at start). With M > 0 the coordinator's placement tells it which to load and unload as the bandit's choices shift (docs/placement.md)."
    )
    var rmCapacity: UInt32 = 0

    @Option(
        help:
            "With dynamic placement: the memory its loaded RMs may take in all (for example GB of GPU memory), against the weights of --rm-memory. Alone, it implies --rm-capacity with no count limit."
    )
    var memoryBudget: Double = 0

    @Option(
        name: .customLong("rm-memory"),
        help: "An RM's weight against --memory-budget, as NAME=WEIGHT (for example skywork-8b=17); repeat for several. Unnamed RMs weigh 0."
    )
    var rmMemory: [String] = []

    @Option(
        help:
            "Largest message accepted from the coordinator, in bytes (keep it at least the run's network.max_message_bytes)."
    )
    var maxMessageBytes: Int64 = 256 << 20

    @Option(name: .customLong("label"), help: "A label for the run's placement (e.g. a100); repeat for several.")
    var labels: [String] = []

    @Option(help: "Serve this worker's Prometheus metrics on this port (0: any free port; printed at start).")
    var metricsPort: Int?

    @Option(help: "Address for --metrics-port (127.0.0.1: this machine only; 0.0.0.0: all interfaces).")
    var metricsBind = "127.0.0.1"

    @Option(
        help:
            "Exit when no coordinator answers for this many seconds (0: wait forever). It says it is still trying after 5 s."
    )
    var giveUpAfter: Double = 600

    @Option(help: .hidden)
    var parentPid: Int32?
    @Option(help: "The coordinator's CURVE public key file (NAME.pub); with --key, connect encrypted.")
    var serverKey: String?

    @Option(
        help:
            "This worker's CURVE key file (NAME.key from laser keygen); its NAME.pub must be in the coordinator's allowed_workers."
    )
    var key: String?

    @OptionGroup var keyFiles: KeyFileOptions

    @OptionGroup var logging: LoggingOptions

    mutating func run() throws {
        ignoreFatalSignals()
        let logger = try logging.logger("laser.worker", default: .info)
        guard slots >= 1 else { throw ValidationError("--slots must be at least 1") }
        guard (serverKey == nil) == (key == nil) else {
            throw ValidationError(
                "CURVE needs both --server-key (the coordinator's NAME.pub) and --key (this worker's NAME.key)")
        }
        if let problem = Endpoint.problem(connect, bind: false) { throw ValidationError("--connect \(problem)") }
        let name = id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        do {
            let local = try rmConfig.map { try RunConfig.loadRewardModels(path: CLIPath.absolute($0)) } ?? []
            let offer = try LocalRewardModels(definitions: local, selected: rewardModels)
            guard maxMessageBytes >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
            var options = WorkerOptions(
                endpoint: connect, workerID: name, rewardModels: offer.offered, slots: slots,
                giveUpAfterSeconds: giveUpAfter, maxMessageBytes: maxMessageBytes)
            options.localDefinitions = local
            options.rmCapacity = rmCapacity
            guard memoryBudget.isFinite, memoryBudget >= 0 else {
                throw ValidationError("--memory-budget must be a number >= 0")
            }
            for entry in rmMemory {
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, let weight = Double(parts[1]), weight.isFinite, weight >= 0
                else {
                    throw ValidationError("--rm-memory \(entry): expected NAME=WEIGHT with a number >= 0, for example skywork-8b=17")
                }
                options.rmMemory[parts[0]] = weight
            }
            if !options.rmMemory.isEmpty && memoryBudget == 0 {
                throw ValidationError("--rm-memory needs --memory-budget (the weights are measured against it)")
            }
            options.memoryBudget = memoryBudget
            if memoryBudget > 0 && rmCapacity == 0 { options.rmCapacity = 256 }  // the budget alone limits
            options.parentPID = parentPid
            options.labels = labels
            // MetricsHTTPServer checks the port and the address and says what is wrong.
            options.metricsPort = metricsPort
            options.metricsBind = metricsBind
            if let serverKey, let key {
                try options.useCurve(
                    serverKeyFile: serverKey, keyFile: key, allowInsecurePermissions: keyFiles.allowInsecureKeyPermissions
                ) { logger.warning("\($0)") }
            }
            let worker = try WorkerService(options: options, logger: logger)
            switch try worker.run() {
            case .shutdown: return
            case .rejected(let reason): throw RunFailure("the coordinator rejected this worker: \(reason)")
            case .refused(let reason): throw RunFailure("this worker refused the coordinator's assignment: \(reason)")
            case .gaveUp:
                // A refused CURVE handshake looks like silence from here, so say what to check.
                let hint =
                    key == nil
                    ? " (if the coordinator runs with security.curve, pass --server-key and --key)"
                    : " (with CURVE: is this worker's .pub in the coordinator's allowed_workers, and --server-key the coordinator's .pub?)"
                throw RunFailure("no coordinator answered at \(connect) within \(giveUpAfter) s\(hint)")
            }
        } catch {
            throw fail(error)
        }
    }
}
