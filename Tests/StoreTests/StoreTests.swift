/// Store: migrations on a fresh file, tokens / mailboxes / templates round trips, unique
/// names, revocation seen by a second connection at once (the admin CLI and the server),
/// typed errors carrying the SQL.
#if canImport(Glibc)
import Glibc
#endif
import Auth
import Testing
@testable import Store

func tempDatabasePath() -> String {
    var template = Array("/tmp/tickiti-db-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!) + "/nested/dir/tickiti.db"
}

@Suite struct StoreTests {
    @Test func opensCreatesFoldersAndMigrates() throws {
        let path = tempDatabasePath()
        let db = try Database(path: path)
        let s = try db.statement("PRAGMA journal_mode")
        #expect(try s.step())
        #expect(s.string(0) == "wal")
        s.finish()
        let v = try db.statement("PRAGMA user_version")
        #expect(try v.step())
        #expect(v.int(0) == Migrations.steps.count)
        v.finish()
        // Re-opening does not re-run migrations.
        _ = try Database(path: path)
    }

    @Test func tokensRoundTripAndRevocationIsSeenByAnotherConnection() throws {
        let path = tempDatabasePath()
        let server = try Database(path: path)
        let admin = try Database(path: path)
        let id = try admin.createToken(name: "shop", secretHash: BearerToken.hash(secret: "s3cret"), abilities: ["send-email"], now: 1000)
        let t = try #require(try server.token(id: id))
        #expect(t.name == "shop")
        #expect(t.abilities == ["send-email"])
        #expect(!t.revoked)
        #expect(BearerToken.verify(secret: "s3cret", against: t) == .success(t))
        #expect(try admin.revokeToken(name: "shop", now: 2000))
        #expect(try !admin.revokeToken(name: "shop", now: 3000))   // already revoked
        #expect(try server.token(id: id)?.revoked == true)
        #expect(try server.token(id: 999) == nil)
        #expect(try admin.tokens().map(\.revokedAt) == [2000])
    }

    @Test func duplicateNamesAreUniqueViolations() throws {
        let db = try Database(path: tempDatabasePath())
        _ = try db.createToken(name: "a", secretHash: [1], abilities: ["*"], now: 1)
        do {
            _ = try db.createToken(name: "a", secretHash: [2], abilities: ["*"], now: 2)
            Issue.record("duplicate accepted")
        } catch {
            #expect(error.isUniqueViolation)
            #expect(error.sql?.contains("INSERT INTO tokens") == true)
        }
    }

    @Test func mailboxesKeepCreationOrderAndToggle() throws {
        let db = try Database(path: tempDatabasePath())
        _ = try db.addMailbox(name: "b", address: "b@example.org", displayName: "B", dsn: "file://out", enabled: true, now: 5)
        _ = try db.addMailbox(name: "a", address: "a@example.org", displayName: nil, dsn: "smtp://relay", enabled: false, now: 5)
        _ = try db.addMailbox(name: "c", address: "c@example.org", displayName: nil, dsn: "smtp://relay", enabled: true, now: 1)
        #expect(try db.mailboxes().map(\.name) == ["c", "b", "a"])
        #expect(try db.setMailboxEnabled(name: "a", true))
        #expect(try !db.setMailboxEnabled(name: "zz", true))
        #expect(try db.mailboxes().allSatisfy(\.enabled))
    }

    @Test func templatesUpsert() throws {
        let db = try Database(path: tempDatabasePath())
        try db.putTemplate(identifier: "inv", subject: "S1", html: "<p>1</p>", text: nil, now: 1)
        try db.putTemplate(identifier: "inv", subject: "S2", html: "<p>2</p>", text: "2", now: 2)
        let t = try #require(try db.template(identifier: "inv"))
        #expect(t.subject == "S2" && t.text == "2" && t.updatedAt == 2)
        #expect(try db.templates().count == 1)
        #expect(try db.template(identifier: "nope") == nil)
    }

    @Test func transactionsRollBackOnError() throws {
        let db = try Database(path: tempDatabasePath())
        struct Boom: Error {}
        do {
            try db.transaction {
                _ = try db.createToken(name: "x", secretHash: [1], abilities: ["*"], now: 1)
                throw Boom()
            }
        } catch is Boom {}
        #expect(try db.tokens().isEmpty)
        #expect(!db.inTransaction)
    }

    /// Migration 4 moves every message's bytes out of `messages` into `message_bodies`; a
    /// version-3 database keeps all of them, readable by the audit and the delivery scan.
    @Test func migrationFourKeepsEveryMessagesBytes() throws {
        let path = tempDatabasePath()
        let bytes: [[UInt8]] = [Array("Subject: one\r\n\r\nfirst\r\n".utf8), Array(repeating: 0xC3, count: 5000), [0, 1, 2]]
        do {
            let v3 = try Database(path: path, synchronous: .full, busyTimeoutMilliseconds: 1000, migratingThrough: 3)
            for (i, raw) in bytes.enumerated() {
                let s = try v3.statement("""
                    INSERT INTO messages (accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject,
                                          message_id, raw, status, attempts, next_attempt_at)
                    VALUES (?1, 't', ?2, 'm', 'm@x.test', 'r@x.test', 's', ?2, ?3, ?4, 0, ?1)
                    """).bind(1, Int64(100 + i)).bind(2, "k\(i)").bind(3, blob: raw).bind(4, i == 1 ? "sent" : "queued")
                try s.run()
            }
        }
        let db = try Database(path: path)
        for (i, raw) in bytes.enumerated() {
            #expect(try db.auditEntry(id: Int64(i + 1))?.raw == raw)
        }
        #expect(try db.dueMessages(nowMilliseconds: 1000, limit: 10).map(\.raw) == [bytes[0], bytes[2]])
        let cols = try db.statement("SELECT group_concat(name) FROM pragma_table_info('messages')")
        #expect(try cols.step() && !cols.string(0).split(separator: ",").contains("raw"))
        cols.finish()
    }

    @Test func aNewerSchemaIsRefused() throws {
        let path = tempDatabasePath()
        let db = try Database(path: path)
        try db.execute("PRAGMA user_version=99")
        do {
            _ = try Database(path: path)
            Issue.record("opened a newer schema")
        } catch {
            #expect(error.message.contains("newer"))
        }
    }
}
