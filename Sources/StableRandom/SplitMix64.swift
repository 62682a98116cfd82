#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A tiny seeded PRNG (SplitMix64). Used instead of the system generator so that every decision
/// replays exactly from the run's seed, on any machine.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so log(u) in Box-Muller stays finite.
    public mutating func nextUnitInterval() -> Double {
        Double((next() >> 11) + 1) * 0x1.0p-53
    }

    /// A standard normal draw (Box-Muller, cosine branch).
    public mutating func nextGaussian() -> Double {
        let u1 = nextUnitInterval()
        let u2 = nextUnitInterval()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// A well-mixed value for a tuple of keys: stateless, so a decision for batch t never depends on
    /// how many random numbers were drawn before it (which would break resume).
    public static func mix(_ keys: UInt64...) -> UInt64 {
        var g = SplitMix64(seed: 0x5EED)
        var acc: UInt64 = 0
        for k in keys {
            g = SplitMix64(seed: acc ^ k)
            acc = g.next()
        }
        return acc
    }
}

/// 64-bit FNV-1a, a stable string hash (Swift's Hasher is randomised per process).
public enum FNV1a {
    public static func hash<S: Sequence>(_ bytes: S, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64
    where S.Element == UInt8 {
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    public static func hash(_ s: String) -> UInt64 { hash(s.utf8) }
}
