/// A hash that is the same in every process and on every platform (FNV-1a over bytes, finished with
/// SplitMix64), unlike Swift's `Hasher`, which is seeded randomly per process.
public struct StableHash: Sendable {
    public init() {}

    private var state: UInt64 = 0xCBF2_9CE4_8422_2325

    public mutating func combine(_ value: UInt64) {
        var v = value
        for _ in 0..<8 {
            combineByte(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }

    /// Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
    public mutating func combine(_ text: String) {
        combine(UInt64(text.utf8.count))
        for byte in text.utf8 { combineByte(byte) }
    }

    private mutating func combineByte(_ byte: UInt8) {
        state ^= UInt64(byte)
        state = state &* 0x0000_0100_0000_01B3
    }

    /// FNV-1a mixes its last bytes poorly; one SplitMix64 round spreads them over all 64 bits.
    public func finalize() -> UInt64 {
        var generator = SplitMix64(seed: state)
        return generator.next()
    }
}
