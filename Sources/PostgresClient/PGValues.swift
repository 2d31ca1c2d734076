/// Values in and out of PostgreSQL: parameters (text format, bytes in binary format), results
/// (libpq's text format; BYTEA decoded from its hex form) and errors with their SQLSTATE.
import CLibPQ

public enum PGValue: Sendable, Equatable {
    case null
    case text(String)
    case int(Int64)
    case bytes([UInt8])
    /// A value already in PostgreSQL's binary format, of type `oid` (an array: `PGArray`).
    case binary(oid: UInt32, [UInt8])
}

/// One-dimensional arrays in the binary format (`array_send`): a whole group commit's rows
/// travel as a few array parameters of one statement, not as one statement per row.
/// Layout: ndim, has-nulls flag, element type, then per dimension its length and lower bound
/// (1), then each element as a 32-bit length (-1 = NULL) and its bytes; all big-endian.
public enum PGArray {
    public static func int8(_ values: [Int64]) -> PGValue {
        var out = header(count: values.count, hasNulls: false, element: 20, capacity: 12 * values.count)
        for v in values { append32(&out, 8); append64(&out, UInt64(bitPattern: v)) }
        return .binary(oid: 1016, out)
    }

    public static func int4(_ values: [Int32]) -> PGValue {
        var out = header(count: values.count, hasNulls: false, element: 23, capacity: 8 * values.count)
        for v in values { append32(&out, 4); append32(&out, UInt32(bitPattern: v)) }
        return .binary(oid: 1007, out)
    }

    public static func text(_ values: [String?]) -> PGValue {
        var out = header(count: values.count, hasNulls: values.contains(nil), element: 25,
                         capacity: values.reduce(4 * values.count) { $0 + ($1?.utf8.count ?? 0) })
        for v in values {
            guard let v else { append32(&out, UInt32(bitPattern: -1)); continue }
            append32(&out, UInt32(v.utf8.count))
            out.append(contentsOf: v.utf8)
        }
        return .binary(oid: 1009, out)
    }

    public static func bytea(_ values: [[UInt8]]) -> PGValue {
        var out = header(count: values.count, hasNulls: false, element: 17, capacity: values.reduce(4 * values.count) { $0 + $1.count })
        for v in values { append32(&out, UInt32(v.count)); out.append(contentsOf: v) }
        return .binary(oid: 1001, out)
    }

    static func header(count: Int, hasNulls: Bool, element: UInt32, capacity: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20 + capacity)
        append32(&out, 1)
        append32(&out, hasNulls ? 1 : 0)
        append32(&out, element)
        append32(&out, UInt32(count))
        append32(&out, 1)
        return out
    }

    @inline(__always) static func append32(_ out: inout [UInt8], _ v: UInt32) {
        out.append(UInt8(truncatingIfNeeded: v >> 24)); out.append(UInt8(truncatingIfNeeded: v >> 16))
        out.append(UInt8(truncatingIfNeeded: v >> 8)); out.append(UInt8(truncatingIfNeeded: v))
    }

    @inline(__always) static func append64(_ out: inout [UInt8], _ v: UInt64) {
        append32(&out, UInt32(truncatingIfNeeded: v >> 32)); append32(&out, UInt32(truncatingIfNeeded: v))
    }
}

/// A statement prepared once per connection, under its name, on first use.
public struct PGStatement: Hashable, Sendable {
    public let name: String
    public let sql: String
    public init(_ name: String, _ sql: String) {
        self.name = name
        self.sql = sql
    }
}

public struct PGQuery {
    public var statement: PGStatement
    public var parameters: [PGValue]
    public init(_ statement: PGStatement, _ parameters: [PGValue] = []) {
        self.statement = statement
        self.parameters = parameters
    }
}

public struct PGError: Error, CustomStringConvertible, Sendable {
    public var sqlState: String?
    public var message: String
    /// The connection broke (or timed out) before an answer: the outcome is unknown.
    public var connectionLost: Bool

    public init(sqlState: String?, message: String, connectionLost: Bool) {
        self.sqlState = sqlState
        self.message = message
        self.connectionLost = connectionLost
    }

    /// From a failed result.
    public init(result: OpaquePointer) {
        sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }   // PG_DIAG_SQLSTATE
        var m = PQresultErrorMessage(result).map { String(cString: $0) } ?? "unknown error"
        while m.last == "\n" { m.removeLast() }
        message = m
        connectionLost = false
    }

    public var description: String { sqlState.map { "\(message) (SQLSTATE \($0))" } ?? message }
}

/// A statement's rows (owns the PGresult).
public final class PGResult {
    let result: OpaquePointer
    public let rowCount: Int
    public let columnCount: Int

    public init(taking result: OpaquePointer) {
        self.result = result
        rowCount = Int(PQntuples(result))
        columnCount = Int(PQnfields(result))
    }

    deinit { PQclear(result) }

    /// Rows an INSERT/UPDATE/DELETE touched.
    public var affectedRows: Int {
        guard let p = PQcmdTuples(result) else { return 0 }
        return Int(String(cString: p)) ?? 0
    }

    public func isNull(_ row: Int, _ col: Int) -> Bool { PQgetisnull(result, Int32(row), Int32(col)) != 0 }

    func raw(_ row: Int, _ col: Int) -> UnsafeRawBufferPointer {
        let n = Int(PQgetlength(result, Int32(row), Int32(col)))
        guard let p = PQgetvalue(result, Int32(row), Int32(col)) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: n)
    }

    public func string(_ row: Int, _ col: Int) -> String { String(decoding: raw(row, col), as: UTF8.self) }
    public func optionalString(_ row: Int, _ col: Int) -> String? { isNull(row, col) ? nil : string(row, col) }

    public func int64(_ row: Int, _ col: Int) -> Int64 {
        var v: Int64 = 0
        var negative = false
        for b in raw(row, col) {
            if b == UInt8(ascii: "-") { negative = true; continue }
            guard b >= 0x30 && b <= 0x39 else { break }
            v = v &* 10 &+ Int64(b - 0x30)
        }
        return negative ? -v : v
    }

    public func int(_ row: Int, _ col: Int) -> Int { Int(int64(row, col)) }
    public func bool(_ row: Int, _ col: Int) -> Bool { raw(row, col).first == UInt8(ascii: "t") }

    /// BYTEA in the text format: `\x` and two hex digits per byte.
    public func bytes(_ row: Int, _ col: Int) -> [UInt8] {
        let r = raw(row, col)
        guard r.count >= 2, r[0] == UInt8(ascii: "\\"), r[1] == UInt8(ascii: "x") else { return Array(r) }
        let n = (r.count - 2) / 2
        return [UInt8](unsafeUninitializedCapacity: n) { out, count in
            var i = 2
            for k in 0..<n {
                out[k] = PGResult.nibble(r[i]) << 4 | PGResult.nibble(r[i + 1])
                i += 2
            }
            count = n
        }
    }

    @inline(__always) static func nibble(_ c: UInt8) -> UInt8 {
        c <= 0x39 ? c &- 0x30 : (c | 0x20) &- 0x57
    }
}

/// Parameters laid out for libpq's C arrays for the duration of one call.
public enum PGParameters {
    public static func withC<R>(_ values: [PGValue],
                                _ body: (Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R) -> R {
        let n = values.count
        if n == 0 { return body(0, nil, nil, nil, nil) }
        var types = [Oid](repeating: 0, count: n)
        var lengths = [Int32](repeating: 0, count: n)
        var formats = [Int32](repeating: 0, count: n)
        var pointers = [UnsafePointer<CChar>?](repeating: nil, count: n)
        var owned: [UnsafeMutableRawPointer] = []
        owned.reserveCapacity(n)
        defer { for p in owned { p.deallocate() } }
        for (i, v) in values.enumerated() {
            var bytes: [UInt8]
            switch v {
            case .null: continue
            case .text(let s): bytes = Array(s.utf8)
            case .int(let x): bytes = Array(String(x).utf8)
            case .bytes(let b):
                bytes = b
                types[i] = 17   // BYTEA
                formats[i] = 1
            case .binary(let oid, let b):
                bytes = b
                types[i] = oid
                formats[i] = 1
            }
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count + 1, alignment: 1)
            owned.append(p)
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(p), byteCount: $0.count) }
            p.storeBytes(of: 0, toByteOffset: bytes.count, as: UInt8.self)
            lengths[i] = Int32(bytes.count)
            pointers[i] = UnsafePointer(p.assumingMemoryBound(to: CChar.self))
        }
        return types.withUnsafeBufferPointer { t in
            pointers.withUnsafeBufferPointer { v in
                lengths.withUnsafeBufferPointer { l in
                    formats.withUnsafeBufferPointer { f in
                        body(Int32(n), t.baseAddress, v.baseAddress, l.baseAddress, f.baseAddress)
                    }
                }
            }
        }
    }
}
