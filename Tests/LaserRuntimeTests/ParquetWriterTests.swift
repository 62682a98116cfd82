@testable import LaserRuntime
import Testing

/// The Parquet writer's Thrift compact encoding (pyarrow and `datasets` read whole files in
/// Tests/realstack/test_export.py).
@Suite struct ParquetWriterTests {
    @Test func thriftCompactEncodingMatchesTheSpec() {
        var w = CompactWriter()
        w.i32(1, 1)  // delta 1, type i32 (5): 0x15, zigzag(1) = 2
        w.i32(3, -1)  // delta 2: 0x25, zigzag(-1) = 1
        w.string(20, "ab")  // delta 17 > 15: type byte 0x08, zigzag(20) = 40, length 2
        w.structBegin(21)  // delta 1, type struct (12): 0x1C
        w.i64(1, 300)  // ids restart inside a struct: 0x16, zigzag(300) = 600 = 0xD8 0x04
        w.structEnd()
        w.stop()
        #expect(w.bytes == [0x15, 0x02, 0x25, 0x01, 0x08, 40, 0x02, 0x61, 0x62, 0x1C, 0x16, 0xD8, 0x04, 0x00, 0x00])
    }

    @Test func aFileIsFramedAndEndsWithItsMetadataLength() {
        let bytes = ParquetWriter.file(columns: [
            .string(name: "s", values: ["a", "bc"]), .double(name: "d", values: [1, 2]),
            .int64(name: "i", values: [3, 4]),
        ])
        #expect(Array(bytes.prefix(4)) == Array("PAR1".utf8) && Array(bytes.suffix(4)) == Array("PAR1".utf8))
        let n = bytes.count
        let length = Int(bytes[n - 8]) | Int(bytes[n - 7]) << 8 | Int(bytes[n - 6]) << 16 | Int(bytes[n - 5]) << 24
        #expect(length > 0 && length < n - 12)
        // The first column chunk's values follow its page header: "a" and "bc", length-prefixed.
        #expect(bytes.contains(subsequence: [1, 0, 0, 0, 0x61, 2, 0, 0, 0, 0x62, 0x63]))
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<$0 + subsequence.count]) == subsequence }
    }
}
