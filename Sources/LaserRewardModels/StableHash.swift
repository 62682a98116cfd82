import Foundation

/// A hash that is the same in every process and on every platform (FNV-1a over bytes, finished with
/// SplitMix64), unlike Swift's `Hasher`, which is seeded randomly per process.
struct StableHash {
    private var state: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func combine(_ value: UInt64) {
        var v = value
        for _ in 0..<8 {
            combineByte(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }

    /// Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
    mutating func combine(_ text: String) {
        combine(UInt64(text.utf8.count))
        for byte in text.utf8 { combineByte(byte) }
    }

    private mutating func combineByte(_ byte: UInt8) {
        state ^= UInt64(byte)
        state = state &* 0x0000_0100_0000_01B3
    }

    /// FNV-1a mixes its last bytes poorly; one SplitMix64 round spreads them over all 64 bits.
    func finalize() -> UInt64 {
        var generator = SplitMix64(seed: state)
        return generator.next()
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast generator whose output depends only on its seed.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so log(u) in Box-Muller stays finite.
    mutating func nextUnitInterval() -> Double {
        Double((next() >> 11) + 1) * 0x1.0p-53
    }

    /// A standard normal draw (Box-Muller, cosine branch).
    mutating func nextGaussian() -> Double {
        let u1 = nextUnitInterval()
        let u2 = nextUnitInterval()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
