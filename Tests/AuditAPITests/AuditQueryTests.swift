/// AuditAPI: query parsing (every parameter, good and bad, unknown and repeated), opaque
/// cursors (round trip, tampering refused), RFC 3339 parsing and formatting.
import Testing
@testable import AuditAPI

@Suite struct AuditQueryTests {
    @Test func defaults() throws {
        let q = try AuditQuery.parse(nil).get()
        #expect(q == AuditQuery())
        #expect(q.limit == 50)
        #expect(try AuditQuery.parse("").get() == AuditQuery())
    }

    @Test func everyParameter() throws {
        let cursor = AuditCursor(acceptedAt: 1_795_000_000_123, id: 42).encoded
        let q = try AuditQuery.parse("limit=200&cursor=\(cursor)&to=Alice%2Btag%40Example.org&status=failed&since=2026-11-27T00:00:00Z&until=2026-11-28T00:00:00%2B01:00").get()
        #expect(q.limit == 200)
        #expect(q.cursor == AuditCursor(acceptedAt: 1_795_000_000_123, id: 42))
        #expect(q.recipient == "Alice+tag@Example.org")
        #expect(q.status == "failed")
        #expect(q.since == RFC3339.parse("2026-11-27T00:00:00Z"))
        #expect(q.until == RFC3339.parse("2026-11-27T23:00:00Z"))
        // '+' is a plus sign, not a space.
        #expect(try AuditQuery.parse("to=a+b@x.test").get().recipient == "a+b@x.test")
    }

    @Test(arguments: [
        ("limit=0", "limit"), ("limit=201", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
        ("limit=+5", "limit"), ("limit=99999999999999999999", "limit"),
        ("cursor=abc", "cursor"), ("cursor=", "cursor"), ("cursor=%%%", "cursor"), ("cursor=djEuMS4w", "cursor"),
        ("to=", "to"), ("to=a%0D%0Ab@x", "to"), ("to=\(String(repeating: "a", count: 321))", "to"),
        ("status=SENT", "status"), ("status=bounced", "status"), ("status=", "status"),
        ("since=yesterday", "since"), ("since=2026-02-30T00:00:00Z", "since"), ("until=2026-11-27", "until"),
        ("since=2026-11-27T24:00:00Z", "since"), ("since=2026-11-27T10:00:00", "since"),
        ("since=2026-11-28T00:00:00Z&until=2026-11-27T00:00:00Z", "until"),
        ("recipient=a@x.test", "recipient"), ("limit=5&limit=6", "limit"), ("to=%E0%A4", "to"), ("%ZZ=1", "%ZZ"),
        ("metadata.=x", "metadata."), ("metadata.a%20b=x", "metadata.a b"), ("metadata.order=", "metadata.order"),
        ("metadata.order=1&metadata.customer=2", "metadata.customer"), ("metadata.k=%ZZ", "metadata.k"),
        ("metadata=x", "metadata"), ("idempotency_key=", "idempotency_key"), ("idempotency_key=a%20b", "idempotency_key"),
        ("idempotency_key=\(String(repeating: "k", count: 256))", "idempotency_key"), ("message_id=", "message_id"),
        ("message_id=%3Ca%20b%3E", "message_id"), ("message_id=%3Cx%3E&message_id=%3Cy%3E", "message_id"),
    ])
    func badParametersAreNamed(query: String, field: String) {
        switch AuditQuery.parse(query) {
        case .success(let q):
            Issue.record("accepted \(query) as \(q)")
        case .failure(let p):
            #expect(p.fields.map(\.0) == [field], "\(query)")
            #expect(p.fields.allSatisfy { !$0.1.isEmpty })
        }
    }

    @Test func oneCallsEntry() throws {
        let q = try AuditQuery.parse("idempotency_key=550e8400-e29b-41d4-a716-446655440000&message_id=%3C5f0c1a2b3c%40shop.example%3E").get()
        #expect(q.idempotencyKey == "550e8400-e29b-41d4-a716-446655440000" && q.messageID == "<5f0c1a2b3c@shop.example>")
    }

    @Test func aMetadataFilter() throws {
        let q = try AuditQuery.parse("metadata.order=SP-2412-0489&status=sent").get()
        #expect(q.metadata?.key == "order" && q.metadata?.value == "SP-2412-0489" && q.status == "sent")
        #expect(try AuditQuery.parse("metadata.customer_id=C%207").get().metadata?.value == "C 7")
    }

    @Test func everyBadParameterIsReportedAtOnce() {
        guard case .failure(let p) = AuditQuery.parse("limit=0&status=nope&since=x&foo=1") else { Issue.record("accepted"); return }
        #expect(p.fields.map(\.0) == ["limit", "status", "since", "foo"])
    }

    @Test(arguments: [(Int64(0), Int64(1)), (Int64(1_795_000_000_123), Int64(42)), (Int64(-5), Int64(7)), (Int64(999_999_999_999_999_999), Int64(999_999_999_999_999_999))])
    func cursorsRoundTrip(at: Int64, id: Int64) {
        let c = AuditCursor(acceptedAt: at, id: id)
        let e = c.encoded
        #expect(e.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
        if at >= 0 { #expect(AuditCursor(encoded: e) == c) } else { #expect(AuditCursor(encoded: e) == nil) }
    }

    @Test func tamperedCursorsAreRefused() {
        let e = AuditCursor(acceptedAt: 1000, id: 5).encoded
        #expect(AuditCursor(encoded: e + "A") == nil)
        #expect(AuditCursor(encoded: String(e.dropLast())) == nil)
        #expect(AuditCursor(encoded: Base64URL.encode(Array("v2.1000.5".utf8))) == nil)
        #expect(AuditCursor(encoded: Base64URL.encode(Array("v1.1000.0".utf8))) == nil)
        #expect(AuditCursor(encoded: Base64URL.encode(Array("v1.1000.5.6".utf8))) == nil)
        #expect(AuditCursor(encoded: Base64URL.encode(Array("v1.10x0.5".utf8))) == nil)
    }

    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)), ("1970-01-01T00:00:00.5Z", 500), ("1970-01-01t00:00:01.123456z", 1123),
        ("1970-01-01 00:00:00+01:00", -3_600_000), ("2000-02-29T12:00:00-00:30", 951_827_400_000),
        ("2026-11-27T09:30:00Z", 1_795_771_800_000), ("2016-12-31T23:59:60Z", 1_483_228_799_999),
    ])
    func rfc3339Parses(text: String, ms: Int64) {
        #expect(RFC3339.parse(text) == ms)
    }

    @Test(arguments: ["", "2026-11-27", "2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z", "2025-02-29T00:00:00Z",
                      "2026-11-27T00:60:00Z", "2026-11-27T00:00:61Z", "2026-11-27T00:00:00.Z", "2026-11-27T00:00:00+1:00",
                      "2026-11-27T00:00:00+24:00", "2026-11-27T00:00:00Z ", "２０２６-11-27T00:00:00Z", "2026/11/27T00:00:00Z"])
    func rfc3339Refuses(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test(arguments: [Int64(0), 1, 999, 1_795_771_800_000, 951_782_400_000, -1, -86_400_001, 253_402_300_799_999])
    func rfc3339FormatRoundTrips(ms: Int64) {
        let s = RFC3339.format(milliseconds: ms)
        #expect(s.count == 24)
        #expect(RFC3339.parse(s) == ms)
    }
}
