/// AuditAPI: query parsing (every parameter, good and bad, unknown and repeated), opaque
/// cursors (round trip, tampering refused), RFC 3339 parsing and formatting, the substring
/// test of `q`, the bounded scan behind it (against a fake store of rows), the From field.
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
        ("q=", "q"), ("q=%20%20%09", "q"), ("q=a%0Ab", "q"), ("q=a%00", "q"), ("q=%C2%85next", "q"), ("q=%7F", "q"),
        ("q=\(String(repeating: "x", count: 201))", "q"), ("q=\(String(repeating: "é", count: 201))", "q"), ("q=%ZZ", "q"),
        ("q=%E0%A4", "q"), ("q=a&q=b", "q"), ("search=a", "search"), ("Q=a", "Q"),
        ("count=1", "count"), ("count=", "count"), ("count=TRUE", "count"), ("count=yes", "count"), ("count=true&count=true", "count"),
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

    /// `q` keeps what was typed (percent-decoded; `+` is a plus), up to 200 characters of any script.
    @Test(arguments: [
        ("q=invoice", "invoice"), ("q=Invoice%20INV-2026", "Invoice INV-2026"), ("q=a+b%40x", "a+b@x"), ("q=%C3%84rger", "Ärger"),
        ("q=%20order%20", " order "), ("q=\(String(repeating: "é", count: 200))", String(repeating: "é", count: 200)),
        ("q=%F0%9F%93%A6", "📦"), ("q=%40example.org", "@example.org"),
    ])
    func searchTextIsKeptAsTyped(query: String, text: String) throws {
        #expect(try AuditQuery.parse(query).get().search == text)
    }

    @Test func countAndSearchCombineWithTheOtherFilters() throws {
        let q = try AuditQuery.parse("q=inv&count=true&status=failed&to=a%40x.test&limit=10").get()
        #expect(q.search == "inv" && q.count && q.status == "failed" && q.recipient == "a@x.test" && q.limit == 10)
        #expect(try !AuditQuery.parse("count=false").get().count)
        #expect(try !AuditQuery.parse(nil).get().count && AuditQuery.parse(nil).get().search == nil)
        #expect(try AuditQuery.parse("q=a").get() != AuditQuery.parse("q=b").get())
        #expect(try AuditQuery.parse("count=true").get() != AuditQuery())
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

@Suite struct AuditSearchTests {
    @Test(arguments: [
        ("inv", "Invoice 12", true), ("INVOICE", "invoice", true), ("voice 1", "Invoice 12", true), ("12", "Invoice 12", true),
        ("invoice 13", "Invoice 12", false), ("@example.org", "Bob@Example.ORG", true), ("bob@", "Bob@Example.org", true),
        ("ärger", "ÄRGER im Büro", true), ("BÜRO", "Ärger im büro", true), ("ÄRGER", "aerger", false), ("ä", "a", false),
        ("straße", "STRASSE", false), ("straße", "Straße 5", true), ("x", "", false), ("Ǆ", "ǆ", true),
        ("📦 versandt", "Paket 📦 VERSANDT", true), ("é", "cafe", false), ("k", "KELVIN", true), ("order #1", "Order #12", true),
        ("a", "ÄÖÜ", false), ("long needle longer than the hay", "short", false),
    ])
    func matchesInAnyCase(text: String, field: String, expected: Bool) {
        #expect(AuditSearch(text).matches(field) == expected, "\(text) in \(field)")
    }

    @Test func lowercaseOfTheNeedleIsTakenOnce() {
        let s = AuditSearch("Bob@Example.ORG")
        #expect(s.text == "Bob@Example.ORG")
        #expect(s.matches("bob@example.org") && s.matches("Mail to BOB@EXAMPLE.ORG today"))
    }
}

@Suite struct AuditScanTests {
    /// A fake store: rows 1…n, newest (n) first; a row's cursor is (accepted-at = id, id).
    struct Rows {
        let n: Int
        var statements: [(after: AuditCursor?, limit: Int)] = []
        init(_ n: Int) { self.n = n }
        mutating func page(after: AuditCursor?, limit: Int) -> [Int] {
            statements.append((after, limit))
            let start = after.map { Int($0.id) - 1 } ?? n
            return start < 1 ? [] : Array(stride(from: start, through: max(1, start - limit + 1), by: -1))
        }
    }

    static func scan(_ store: inout Rows, wanted: Int, budget: Int = AuditQuery.searchBudget, after: AuditCursor? = nil,
                     _ isMatch: @escaping (Int) -> Bool) -> AuditScan<Int> {
        var scan = AuditScan<Int>(wanted: wanted, budget: budget, after: after, isMatch: isMatch,
                                  position: { AuditCursor(acceptedAt: Int64($0), id: Int64($0)) })
        while let (after, limit) = scan.next {
            scan.receive(store.page(after: after, limit: limit), limit: limit)
        }
        return scan
    }

    @Test func aCommonWordFillsThePageFromTheNewestRows() {
        var store = Rows(1_000_000)
        let s = AuditScanTests.scan(&store, wanted: 51) { $0 % 3 == 0 }
        #expect(s.matches.count == 51 && s.matches.first == 999_999 && !s.partial)
        #expect(s.examined == AuditScan<Int>.firstChunk && store.statements.count == 1)
    }

    /// The worst case: nothing matches in a million rows — at most the budget is read, in a few
    /// statements, and the scan says where to resume.
    @Test func aWordThatMatchesNothingReadsTheBudgetAndNoMore() throws {
        var store = Rows(1_000_000)
        let s = AuditScanTests.scan(&store, wanted: 51) { _ in false }
        #expect(s.examined == AuditQuery.searchBudget && s.matches.isEmpty && s.partial && !s.reachedEnd)
        #expect(s.resume == AuditCursor(acceptedAt: 990_001, id: 990_001))
        #expect(store.statements.map(\.limit).reduce(0, +) == AuditQuery.searchBudget)
        #expect(store.statements.allSatisfy { $0.limit <= AuditScan<Int>.chunk })
        #expect(store.statements.count <= AuditQuery.searchBudget / AuditScan<Int>.chunk + 1)
    }

    @Test func theEndOfTheRowsEndsTheScan() {
        var store = Rows(3_000)
        let s = AuditScanTests.scan(&store, wanted: 51) { $0 == 7 || $0 == 2_999 }
        #expect(s.matches == [2_999, 7] && s.reachedEnd && !s.partial && s.examined == 3_000)
        var empty = Rows(0)
        let e = AuditScanTests.scan(&empty, wanted: 51) { _ in true }
        #expect(e.matches.isEmpty && e.reachedEnd && !e.partial && e.examined == 0 && empty.statements.count == 1)
    }

    /// Following `resume` from one partial scan to the next visits every row once: the matches
    /// of all the requests are exactly the rows that match, newest first.
    @Test(arguments: [1, 6, 50])
    func resumingVisitsEveryRowOnce(limit: Int) {
        var store = Rows(25_000)
        let match: (Int) -> Bool = { $0 % 4_001 == 0 || $0 == 1 || (12_000...12_020).contains($0) }
        var found: [Int] = []
        var after: AuditCursor?
        for _ in 0..<100 {
            // As the service pages: limit + 1 wanted; a full page's `next` is its last row,
            // a page the budget cut short resumes after the last row examined.
            let s = AuditScanTests.scan(&store, wanted: limit + 1, budget: 3_000, after: after, match)
            let page = s.matches.prefix(limit)
            found += page
            if s.matches.count > limit, let last = page.last {
                after = AuditCursor(acceptedAt: Int64(last), id: Int64(last))
            } else if s.partial {
                after = s.resume
            } else {
                break
            }
        }
        #expect(found == (1...25_000).reversed().filter(match))
    }

    @Test func theFirstReadIsSizedForThePage() {
        var store = Rows(100_000)
        _ = AuditScanTests.scan(&store, wanted: 1_001) { $0 % 2 == 0 }   // count=true: up to the cap
        #expect(store.statements.first?.limit == 2_002)
        var small = Rows(100_000)
        _ = AuditScanTests.scan(&small, wanted: 50, budget: 100) { _ in false }
        #expect(small.statements.map(\.limit) == [100], "never past the budget")
    }
}
