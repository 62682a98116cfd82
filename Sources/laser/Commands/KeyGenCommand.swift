import ArgumentParser
import Foundation
import LaserCore
import LaserDemo
import LaserRuntime
import LaserWire
import Logging

struct KeyGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a CURVE key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub (share this one).",
        discussion: """
            The coordinator's NAME.key goes in security.server_key; each worker's NAME.pub goes into the \
            coordinator's security.allowed_workers folder (a trainer's into security.allowed_trainers); workers run with --server-key coordinator.pub --key NAME.key.
            """)

    @Option(help: "Folder to write into (created with mode 0700 if missing).")
    var out: String

    @Option(help: "Key name: the files are NAME.key and NAME.pub.")
    var name: String

    mutating func run() throws {
        do {
            let written = try CurveKeyFiles.generate(directory: out, name: name)
            print(
                "wrote \(written.secretKeyPath) (secret, keep private) and \(written.publicKeyPath) (public key \(written.keyPair.publicKey))"
            )
        } catch {
            throw fail(error)
        }
    }
}
