import StableRandom

/// The demo's random source: SplitMix64 seeded from a stable FNV-1a hash of its inputs, so the
/// dataset is the same in every process and on every platform (unlike Swift's default generator
/// and `Hasher`, which are seeded per process).
struct DemoRandom {
    private var generator: SplitMix64

    /// A stream for one purpose, e.g. (seed, iteration, task, prompt index): prompts do not depend
    /// on how many others are generated.
    init(seed: UInt64, _ parts: UInt64...) {
        // FNV-1a over the values' little-endian bytes seeds the stream.
        let bytes = ([seed] + parts).flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        generator = SplitMix64(seed: FNV1a.hash(bytes))
        _ = generator.next()  // FNV-1a mixes its last bytes poorly; one round spreads them.
    }

    mutating func next() -> UInt64 { generator.next() }

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
