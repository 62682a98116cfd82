import Foundation

/// A minimal Apache Parquet writer: one row group, flat REQUIRED columns (UTF-8 strings, 64-bit
/// floats, 64-bit integers), PLAIN encoding, no compression, one data page per column. That is all
/// `laser export` needs, and what every Parquet reader (pyarrow, DuckDB, Spark, `datasets`) reads.
///
/// The layout follows the format specification (github.com/apache/parquet-format,
/// `src/main/thrift/parquet.thrift`): "PAR1", each column chunk as a `PageHeader` and its values, the
/// `FileMetaData` in Thrift's compact protocol, its length (4 bytes, little-endian), "PAR1".
struct ParquetWriter {
    enum Column {
        case string(name: String, values: [String])
        case double(name: String, values: [Double])
        case int64(name: String, values: [Int64])

        var name: String {
            switch self {
            case .string(let n, _), .double(let n, _), .int64(let n, _): return n
            }
        }
        var count: Int {
            switch self {
            case .string(_, let v): return v.count
            case .double(_, let v): return v.count
            case .int64(_, let v): return v.count
            }
        }
        /// Parquet's physical type: INT64 = 2, DOUBLE = 5, BYTE_ARRAY = 6.
        var physicalType: Int32 {
            switch self {
            case .string: return 6
            case .double: return 5
            case .int64: return 2
            }
        }
        /// PLAIN: lengths-prefixed bytes, or little-endian fixed-width values.
        var plainValues: [UInt8] {
            var out: [UInt8] = []
            switch self {
            case .string(_, let values):
                for v in values {
                    let bytes = Array(v.utf8)
                    out += littleEndian(UInt32(bytes.count))
                    out += bytes
                }
            case .double(_, let values):
                for v in values { out += littleEndian(v.bitPattern) }
            case .int64(_, let values):
                for v in values { out += littleEndian(UInt64(bitPattern: v)) }
            }
            return out
        }
    }

    /// The file's bytes. Every column must have the same number of rows.
    static func file(
        columns: [Column], keyValueMetadata: [(String, String)] = [], createdBy: String = "laser export"
    ) -> [UInt8] {
        let rows = columns.first?.count ?? 0
        precondition(columns.allSatisfy { $0.count == rows }, "columns of different lengths")
        var out: [UInt8] = Array("PAR1".utf8)
        var chunks: [(offset: Int64, size: Int64)] = []
        for column in columns {
            let values = column.plainValues
            var header = CompactWriter()
            header.i32(1, 0)  // type: DATA_PAGE
            header.i32(2, Int32(values.count))  // uncompressed_page_size
            header.i32(3, Int32(values.count))  // compressed_page_size
            header.structBegin(5)  // data_page_header
            header.i32(1, Int32(rows))  // num_values
            header.i32(2, 0)  // encoding: PLAIN
            header.i32(3, 3)  // definition_level_encoding: RLE
            header.i32(4, 3)  // repetition_level_encoding: RLE
            header.structEnd()
            header.stop()
            let offset = Int64(out.count)
            out += header.bytes
            out += values
            chunks.append((offset, Int64(header.bytes.count + values.count)))
        }
        var meta = CompactWriter()
        meta.i32(1, 1)  // version
        meta.listBegin(2, elementType: CompactWriter.structType, count: columns.count + 1)  // schema
        meta.element { w in  // the root: a group of the columns
            w.string(4, "schema")
            w.i32(5, Int32(columns.count))
        }
        for column in columns {
            meta.element { w in
                w.i32(1, column.physicalType)
                w.i32(3, 0)  // repetition_type: REQUIRED
                w.string(4, column.name)
                if case .string = column {
                    w.i32(6, 0)  // converted_type: UTF8
                    w.structBegin(10)  // logicalType: STRING (union field 1, empty struct)
                    w.structBegin(1)
                    w.structEnd()
                    w.structEnd()
                }
            }
        }
        meta.i64(3, Int64(rows))  // num_rows
        meta.listBegin(4, elementType: CompactWriter.structType, count: 1)  // row_groups
        meta.element { w in
            w.listBegin(1, elementType: CompactWriter.structType, count: columns.count)  // columns
            for (column, chunk) in zip(columns, chunks) {
                w.element { c in
                    c.i64(2, chunk.offset)  // file_offset
                    c.structBegin(3)  // meta_data
                    c.i32(1, column.physicalType)
                    c.listBegin(2, elementType: CompactWriter.i32Type, count: 1)
                    c.listI32(0)  // encodings: PLAIN
                    c.listBegin(3, elementType: CompactWriter.binaryType, count: 1)
                    c.listString(column.name)  // path_in_schema
                    c.i32(4, 0)  // codec: UNCOMPRESSED
                    c.i64(5, Int64(rows))  // num_values
                    c.i64(6, chunk.size)  // total_uncompressed_size
                    c.i64(7, chunk.size)  // total_compressed_size
                    c.i64(9, chunk.offset)  // data_page_offset
                    c.structEnd()
                }
            }
            w.i64(2, chunks.reduce(0) { $0 + $1.size })  // total_byte_size
            w.i64(3, Int64(rows))  // num_rows
        }
        if !keyValueMetadata.isEmpty {
            meta.listBegin(5, elementType: CompactWriter.structType, count: keyValueMetadata.count)
            for (key, value) in keyValueMetadata {
                meta.element { w in
                    w.string(1, key)
                    w.string(2, value)
                }
            }
        }
        meta.string(6, createdBy)
        meta.stop()
        out += meta.bytes
        out += littleEndian(UInt32(meta.bytes.count))
        out += Array("PAR1".utf8)
        return out
    }
}

private func littleEndian<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    withUnsafeBytes(of: v.littleEndian) { Array($0) }
}

/// Thrift's compact protocol, the parts Parquet's metadata needs: field headers with id deltas,
/// zigzag varints, binary, lists and nested structs.
struct CompactWriter {
    static let i32Type: UInt8 = 5, i64Type: UInt8 = 6, binaryType: UInt8 = 8, listType: UInt8 = 9,
        structType: UInt8 = 12
    private(set) var bytes: [UInt8] = []
    /// The last field id of each open struct (ids are delta-encoded within a struct).
    private var lastField: [Int16] = [0]

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func zigzag(_ v: Int64) { varint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }

    private mutating func field(_ id: Int16, _ type: UInt8) {
        let delta = id - lastField[lastField.count - 1]
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta) << 4 | type)
        } else {
            bytes.append(type)
            zigzag(Int64(id))
        }
        lastField[lastField.count - 1] = id
    }

    mutating func i32(_ id: Int16, _ v: Int32) { field(id, Self.i32Type); zigzag(Int64(v)) }
    mutating func i64(_ id: Int16, _ v: Int64) { field(id, Self.i64Type); zigzag(v) }
    mutating func string(_ id: Int16, _ s: String) {
        field(id, Self.binaryType)
        varint(UInt64(s.utf8.count))
        bytes += Array(s.utf8)
    }
    mutating func structBegin(_ id: Int16) { field(id, Self.structType); lastField.append(0) }
    mutating func structEnd() { bytes.append(0); lastField.removeLast() }
    mutating func stop() { bytes.append(0) }
    mutating func listBegin(_ id: Int16, elementType: UInt8, count: Int) {
        field(id, Self.listType)
        if count < 15 {
            bytes.append(UInt8(count) << 4 | elementType)
        } else {
            bytes.append(0xF0 | elementType)
            varint(UInt64(count))
        }
    }
    /// A struct element of a list: its fields, then its stop.
    mutating func element(_ body: (inout CompactWriter) -> Void) {
        lastField.append(0)
        body(&self)
        bytes.append(0)
        lastField.removeLast()
    }
    mutating func listI32(_ v: Int32) { zigzag(Int64(v)) }
    mutating func listString(_ s: String) { varint(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
}
