import LaserSync
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a backend's messages go: lines for the worker's log (its stderr by default).
public typealias BackendLog = @Sendable (String) -> Void

/// Writes one line to this process's stderr (the worker's log), in a single write so lines of
/// concurrent threads do not interleave.
public let standardErrorLog: BackendLog = { line in
    let bytes = Array((line + "\n").utf8)
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(2, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// Monotonic milliseconds.
func monotonicMs() -> UInt64 { DispatchTime.now().uptimeNanoseconds / 1_000_000 }

/// pipe2(O_CLOEXEC) and posix_spawn_file_actions_addchdir_np are GNU extensions Swift does not
/// import; they are looked up at run time. Close-on-exec must be set atomically: another thread's
/// child must never inherit our pipe ends (it would hold them open and hide our child's exit).
private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
private typealias AddChdir =
    @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
private let spawnLock = NSLock()

/// Writing to a pipe whose reader died raises SIGPIPE, which kills the process by default; the
/// write should fail with EPIPE instead (reported as the child's exit). Set once, before the first
/// child starts, and only if nobody chose a disposition (the worker already ignores it).
private let ignoreSIGPIPE: Void = {
    var current = sigaction()
    if sigaction(SIGPIPE, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil {
        signal(SIGPIPE, SIG_IGN)
    }
}()

private func makeCloseOnExecPipe(_ fds: inout [Int32]) -> Int32 {
    if let symbol = dlsym(nil, "pipe2") {
        let pipe2 = unsafeBitCast(symbol, to: Pipe2.self)
        return fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress, O_CLOEXEC) }
    }
    // Without pipe2: children are only spawned under spawnLock, so no spawn sees the gap.
    spawnLock.lock()
    defer { spawnLock.unlock() }
    guard pipe(&fds) == 0 else { return -1 }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return 0
}

private func addChdir(_ actions: inout posix_spawn_file_actions_t, _ path: String) -> Int32 {
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { return ENOSYS }
    let addchdir = unsafeBitCast(symbol, to: AddChdir.self)
    return addchdir(&actions, path)
}

/// Why talking to a child failed.
enum ChildIOError: Error {
    /// The deadline passed.
    case timedOut
    /// The child closed its end (it exited, or closed stdin/stdout).
    case closed
    /// A reply line longer than the limit.
    case lineTooLong(Int)
    case system(String)
}

/// One child process started with posix_spawn: its stdin and stdout are pipes this process
/// writes requests to and reads replies from; its stderr is read on a thread of its own, each line
/// passed to the log and the last lines kept for error messages.
///
/// The child gets its own process group, so a shell command line and everything it starts are
/// signalled together. Not thread-safe: one caller at a time (``SubprocessRM`` hands each child to
/// one thread at a time).
final class ChildProcess: @unchecked Sendable {  // pipes and the pid are used by one scoring thread at a time (the RM hands out children)
    let pid: pid_t
    private var stdinFD: Int32
    private var stdoutFD: Int32
    private var pending: [UInt8] = []
    private let stderrTail: StderrTail
    private var reaped: Int32?

    /// Starts `argv` (looked up in PATH) with `environment`, in `workdir` if given.
    init(
        argv: [String], environment: [String: String], workdir: String?, logPrefix: String, log: @escaping BackendLog
    ) throws {
        precondition(!argv.isEmpty)
        _ = ignoreSIGPIPE
        var stdinPipe: [Int32] = [-1, -1], stdoutPipe: [Int32] = [-1, -1], stderrPipe: [Int32] = [-1, -1]
        var opened: [Int32] = []
        for i in 0..<3 {
            var fds: [Int32] = [-1, -1]
            guard makeCloseOnExecPipe(&fds) == 0 else {
                let message = String(cString: strerror(errno))
                opened.forEach { _ = Glibc.close($0) }
                throw RewardModelError("cannot create a pipe: \(message)")
            }
            opened += fds
            if i == 0 { stdinPipe = fds } else if i == 1 { stdoutPipe = fds } else { stderrPipe = fds }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        if let workdir {
            guard addChdir(&actions, workdir) == 0 else {
                opened.forEach { _ = Glibc.close($0) }
                throw RewardModelError("cannot set the working directory \(workdir) for the child")
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group (signal the whole command line); default signal dispositions (the worker
        // ignores SIGPIPE, and ignored signals would otherwise be inherited); nothing blocked.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGXFSZ)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var child: pid_t = 0
        spawnLock.lock()
        let rc = posix_spawnp(&child, argv[0], &actions, &attributes, cArgv, cEnv)
        spawnLock.unlock()
        // The child's ends belong to the child now.
        _ = Glibc.close(stdinPipe[0])
        _ = Glibc.close(stdoutPipe[1])
        _ = Glibc.close(stderrPipe[1])
        guard rc == 0 else {
            _ = Glibc.close(stdinPipe[1])
            _ = Glibc.close(stdoutPipe[0])
            _ = Glibc.close(stderrPipe[0])
            let why = String(cString: strerror(rc))
            throw RewardModelError("cannot start \(argv[0])\(workdir.map { " in \($0)" } ?? ""): \(why)")
        }
        pid = child
        stdinFD = stdinPipe[1]
        stdoutFD = stdoutPipe[0]
        _ = fcntl(stdinFD, F_SETFL, fcntl(stdinFD, F_GETFL) | O_NONBLOCK)
        _ = fcntl(stdoutFD, F_SETFL, fcntl(stdoutFD, F_GETFL) | O_NONBLOCK)
        stderrTail = StderrTail(fd: stderrPipe[0], prefix: "\(logPrefix) pid \(child): ", log: log)
        stderrTail.start()
    }

    deinit {
        if reaped == nil { _ = stop(graceMs: 0, terminate: true) }
    }

    /// The last lines the child wrote to stderr (at most 20, each at most 300 characters).
    var lastStderrLines: [String] { stderrTail.lines }

    /// Writes all of `bytes` to the child's stdin by `deadline` (monotonic ms). Whatever the child
    /// writes to stdout meanwhile is kept for ``readLine(deadline:maxBytes:)`` (so a child that
    /// answers before reading everything cannot deadlock us).
    func write(_ bytes: [UInt8], deadline: UInt64) throws(ChildIOError) {
        var offset = 0
        while offset < bytes.count {
            let now = monotonicMs()
            guard now < deadline else { throw .timedOut }
            var fds = [
                pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0),
                pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0),
            ]
            let rc = poll(&fds, 2, Int32(min(deadline - now, 1000)))
            if rc < 0 {
                if errno == EINTR { continue }
                throw .system("poll: \(String(cString: strerror(errno)))")
            }
            if fds[1].revents & Int16(POLLIN | POLLHUP) != 0 { _ = try? drainStdout() }
            if fds[0].revents & Int16(POLLERR | POLLHUP) != 0 { throw .closed }
            guard fds[0].revents & Int16(POLLOUT) != 0 else { continue }
            let n = bytes.withUnsafeBytes { Glibc.write(stdinFD, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == EPIPE { throw .closed }
                throw .system("write: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Reads one line from the child's stdout (without the newline) by `deadline`.
    func readLine(deadline: UInt64, maxBytes: Int) throws(ChildIOError) -> [UInt8] {
        var scanned = 0
        while true {
            if let newline = pending[scanned...].firstIndex(of: 0x0A) {
                var line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                if line.last == 0x0D { line.removeLast() }
                return line
            }
            scanned = pending.count
            guard pending.count <= maxBytes else { throw .lineTooLong(pending.count) }
            let now = monotonicMs()
            guard now < deadline else { throw .timedOut }
            var fds = [pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 1, Int32(min(deadline - now, 1000)))
            if rc < 0 {
                if errno == EINTR { continue }
                throw .system("poll: \(String(cString: strerror(errno)))")
            }
            if rc == 0 { continue }
            if try drainStdout() == 0 { throw .closed }
        }
    }

    /// Reads what is available; returns the number of bytes read (0: end of file).
    private func drainStdout() throws(ChildIOError) -> Int {
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(stdoutFD, $0.baseAddress!, $0.count) }
            if n > 0 {
                pending.append(contentsOf: chunk[0..<n])
                total += n
                continue
            }
            if n == 0 { return total }
            if errno == EINTR { continue }
            if errno == EAGAIN { return total > 0 ? total : -1 }
            throw .system("read: \(String(cString: strerror(errno)))")
        }
    }

    /// Whether the child has exited (without reaping it).
    var hasExited: Bool {
        if reaped != nil { return true }
        var info = siginfo_t()
        let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        if rc < 0 { return errno == ECHILD }
        return info.si_signo == SIGCHLD
    }

    /// Runs `command` with /bin/sh -c to completion, its output (stdout too) to `log`, no input: for
    /// placement hooks. What it starts in the background keeps running; if it is not done within
    /// `timeoutMs`, its process group is stopped (SIGTERM, then SIGKILL after 2 s). Returns how it
    /// ended when that was not a zero exit status, else nil.
    static func runToCompletion(_ command: String, timeoutMs: Int, logPrefix: String, log: @escaping BackendLog)
        throws -> String?
    {
        let child = try ChildProcess(
            argv: ["/bin/sh", "-c", "exec 1>&2\n" + command], environment: ProcessInfo.processInfo.environment,
            workdir: nil, logPrefix: logPrefix, log: log)
        _ = Glibc.close(child.stdinFD)
        child.stdinFD = -1
        let deadline = monotonicMs() + UInt64(timeoutMs)
        while !child.hasExited && monotonicMs() < deadline { usleep(10_000) }
        guard child.hasExited else {
            let how = child.stop(graceMs: 2000, terminate: true)
            return "did not finish within \(timeoutMs) ms; stopped it (\(how))"
        }
        let status = child.reap()
        _ = Glibc.close(child.stdoutFD)
        child.stdoutFD = -1
        return status == 0 ? nil : describe(status)
    }

    /// Stops the child: SIGTERM to its process group (if `terminate`), up to `graceMs` for it to
    /// exit, then SIGKILL to the group; reaps it and closes the pipes. Returns how it ended.
    @discardableResult
    func stop(graceMs: Int, terminate: Bool) -> String {
        if let status = reaped { return Self.describe(status) }
        if terminate && !hasExited { kill(-pid, SIGTERM) }
        let deadline = monotonicMs() + UInt64(max(0, graceMs))
        while !hasExited && monotonicMs() < deadline { usleep(5_000) }
        // The leader is a zombie or still running, so the group id cannot have been reused:
        // this reaches only what the command started.
        kill(-pid, SIGKILL)
        reap()
        _ = Glibc.close(stdinFD)
        _ = Glibc.close(stdoutFD)
        stdinFD = -1
        stdoutFD = -1
        stderrTail.waitForEnd(timeoutMs: 1000)
        return Self.describe(reaped!)
    }

    /// Waits for the leader to exit and records its status (-1 when it cannot be read).
    @discardableResult
    private func reap() -> Int32 {
        var status: Int32 = 0
        var rc: pid_t
        repeat { rc = waitpid(pid, &status, 0) } while rc < 0 && errno == EINTR
        reaped = rc == pid ? status : -1
        return reaped!
    }

    static func describe(_ status: Int32) -> String {
        if status == -1 { return "exit status unknown" }
        let signal = status & 0x7F
        if signal == 0 { return "exit status \((status >> 8) & 0xFF)" }
        let name: String
        switch signal {
        case SIGKILL: name = " (SIGKILL)"
        case SIGTERM: name = " (SIGTERM)"
        case SIGSEGV: name = " (SIGSEGV)"
        case SIGABRT: name = " (SIGABRT)"
        case SIGINT: name = " (SIGINT)"
        case SIGPIPE: name = " (SIGPIPE)"
        default: name = ""
        }
        return "killed by signal \(signal)\(name)"
    }
}

/// Reads a child's stderr on a thread of its own: each line to the log, the last ones kept.
private final class StderrTail: Sendable {
    private let fd: Int32
    private let prefix: String
    private let log: BackendLog
    private struct Tail {
        var lines: [String] = []
        var ended = false
    }
    private let tail = Locked(Tail())

    init(fd: Int32, prefix: String, log: @escaping BackendLog) {
        self.fd = fd
        self.prefix = prefix
        self.log = log
    }

    var lines: [String] { tail.withLock { $0.lines } }

    func start() {
        startThread(named: "rm-stderr") { [self] in run() }
    }

    func waitForEnd(timeoutMs: Int) {
        _ = tail.wait(until: \.ended, deadline: Date().addingTimeInterval(Double(timeoutMs) / 1000)) { _ in }
    }

    private func run() {
        var partial: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            partial.append(contentsOf: chunk[0..<n])
            while let newline = partial.firstIndex(of: 0x0A) {
                emit(Array(partial[..<newline]))
                partial.removeFirst(newline + 1)
            }
            if partial.count > 65536 {  // a very long line without newline: emit what we have
                emit(partial)
                partial.removeAll()
            }
        }
        if !partial.isEmpty { emit(partial) }
        _ = Glibc.close(fd)
        tail.update { $0.ended = true }
    }

    private func emit(_ bytes: [UInt8]) {
        var line = String(decoding: bytes, as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        log(prefix + line)
        tail.withLock {
            $0.lines.append(line.count > 300 ? String(line.prefix(300)) + "..." : line)
            if $0.lines.count > 20 { $0.lines.removeFirst($0.lines.count - 20) }
        }
    }
}
