import Foundation
import LaserCore
import StableRandom
#if canImport(Glibc)
import Glibc
#endif

/// The run's append-only journal file (RUN_DIR/journal).
///
/// Framing: every record is `[u32 little-endian payload length][u32 little-endian CRC-32 of the
/// payload][payload]`, the payload being the record as JSON. Reading stops at the first frame that is
/// short or fails its checksum: that is a torn tail from a crash mid-append, and it is cut off before
/// anything new is appended, so later records never hide behind garbage.
public final class JournalFile {
    public let path: String
    private var fd: Int32
    private let encoder = JSONEncoder()
    /// Records appended since the last fsync.
    private var unsynced = 0

    /// Largest record accepted when reading (a corrupt length must not allocate gigabytes).
    static let maxRecordBytes = 256 << 20

    /// Opens (creating if needed) and returns the intact records plus how many torn bytes were cut.
    public static func open(path: String) throws -> (JournalFile, [JournalRecord], tornBytes: Int) {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError.errno("cannot open journal", path) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            close(fd)
            throw StorageError(
                "cannot read journal \(path): \(error.localizedDescription); check the run directory's permissions")
        }
        let (records, good) = try decode(data, path: path)
        if good < data.count {
            guard ftruncate(fd, off_t(good)) == 0 else {
                close(fd); throw StorageError.errno("cannot cut the torn tail of", path)
            }
            guard fsync(fd) == 0 else { close(fd); throw StorageError.errno("cannot fsync", path) }
        }
        guard lseek(fd, 0, SEEK_END) >= 0 else { close(fd); throw StorageError.errno("cannot seek in", path) }
        return (JournalFile(path: path, fd: fd), records, data.count - good)
    }

    /// Empties the journal (durably): a run directory whose run did no work starts afresh.
    public func reset() throws {
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) >= 0 else { throw StorageError.errno("cannot empty", path) }
        guard fsync(fd) == 0 else { throw StorageError.errno("cannot fsync", path) }
        unsynced = 0
    }

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
        encoder.outputFormatting = [.sortedKeys]
    }

    deinit { close(fd) }

    /// Decodes intact frames; returns them and the byte offset where intact data ends.
    static func decode(_ data: Data, path: String) throws -> ([JournalRecord], Int) {
        let decoder = JSONDecoder()
        var records: [JournalRecord] = []
        var offset = 0
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            while offset + 8 <= bytes.count {
                let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian)
                let crc = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self).littleEndian
                guard length <= maxRecordBytes, offset + 8 + length <= bytes.count else { break }
                let payload = UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<(offset + 8 + length)])
                guard CRC32.checksum(payload) == crc else { break }
                do { records.append(try JournalCodec.decode(payload, fallback: decoder)) } catch {
                    // Intact frame, unknown content: written by another laser version. Never guess.
                    throw StorageError(
                        "journal \(path): record at byte \(offset) has a valid checksum but does not decode (\(error)); was it written by another laser version?"
                    )
                }
                offset += 8 + length
            }
        }
        return (records, offset)
    }

    /// Frames queued by `enqueue`, not yet written.
    private var pending: [UInt8] = []
    private var pendingRecords = 0

    /// Appends one record; with `sync` it (and everything before it) is durable when this returns.
    public func append(_ record: JournalRecord, sync: Bool) throws {
        try enqueue(record)
        try writePending(sync: sync)
    }

    /// Frames a record into the pending buffer: nothing reaches the file before `writePending`, which
    /// writes every queued frame in one call (the output thread queues a burst of score records and
    /// writes them together; a record per write() was a tenth of that thread).
    public func enqueue(_ record: JournalRecord) throws {
        let start = pending.count
        pending.append(contentsOf: repeatElement(0, count: 8))
        do { try JournalCodec.encode(record, into: &pending, fallback: encoder) } catch {
            pending.removeSubrange(start...)
            throw error
        }
        let length = pending.count - start - 8
        let crc = pending.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + 8)...])) }
        pending.withUnsafeMutableBytes { b in
            b.storeBytes(of: UInt32(length).littleEndian, toByteOffset: start, as: UInt32.self)
            b.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
        pendingRecords += 1
    }

    /// Writes the queued frames (in order, in one write unless the kernel takes less); with `sync`
    /// they and everything before them are durable when this returns. A failed write leaves no partial
    /// frame behind (the queued frames are dropped: the caller stops writing at its first failure).
    public func writePending(sync: Bool) throws {
        if !pending.isEmpty {
            defer { pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20); pendingRecords = 0 }
            var offset = 0
            while offset < pending.count {
                let n = pending.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, pending.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    let code = errno
                    // Leave no partial frame behind; if even that fails, the reader cuts it as a torn tail.
                    _ = ftruncate(fd, lseek(fd, 0, SEEK_CUR) - off_t(offset))
                    throw StorageError.errno("cannot append to journal", path, code)
                }
                offset += n
            }
            unsynced += pendingRecords
        }
        if sync { try self.sync() }
    }

    public func sync() throws {
        guard unsynced > 0 else { return }
        guard fsync(fd) == 0 else { throw StorageError.errno("cannot fsync journal", path) }
        unsynced = 0
    }
}

/// CRC-32 (IEEE 802.3, the zlib/PNG polynomial), table-driven.
public enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        if let fast = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) { return fast }
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}

/// A 64-bit FNV-1a digest as 16 hex digits (change detection for config and input, not security).
public func contentDigest<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    digestHex(FNV1a.hash(bytes))
}

/// A 64-bit digest as the 16 hex digits the journal records.
func digestHex(_ value: UInt64) -> String {
    let hex = String(value, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
