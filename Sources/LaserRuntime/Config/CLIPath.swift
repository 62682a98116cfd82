import Foundation

/// File paths given on the command line or in a config, made absolute and normalised by their text:
/// `..` and `.` are resolved against the folder they are relative to (the current folder, or a config
/// file's folder). Foundation's `URL.standardized` drops a leading `..` of a relative path, which made
/// `--out ../X` write to `./X`; this never does.
public enum CLIPath {
    /// `path` as an absolute, normalised path; relative paths are taken from `base` (default: the
    /// current working directory).
    public static func absolute(_ path: String, base: String? = nil) -> String {
        let start = path.hasPrefix("/") ? path : (base ?? FileManager.default.currentDirectoryPath) + "/" + path
        var parts: [Substring] = []
        for part in start.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}
