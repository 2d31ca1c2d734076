/// JSONParser: single pass over UTF-8 bytes. See JSONValue.swift for the rules.
public enum JSONParser {
    public static let maxDepth = 64
    /// Members one object may have (template data with 10 000 keys is already absurd).
    public static let maxMembersPerObject = 10_000
    /// Values one document may hold in all (objects, arrays and scalars): bounds the work and
    /// the memory of a body however it is shaped.
    public static let maxValues = 200_000
    /// Objects up to this size find duplicate keys by a scan (cheaper than hashing for the
    /// few keys a request has); larger ones through a set, so an object costs O(n), not O(n²).
    static let scanLimit = 16

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buf) throws(JSONError) -> JSONValue in
            var p = Cursor(buf: buf)
            p.skipWhitespace()
            let v = try p.value(depth: 0)
            p.skipWhitespace()
            guard p.i == buf.count else { throw p.error("trailing characters after the JSON value") }
            return v
        }
    }

    struct Cursor {
        let buf: UnsafeBufferPointer<UInt8>
        var i = 0
        var values = 0

        func error(_ r: String) -> JSONError { JSONError(offset: i, reason: r) }

        mutating func skipWhitespace() {
            while i < buf.count {
                switch buf[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(JSONError) -> JSONValue {
            guard i < buf.count else { throw error("unexpected end of input") }
            values += 1
            guard values <= JSONParser.maxValues else { throw error("more than \(JSONParser.maxValues) values in the document") }
            switch buf[i] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), 0x30...0x39: return .number(try number())
            default: throw error("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONError) {
            let n = word.utf8CodeUnitCount
            guard i + n <= buf.count else { throw error("unexpected end of input") }
            let w = UnsafeBufferPointer(start: word.utf8Start, count: n)
            for k in 0..<n where buf[i + k] != w[k] { throw error("invalid literal") }
            i += n
        }

        mutating func object(depth: Int) throws(JSONError) -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw error("nested too deeply") }
            i += 1
            var members: [JSONMember] = []
            var seen: Set<String> = []   // used once the object outgrows `scanLimit`
            skipWhitespace()
            if i < buf.count && buf[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard i < buf.count, buf[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try string()
                skipWhitespace()
                guard i < buf.count, buf[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
                i += 1
                skipWhitespace()
                let v = try value(depth: depth)
                if members.count < JSONParser.scanLimit {
                    if members.contains(where: { $0.key == key }) { throw error("duplicate key \"\(key)\"") }
                } else {
                    if seen.isEmpty { for m in members { seen.insert(m.key) } }
                    guard seen.insert(key).inserted else { throw error("duplicate key \"\(key)\"") }
                    guard members.count < JSONParser.maxMembersPerObject else {
                        throw error("more than \(JSONParser.maxMembersPerObject) members in one object")
                    }
                }
                members.append(JSONMember(key: key, value: v))
                skipWhitespace()
                guard i < buf.count else { throw error("unexpected end of input") }
                if buf[i] == UInt8(ascii: ",") { i += 1; continue }
                if buf[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw error("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(JSONError) -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw error("nested too deeply") }
            i += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if i < buf.count && buf[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth))
                skipWhitespace()
                guard i < buf.count else { throw error("unexpected end of input") }
                if buf[i] == UInt8(ascii: ",") { i += 1; continue }
                if buf[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        }

        mutating func number() throws(JSONError) -> String {
            let start = i
            if buf[i] == UInt8(ascii: "-") { i += 1 }
            guard i < buf.count, isDigit(buf[i]) else { throw error("invalid number") }
            if buf[i] == 0x30 {
                i += 1
                if i < buf.count && isDigit(buf[i]) { throw error("leading zeros are not allowed") }
            } else {
                while i < buf.count && isDigit(buf[i]) { i += 1 }
            }
            if i < buf.count && buf[i] == UInt8(ascii: ".") {
                i += 1
                guard i < buf.count, isDigit(buf[i]) else { throw error("invalid number") }
                while i < buf.count && isDigit(buf[i]) { i += 1 }
            }
            if i < buf.count && (buf[i] == UInt8(ascii: "e") || buf[i] == UInt8(ascii: "E")) {
                i += 1
                if i < buf.count && (buf[i] == UInt8(ascii: "+") || buf[i] == UInt8(ascii: "-")) { i += 1 }
                guard i < buf.count, isDigit(buf[i]) else { throw error("invalid number") }
                while i < buf.count && isDigit(buf[i]) { i += 1 }
            }
            guard i - start <= 64 else { throw error("number too long") }
            return String(decoding: UnsafeBufferPointer(rebasing: buf[start..<i]), as: UTF8.self)
        }

        mutating func string() throws(JSONError) -> String {
            i += 1   // opening quote
            let start = i
            var high: UInt8 = 0   // the OR of every byte: < 0x80 means all ASCII, valid UTF-8 as is
            // Fast path: no escapes. Eight bytes at a time while none is a quote, a backslash or
            // a control character (a long string — an attachment's base64 — is mostly this).
            // (The writer's test: a false positive only sends these bytes through the byte loop.)
            if let base = buf.baseAddress {
                while i + 8 <= buf.count {
                    let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                    if JSONValue.wordNeedsEscape(w) { break }
                    if w & 0x8080_8080_8080_8080 != 0 { high = 0x80 }
                    i += 8
                }
            }
            while i < buf.count {
                let b = buf[i]
                if b == UInt8(ascii: "\"") {
                    let slice = UnsafeBufferPointer(rebasing: buf[start..<i])
                    i += 1
                    if high < 0x80 { return String.fromASCII(slice) }
                    guard let s = String(validating: slice, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                    return s
                }
                if b == UInt8(ascii: "\\") { break }
                if b < 0x20 { throw error("control character in string") }
                high |= b
                i += 1
            }
            var out = Array(UnsafeBufferPointer(rebasing: buf[start..<i]))
            while i < buf.count {
                let b = buf[i]
                if b == UInt8(ascii: "\"") {
                    i += 1
                    guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                    return s
                }
                if b < 0x20 { throw error("control character in string") }
                if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
                i += 1
                guard i < buf.count else { break }
                let e = buf[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar <= 0xDBFF {
                        guard i + 1 < buf.count, buf[i] == UInt8(ascii: "\\"), buf[i + 1] == UInt8(ascii: "u") else {
                            throw error("lone surrogate in string")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low <= 0xDFFF else { throw error("invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                        throw error("lone surrogate in string")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("invalid escape")
                }
            }
            throw error("unterminated string")
        }

        mutating func hex4() throws(JSONError) -> UInt32 {
            guard i + 4 <= buf.count else { throw error("invalid \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = buf[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x37)
                case 0x61...0x66: d = UInt32(c - 0x57)
                default: throw error("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }
    }
}

@inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

extension String {
    /// A string of bytes the caller has checked are all ASCII (so valid UTF-8 as they are):
    /// one copy, no validation pass and no generic `init(validating:)` dispatch.
    @inline(__always)
    static func fromASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { dst in
            _ = dst.initialize(fromContentsOf: bytes)
            return bytes.count
        }
    }
}
