import Foundation
import LaserSync
import Testing

/// The threading primitives every background thread of laser uses (Sources/LaserSync).
@Suite struct LockedTests {
    @Test func updatesFromManyThreadsAreNotLost() {
        let counter = Locked(0)
        let group = DispatchGroup()
        for _ in 0..<8 {
            group.enter()
            startThread(named: "locked-test") {
                for _ in 0..<10_000 { counter.withLock { $0 += 1 } }
                group.leave()
            }
        }
        group.wait()
        #expect(counter.withLock { $0 } == 80_000)
    }

    @Test func waitReturnsWhenTheStateIsReadyOrNilAtTheDeadline() {
        let box = Locked<Int?>(nil)
        let start = Date()
        #expect(box.wait(until: { $0 != nil }, deadline: Date().addingTimeInterval(0.1)) { $0 } == nil)
        #expect(Date().timeIntervalSince(start) >= 0.09)
        startThread(named: "locked-test") {
            usleep(50_000)
            box.update { $0 = 42 }
        }
        #expect(box.wait(until: { $0 != nil }, deadline: Date().addingTimeInterval(10)) { $0 } == 42)
    }

    /// Without a deadline (the default, .distantFuture) it waits on the condition itself: Foundation on
    /// Linux traps when it turns .distantFuture into a timespec (it crashed the RM loader thread).
    @Test func waitWithoutADeadlineReturnsOnceReady() {
        let box = Locked<Int?>(nil)
        startThread(named: "locked-test") {
            usleep(50_000)
            box.update { $0 = 7 }
        }
        #expect(box.wait(until: { $0 != nil }) { $0 } == 7)
    }

    @Test func aSendablePointerWritesDisjointSlotsFromThreads() {
        var values = [Int](repeating: 0, count: 64)
        values.withUnsafeMutableBufferPointer { buffer in
            let slots = SendablePointer(buffer)
            DispatchQueue.concurrentPerform(iterations: 64) { i in slots[i] = i * i }
        }
        #expect(values == (0..<64).map { $0 * $0 })
    }
}
