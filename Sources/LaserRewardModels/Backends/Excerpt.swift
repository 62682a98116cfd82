import Foundation

/// The first `limit` characters of a text, for error messages (a reply may be a whole HTML page).
func excerpt(_ text: String, limit: Int = 200) -> String {
    let flat = text.replacingOccurrences(of: "\n", with: "\\n")
    return flat.count <= limit ? flat : String(flat.prefix(limit)) + "..."
}

func excerpt(_ bytes: some Collection<UInt8>, limit: Int = 200) -> String {
    excerpt(String(decoding: bytes.prefix(limit * 4), as: UTF8.self), limit: limit)
}
