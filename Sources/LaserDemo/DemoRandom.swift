/// The demo's random source: SplitMix64 seeded from a stable FNV-1a hash of its inputs, so the
/// dataset is the same in every process and on every platform (unlike Swift's default generator
/// and `Hasher`, which are seeded per process).
struct DemoRandom {
    private var state: UInt64

    /// A stream for one purpose, e.g. (seed, iteration, task, prompt index): prompts do not depend
    /// on how many others are generated.
    init(seed: UInt64, _ parts: UInt64...) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for value in [seed] + parts {
            var v = value
            for _ in 0..<8 {
                hash ^= v & 0xFF
                hash = hash &* 0x0000_0100_0000_01B3
                v >>= 8
            }
        }
        state = hash
        _ = next()  // FNV-1a mixes its last bytes poorly; one round spreads them.
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    mutating func chance(_ probability: Double) -> Bool {
        unit() < probability
    }

    mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int(next().multipliedFullWidth(by: span).high)
    }

    mutating func pick<T>(_ items: [T]) -> T {
        precondition(!items.isEmpty, "pick from an empty list")
        return items[int(in: 0...(items.count - 1))]
    }

    mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(i, int(in: 0...i))
        }
    }
}
