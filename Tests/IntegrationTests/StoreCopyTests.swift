/// The admin store's promises on whichever store the suite runs on (SQLite, or PostgreSQL with
/// TICKITI_TEST_STORE=postgres), and `store copy`: 10 000 messages with their bodies, attempts
/// and idempotency records from SQLite to PostgreSQL and back, compared row by row; a non-empty
/// target refused; the copy serving at once (a replay answers as before, new rows continue
/// after the copied ids, the copied queue is delivered).
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Auth
import Store
import Testing

/// A PostgreSQL database for a test that needs one whatever the run's store: on the run's
/// shared server when there is one, else on a private server (kept alive by the second value).
func scratchPostgresDatabase() throws -> (uri: String, server: PrivatePostgres?) {
    if TestStore.current == .postgres { return (TestStore.freshLocation(dir: ""), nil) }
    let pg = try PrivatePostgres()
    return (try pg.newDatabase(), pg)
}

/// Every row of `table`, in key order, read the way the copy reads it.
func allRows(_ store: CopyableStore, _ table: CopyTable) throws -> [[CopyValue]] {
    var out: [[CopyValue]] = []
    let keyIndexes = table.key.map { k in table.columns.firstIndex { $0.name == k }! }
    var after: [CopyValue]?
    while true {
        let rows = try store.copyRead(table, after: after, limit: 777)
        out += rows
        if rows.count < 777 { return out }
        after = keyIndexes.map { rows[rows.count - 1][$0] }
    }
}

@Suite(.serialized) struct AdminStoreTests {
    let location = TestStore.freshLocation(dir: makeTempDir())

    @Test func tokensMailboxesAndTemplates() throws {
        let s = try adminStore(location)
        let id = try s.createToken(name: "shop", secretHash: BearerToken.hash(secret: "s3cret"), abilities: ["send-email", "audit-read"], now: 1000)
        #expect(try s.tokens().map(\.name) == ["shop"] && s.tokens()[0].id == id && s.tokens()[0].abilities == ["send-email", "audit-read"])
        #expect(try s.revokeToken(name: "shop", now: 2000))
        #expect(try !s.revokeToken(name: "shop", now: 3000), "already revoked")
        #expect(try s.tokens().map(\.revokedAt) == [2000])
        do {
            _ = try s.createToken(name: "shop", secretHash: [1], abilities: ["*"], now: 1)
            Issue.record("a duplicate name was accepted")
        } catch let e as StoreError {
            #expect(e.isUniqueViolation, "\(e)")
        }

        _ = try s.addMailbox(name: "b", address: "b@example.org", displayName: "B", dsn: "file://out", enabled: true, now: 5)
        _ = try s.addMailbox(name: "a", address: "a@example.org", displayName: nil, dsn: "smtp://relay", enabled: false, now: 5)
        _ = try s.addMailbox(name: "c", address: "c@example.org", displayName: nil, dsn: "smtp://relay", enabled: true, now: 1)
        #expect(try s.mailboxes().map(\.name) == ["c", "b", "a"], "creation order")
        #expect(try s.mailboxes().map(\.enabled) == [true, true, false])
        #expect(try s.setMailboxEnabled(name: "a", true))
        #expect(try !s.setMailboxEnabled(name: "zz", true))
        #expect(try s.mailboxes().allSatisfy(\.enabled))
        #expect(try s.mailboxes()[1].displayName == "B" && s.mailboxes()[0].displayName == nil)

        try s.putTemplate(identifier: "inv", subject: "S1", html: "<p>1</p>", text: nil, now: 1)
        try s.putTemplate(identifier: "inv", subject: "S2 £", html: "<p>2</p>", text: "2", now: 2)
        let t = try s.templates()
        #expect(t.count == 1 && t[0].subject == "S2 £" && t[0].text == "2" && t[0].updatedAt == 2)
    }

    @Test func aFailedTransactionLeavesNothing() throws {
        let s = try adminStore(location)
        struct Boom: Error {}
        do {
            try s.transaction {
                _ = try s.createToken(name: "x", secretHash: [1], abilities: ["*"], now: 1)
                _ = try s.addMailbox(name: "m", address: "m@example.org", displayName: nil, dsn: "file://o", enabled: true, now: 1)
                throw Boom()
            }
        } catch is Boom {}
        #expect(try s.tokens().isEmpty && s.mailboxes().isEmpty)
        // And the store is usable afterwards.
        _ = try s.createToken(name: "x", secretHash: [1], abilities: ["*"], now: 1)
        #expect(try s.tokens().count == 1)
    }
}

@Suite(.serialized) struct StoreCopyTests {
    @Test func tenThousandMessagesToPostgresAndBackRowByRow() throws {
        let (pgURI, pgServer) = try scratchPostgresDatabase()
        defer { withExtendedLifetime(pgServer) {} }
        let dir = makeTempDir()
        let a = dir + "/a.db", b = dir + "/b.db"

        // What a real server writes: a send, its idempotency record, its delivery and attempt.
        let f = try SendFixture(store: a)
        let key = UUID().uuidString
        let first = try f.post(directBody, key: key)
        #expect(first.status == 200)
        try f.waitFor(1, status: "sent")
        f.server.signal(SIGTERM)
        #expect(try f.server.waitForExit() == 0)

        // And 10 000 more of every kind of row, with every status, NULLs, non-ASCII text and
        // bodies of arbitrary bytes.
        let db = try Database(path: a)
        try db.execute("""
            WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 10001)
            INSERT INTO messages (id, accepted_at, sent_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient,
                                  subject, template, message_id, status, attempts, next_attempt_at, last_reply)
            SELECT i, 1700000000000 + i, CASE WHEN i % 5 = 1 THEN 1700000001000 + i END, 'shop', lower(hex(randomblob(16))),
                   'Sales', 'sales@shop.example', 'r' || (i % 997) || '@example.com', 'Rechnung Nr. ' || i || ' — fällig',
                   CASE WHEN i % 2 = 0 THEN 'invoice_delivery' END, '<' || i || '.copy@shop.example>',
                   CASE i % 5 WHEN 0 THEN 'queued' WHEN 1 THEN 'sent' WHEN 2 THEN 'deferred' WHEN 3 THEN 'failed' ELSE 'sending' END,
                   i % 4, 1700000002000 + i, CASE WHEN i % 5 = 2 THEN '451 4.3.0 try later' END
            FROM n;
            INSERT INTO message_bodies (id, raw) SELECT id, randomblob(200 + id % 3000) FROM messages WHERE id > 1;
            INSERT INTO delivery_attempts (message_id, at, outcome, reply)
            SELECT id, accepted_at + 10, CASE status WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE 'deferred' END, 'reply ' || id
            FROM messages WHERE id > 1 AND status <> 'queued';
            INSERT INTO idempotency (token_id, key, fingerprint, status, body, created_at)
            SELECT 1, idempotency_key, randomblob(32), 200, CAST('{"ok":true}' AS BLOB), accepted_at FROM messages WHERE id > 1;
            UPDATE messages SET metadata = 'order O' || id || char(10) || 'note Grüße ' || id,
                                recipients = CASE WHEN id % 7 = 0 THEN 'to accepted r@example.com 250 ok' || char(10) || 'bcc pending b@example.com' END
            WHERE id > 1;
            INSERT INTO message_metadata (message_id, key, value, accepted_at) SELECT id, 'order', 'O' || id, accepted_at FROM messages WHERE id > 1;
            """)

        let bin = binaryPath()
        let (rc1, out1) = try run([bin, "store", "copy", "--from", a, "--to", pgURI], timeoutSeconds: 300)
        #expect(rc1 == 0, "\(out1)")
        // The served call's record is on its message's row (SQLite's migration 12); the 10 000
        // written here are in the table.
        #expect(out1.contains("copied tokens 2, mailboxes 3, templates 1, idempotency 10000, messages 10001, message_bodies 10001"), "\(out1)")
        let (rc2, out2) = try run([bin, "store", "copy", "--from", pgURI, "--to", b], timeoutSeconds: 300)
        #expect(rc2 == 0, "\(out2)")

        let sa = try adminStore(a), sp = try adminStore(pgURI), sb = try adminStore(b)
        // PostgreSQL reads records only from its table: the one on the row is there too, and so
        // back on SQLite (in both places, the same record); every other table is the same.
        let onRow = try Database(path: a).idempotencyRecord(tokenID: 1, key: key)
        #expect(onRow != nil && onRow?.status == 200 && onRow?.body == first.body)
        for store in [sp, sb] {
            let records = try allRows(store, StoreCopy.tables[3])
            #expect(records.count == 10_001)
            #expect(records.filter { $0[1] == .text(key) }
                    == [[.int(1), .text(key), .bytes(onRow?.fingerprint ?? []), .int(200), .bytes(first.body), .int(onRow?.createdAt ?? 0)]])
        }
        #expect(try Database(path: b).idempotencyRecord(tokenID: 1, key: key) == onRow)
        #expect(try allRows(sa, StoreCopy.tables[3]).count == 10_000)
        for table in StoreCopy.tables where table.name != "idempotency" {
            let rows = try allRows(sa, table)
            let expected = ["tokens": 2, "mailboxes": 3, "templates": 1, "delivery_attempts": 8_001, "message_metadata": 10_000][table.name] ?? 10_001   // none for queued
            #expect(rows.count == expected, "\(table.name)")
            let onPostgres = try allRows(sp, table), back = try allRows(sb, table)
            #expect(onPostgres.count == rows.count && back.count == rows.count, "\(table.name)")
            let firstDifference = rows.indices.first { $0 >= onPostgres.count || rows[$0] != onPostgres[$0] }
            #expect(firstDifference == nil, "\(table.name): row \(firstDifference ?? -1) differs on PostgreSQL")
            #expect(back == rows, "\(table.name): not the same after the round trip")
        }

        // A target with anything in it is refused, and left as it was.
        let (rc3, out3) = try run([bin, "store", "copy", "--from", a, "--to", pgURI], timeoutSeconds: 120)
        #expect(rc3 == 1 && out3.contains("not empty"), "\(out3)")
        #expect(try sp.copyRowCount(StoreCopy.tables[4]) == 10_001)
        let (rc4, out4) = try run([bin, "store", "copy", "--from", a, "--to", a])
        #expect(rc4 == 64 && out4.contains("same store"), "\(out4)")

        // The copy serves at once: the replay is the stored answer, a new message continues
        // after the copied ids and is delivered, the copied queue too, and so are new tokens.
        let g = try SendFixture(setUp: false, store: pgURI)
        g.sendToken = f.sendToken
        let replay = try g.post(directBody, key: key)
        #expect(replay.status == 200 && replay.text == first.text)
        #expect(try g.post(directBody).status == 200)
        try g.waitFor(10_002, status: "sent")
        try g.waitFor(10, status: "sent", seconds: 60)      // queued when copied
        try g.waitFor(4, status: "sent", seconds: 60)       // "sending" when copied: requeued
        let t = try g.cli(["token", "create", "--name", "after-copy", "--ability", "send-email"])
        #expect(t.status == 0 && t.lastLine.hasPrefix("3|"), "\(t.output)")
    }
}
