/// Accepted messages (the outbound queue and the sent-mail audit, one row each) and their
/// idempotency records, written together in the server's group commit.
import Idempotency



extension Database {
    // The acceptance's statement texts: used here and printed by `tickiti-mail store sql`, so the
    // floor benchmark (Benchmarks/floor) runs exactly these and cannot drift from them. Each
    // comment lists the parameters in the order the code below binds them.

    /// ?1 token id, ?2 key: a record of the table (another endpoint's, a batch's, or from before
    /// migration 12).
    public static let idempotencyLookupSQL = "SELECT fingerprint, status, body, created_at FROM idempotency WHERE token_id = ?1 AND key = ?2"
    /// ?1 token id, ?2 key: a send_email record on its message's row — the newest; only while the
    /// token of that id has the row's token name (`token remove` leaves the rows, and SQLite may
    /// give a removed token's id to the next one: a record then counts only for a token of the
    /// same name — the same integrator's new token, whose retry of a call is a replay).
    public static let idempotencyRowLookupSQL = """
        SELECT record_fingerprint, record_status, record_body, accepted_at FROM messages
        WHERE idempotency_key = ?2 AND record_token = ?1 AND token_name = (SELECT name FROM tokens WHERE id = ?1)
        ORDER BY accepted_at DESC LIMIT 1
        """
    /// ?1 accepted_at (also next_attempt_at), ?2 token name, ?3 idempotency key, ?4 mailbox name, ?5 mailbox
    /// address, ?6 recipient, ?7 subject, ?8 template or NULL, ?9 Message-ID, ?10 status ('sending' or
    /// 'queued'), ?11 recipients or NULL, ?12 metadata or NULL, then the call's idempotency record
    /// (all four NULL for a batch's message): ?13 token id, ?14 fingerprint (blob), ?15 response
    /// status, ?16 response body (blob).
    public static let insertMessageSQL = """
        INSERT INTO messages (accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject,
                              template, message_id, status, attempts, next_attempt_at, recipients, metadata,
                              record_token, record_fingerprint, record_status, record_body)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?1, ?11, ?12, ?13, ?14, ?15, ?16)
        """
    /// One per metadata pair: ?1 message id, ?2 key, ?3 value, ?4 accepted_at.
    public static let insertMetadataSQL = "INSERT INTO message_metadata (message_id, key, value, accepted_at) VALUES (?1, ?2, ?3, ?4)"
    /// ?1 message id, ?2 the message's bytes (blob).
    public static let insertBodySQL = "INSERT INTO message_bodies (id, raw) VALUES (?1, ?2)"
    /// ?1 token id, ?2 key, ?3 fingerprint (blob), ?4 response status, ?5 response body (blob), ?6 created_at.
    public static let putIdempotencySQL = "INSERT OR REPLACE INTO idempotency (token_id, key, fingerprint, status, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
}

extension Database {
    /// The newest record of (token, key), on a message's row or in the table, expired or not.
    public func idempotencyRecord(tokenID: Int64, key: String) throws(SQLiteError) -> IdempotencyRecord? {
        let inTable = try record(Database.idempotencyLookupSQL, tokenID: tokenID, key: key)
        let onRow = try record(Database.idempotencyRowLookupSQL, tokenID: tokenID, key: key)
        guard let inTable, let onRow else { return inTable ?? onRow }
        return onRow.createdAt >= inTable.createdAt ? onRow : inTable
    }

    func record(_ sql: String, tokenID: Int64, key: String) throws(SQLiteError) -> IdempotencyRecord? {
        let s = try statement(sql).bind(1, tokenID).bind(2, key)
        defer { s.finish() }
        guard try s.step() else { return nil }
        return IdempotencyRecord(fingerprint: s.blob(0), status: s.int(1), body: s.blob(2), createdAt: s.int64(3))
    }

    /// Inserts the queue/audit row with the call's idempotency record on it (`storesRecord`; a
    /// batch's messages carry none: the batch's is in the table). Call inside the group-commit
    /// transaction, after the look-up found no unexpired record of the key. `sending`: the delivery scheduler takes the
    /// message as soon as this commits, so the row starts as `sending` rather than `queued`
    /// (one UPDATE of the row and two index entries fewer per message; after a crash it is
    /// requeued like any other `sending` row).
    @discardableResult
    public func insertAccepted(_ m: NewMessage, sending: Bool = false, storesRecord: Bool = true) throws(SQLiteError) -> Int64 {
        try statement(Database.insertMessageSQL)
            .bind(1, m.acceptedAt).bind(2, m.tokenName).bind(3, m.idempotencyKey).bind(4, m.mailboxName).bind(5, m.mailboxAddress)
            .bind(6, m.recipient).bind(7, m.subject).bind(8, m.template).bind(9, m.messageID)
            .bind(10, sending ? "sending" : "queued").bind(11, m.recipients.map(RecipientState.encode))
            .bind(12, MetadataPair.encode(m.metadata))
            .bind(13, storesRecord ? m.tokenID : nil).bind(14, blob: storesRecord ? m.fingerprint : nil)
            .bind(15, storesRecord ? Int64(m.responseStatus) : nil).bind(16, blob: storesRecord ? m.responseBody : nil).run()
        let id = lastInsertRowID
        for pair in m.metadata {
            try statement(Database.insertMetadataSQL)
                .bind(1, id).bind(2, pair.key).bind(3, pair.value).bind(4, m.acceptedAt).run()
        }
        try statement(Database.insertBodySQL).bind(1, id).bind(2, blob: m.raw).run()
        return id
    }

    /// A record alone (replacing an expired one); inside the group commit's transaction.
    public func putIdempotencyRecord(tokenID: Int64, key: String, _ r: IdempotencyRecord) throws(SQLiteError) {
        try statement(Database.putIdempotencySQL)
            .bind(1, tokenID).bind(2, key).bind(3, blob: r.fingerprint).bind(4, r.status).bind(5, blob: r.body).bind(6, r.createdAt).run()
    }

    /// Deletes at most `limit` idempotency records created before `cutoff`; returns how many.
    /// Bounded so a large backlog never holds the loop for long.
    public func sweepIdempotency(createdBefore cutoff: Int64, limit: Int) throws(SQLiteError) -> Int {
        try statement("""
            DELETE FROM idempotency WHERE (token_id, key) IN
              (SELECT token_id, key FROM idempotency WHERE created_at < ?1 LIMIT ?2)
            """).bind(1, cutoff).bind(2, limit).run()
        return changes
    }

    static let auditColumns = """
        id, accepted_at, sent_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject, template,
        message_id, status, attempts, last_reply, recipients, metadata, next_attempt_at
        """

    /// The audit columns of a table named `prefix` ("m.") in a join.
    static func auditColumns(prefix: String) -> String {
        auditColumns.split(separator: ",").map { prefix + $0.filter { $0 != " " && $0 != "\n" } }.joined(separator: ", ")
    }

    func readAudit(_ s: Statement, raw: Bool) -> AuditEntry {
        AuditEntry(id: s.int64(0), acceptedAt: s.int64(1), sentAt: s.isNull(2) ? nil : s.int64(2), tokenName: s.string(3),
                   idempotencyKey: s.string(4), mailboxName: s.string(5), mailboxAddress: s.string(6), recipient: s.string(7),
                   subject: s.string(8), template: s.optionalString(9), messageID: s.string(10), status: s.string(11),
                   attempts: s.int(12), lastReply: s.optionalString(13), raw: raw ? s.blob(17) : [],
                   recipients: RecipientState.decode(s.optionalString(14)), metadata: MetadataPair.decode(s.optionalString(15)),
                   nextAttemptAt: s.isNull(16) ? nil : s.int64(16))
    }

    public func auditEntry(id: Int64) throws(SQLiteError) -> AuditEntry? {
        let s = try statement("""
            SELECT \(Database.auditColumns), (SELECT raw FROM message_bodies b WHERE b.id = messages.id)
            FROM messages WHERE id = ?1
            """).bind(1, id)
        defer { s.finish() }
        guard try s.step() else { return nil }
        return readAudit(s, raw: true)
    }
}
