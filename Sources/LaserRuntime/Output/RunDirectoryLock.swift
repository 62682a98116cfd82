import Foundation

/// One writer per run directory: an exclusive `flock` on `RUN_DIR/.lock`, held for the life of the
/// process. The kernel drops it when the process ends, however it ends, so a killed coordinator never
/// leaves a stale lock behind; a second coordinator (a `--resume`, `--force` or fresh start on the same
/// folder while a run is live) fails at once, naming the holder. Taking it again in the same process
/// is a no-op (`laser run` takes it before its coordinator does).
public enum RunDirectoryLock {
    private static let held = Held()

    /// Takes the lock on `directory` (created if needed) or throws "DIR is in use by laser (pid N, host H)".
    public static func acquire(_ directory: String) throws {
        try held.acquire(directory)
    }

    private final class Held: @unchecked Sendable {  // `fds` is guarded by `lock`
        private let lock = NSLock()
        private var fds: [String: Int32] = [:]

        func acquire(_ directory: String) throws {
            lock.lock(); defer { lock.unlock() }
            guard fds[directory] == nil else { return }
            let path = directory + "/.lock"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw StorageError.errno("cannot open the run directory's lock file", path) }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                var holder = "another process"
                var buffer = [UInt8](repeating: 0, count: 256)
                let n = pread(fd, &buffer, buffer.count, 0)
                close(fd)
                if code == EWOULDBLOCK {
                    if n > 0 {
                        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(
                            in: .whitespacesAndNewlines)
                        if !text.isEmpty { holder = text }
                    }
                    throw StorageError(
                        "\(directory) is in use by laser (\(holder)); wait for that run to end or stop it, or choose another --out",
                        code: .runDirectoryInUse)
                }
                throw StorageError.errno("cannot lock the run directory", path, code)
            }
            let note = Array("pid \(getpid()), host \(ProcessInfo.processInfo.hostName)\n".utf8)
            _ = ftruncate(fd, 0)
            _ = note.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
            fds[directory] = fd  // kept open (and locked) until the process ends
        }
    }
}
