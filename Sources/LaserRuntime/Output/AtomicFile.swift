import LaserErrors
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file laser must write or read in its run directory (or an export) that it cannot (exit status 4).
public typealias StorageError = CodedError<StorageErrorCode>

/// The codes of ``StorageError``.
public enum StorageErrorCode: String, ErrorCode {
    case io
    /// ENOSPC or EDQUOT: nothing written is lost; free space and resume.
    case diskFull = "disk-full"
    /// A folder that is not a laser run directory, or holds nothing to read yet.
    case notARun = "not-a-run"
    /// An output folder that is not empty (export without --force).
    case outputNotEmpty = "output-not-empty"
    /// Another laser process holds the run directory (its lock).
    case runDirectoryInUse = "run-directory-in-use"

    public static var unspecified: Self { .io }
}

extension StorageError {

    static func errno(_ what: String, _ path: String, _ code: Int32 = Glibc.errno) -> StorageError {
        let hint =
            code == ENOSPC || code == EDQUOT
            ? "; free space on that file system, then resume the run"
            : code == EFBIG
                ? "; the file reached the process's file-size limit (ulimit -f); raise it, then resume the run"
                : code == EACCES || code == EROFS ? "; check the permissions of the run directory" : ""
        return StorageError(
            "\(what) \(path): \(String(cString: strerror(code))) (errno \(code))\(hint)",
            code: code == ENOSPC || code == EDQUOT ? .diskFull : .io)
    }
}

/// Durable, all-or-nothing file writes: temp file in the same folder, write, fsync, rename over the
/// target, fsync the folder. A reader sees the old file or the whole new one, never a torn one.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temp = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError.errno("cannot create", temp) }
        var ok = false
        defer {
            if !ok { close(fd); unlink(temp) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageError.errno("cannot write", temp)
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw StorageError.errno("cannot fsync", temp) }
        ok = true
        guard close(fd) == 0 else { unlink(temp); throw StorageError.errno("cannot close", temp) }
        guard rename(temp, path) == 0 else {
            let code = errno
            unlink(temp)
            throw StorageError.errno("cannot rename into place", path, code)
        }
        try syncDirectory(directory)
    }

    public static func write(_ text: String, to path: String) throws { try write(Array(text.utf8), to: path) }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError.errno("cannot open folder", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StorageError.errno("cannot fsync folder", path) }
    }

    /// mkdir -p with a clear error.
    public static func makeDirectory(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw StorageError(
                "cannot create folder \(path): \(error.localizedDescription); check that its parent is writable, or choose another --out"
            )
        }
    }
}
