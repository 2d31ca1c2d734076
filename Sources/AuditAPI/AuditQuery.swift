/// AuditQuery: the query string of `GET /api/audit` (SPEC §4) → a validated query, or the
/// name of each bad parameter and why (422 `validation_failed`).
///
/// Parameters: `limit` (1–200, default 50), `cursor` (opaque, from a page's `next`), `to`
/// (recipient, exact, case-insensitive), `status` (queued, sending, deferred, sent, failed),
/// `since` / `until` (RFC 3339; `since ≤ accepted-at < until`), `idempotency_key` and
/// `message_id` (one call's entry, exactly), `metadata.KEY` (entries whose
/// metadata has KEY with exactly that value; one at a time), `q` (subject or recipient
/// containing the text, any case — a bounded scan, see `AuditScan`), `count` (`true`: the
/// answer carries `total`, a count capped at `countCap`). Unknown parameters are refused
/// (a misspelt filter must not silently return everything), and so is a parameter given twice.
/// Values are percent-decoded (RFC 3986 §2.1); `+` is a plus sign, not a space, so an
/// unencoded `to=a+tag@example.com` means what it says.

public struct AuditQuery: Sendable, Equatable {
    public var limit = 50
    public var cursor: AuditCursor?
    public var recipient: String?
    public var status: String?
    /// Milliseconds since the epoch.
    public var since: Int64?
    public var until: Int64?
    /// `metadata.KEY=VALUE`.
    public var metadata: (key: String, value: String)?
    /// `idempotency_key` / `message_id`: the entry of one call, exactly.
    public var idempotencyKey: String?
    public var messageID: String?
    /// `q`: entries whose subject or any recipient address contains this text, in any case
    /// (Unicode lowercase on both sides). No index holds substrings, so this is the one
    /// filter that is not an index range: it checks the rows the other filters give, newest
    /// first, and examines at most `searchBudget` of them per request (`AuditScan`).
    public var search: String?
    /// `count=true`: the answer says how many entries match, up to `countCap`.
    public var count = false

    public init() {}

    /// `q` checks at most this many entries per request: reading them costs about what a page of
    /// 200 does ten times over, whatever the size of the table (measured at 1 000 000 rows:
    /// Tests/IntegrationTests/AuditPageTests `searchAtScale`). `next` then resumes the search.
    public static let searchBudget = 10_000
    /// `count=true` counts at most this many entries (one LIMIT-bounded read of an index, never
    /// the whole table); beyond it the answer is "more than 1 000".
    public static let countCap = 1_000
    /// `q`'s longest text: longer than any address search, short enough to log.
    public static let maxSearchLength = 200

    public static func == (a: AuditQuery, b: AuditQuery) -> Bool {
        a.limit == b.limit && a.cursor == b.cursor && a.recipient == b.recipient && a.status == b.status && a.since == b.since
            && a.until == b.until && a.metadata?.key == b.metadata?.key && a.metadata?.value == b.metadata?.value
            && a.idempotencyKey == b.idempotencyKey && a.messageID == b.messageID && a.search == b.search && a.count == b.count
    }

    public static let statuses = ["queued", "sending", "deferred", "sent", "failed", "uncertain", "cancelled"]
    public static let parameters = ["limit", "cursor", "to", "status", "since", "until", "idempotency_key", "message_id", "q", "count"]

    /// Each bad parameter and why, in the order given (422 `validation_failed` fields).
    public struct Problems: Error, Sendable {
        public var fields: [(String, [String])]
    }

    public static func parse(_ query: String?) -> Result<AuditQuery, Problems> {
        var q = AuditQuery()
        var errors: [(String, [String])] = []
        var seen: Set<String> = []
        func fail(_ name: String, _ reason: String) { errors.append((name, [reason])) }
        for pair in (query ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let (rawName, rawValue) = pair.firstIndex(of: "=").map { (pair[..<$0], pair[pair.index(after: $0)...]) } ?? (pair, "")
            guard let name = percentDecode(rawName) else { fail(String(rawName.prefix(64)), "is not percent-encoded correctly"); continue }
            if name.hasPrefix("metadata.") {
                let key = String(name.dropFirst("metadata.".count))
                guard let value = percentDecode(rawValue) else { fail(name, "is not percent-encoded correctly"); continue }
                if q.metadata != nil {
                    fail(name, "one metadata filter at a time")
                } else if !(1...40).contains(key.utf8.count) || !key.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }) {
                    fail(String(name.prefix(64)), "names no metadata key (1 to 40 of A–Z a–z 0–9 _ -)")
                } else if value.isEmpty || value.count > 500 {
                    fail(name, "must be a value of 1 to 500 characters")
                } else {
                    q.metadata = (key, value)
                }
                continue
            }
            guard parameters.contains(name) else { fail(String(name.prefix(64)), "is not a known parameter (\(parameters.joined(separator: ", ")), metadata.KEY)"); continue }
            guard seen.insert(name).inserted else { fail(name, "must be given once"); continue }
            guard let value = percentDecode(rawValue) else { fail(name, "is not percent-encoded correctly"); continue }
            switch name {
            case "limit":
                if let n = Int(value), value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), (1...200).contains(n) {
                    q.limit = n
                } else {
                    fail(name, "must be a whole number from 1 to 200")
                }
            case "cursor":
                if let c = AuditCursor(encoded: value) { q.cursor = c } else { fail(name, "is not a cursor this server issued") }
            case "idempotency_key":
                if value.isEmpty || value.utf8.count > 255 || !value.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) {
                    fail(name, "must be an Idempotency-Key: 1 to 255 printable ASCII characters")
                } else {
                    q.idempotencyKey = value
                }
            case "message_id":
                if value.isEmpty || value.utf8.count > 998 || value.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) {
                    fail(name, "must be a Message-ID such as <…@shop.example> (percent-encoded: %3C…%3E)")
                } else {
                    q.messageID = value
                }
            case "to":
                if value.isEmpty || value.utf8.count > 320 {
                    fail(name, "must be an address of 1 to 320 bytes")
                } else if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                    fail(name, "must not contain control characters")
                } else {
                    q.recipient = value
                }
            case "q":
                if value.count > maxSearchLength {
                    fail(name, "must be at most \(maxSearchLength) characters")
                } else if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || (0x80...0x9F).contains($0.value) }) {
                    fail(name, "must not contain control characters")
                } else if value.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) {
                    fail(name, "must contain some text to search for (1 to \(maxSearchLength) characters, not only spaces)")
                } else {
                    q.search = value
                }
            case "count":
                switch value {
                case "true": q.count = true
                case "false": q.count = false
                default: fail(name, "must be true or false")
                }
            case "status":
                if statuses.contains(value) { q.status = value } else { fail(name, "must be one of \(statuses.joined(separator: ", "))") }
            case "since", "until":
                if let ms = RFC3339.parse(value) {
                    if name == "since" { q.since = ms } else { q.until = ms }
                } else {
                    fail(name, "must be an RFC 3339 date-time, e.g. 2026-11-27T09:30:00Z")
                }
            default:
                break
            }
        }
        if errors.isEmpty, let s = q.since, let u = q.until, s >= u {
            fail("until", "must be later than since")
        }
        return errors.isEmpty ? .success(q) : .failure(Problems(fields: errors))
    }

    /// RFC 3986 §2.1 percent-decoding to UTF-8; nil for a bad escape or invalid UTF-8.
    static func percentDecode(_ s: Substring) -> String? {
        guard s.utf8.contains(0x25) else { return String(s) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            guard b == 0x25 else { bytes.append(b); continue }
            guard let h = it.next().flatMap(hex), let l = it.next().flatMap(hex) else { return nil }
            bytes.append(h << 4 | l)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
}

/// A page's position: the (accepted-at, id) of its last row. Sent as an opaque base64url token
/// (`v1.<accepted-at>.<id>` inside) so clients do not build their own, and a later format can
/// change without breaking anyone who follows `next`.
public struct AuditCursor: Sendable, Equatable {
    public var acceptedAt: Int64
    public var id: Int64

    public init(acceptedAt: Int64, id: Int64) {
        self.acceptedAt = acceptedAt
        self.id = id
    }

    public var encoded: String {
        Base64URL.encode(Array("v1.\(acceptedAt).\(id)".utf8))
    }

    public init?(encoded: String) {
        guard encoded.utf8.count <= 64, let bytes = Base64URL.decode(encoded) else { return nil }
        let parts = bytes.split(separator: 0x2E, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].elementsEqual("v1".utf8),
              let a = AuditCursor.number(parts[1]), let i = AuditCursor.number(parts[2]), i > 0 else { return nil }
        acceptedAt = a
        id = i
    }

    static func number(_ digits: ArraySlice<UInt8>) -> Int64? {
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(String(decoding: digits, as: UTF8.self))
    }
}

/// RFC 4648 §5 base64url without padding.
enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for b in bytes {
            acc = acc << 8 | UInt32(b)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(alphabet[Int(acc >> UInt32(bits) & 63)])
            }
        }
        if bits > 0 { out.append(alphabet[Int(acc << UInt32(6 - bits) & 63)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ s: String) -> [UInt8]? {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for c in s.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        // Leftover bits must be zero padding (canonical encoding only).
        if bits >= 6 || acc & ((1 << UInt32(bits)) - 1) != 0 { return nil }
        return out
    }
}

/// `q`'s test: does a subject or an address contain the text, in any case? Both sides are
/// lowercased (Unicode's full mapping, so `STRASSE`/`straße` stay apart but `ÄRGER` finds
/// `ärger`); an all-ASCII field is folded byte by byte without a copy. The same Swift code
/// answers for both stores, so SQLite (whose `NOCASE` and `LIKE` fold ASCII only) and
/// PostgreSQL (whose `lower` follows the database's collation) cannot disagree.
public struct AuditSearch: Sendable, Equatable {
    public let text: String
    let needle: [UInt8]
    let needleIsASCII: Bool

    public init(_ text: String) {
        self.text = text
        needle = Array(text.lowercased().utf8)
        needleIsASCII = needle.allSatisfy { $0 < 0x80 }
    }

    public func matches(_ field: String) -> Bool {
        if needle.isEmpty { return true }
        let utf8 = field.utf8
        if utf8.allSatisfy({ $0 < 0x80 }) {
            guard needleIsASCII else { return false }   // lowercase ASCII stays ASCII
            return AuditSearch.find(needle, in: utf8) { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        }
        return AuditSearch.find(needle, in: field.lowercased().utf8) { $0 }
    }

    /// Byte search (UTF-8 is self-synchronising: a whole needle only matches at a character's
    /// start); fields are short (an address ≤ 320 bytes, a subject ≤ 998), so no table.
    static func find<C: Collection>(_ needle: [UInt8], in hay: C, fold: (UInt8) -> UInt8) -> Bool where C.Element == UInt8 {
        let hay = Array(hay)
        guard hay.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        while i <= hay.count - needle.count {
            if fold(hay[i]) == first {
                var j = 1
                while j < needle.count && fold(hay[i + j]) == needle[j] { j += 1 }
                if j == needle.count { return true }
            }
            i += 1
        }
        return false
    }
}

/// The bounded scan behind `q` (and `count=true`), as a value: it names the keyset page to
/// read next, takes the rows read, and stops when it holds `wanted` matches, when the store
/// has no older row, or when it has examined `budget` rows — never more, whatever the size of
/// the table. The rows come from the index the other filters lead with (accepted-at's when
/// there are none), newest first, so the plan is a bounded walk of one index: no sort, no
/// full scan, at most `budget` rows and `budget / chunk + 1` statements per request.
///
/// Where the budget stopped it (`partial`), `resume` is the (accepted-at, id) of the last row
/// examined: a page's `next` cursor set to it searches the older rows on the following request.
public struct AuditScan<Row> {
    public let wanted: Int
    public let budget: Int
    public private(set) var matches: [Row] = []
    public private(set) var examined = 0
    /// The last row examined: where a partial scan resumes.
    public private(set) var resume: AuditCursor?
    /// The store gave fewer rows than asked: nothing older is left.
    public private(set) var reachedEnd = false
    let isMatch: (Row) -> Bool
    let position: (Row) -> AuditCursor

    /// Rows per statement: a first read the size of a few pages (a common word fills the page
    /// from the newest rows), then larger ones so that a rare word costs few statements, each
    /// still a short keyset read (SQLite answers inside the loop: see `Database+Audit`).
    public static var firstChunk: Int { 250 }
    public static var chunk: Int { 2_500 }

    public init(wanted: Int, budget: Int = AuditQuery.searchBudget, after: AuditCursor?,
                isMatch: @escaping (Row) -> Bool, position: @escaping (Row) -> AuditCursor) {
        precondition(wanted > 0 && budget > 0, "AuditScan needs something to look for and rows to look at")
        self.wanted = wanted
        self.budget = budget
        self.resume = after
        self.isMatch = isMatch
        self.position = position
    }

    /// The page to read next (rows older than `after`, at most `limit`); nil: the scan is over.
    public var next: (after: AuditCursor?, limit: Int)? {
        guard matches.count < wanted, !reachedEnd, examined < budget else { return nil }
        let size = examined == 0 ? max(AuditScan.firstChunk, 2 * wanted) : AuditScan.chunk
        return (resume, min(size, AuditScan.chunk, budget - examined))
    }

    /// The rows of the page `next` named (`limit` of them asked for), newest first.
    public mutating func receive(_ rows: [Row], limit: Int) {
        examined += rows.count
        for r in rows where matches.count < wanted && isMatch(r) { matches.append(r) }
        if let last = rows.last { resume = position(last) }
        if rows.count < limit { reachedEnd = true }
    }

    /// Stopped by the budget before it found `wanted` matches, with older rows not examined.
    public var partial: Bool { next == nil && matches.count < wanted && !reachedEnd }
}
