import Foundation

/// Mutable state shared between threads, reachable only through its lock. The one place besides the
/// C-pointer wrappers below where laser says `@unchecked Sendable`: `state` is touched only inside
/// `withLock` and `wait`, under `condition`, which makes the class safe to share.
public final class Locked<State>: @unchecked Sendable {
    private let condition = NSCondition()
    private var state: State

    public init(_ state: State) { self.state = state }

    /// Runs `body` with the state, under the lock.
    @discardableResult
    public func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        condition.lock()
        defer { condition.unlock() }
        return try body(&state)
    }

    /// Like `withLock`, then wakes every thread waiting in `wait` (call it after a change they wait for).
    @discardableResult
    public func update<R>(_ body: (inout State) throws -> R) rethrows -> R {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return try body(&state)
    }

    /// Wakes every thread waiting in `wait` without changing anything (after `withLock` changes that
    /// only sometimes matter to them: a caller that wakes a waiter only for urgent work).
    public func notifyAll() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `ready(state)` holds (re-checked after every `update`), then runs `body` under the
    /// lock; nil when `deadline` passes first. `notify`: wake the other waiters after `body` (when it
    /// changed something they wait for, as `update` does).
    public func wait<R>(
        until ready: (State) -> Bool, deadline: Date = .distantFuture, notify: Bool = false,
        _ body: (inout State) throws -> R
    ) rethrows -> R? {
        condition.lock()
        defer {
            if notify { condition.broadcast() }
            condition.unlock()
        }
        while !ready(state) {
            // No deadline: a plain wait (Foundation on Linux traps converting .distantFuture to a timespec).
            if deadline == .distantFuture {
                condition.wait()
            } else if !condition.wait(until: deadline) && !ready(state) {
                return nil
            }
        }
        return try body(&state)
    }
}

/// Starts `body` on a thread of its own, named for the OS (top -H, perf and gdb show the name;
/// Foundation's Thread.name does not reach the kernel on Linux): the one way laser starts a thread.
@discardableResult
public func startThread(named name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) -> Thread {
    let thread = Thread {
        nameThisThread(name)
        body()
    }
    thread.name = name
    if let stackSize { thread.stackSize = stackSize }
    thread.start()
    return thread
}

/// Names the calling thread for the OS: at most 15 characters (the kernel's limit).
public func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// A pointer handed to worker threads that write disjoint parts of one buffer (a parallel scan, a
/// parallel matrix update): `@unchecked` because the pointer itself carries no ownership; the caller
/// keeps the buffer alive and gives each thread its own indices until all have joined.
public struct SendablePointer<T>: @unchecked Sendable {
    private let base: UnsafeMutablePointer<T>
    public let count: Int
    public init(_ buffer: UnsafeMutableBufferPointer<T>) {
        base = buffer.baseAddress ?? UnsafeMutablePointer(bitPattern: MemoryLayout<T>.alignment)!
        count = buffer.count
    }
    public subscript(i: Int) -> T {
        get { precondition(i >= 0 && i < count); return base[i] }
        nonmutating set { precondition(i >= 0 && i < count); base[i] = newValue }
    }
}

/// Read-only bytes handed to worker threads (the same ownership rule as `SendablePointer`).
public struct SendableRawBytes: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}
