import StableRandom
/// The built-in context featurizer for prompts that come without a `context` vector:
/// signed feature hashing of lower-cased word unigrams and bigrams into `dimension - 1` buckets,
/// L2-normalised, plus a constant bias component; the whole vector has unit length, half of its
/// weight in the bias (1/sqrt 2) and half in the hashed words. Stable across processes and machines
/// (FNV-1a, not Swift's Hasher).
///
/// Why the bias: LinUCB's exploration bonus scales with |x|, and the mean of a mini-batch of diverse
/// unit vectors can be short; the bias keeps |mean| >= 1/sqrt 2 and lets each arm learn its average
/// reward, while the hashed part tells task families apart.
public struct HashingFeaturizer: Equatable, Sendable {
    public let dimension: Int
    public let ngrams: Int

    public init(dimension: Int, ngrams: Int = 2) {
        precondition(dimension >= 2 && ngrams >= 1)
        self.dimension = dimension
        self.ngrams = ngrams
    }

    public func features(_ text: String) -> [Double] {
        // One array: the bias at 0, the hashed words in 1..., normalised in place (the same values,
        // operation for operation, as normalising a separate vector and scaling it by 1/sqrt 2).
        var out = [Double](repeating: 0, count: dimension)
        if !hashASCII(text, into: &out) {
            let tokens = Self.tokens(text)
            for n in 1...ngrams where tokens.count >= n {
                for start in 0...(tokens.count - n) {
                    let gram = tokens[start..<(start + n)].joined(separator: " ")
                    add(FNV1a.hash(gram), to: &out)
                }
            }
        }
        let half = 0.5.squareRoot()
        out.withUnsafeMutableBufferPointer { v in
            var sum = 0.0
            for i in 1..<v.count { sum += v[i] * v[i] }
            let norm = sum.squareRoot()
            v[0] = norm > 0 ? half : 1
            if norm > 0 { for i in 1..<v.count { v[i] = v[i] / norm * half } }
        }
        return out
    }

    /// Adds one n-gram's signed count to its bucket (index 1... of `hashed`; 0 is the bias).
    @inline(__always) private func add(_ h: UInt64, to hashed: inout [Double]) {
        hashed[1 + Int(h % UInt64(dimension - 1))] += (h >> 63) == 0 ? 1 : -1
    }

    /// The same n-gram hashes as `tokens` + `joined` + FNV-1a, straight from the bytes of an ASCII
    /// text (no String per token): false, and nothing done, for any other text.
    private func hashASCII(_ text: String, into hashed: inout [Double]) -> Bool {
        var text = text
        return text.withUTF8 { u -> Bool in
            var lower = [UInt8](repeating: 0, count: u.count)
            // Token t is lower[bounds[2t]..<bounds[2t + 1]]. ([Int], not [Range<Int>]: an array of a
            // generic type looks its metadata up at run time, under a lock the parse threads shared.)
            var bounds: [Int] = []
            bounds.reserveCapacity(16)
            var length = 0, start = -1
            for b in u {
                guard b < 0x80 else { return false }
                let isWord = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39)
                if isWord {
                    if start < 0 { start = length }
                    lower[length] = (b >= 0x41 && b <= 0x5A) ? b + 0x20 : b
                    length += 1
                } else if start >= 0 {
                    bounds.append(start)
                    bounds.append(length)
                    start = -1
                }
            }
            if start >= 0 { bounds.append(start); bounds.append(length) }
            let tokens = bounds.count / 2
            for n in 1...ngrams where tokens >= n {
                for first in 0...(tokens - n) {
                    var h: UInt64 = 0xcbf2_9ce4_8422_2325
                    for t in first..<(first + n) {
                        if t > first { h = (h ^ 0x20) &* 0x0000_0100_0000_01B3 }
                        for k in bounds[2 * t]..<bounds[2 * t + 1] {
                            h = (h ^ UInt64(lower[k])) &* 0x0000_0100_0000_01B3
                        }
                    }
                    add(h, to: &hashed)
                }
            }
            return true
        }
    }

    static func tokens(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        for scalar in text.lowercased().unicodeScalars {
            if scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                current.unicodeScalars.append(scalar)
            } else if !current.isEmpty {
                out.append(current)
                current = ""
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// x / |x|, or x unchanged when it is all zeros.
    public static func normalized(_ v: [Double]) -> [Double] {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? v.map { $0 / norm } : v
    }

    /// The element-wise mean of equally long vectors (a mini-batch's context).
    public static func mean(_ vectors: [[Double]]) -> [Double] {
        precondition(!vectors.isEmpty)
        var out = [Double](repeating: 0, count: vectors[0].count)
        for v in vectors { for i in 0..<v.count { out[i] += v[i] } }
        return out.map { $0 / Double(vectors.count) }
    }
}
