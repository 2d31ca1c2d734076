/// DNSMessage: just enough of RFC 1035 to ask for A (RFC 1035) and AAAA (RFC 3596) records
/// and read the answer — query encoding, response decoding with name compression (§4.1.4,
/// loop-guarded), CNAME chains inside the answer section, TTLs. Pure: bytes in, values out.
/// Refuses what it does not understand rather than guessing. Limitation: a truncated (TC)
/// answer is used as far as it goes; there is no TCP fallback (relay names have few addresses).
public enum DNSRecordType: UInt16, Sendable {
    case a = 1
    case cname = 5
    case aaaa = 28
}

public struct DNSAnswer: Sendable, Equatable {
    /// IP literals (IPv4 dotted quad or IPv6 text).
    public var addresses: [String]
    /// The smallest TTL of the records used, in seconds.
    public var ttl: UInt32
}

public enum DNSResponse: Sendable, Equatable {
    case answer(DNSAnswer)
    /// NXDOMAIN: the name does not exist.
    case nameError
    /// SERVFAIL, REFUSED, …: ask another server.
    case serverFailure(rcode: Int)
}

public struct DNSFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed DNS message: \(reason)" }
}

public enum DNSMessage {
    /// RFC 1035 §2.3.4.
    public static let maxNameLength = 253
    public static let maxLabelLength = 63

    /// Whether `name` can be asked for: LDH labels (underscores tolerated), 1…63 octets each.
    public static func isQueryableName(_ name: String) -> Bool {
        var n = name
        if n.hasSuffix(".") { n.removeLast() }
        guard !n.isEmpty, n.utf8.count <= maxNameLength else { return false }
        for label in n.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= maxLabelLength,
                  label.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
            else { return false }
        }
        return true
    }

    /// A standard recursive query (RD set) for one name and type.
    public static func query(id: UInt16, name: String, type: DNSRecordType) -> [UInt8] {
        var out: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        var n = name
        if n.hasSuffix(".") { n.removeLast() }
        for label in n.split(separator: ".") {
            out.append(UInt8(label.utf8.count))
            out += label.utf8
        }
        out.append(0)
        out += [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return out
    }

    /// The ID of a message (0 when too short to have one).
    public static func id(of message: [UInt8]) -> UInt16 {
        message.count >= 2 ? UInt16(message[0]) << 8 | UInt16(message[1]) : 0
    }

    /// Decodes a response to `query(id:name:type:)`. Throws when it is not a response to that
    /// question (wrong ID, not a response, other question) or is malformed.
    public static func parseResponse(_ m: [UInt8], id: UInt16, name: String, type: DNSRecordType) throws(DNSFormatError) -> DNSResponse {
        guard m.count >= 12 else { throw DNSFormatError("shorter than a header") }
        guard self.id(of: m) == id else { throw DNSFormatError("wrong ID") }
        guard m[2] & 0x80 != 0 else { throw DNSFormatError("not a response") }
        guard m[2] & 0x78 == 0 else { throw DNSFormatError("not a standard query response") }
        let rcode = Int(m[3] & 0x0F)
        let qd = Int(m[4]) << 8 | Int(m[5])
        let an = Int(m[6]) << 8 | Int(m[7])
        guard qd == 1 else { throw DNSFormatError("\(qd) questions") }
        var pos = 12
        let qname = try readName(m, &pos)
        guard pos + 4 <= m.count else { throw DNSFormatError("truncated question") }
        let qtype = UInt16(m[pos]) << 8 | UInt16(m[pos + 1])
        pos += 4
        var want = name.lowercased()
        if want.hasSuffix(".") { want.removeLast() }
        guard qname == want, qtype == type.rawValue else { throw DNSFormatError("answers another question") }
        switch rcode {
        case 0: break
        case 3: return .nameError
        default: return .serverFailure(rcode: rcode)
        }
        var owners: Set<String> = [want]
        var addresses: [String] = []
        var ttl = UInt32.max
        for _ in 0..<an {
            let owner = try readName(m, &pos)
            guard pos + 10 <= m.count else { throw DNSFormatError("truncated record") }
            let rtype = UInt16(m[pos]) << 8 | UInt16(m[pos + 1])
            let rclass = UInt16(m[pos + 2]) << 8 | UInt16(m[pos + 3])
            let rttl = UInt32(m[pos + 4]) << 24 | UInt32(m[pos + 5]) << 16 | UInt32(m[pos + 6]) << 8 | UInt32(m[pos + 7])
            let len = Int(m[pos + 8]) << 8 | Int(m[pos + 9])
            pos += 10
            guard pos + len <= m.count else { throw DNSFormatError("record data past the end") }
            defer { pos += len }
            guard rclass == 1, owners.contains(owner) else { continue }
            switch rtype {
            case DNSRecordType.cname.rawValue:
                var p = pos
                owners.insert(try readName(m, &p))
                ttl = min(ttl, rttl)
            case type.rawValue where type == .a && len == 4:
                addresses.append("\(m[pos]).\(m[pos + 1]).\(m[pos + 2]).\(m[pos + 3])")
                ttl = min(ttl, rttl)
            case type.rawValue where type == .aaaa && len == 16:
                addresses.append(ipv6Text(Array(m[pos..<pos + 16])))
                ttl = min(ttl, rttl)
            default:
                continue
            }
        }
        return .answer(DNSAnswer(addresses: addresses, ttl: addresses.isEmpty ? 0 : ttl))
    }

    /// Reads a (possibly compressed) name at `pos`, leaving `pos` after it; lower-cased, no
    /// trailing dot.
    static func readName(_ m: [UInt8], _ pos: inout Int) throws(DNSFormatError) -> String {
        var labels: [String] = []
        var p = pos
        var jumped = false
        var jumps = 0
        var length = 0
        while true {
            guard p < m.count else { throw DNSFormatError("name past the end") }
            let len = Int(m[p])
            if len == 0 {
                if !jumped { pos = p + 1 }
                break
            }
            if len & 0xC0 == 0xC0 {
                guard p + 1 < m.count else { throw DNSFormatError("pointer past the end") }
                let target = (len & 0x3F) << 8 | Int(m[p + 1])
                if !jumped { pos = p + 2 }
                jumped = true
                jumps += 1
                // Pointers must go backwards (RFC 1035 §4.1.4: "a prior occurrence"): no loops.
                guard jumps <= 64, target < p else { throw DNSFormatError("compression loop") }
                p = target
                continue
            }
            guard len & 0xC0 == 0 else { throw DNSFormatError("unknown label type") }
            guard p + 1 + len <= m.count else { throw DNSFormatError("label past the end") }
            length += len + 1
            guard length <= 255 else { throw DNSFormatError("name too long") }
            labels.append(String(decoding: m[(p + 1)..<(p + 1 + len)], as: UTF8.self).lowercased())
            p += 1 + len
        }
        return labels.joined(separator: ".")
    }

    static func ipv6Text(_ b: [UInt8]) -> String {
        var groups: [UInt16] = []
        for i in stride(from: 0, to: 16, by: 2) { groups.append(UInt16(b[i]) << 8 | UInt16(b[i + 1])) }
        // RFC 5952: compress the longest run (≥ 2) of zero groups.
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ g: UInt16) -> String { String(g, radix: 16) }
        if bestStart < 0 { return groups.map(hex).joined(separator: ":") }
        let head = groups[..<bestStart].map(hex).joined(separator: ":")
        let tail = groups[(bestStart + bestLen)...].map(hex).joined(separator: ":")
        return head + "::" + tail
    }
}
