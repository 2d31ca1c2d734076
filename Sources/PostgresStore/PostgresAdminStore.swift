/// PostgresAdminStore: `AdminStore` on PostgreSQL for the admin commands and `store copy`.
/// These run outside any loop, so libpq is used synchronously here (`PQconnectdb`,
/// `PQexecParams`); `serve` never does — its migrations and embedded demo run in the loop
/// (`PostgresServerStore+Migration`, `seedIfEmpty`).
///
/// Every write to tokens, mailboxes or templates ends with `NOTIFY tickiti_directory` in its
/// own transaction: every server LISTENs and drops its copy when the commit lands.
import CLibPQ
import AuditAPI
import Auth
import PostgresClient
import Store

public final class PostgresAdminStore: AdminStore {
    let connection: BlockingPostgres
    var transactionDepth = 0
    var changedDirectory = false

    /// Connects and migrates (under the advisory lock).
    public init(uri: String) throws {
        connection = try BlockingPostgres(uri: uri)
        try migrate()
    }

    /// Applies the steps after the database's version, all under `pg_advisory_lock`.
    func migrate() throws {
        _ = try connection.exec("SELECT pg_advisory_lock($1::bigint)", [.int(PostgresSchema.migrationLock)])
        defer { _ = try? connection.exec("SELECT pg_advisory_unlock($1::bigint)", [.int(PostgresSchema.migrationLock)]) }
        _ = try connection.exec("CREATE TABLE IF NOT EXISTS tickiti_schema (version INTEGER NOT NULL)")
        let r = try connection.exec("SELECT max(version) FROM tickiti_schema")
        let current = r.isNull(0, 0) ? 0 : r.int(0, 0)
        if current > PostgresSchema.steps.count {
            throw PGError(sqlState: nil, message: "database schema version \(current) is newer than this program (\(PostgresSchema.steps.count))", connectionLost: false)
        }
        for version in current..<PostgresSchema.steps.count {
            try transaction {
                for sql in PostgresSchema.steps[version] { _ = try connection.exec(sql) }
                _ = try connection.exec("INSERT INTO tickiti_schema (version) VALUES ($1::integer)", [.int(Int64(version + 1))])
            }
        }
    }

    public func transaction<T>(_ body: () throws -> T) throws -> T {
        if transactionDepth > 0 { return try body() }
        _ = try connection.exec("BEGIN")
        transactionDepth = 1
        changedDirectory = false
        do {
            let v = try body()
            if changedDirectory { _ = try connection.exec("NOTIFY \(PostgresSchema.directoryChannel)") }
            _ = try connection.exec("COMMIT")
            transactionDepth = 0
            return v
        } catch {
            _ = try? connection.exec("ROLLBACK")
            transactionDepth = 0
            throw error
        }
    }

    /// A write to the directory: in its own transaction (or the caller's) with the NOTIFY.
    func directoryWrite<T>(_ body: () throws -> T) throws -> T {
        try transaction {
            changedDirectory = true
            return try body()
        }
    }

    // MARK: Tokens

    public func createToken(name: String, secretHash: [UInt8], abilities: [String], now: Int64) throws -> Int64 {
        try directoryWrite {
            try connection.exec("INSERT INTO tokens (name, secret_hash, abilities, created_at) VALUES ($1::text, $2::bytea, $3::text, $4::bigint) RETURNING id",
                                [.text(name), .bytes(secretHash), .text(abilities.joined(separator: ",")), .int(now)]).int64(0, 0)
        }
    }

    public func tokens() throws -> [TokenSummary] {
        let r = try connection.exec("SELECT id, name, abilities, created_at, revoked_at, last_used_at FROM tokens ORDER BY id")
        return (0..<r.rowCount).map {
            TokenSummary(id: r.int64($0, 0), name: r.string($0, 1), abilities: r.string($0, 2).split(separator: ",").map(String.init),
                         createdAt: r.int64($0, 3), revokedAt: r.isNull($0, 4) ? nil : r.int64($0, 4), lastUsedAt: r.isNull($0, 5) ? nil : r.int64($0, 5))
        }
    }

    public func revokeToken(name: String, now: Int64) throws -> Bool {
        try directoryWrite {
            try connection.exec("UPDATE tokens SET revoked_at = $2::bigint WHERE name = $1::text AND revoked_at IS NULL",
                                [.text(name), .int(now)]).affectedRows == 1
        }
    }

    // MARK: Mailboxes

    public func addMailbox(name: String, address: String, displayName: String?, dsn: String, enabled: Bool, now: Int64) throws -> Int64 {
        try directoryWrite {
            try connection.exec("""
                INSERT INTO mailboxes (name, address, display_name, dsn, enabled, created_at)
                VALUES ($1::text, $2::text, $3::text, $4::text, $5::boolean, $6::bigint) RETURNING id
                """, [.text(name), .text(address), displayName.map { .text($0) } ?? .null, .text(dsn), .text(enabled ? "true" : "false"), .int(now)])
                .int64(0, 0)
        }
    }

    public func updateMailbox(name: String, address: String?, displayName: String?, dsn: String?) throws -> Bool {
        try directoryWrite {
            try connection.exec("""
                UPDATE mailboxes SET address = coalesce($2::text, address), dsn = coalesce($4::text, dsn),
                       display_name = CASE WHEN $3::text IS NULL THEN display_name WHEN $3::text = '' THEN NULL ELSE $3::text END
                WHERE name = $1::text
                """, [.text(name), address.map { .text($0) } ?? .null, displayName.map { .text($0) } ?? .null, dsn.map { .text($0) } ?? .null])
                .affectedRows == 1
        }
    }

    public func unfinishedMessages(mailbox: String) throws -> Int {
        try connection.exec("SELECT count(*) FROM messages WHERE status IN ('queued', 'sending', 'deferred') AND mailbox_name = $1::text",
                            [.text(mailbox)]).int(0, 0)
    }

    public func removeMailbox(name: String) throws -> Bool {
        try directoryWrite { try connection.exec("DELETE FROM mailboxes WHERE name = $1::text", [.text(name)]).affectedRows == 1 }
    }

    public func removeToken(name: String) throws -> Bool {
        try directoryWrite {
            _ = try connection.exec("DELETE FROM idempotency WHERE token_id IN (SELECT id FROM tokens WHERE name = $1::text)", [.text(name)])
            return try connection.exec("DELETE FROM tokens WHERE name = $1::text", [.text(name)]).affectedRows == 1
        }
    }

    public func removeTemplate(identifier: String) throws -> Bool {
        try directoryWrite { try connection.exec("DELETE FROM templates WHERE identifier = $1::text", [.text(identifier)]).affectedRows == 1 }
    }

    public func mailboxes() throws -> [MailboxRecord] {
        PostgresRows.mailboxes(try connection.exec(PostgresSQL.mailboxes.sql))
    }

    public func setMailboxEnabled(name: String, _ enabled: Bool) throws -> Bool {
        try directoryWrite {
            try connection.exec("UPDATE mailboxes SET enabled = $2::boolean WHERE name = $1::text",
                                [.text(name), .text(enabled ? "true" : "false")]).affectedRows == 1
        }
    }

    // MARK: Templates

    public func putTemplate(identifier: String, subject: String, html: String, text: String?, now: Int64) throws {
        try directoryWrite {
            _ = try connection.exec("""
                INSERT INTO templates (identifier, subject, html, text, created_at, updated_at)
                VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint, $5::bigint)
                ON CONFLICT (identifier) DO UPDATE SET subject = EXCLUDED.subject, html = EXCLUDED.html, text = EXCLUDED.text,
                    updated_at = EXCLUDED.updated_at
                """, [.text(identifier), .text(subject), .text(html), text.map { .text($0) } ?? .null, .int(now)])
        }
    }

    public func templates() throws -> [TemplateRecord] {
        PostgresRows.templates(try connection.exec(PostgresSQL.templates.sql))
    }

    // MARK: Audit

    public func auditPage(_ filter: AuditFilter, limit: Int, after: AuditCursor?) throws -> [AuditEntry] {
        let q = PostgresSQL.auditPage(filter, limit: limit, after: after)
        let r = try connection.exec(q.statement.sql, q.parameters)
        return (0..<r.rowCount).map { PostgresSQL.auditEntry(r, $0, raw: false) }
    }

    public func auditEntry(id: Int64) throws -> AuditEntry? {
        let r = try connection.exec(PostgresSQL.auditEntry.sql, [.int(id)])
        return r.rowCount == 0 ? nil : PostgresSQL.auditEntry(r, 0, raw: true)
    }

    public func statusCounts() throws -> [String: Int] {
        let r = try connection.exec("SELECT status, count(*) FROM messages GROUP BY status")
        var out: [String: Int] = [:]
        for i in 0..<r.rowCount { out[r.string(i, 0)] = r.int(i, 1) }
        return out
    }

    public func deliveryAttempts(messageID: Int64) throws -> [DeliveryAttempt] {
        PostgresSQL.attempts(try connection.exec(PostgresSQL.attempts.sql, [.int(messageID)]))
    }

    // MARK: Operators (`message retry|cancel`)

    /// The row is locked for the change: a server claiming it meanwhile waits, then sees the
    /// new status (a `sending` row, claimed already, is refused).
    func lockedStatus(id: Int64) throws -> (String, String?)? {
        let r = try connection.exec("SELECT status, recipients FROM messages WHERE id = $1::bigint FOR UPDATE", [.int(id)])
        return r.rowCount == 1 ? (r.string(0, 0), r.optionalString(0, 1)) : nil
    }

    public func retryMessage(id: Int64, now: Int64) throws -> MessageChange {
        try transaction {
            guard let row = try lockedStatus(id: id) else { return .notFound }
            let (status, recipients) = row
            guard status == "deferred" || status == "failed" || status == "uncertain" else { return .refused(status: status) }
            var list = RecipientState.decode(recipients)
            if list != nil { for i in list!.indices where list![i].status == .failed { list![i].status = .pending } }
            _ = try connection.exec("""
                UPDATE messages SET status = 'queued', next_attempt_at = $2::bigint, attempts = 0, uncertain = 0,
                       recipients = coalesce($3::text, recipients) WHERE id = $1::bigint
                """, [.int(id), .int(now), list.map { .text(RecipientState.encode($0)) } ?? .null])
            _ = try connection.exec("INSERT INTO delivery_attempts (message_id, at, outcome, reply) VALUES ($1::bigint, $2::bigint, 'retried', $3::text)",
                                    [.int(id), .int(now), .text("retried by an operator (was \(status))")])
            return .changed
        }
    }

    public func cancelMessage(id: Int64, now: Int64) throws -> MessageChange {
        try transaction {
            guard let status = try lockedStatus(id: id)?.0 else { return .notFound }
            guard status == "queued" || status == "deferred" else { return .refused(status: status) }
            _ = try connection.exec("UPDATE messages SET status = 'cancelled', next_attempt_at = $2::bigint WHERE id = $1::bigint", [.int(id), .int(now)])
            _ = try connection.exec("INSERT INTO delivery_attempts (message_id, at, outcome, reply) VALUES ($1::bigint, $2::bigint, 'cancelled', $3::text)",
                                    [.int(id), .int(now), .text("cancelled by an operator (was \(status))")])
            return .changed
        }
    }

    public func messageIDs(status: String, mailbox: String?, limit: Int) throws -> [Int64] {
        let r = try connection.exec("""
            SELECT id FROM messages WHERE status = $1::text AND ($2::text IS NULL OR mailbox_name = $2::text)
            ORDER BY accepted_at, id LIMIT $3::bigint
            """, [.text(status), mailbox.map { .text($0) } ?? .null, .int(Int64(limit))])
        return (0..<r.rowCount).map { r.int64($0, 0) }
    }

    public func recipientsSent(mailbox: String, since: Int64) throws -> Int {
        let r = try connection.exec("SELECT coalesce(sum(recipients), 0)::bigint FROM mailbox_usage WHERE mailbox = $1::text AND minute > $2::bigint",
                                    [.text(mailbox), .int(since / 60_000)])
        return Int(r.int64(0, 0))
    }
}

/// Reading the directory's rows (shared by the admin store and the server's copy).
enum PostgresRows {
    static func tokens(_ r: PGResult) -> [StoredToken] {
        (0..<r.rowCount).map {
            StoredToken(id: r.int64($0, 0), name: r.string($0, 1), secretHash: r.bytes($0, 2),
                        abilities: r.string($0, 3).split(separator: ",").map(String.init), revoked: !r.isNull($0, 5))
        }
    }

    static func mailboxes(_ r: PGResult) -> [MailboxRecord] {
        (0..<r.rowCount).map {
            MailboxRecord(id: r.int64($0, 0), name: r.string($0, 1), address: r.string($0, 2), displayName: r.optionalString($0, 3),
                          dsn: r.string($0, 4), enabled: r.bool($0, 5), createdAt: r.int64($0, 6),
                          pause: r.isNull($0, 7) ? nil : MailboxPause(until: r.int64($0, 7), level: r.int($0, 8), reason: r.string($0, 9)))
        }
    }

    static func templates(_ r: PGResult) -> [TemplateRecord] {
        (0..<r.rowCount).map {
            TemplateRecord(identifier: r.string($0, 0), subject: r.string($0, 1), html: r.string($0, 2), text: r.optionalString($0, 3),
                           updatedAt: r.int64($0, 4))
        }
    }
}

extension PGError: StoreError {
    public var isUniqueViolation: Bool { sqlState == "23505" }
}

/// A blocking libpq connection (admin commands only).
final class BlockingPostgres {
    let conn: OpaquePointer

    init(uri: String) throws {
        guard let c = PQconnectdb(uri) else { throw PGError(sqlState: nil, message: "out of memory", connectionLost: true) }
        guard PQstatus(c) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(c)).trimmingTrailingNewlines
            PQfinish(c)
            throw PGError(sqlState: nil, message: "cannot connect to PostgreSQL: \(message)", connectionLost: true)
        }
        conn = c
        // Notices (e.g. "relation already exists, skipping") are not the user's business.
        _ = try? exec("SET client_min_messages = warning")
    }

    deinit { PQfinish(conn) }

    @discardableResult
    func exec(_ sql: String, _ parameters: [PGValue] = []) throws -> PGResult {
        let result = PGParameters.withC(parameters) { n, types, values, lengths, formats in
            PQexecParams(conn, sql, n, types, values, lengths, formats, 0)
        }
        guard let result else {
            throw PGError(sqlState: nil, message: String(cString: PQerrorMessage(conn)).trimmingTrailingNewlines, connectionLost: true)
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            return PGResult(taking: result)
        default:
            let e = PGError(result: result)
            PQclear(result)
            throw e
        }
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var s = self
        while s.last == "\n" { s.removeLast() }
        return s
    }
}
