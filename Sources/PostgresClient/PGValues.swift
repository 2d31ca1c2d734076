/// Values in and out of PostgreSQL: parameters (text format, bytes in binary format), results
/// (libpq's text format; BYTEA decoded from its hex form) and errors with their SQLSTATE.
import CLibPQ

public enum PGValue: Sendable, Equatable {
    case null
    case text(String)
    case int(Int64)
    case bytes([UInt8])
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
