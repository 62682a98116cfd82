import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

@main
struct Laser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laser",
        abstract:
            "LASeR on a cluster: a coordinator picks one reward model per mini-batch with a bandit; workers score; preference batches come out.",
        version: laserVersion,
        subcommands: [
            Run.self, CoordinatorCommand.self, WorkerCommand.self, StatusCommand.self, ReportCommand.self,
            FeedbackCommand.self, TrainerSim.self, DemoData.self, KeyGen.self, ValidateCommand.self,
            CalibrateCommand.self, ExportCommand.self,
        ],
        defaultSubcommand: Run.self)
}
