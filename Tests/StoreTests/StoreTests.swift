/// Store: migrations on a fresh file, tokens / mailboxes / templates round trips, unique
/// names, revocation seen by a second connection at once (the admin CLI and the server),
/// typed errors carrying the SQL.
#if canImport(Glibc)
import Glibc
#endif
import Auth
import Testing
import CSQLite
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

    /// The opcodes SQLite compiles `sql` to (prepared afresh: a cached EXPLAIN is not
    /// re-prepared after a schema change, as it never runs its Transaction opcode).
    func opcodes(_ db: Database, _ sql: String) throws -> [String] {
        let s = try db.statement("EXPLAIN " + sql + " -- \(UInt64.random(in: 0 ... .max))")
        var ops: [String] = []
        while try s.step() { ops.append(s.string(1)) }
        return ops
    }

    static let hotWrites = [
        "INSERT INTO messages (accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject, message_id, status, next_attempt_at) VALUES (1, 't', 'k', 'm', 'm@x.test', 'r@x.test', 's', '<1@x.test>', ?1, 1)",
        "UPDATE messages SET status = ?1, attempts = attempts + 1 WHERE id = 1",
        "INSERT INTO delivery_attempts (message_id, at, outcome, reply) VALUES (1, 2, ?1, '250 ok')",
    ]

    /// Migration 5: the status CHECKs compile to comparisons (no ephemeral table of constants
    /// per write) and still refuse what they refused.
    @Test func statusChecksAreComparisonsAndStillRefuseUnknownValues() throws {
        let db = try Database(path: tempDatabasePath())
        for sql in Self.hotWrites {
            let ops = try opcodes(db, sql)
            #expect(!ops.isEmpty)
            #expect(!ops.contains("OpenEphemeral"), "\(sql)")
        }
        try db.statement(Self.hotWrites[0]).bind(1, "queued").run()
        for status in ["sending", "deferred", "sent", "failed", "queued"] {
            try db.statement(Self.hotWrites[1]).bind(1, status).run()
        }
        for outcome in ["sent", "deferred", "failed"] {
            try db.statement(Self.hotWrites[2]).bind(1, outcome).run()
        }
        #expect(throws: SQLiteError.self) { try db.statement(Self.hotWrites[0]).bind(1, "bogus").run() }
        #expect(throws: SQLiteError.self) { try db.statement(Self.hotWrites[1]).bind(1, "Sent").run() }
        #expect(throws: SQLiteError.self) { try db.statement(Self.hotWrites[2]).bind(1, "queued").run() }
        #expect(throws: SQLiteError.self) { try db.statement(Self.hotWrites[2]).bind(1, nil as String?).run() }
    }

    /// A version-4 database with rows: the migration keeps them, the file passes
    /// integrity_check, and a connection opened before it sees the new definitions.
    @Test func migrationFiveRedefinesTheChecksInPlace() throws {
        let path = tempDatabasePath()
        let v4 = try Database(path: path, synchronous: .full, busyTimeoutMilliseconds: 1000, migratingThrough: 4)
        try v4.statement(Self.hotWrites[0]).bind(1, "queued").run()
        try v4.statement(Self.hotWrites[2]).bind(1, "sent").run()
        #expect(try opcodes(v4, Self.hotWrites[1]).contains("OpenEphemeral"), "version 4 still has the IN lists")

        let db = try Database(path: path)
        let check = try db.statement("PRAGMA integrity_check")
        #expect(try check.step() && check.string(0) == "ok")
        check.finish()
        #expect(try db.auditEntry(id: 1)?.status == "queued")
        #expect(try db.deliveryAttempts(messageID: 1).map(\.outcome) == ["sent"])
        for sql in Self.hotWrites { #expect(try !opcodes(db, sql).contains("OpenEphemeral")) }
        // The older connection notices the bumped schema cookie at its next write and reloads.
        try v4.statement(Self.hotWrites[1]).bind(1, "sent").run()
        #expect(try !opcodes(v4, Self.hotWrites[1]).contains("OpenEphemeral"))
        #expect(throws: SQLiteError.self) { try v4.statement(Self.hotWrites[1]).bind(1, "bogus").run() }
    }

    /// A definition that does not read as expected fails the migration as a whole: nothing is
    /// changed and the schema stays at version 4.
    @Test func migrationFiveRefusesAnUnexpectedDefinition() throws {
        let path = tempDatabasePath()
        do {
            let v4 = try Database(path: path, synchronous: .full, busyTimeoutMilliseconds: 1000, migratingThrough: 4)
            try v4.execute("""
                PRAGMA writable_schema=ON;
                UPDATE sqlite_master SET sql = replace(sql, "outcome IN ('sent','deferred','failed')", "outcome IN ('sent', 'deferred', 'failed')")
                  WHERE name = 'delivery_attempts';
                PRAGMA writable_schema=OFF;
                """)
        }
        do {
            _ = try Database(path: path)
            Issue.record("migrated an unexpected definition")
        } catch {
            #expect(error.message.contains("delivery_attempts"))
        }
        let v4 = try Database(path: path, synchronous: .full, busyTimeoutMilliseconds: 1000, migratingThrough: 4)
        let s = try v4.statement("SELECT (SELECT user_version FROM pragma_user_version), sql FROM sqlite_master WHERE name = 'messages'")
        #expect(try s.step())
        #expect(s.int(0) == 4)
        #expect(s.string(1).contains("status IN ('queued','sending','deferred','sent','failed')"), "the first edit was rolled back")
        s.finish()
    }

    /// Cached statements keep their values between uses (no sqlite3_clear_bindings), so each
    /// use binds every parameter again; debug builds check it against this mask.
    @Test(arguments: [
        ("SELECT ?1, ?3", UInt64(0b101)), ("SELECT ?, ?", 0b11), ("SELECT 1", 0), ("SELECT ?2 + ?2", 0b10),
        ("EXPLAIN SELECT ?1", 0), ("EXPLAIN QUERY PLAN SELECT ?1", 0),
    ])
    func parametersEachUseMustBind(sql: String, mask: UInt64) throws {
        let db = try Database(path: tempDatabasePath())
        #expect(try db.statement(sql).parameterMask == mask)
    }

    @Test func aReusedStatementSeesOnlyItsNewValues() throws {
        let db = try Database(path: tempDatabasePath())
        for (a, b) in [("x", [UInt8](repeating: 1, count: 3000)), ("y", [2]), ("", [])] {
            let s = try db.statement("SELECT ?1, length(?2), ?2").bind(1, a).bind(2, blob: b)
            #expect(try s.step())
            #expect(s.string(0) == a && s.int(1) == b.count && s.blob(2) == b)
            s.finish()
        }
    }

    /// After the migrations (migration 5 rewrites definitions and reloads the schema), the
    /// cached statements are prepared once: a use never finds the schema changed and compiles
    /// again (SQLITE_STMTSTATUS_REPREPARE stays put across uses).
    @Test func cachedStatementsAreNotRecompiledOnEachUse() throws {
        let db = try Database(path: tempDatabasePath())
        // Creating it ran migration 5 (a redefinition): the connection was opened afresh after
        // it, with nothing prepared — the one that rewrote definitions cost ~400 more
        // allocations per transaction (SQLite group commit micro benchmark).
        #expect(db.statements.isEmpty)
        func accept(_ i: Int) throws {
            try db.begin()
            #expect(try db.idempotencyRecord(tokenID: 1, key: "k\(i)") == nil)
            try db.insertAccepted(NewMessage(acceptedAt: Int64(i), tokenID: 1, tokenName: "t", idempotencyKey: "k\(i)", fingerprint: [1],
                                             responseStatus: 200, responseBody: [], mailboxName: "m", mailboxAddress: "m@x.test",
                                             recipient: "r@x.test", subject: "s", template: nil, messageID: "<\(i)@x.test>", raw: [1, 2, 3]))
            try db.recordAttempt(id: Int64(i + 1), status: "sent", outcome: "sent", reply: "250 ok", atMilliseconds: 5, nextAttemptAt: 5)
            try db.commit()
        }
        try accept(0)
        let reprepares = { db.statements.values.map { Int(sqlite3_stmt_status($0.stmt, SQLITE_STMTSTATUS_REPREPARE, 0)) }.reduce(0, +) }
        let before = reprepares()
        for i in 1...20 { try accept(i) }
        #expect(reprepares() == before)
        // The two look-ups, the message, its body, the attempt's update and insert.
        #expect(db.statements.count >= 6)
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
