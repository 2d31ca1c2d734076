/// Store: the audit's keyset pages — newest first, stable while rows are inserted, every
/// filter alone and combined, and query plans that walk one index with no sort step and no
/// table scan (what keeps a page fast at a million rows); the search of `q` (`AuditScan`)
/// driven over those pages finds what a filter in Swift finds, reading at most its budget.
import AuditAPI
import Testing
@testable import Store

@Suite struct AuditPageQueryTests {
    static func message(_ i: Int, at: Int64, to: String) -> NewMessage {
        NewMessage(acceptedAt: at, tokenID: 1, tokenName: "t", idempotencyKey: "k\(i)", fingerprint: [1], responseStatus: 200,
                   responseBody: [], mailboxName: "m", mailboxAddress: "from@example.com", recipient: to, subject: "s\(i)",
                   template: nil, messageID: "<\(i)@example.com>", raw: Array("raw \(i)".utf8))
    }

    /// 30 rows: accepted_at 1000 + 10·(i/2) (pairs share a millisecond, so the id breaks ties),
    /// recipients a/b/c in turn, every 5th row failed.
    static func seeded() throws -> Database {
        let db = try Database(path: tempDatabasePath())
        try db.begin()
        for i in 0..<30 {
            let id = try db.insertAccepted(message(i, at: 1000 + Int64(i / 2) * 10, to: ["a@x.test", "b@x.test", "c@x.test"][i % 3]))
            if i % 5 == 0 {
                try db.recordAttempt(id: id, status: "failed", outcome: "failed", reply: "550 no", atMilliseconds: 5000, nextAttemptAt: 0)
            }
        }
        try db.commit()
        return db
    }

    func walk(_ db: Database, _ filter: AuditFilter, pageSize: Int) throws -> [Int64] {
        var ids: [Int64] = []
        var after: AuditCursor?
        while true {
            let page = try db.auditPage(filter, limit: pageSize, after: after)
            ids += page.map(\.id)
            guard page.count == pageSize, let last = page.last else { return ids }
            after = AuditCursor(acceptedAt: last.acceptedAt, id: last.id)
        }
    }

    @Test(arguments: [
        (AuditFilter(), 30),
        (AuditFilter(recipient: "A@X.TEST"), 10),
        (AuditFilter(status: "failed"), 6),
        (AuditFilter(status: "queued"), 24),
        (AuditFilter(recipient: "b@x.test", status: "failed"), 2),
        (AuditFilter(since: 1050), 20),
        (AuditFilter(until: 1050), 10),
        (AuditFilter(since: 1050, until: 1100), 10),
        (AuditFilter(recipient: "c@x.test", since: 1020, until: 1120), 7),
        (AuditFilter(status: "failed", since: 1000, until: 1001), 1),
        (AuditFilter(recipient: "nobody@x.test"), 0),
        (AuditFilter(status: "sent"), 0),
    ])
    func pagesMatchTheFilterNewestFirst(filter: AuditFilter, expected: Int) throws {
        let db = try AuditPageQueryTests.seeded()
        // The reference: every row, filtered in Swift.
        let all = try db.auditPage(AuditFilter(), limit: 1000)
        let want = all.filter { e in
            (filter.recipient.map { e.recipient.lowercased() == $0.lowercased() } ?? true)
                && (filter.status.map { e.status == $0 } ?? true)
                && (filter.since.map { e.acceptedAt >= $0 } ?? true)
                && (filter.until.map { e.acceptedAt < $0 } ?? true)
        }.map(\.id)
        #expect(want.count == expected)
        for size in [1, 3, 7, 200] {
            #expect(try walk(db, filter, pageSize: size) == want, "page size \(size)")
        }
    }

    @Test func newestFirstWithTheIDBreakingTies() throws {
        let db = try AuditPageQueryTests.seeded()
        let rows = try db.auditPage(AuditFilter(), limit: 1000)
        for (a, b) in zip(rows, rows.dropFirst()) {
            #expect(a.acceptedAt > b.acceptedAt || (a.acceptedAt == b.acceptedAt && a.id > b.id))
        }
    }

    @Test func aCursorIsStableWhileNewMailArrives() throws {
        let db = try AuditPageQueryTests.seeded()
        let first = try db.auditPage(AuditFilter(), limit: 10)
        let last = try #require(first.last)
        // New rows, some in the same millisecond as the cursor's row.
        try db.begin()
        for i in 100..<105 { try db.insertAccepted(AuditPageQueryTests.message(i, at: i == 100 ? last.acceptedAt : 9000, to: "a@x.test")) }
        try db.commit()
        let second = try db.auditPage(AuditFilter(), limit: 10, after: AuditCursor(acceptedAt: last.acceptedAt, id: last.id))
        let reference = try db.auditPage(AuditFilter(), limit: 1000)
        let index = try #require(reference.firstIndex { $0.id == last.id })
        #expect(second.map(\.id) == reference[(index + 1)...].prefix(10).map(\.id))
        #expect(!second.contains { $0.id > 30 }, "no new row may appear behind the cursor")
    }

    @Test(arguments: [
        AuditFilter(), AuditFilter(recipient: "a@x.test"), AuditFilter(status: "failed"),
        AuditFilter(recipient: "a@x.test", status: "failed"), AuditFilter(since: 1, until: 2),
        AuditFilter(recipient: "a@x.test", since: 1), AuditFilter(status: "sent", until: 5),
    ])
    func everyPageWalksAnIndexWithoutSorting(filter: AuditFilter) throws {
        let db = try AuditPageQueryTests.seeded()
        for paged in [false, true] {
            let plan = try db.auditPagePlan(filter, paged: paged).joined(separator: " | ")
            #expect(plan.contains("USING INDEX messages_") || plan.contains("USING COVERING INDEX messages_"), "\(plan)")
            #expect(!plan.contains("TEMP B-TREE"), "\(plan)")
            let expectedIndex = filter.recipient != nil ? "messages_recipient" : filter.status != nil ? "messages_status" : "messages_accepted"
            #expect(plan.contains(expectedIndex), "\(plan)")
        }
    }

    /// One call's entry: by its key or its Message-ID, from that index, never a sort or a scan.
    @Test(arguments: [
        AuditFilter(idempotencyKey: "k3"), AuditFilter(messageID: "<3@example.com>"), AuditFilter(status: "sent", idempotencyKey: "k3"),
        AuditFilter(recipient: "a@x.test", messageID: "<3@example.com>"), AuditFilter(idempotencyKey: "k3", messageID: "<3@example.com>"),
    ])
    func oneCallsEntryFromItsIndex(filter: AuditFilter) throws {
        let db = try AuditPageQueryTests.seeded()
        for paged in [false, true] {
            let plan = try db.auditPagePlan(filter, paged: paged).joined(separator: " | ")
            let index = filter.idempotencyKey != nil ? "messages_idempotency_key" : "messages_message_id"
            #expect(plan.contains(index) && !plan.contains("TEMP B-TREE") && !plan.contains("SCAN"), "\(plan)")
        }
        let found = try db.auditPage(filter, limit: 10)
        #expect(found.allSatisfy { e in filter.idempotencyKey.map { e.idempotencyKey == $0 } ?? true })
        #expect(found.allSatisfy { e in filter.messageID.map { e.messageID == $0 } ?? true })
    }

    /// On 100 000 entries (random UUID keys, as integrators send): each lookup one index probe.
    @Test func keyAndMessageIDFindExactlyOneEntry() throws {
        let db = try AuditPageQueryTests.seeded()
        try db.execute("""
            WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 101000)
            INSERT INTO messages (accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject, message_id,
                                  status, attempts, next_attempt_at)
            SELECT 100000 + i, 't', lower(hex(randomblob(16))), 'm', 'from@example.com', 'r' || (i % 5000) || '@x.test', 's',
                   '<' || printf('%08x', i) || lower(hex(randomblob(12))) || '@example.com>', 'sent', 1, 0 FROM n
            """)
        for filter in [AuditFilter(idempotencyKey: "k7"), AuditFilter(messageID: "<7@example.com>")] {
            let plan = try db.auditPagePlan(filter, paged: false).joined(separator: " | ")
            #expect(plan.contains("SEARCH messages USING INDEX messages_") && !plan.contains("TEMP B-TREE"), "\(plan)")
        }
        #expect(try db.auditPage(AuditFilter(idempotencyKey: "k7"), limit: 10).map(\.idempotencyKey) == ["k7"])
        #expect(try db.auditPage(AuditFilter(messageID: "<7@example.com>"), limit: 10).map(\.messageID) == ["<7@example.com>"])
        #expect(try db.auditPage(AuditFilter(idempotencyKey: "K7"), limit: 10).isEmpty, "exact")
    }

    /// A metadata page: the range of the metadata index for the pair, then each entry by its
    /// primary key — never a sort, whatever else is filtered; and it finds exactly the rows.
    @Test(arguments: [
        AuditFilter(metadata: MetadataPair(key: "order", value: "o3")), AuditFilter(status: "sent", metadata: MetadataPair(key: "order", value: "o3")),
        AuditFilter(recipient: "a@x.test", since: 1, metadata: MetadataPair(key: "order", value: "o3")),
    ])
    func metadataPagesWalkTheMetadataIndex(filter: AuditFilter) throws {
        let db = try AuditPageQueryTests.seeded()
        for paged in [false, true] {
            let plan = try db.auditPagePlan(filter, paged: paged).joined(separator: " | ")
            #expect(plan.contains("message_metadata_lookup") && !plan.contains("TEMP B-TREE"), "\(plan)")
            #expect(plan.contains("USING INTEGER PRIMARY KEY") || plan.contains("USING PRIMARY KEY"), "\(plan)")
        }
    }

    @Test func metadataIsStoredReadBackAndFiltered() throws {
        let db = try AuditPageQueryTests.seeded()
        try db.begin()
        var ids: [Int64] = []
        for i in 200..<206 {
            var m = AuditPageQueryTests.message(i, at: Int64(10_000 + i), to: "m@x.test")
            m.metadata = [MetadataPair(key: "order", value: i % 2 == 0 ? "even" : "odd"), MetadataPair(key: "customer", value: "C \(i)")]
            ids.append(try db.insertAccepted(m))
        }
        try db.commit()
        let even = try db.auditPage(AuditFilter(metadata: MetadataPair(key: "order", value: "even")), limit: 10)
        #expect(even.map(\.id) == [ids[4], ids[2], ids[0]])
        #expect(even[0].metadata == [MetadataPair(key: "order", value: "even"), MetadataPair(key: "customer", value: "C 204")])
        let paged = try db.auditPage(AuditFilter(metadata: MetadataPair(key: "order", value: "even")), limit: 10,
                                     after: AuditCursor(acceptedAt: even[0].acceptedAt, id: even[0].id))
        #expect(paged.map(\.id) == [ids[2], ids[0]])
        #expect(try db.auditPage(AuditFilter(metadata: MetadataPair(key: "customer", value: "C 203")), limit: 10).map(\.id) == [ids[3]])
        #expect(try db.auditPage(AuditFilter(status: "sent", metadata: MetadataPair(key: "order", value: "odd")), limit: 10).isEmpty)
        #expect(try db.auditPage(AuditFilter(metadata: MetadataPair(key: "order", value: "EVEN")), limit: 10).isEmpty, "values are exact")
    }

    /// `q` as AuditService runs it: keyset pages of the other filters' index, each row checked
    /// by `AuditSearch`, at most `budget` rows read; following `resume`/the last match walks
    /// every row once. Here with a budget of 7 so that 30 rows take several requests.
    @Test(arguments: [
        ("S1", AuditFilter()), ("b@", AuditFilter()), ("X.TEST", AuditFilter(status: "failed")), ("s2", AuditFilter(recipient: "c@x.test")),
        ("s", AuditFilter(since: 1050, until: 1120)), ("nothing", AuditFilter()),
    ])
    func searchScansPagesOfTheFiltersIndex(text: String, filter: AuditFilter) throws {
        let db = try AuditPageQueryTests.seeded()
        let search = AuditSearch(text)
        let matches: (AuditEntry) -> Bool = { search.matches($0.subject) || search.matches($0.recipient) }
        let want = try db.auditPage(filter, limit: 1000).filter(matches).map(\.id)
        let limit = 3
        var found: [Int64] = []
        var after: AuditCursor?
        var requests = 0
        while requests < 100 {
            requests += 1
            var scan = AuditScan<AuditEntry>(wanted: limit + 1, budget: 7, after: after, isMatch: matches,
                                             position: { AuditCursor(acceptedAt: $0.acceptedAt, id: $0.id) })
            var read = 0
            while let (a, n) = scan.next {
                let rows = try db.auditPage(filter, limit: n, after: a)
                read += rows.count
                scan.receive(rows, limit: n)
            }
            #expect(read <= 7 && scan.examined == read)
            let page = scan.matches.prefix(limit)
            found += page.map(\.id)
            if scan.matches.count > limit, let last = page.last {
                after = AuditCursor(acceptedAt: last.acceptedAt, id: last.id)
            } else if scan.partial {
                after = scan.resume
            } else {
                break
            }
        }
        #expect(found == want, "\(text)")
    }

    /// The statements a search reads with: the same shapes as the pages', so the same plans —
    /// one index walked newest first, no sort step, whatever LIMIT the scan asks for.
    @Test func aSearchReadsWithThePagesPlans() throws {
        let db = try AuditPageQueryTests.seeded()
        for filter in [AuditFilter(), AuditFilter(status: "failed"), AuditFilter(since: 1, until: 2)] {
            let plan = try db.auditPagePlan(filter, paged: true).joined(separator: " | ")
            #expect(!plan.contains("TEMP B-TREE") && plan.contains("USING INDEX messages_"), "\(plan)")
        }
    }
}
