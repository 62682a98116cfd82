import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct FeedbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback",
        abstract: "Report a trainer's loss on one batch to the run's coordinator (for file-watching trainers).",
        discussion:
            "The batch is ITERATION/BATCH as in its file name iterations/IIII/batch-BBBB.jsonl (e.g. 2/7), or the global batch number. Exits 0 when the coordinator accepted the loss."
    )

    @Argument(help: "The run directory.")
    var runDirectory: String

    @Option(help: "ITERATION/BATCH (e.g. 2/7) or the global batch number.")
    var batch: String

    @Option(help: "The trainer's loss on that batch, at its optimiser step.")
    var loss: Double

    @Option(help: "With reward.source: prediction-gain, the loss on the same pairs after the step.")
    var lossAfter: Double?

    @Option(help: "The coordinator's endpoint (default: from RUN_DIR/endpoint).")
    var connect: String?

    @Option(help: "Seconds to wait for the coordinator's answer.")
    var timeout: Double = 10

    mutating func run() throws {
        var feedback = BatchFeedback(globalBatch: 0, loss: loss, lossAfter: lossAfter)
        let parts = batch.split(separator: "/")
        if parts.count == 2, let i = UInt32(parts[0]), let b = UInt32(parts[1]), i > 0, b > 0 {
            feedback.iteration = i
            feedback.batch = b
        } else if let g = UInt64(batch) {
            feedback.globalBatch = g
        } else {
            throw ValidationError("--batch \(batch): give ITERATION/BATCH (e.g. 2/7) or a global batch number")
        }
        do {
            let endpoint = try connect ?? FeedbackClient.endpoint(runDirectory: runDirectory)
            let ack = try FeedbackClient.send(feedback, to: endpoint, timeoutSeconds: timeout)
            if ack.accepted {
                print("accepted: loss \(loss) for batch \(ack.globalBatch)")
            } else {
                throw RunFailure("the coordinator refused the loss: \(ack.reason)")
            }
        } catch {
            throw fail(error)
        }
    }
}
