/// Where SQLite keeps idempotency records (migration 12): a send_email call's on its message's
/// row, every other one (render_template, a batch's, those from before) in `idempotency`; a
/// look-up reads both and answers with the newest. The server's replays and conflicts over
/// HTTP are the integration tests' (IdempotencyTests, on both stores).
import Idempotency
import Testing
@testable import Store

@Suite struct IdempotencyRecordTests {
    static let body = Array(#"{"ok":true,"data":{"mailbox":"m@x.test","used_template":false}}"#.utf8)

    func message(_ key: String, at: Int64, tokenID: Int64 = 1, tokenName: String = "t", fingerprint: [UInt8] = [1, 2, 3]) -> NewMessage {
        NewMessage(acceptedAt: at, tokenID: tokenID, tokenName: tokenName, idempotencyKey: key, fingerprint: fingerprint,
                   responseStatus: 200, responseBody: Self.body, mailboxName: "m", mailboxAddress: "m@x.test",
                   recipient: "r@x.test", subject: "s", template: nil, messageID: "<\(key)\(at)@x.test>", raw: [1, 2, 3])
    }

    func store() throws -> Database {
        let db = try Database(path: tempDatabasePath())
        #expect(try db.createToken(name: "t", secretHash: [9], abilities: ["send-email"], now: 1) == 1)
        return db
    }

    func count(_ db: Database, _ sql: String) throws -> Int {
        let s = try db.statement(sql)
        defer { s.finish() }
        return try s.step() ? s.int(0) : -1
    }

    @Test func aSentMessagesRecordIsOnItsRowAndNotInTheTable() throws {
        let db = try store()
        try db.insertAccepted(message("k1", at: 1000))
        #expect(try count(db, "SELECT count(*) FROM idempotency") == 0)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k1")
                == IdempotencyRecord(fingerprint: [1, 2, 3], status: 200, body: Self.body, createdAt: 1000))
        // Scoped to the token and the key.
        #expect(try db.idempotencyRecord(tokenID: 2, key: "k1") == nil)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k2") == nil)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "K1") == nil)
    }

    @Test func aBatchsMessagesCarryNoRecordOfTheirOwn() throws {
        let db = try store()
        let batch = IdempotencyRecord(fingerprint: [7], status: 200, body: [8], createdAt: 1000)
        try db.putIdempotencyRecord(tokenID: 1, key: "b", batch)
        try db.insertAccepted(message("b", at: 1000), storesRecord: false)
        try db.insertAccepted(message("b", at: 1000), storesRecord: false)
        #expect(try count(db, "SELECT count(*) FROM messages WHERE record_token IS NOT NULL") == 0)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "b") == batch)
    }

    /// A key in the table (another endpoint's, or written before migration 12) and on a row:
    /// the newest answers, whichever holds it — an expired one must not hide a newer one.
    @Test func theNewestRecordAnswersWhereverItIs() throws {
        let db = try store()
        let old = IdempotencyRecord(fingerprint: [5], status: 200, body: [6], createdAt: 500)
        try db.putIdempotencyRecord(tokenID: 1, key: "k", old)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k") == old)
        try db.insertAccepted(message("k", at: 90_000, fingerprint: [4]))
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k")?.createdAt == 90_000)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k")?.fingerprint == [4])
        let newer = IdempotencyRecord(fingerprint: [3], status: 200, body: [2], createdAt: 200_000)
        try db.putIdempotencyRecord(tokenID: 1, key: "k", newer)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k") == newer)
        // The key used again on send_email after that one expired: the newest row answers.
        try db.insertAccepted(message("k", at: 400_000, fingerprint: [9]))
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k")?.fingerprint == [9])
    }

    /// `token remove` leaves the rows; SQLite gives the removed token's id (the largest) to the
    /// next token. Its records count only for a token of the same name.
    @Test func aRemovedTokensRecordsDoNotBindAStrangerWithItsID() throws {
        let db = try store()
        try db.insertAccepted(message("k", at: 1000))
        #expect(try db.removeToken(name: "t"))
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k") == nil)
        #expect(try db.createToken(name: "other", secretHash: [1], abilities: ["send-email"], now: 2000) == 1)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k") == nil)
        #expect(try db.removeToken(name: "other"))
        #expect(try db.createToken(name: "t", secretHash: [2], abilities: ["send-email"], now: 3000) == 1)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "k")?.createdAt == 1000)
    }

    /// A database of version 11 with records in the table only: after migration 12 they still
    /// answer, and new messages put theirs on their rows.
    @Test func recordsFromBeforeMigrationTwelveStillAnswer() throws {
        let path = tempDatabasePath()
        do {
            let v11 = try Database(path: path, synchronous: .full, busyTimeoutMilliseconds: 1000, migratingThrough: 11)
            _ = try v11.createToken(name: "t", secretHash: [9], abilities: ["send-email"], now: 1)
            try v11.statement("""
                INSERT INTO messages (accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject,
                                      message_id, status, attempts, next_attempt_at)
                VALUES (1000, 't', 'old', 'm', 'm@x.test', 'r@x.test', 's', '<old@x.test>', 'sent', 1, 1000)
                """).run()
            try v11.putIdempotencyRecord(tokenID: 1, key: "old", IdempotencyRecord(fingerprint: [1], status: 200, body: [2], createdAt: 1000))
        }
        let db = try Database(path: path)
        #expect(try db.idempotencyRecord(tokenID: 1, key: "old") == IdempotencyRecord(fingerprint: [1], status: 200, body: [2], createdAt: 1000))
        try db.insertAccepted(message("new", at: 2000))
        #expect(try db.idempotencyRecord(tokenID: 1, key: "new")?.createdAt == 2000)
        #expect(try count(db, "SELECT count(*) FROM idempotency") == 1)
    }

    /// The look-up is one seek in the index the audit's `idempotency_key=` filter already has.
    @Test func theRowLookUpIsAnIndexSearch() throws {
        let db = try store()
        let s = try db.statement("EXPLAIN QUERY PLAN " + Database.idempotencyRowLookupSQL)
        defer { s.finish() }
        var plan: [String] = []
        while try s.step() { plan.append(s.string(3)) }
        #expect(plan.contains { $0.contains("USING INDEX messages_idempotency_key (idempotency_key=?)") }, "\(plan)")
        #expect(!plan.contains { $0.contains("SCAN") }, "\(plan)")
    }
}
