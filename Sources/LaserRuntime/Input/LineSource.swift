import LaserSync
import Foundation
import LaserCore
import LaserWire
import StableRandom
#if canImport(Glibc)
import Glibc
#endif

/// A file's identity for "has it changed since": device, inode, size and modification time.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        modifiedSeconds = Int(st.st_mtim.tv_sec)
        modifiedNanoseconds = Int(st.st_mtim.tv_nsec)
    }
}

/// The non-blank lines of a file, read in chunks: memory is one chunk plus the longest line, whatever
/// the file's size.
final class LineSource {
    let path: String
    private let fd: Int32
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    /// Unconsumed bytes are buffer[start..<end]; buffer[0] is at file offset `bufferOffset`.
    private var start = 0, end = 0, bufferOffset = 0
    private var atEOF = false
    private(set) var lineNumber = 0
    private(set) var bytesRead = 0
    /// Sees every chunk as it is read (the scan digests the file with it).
    var onChunk: ((UnsafeRawBufferPointer) -> Void)?
    let stamp: FileStamp

    static let chunkBytes = 4 << 20
    /// Threads that parse lines (the scan's and a batch's): the machine's cores, at most 4.
    static let parallelism = min(4, max(1, ProcessInfo.processInfo.activeProcessorCount))
    /// A line longer than this is refused (a missing newline in a huge file should not eat the memory).
    static let maxLineBytes = 512 << 20

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw InputError(
                "\(path): cannot read the input file (\(String(cString: strerror(errno)))); check the path in the config's input list",
                code: .unreadable)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd);
            throw InputError(
                "\(path): cannot stat the input file (\(String(cString: strerror(errno))))", code: .unreadable)
        }
        guard (st.st_mode & S_IFMT) != S_IFDIR else {
            close(fd);
            throw InputError(
                "\(path): is a directory, not an input file; check the config's input list", code: .unreadable)
        }
        stamp = FileStamp(st)
        capacity = Self.chunkBytes
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        close(fd)
    }

    /// Whether the file still is what was opened (same inode, size and modification time).
    func unchanged(since stamp: FileStamp) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return FileStamp(st) == stamp
    }

    /// A non-blank line of the file: its number, file offset and place in the buffer.
    struct LineSpan {
        var number: Int
        var offset: Int
        var range: Range<Int>
    }

    /// The next non-blank line that lies whole in the buffer (or the file's last line, at its end),
    /// without reading more; nil when the buffer holds none.
    private func cutLine() -> LineSpan? {
        while end > start, let nl = memchr(buffer + start, 0x0A, end - start) {
            let lineEnd = buffer.distance(to: nl)
            let lineStart = start
            start = lineEnd + 1
            lineNumber += 1
            if !isBlank(lineStart, lineEnd) {
                return LineSpan(number: lineNumber, offset: bufferOffset + lineStart, range: lineStart..<lineEnd)
            }
        }
        if atEOF, start < end {
            let lineStart = start
            start = end
            lineNumber += 1
            if !isBlank(lineStart, end) {
                return LineSpan(number: lineNumber, offset: bufferOffset + lineStart, range: lineStart..<end)
            }
        }
        return nil
    }

    /// Calls `body` with the next non-blank line (without its newline); nil at the end of the file.
    func nextLine<R>(_ body: (_ number: Int, _ offset: Int, _ bytes: UnsafeRawBufferPointer) throws -> R) throws -> R? {
        while true {
            if let line = cutLine() {
                return try body(
                    line.number, line.offset,
                    UnsafeRawBufferPointer(start: buffer + line.range.lowerBound, count: line.range.count))
            }
            if atEOF { return nil }
            try fill()
        }
    }

    /// Up to `max` next non-blank lines, all from the buffer as it is (more is read only when it holds
    /// no whole line), so that `body` can hand them to several threads without copying them; nil at
    /// the end of the file.
    func nextLines<R>(max: Int, _ body: (_ lines: [LineSpan], _ bytes: UnsafeRawBufferPointer) throws -> R) throws -> R?
    {
        var lines: [LineSpan] = []
        while lines.isEmpty {
            while lines.count < max, let line = cutLine() { lines.append(line) }
            if !lines.isEmpty { break }
            if atEOF { return nil }
            try fill()
        }
        return try body(lines, UnsafeRawBufferPointer(start: buffer, count: end))
    }

    private func isBlank(_ from: Int, _ to: Int) -> Bool {
        var k = from
        while k < to {
            let c = buffer.load(fromByteOffset: k, as: UInt8.self)
            guard c == 0x20 || c == 0x09 || c == 0x0D else { return false }
            k += 1
        }
        return true
    }

    private func fill() throws {
        if start > 0 {
            memmove(buffer, buffer + start, end - start)
            bufferOffset += start
            end -= start
            start = 0
        }
        if end == capacity {
            guard capacity < Self.maxLineBytes else {
                throw InputError(
                    "\(path):\(lineNumber + 1): a line longer than \(Self.maxLineBytes >> 20) MiB (is a newline missing?); one prompt per line",
                    code: .lineTooLong)
            }
            let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 64)
            bigger.copyMemory(from: buffer, byteCount: end)
            buffer.deallocate()
            buffer = bigger
            capacity *= 2
        }
        var n: Int
        repeat { n = read(fd, buffer + end, capacity - end) } while n < 0 && errno == EINTR
        guard n >= 0 else {
            throw InputError("\(path): read failed (\(String(cString: strerror(errno))))", code: .unreadable)
        }
        if n == 0 { atEOF = true; return }
        onChunk?(UnsafeRawBufferPointer(start: buffer + end, count: n))
        end += n
        bytesRead += n
    }

    /// Reads (and hands to `onChunk`) the rest of the file without splitting it into lines.
    func readToEnd() throws {
        while !atEOF {
            start = end
            try fill()
        }
    }

    /// The line starting at byte `offset` (for an exact check after an id-hash collision).
    func line(atOffset offset: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var at = offset
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(at)) }
            guard n > 0 else { return out }
            if let nl = chunk[0..<n].firstIndex(of: 0x0A) { return out + chunk[0..<nl] }
            out += chunk[0..<n]
            at += n
        }
    }
}

/// The prompts of one scanned input file, handed out in order, a batch at a time.
public final class PromptStream {
    public let path: String
    public let scan: PromptReader.Scan
    private let lines: LineSource
    private let reader: PromptReader
    /// How many records were handed out.
    public private(set) var position = 0

    /// The buffer batches read without texts reuse.
    private var reusable = malloc(1 << 20)!
    private var reusableCapacity = 1 << 20
    private var lastBatchBytes = 0

    deinit { free(reusable) }

    public init(path: String, scan: PromptReader.Scan, reader: PromptReader) throws {
        self.path = path
        self.scan = scan
        self.reader = reader
        lines = try LineSource(path: path)
        guard lines.stamp == scan.stamp else { throw Self.changed(path) }
    }

    /// The next `count` records (fewer at the end of the file).
    /// `texts: false`: candidate texts come back empty (see `PromptReader.parse(skim:)`).
    public func next(_ count: Int, texts: Bool = true) throws -> [PromptRecord] {
        // The file is read twice (scan, then here): refuse to mix two versions of it.
        guard lines.unchanged(since: scan.stamp) else { throw Self.changed(path) }
        // The lines are cut out here, in order, into one buffer; parsing them (most of the work) is
        // shared by `parallelism` threads. With texts, the buffer becomes the storage the batch's
        // candidate texts point into (`JSONText`), sized by the previous batch; without (a replay's
        // skimmed batches) nothing points into it afterwards, and one buffer serves every such batch.
        var capacity = texts ? max(64 << 10, lastBatchBytes + lastBatchBytes / 4) : reusableCapacity, used = 0
        var buffer = texts ? malloc(capacity)! : reusable
        var adopted = false
        defer {
            if !texts { (reusable, reusableCapacity) = (buffer, capacity) } else if !adopted { free(buffer) }
        }
        var lineRanges: [(number: Int, range: Range<Int>)] = []
        lineRanges.reserveCapacity(count)
        while lineRanges.count < count,
            let (number, range) = try lines.nextLine({ number, _, bytes -> (Int, Range<Int>) in
                if used + bytes.count > capacity {
                    while used + bytes.count > capacity { capacity *= 2 }
                    buffer = realloc(buffer, capacity)!
                }
                if bytes.count > 0 { (buffer + used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
                used += bytes.count
                return (number, (used - bytes.count)..<used)
            })
        {
            lineRanges.append((number, range))
        }
        lastBatchBytes = used
        adopted = texts
        let storage = texts ? JSONTextStorage(adopting: buffer, count: used) : nil
        let n = lineRanges.count
        let results = UnsafeMutableBufferPointer<Result<PromptRecord, Error>?>.allocate(capacity: n)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        let slots = SendablePointer(results)
        let reader = reader, path = path, ranges = lineRanges, canonical = scan.canonicalLines
        let lineBytes = UnsafeRawBufferPointer(
            start: texts ? storage!.baseAddress : UnsafeRawPointer(buffer), count: used)
        withExtendedLifetime(storage) {
            let bytes = lineBytes
            let all = SendableRawBytes(bytes)
            let workers = min(LineSource.parallelism, max(1, n / 8))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for i in stride(from: w, to: n, by: workers) {
                    let (number, range) = ranges[i]
                    slots[i] = Result {
                        try reader.parse(
                            bytes: UnsafeRawBufferPointer(rebasing: all.bytes[range]), where: "\(path):\(number)",
                            defaultID: "line-\(number)", skim: !texts, trusted: canonical?.contains(number) ?? false,
                            escapedIn: storage.map { ($0, range.lowerBound) })
                    }
                }
            }
        }
        var out: [PromptRecord] = []
        out.reserveCapacity(n)
        for i in 0..<n { out.append(try results[i]!.get()) }
        position += n
        return out
    }

    static func changed(_ path: String) -> InputError {
        InputError(
            "\(path) changed while its iteration was running (laser validates an input file, then reads it batch by batch); restore the file it started with and resume, or resume with --force to start the iteration's remaining batches on the new one"
        )
    }
}

/// An incremental 64-bit digest of a byte stream (change detection, not security): four lanes of
/// 8-byte words, so it runs at memory speed on big inputs, where byte-wise FNV-1a took a large share
/// of reading one.
struct StreamDigest {
    private var h0: UInt64 = 0x9E37_79B9_7F4A_7C15, h1: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private var h2: UInt64 = 0x1656_67B1_9E37_79F9, h3: UInt64 = 0x27D4_EB2F_1656_67C5
    private var tail: [UInt8] = []
    private var total: UInt64 = 0
    private static let prime: UInt64 = 0x0000_0100_0000_01B3

    @inline(__always) private static func step(_ h: UInt64, _ w: UInt64) -> UInt64 {
        let m = (h ^ w) &* prime
        return (m << 31) | (m >> 33)
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        total &+= UInt64(bytes.count)
        var p = bytes
        if !tail.isEmpty {
            let take = min(32 - tail.count, p.count)
            tail.append(contentsOf: p[0..<take])
            p = UnsafeRawBufferPointer(rebasing: p[take...])
            guard tail.count == 32 else { return }
            tail.withUnsafeBytes { absorb($0, blocks: 1) }
            tail.removeAll(keepingCapacity: true)
        }
        let blocks = p.count / 32
        if blocks > 0 { absorb(p, blocks: blocks) }
        tail.append(contentsOf: p[(blocks * 32)...])
    }

    private mutating func absorb(_ p: UnsafeRawBufferPointer, blocks: Int) {
        var (a, b, c, d) = (h0, h1, h2, h3)
        var o = 0
        for _ in 0..<blocks {
            a = Self.step(a, p.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            b = Self.step(b, p.loadUnaligned(fromByteOffset: o + 8, as: UInt64.self))
            c = Self.step(c, p.loadUnaligned(fromByteOffset: o + 16, as: UInt64.self))
            d = Self.step(d, p.loadUnaligned(fromByteOffset: o + 24, as: UInt64.self))
            o += 32
        }
        (h0, h1, h2, h3) = (a, b, c, d)
    }

    func finish() -> String {
        digestHex(SplitMix64.mix(h0, h1, h2, h3, total, FNV1a.hash(tail)))
    }
}
