/// The outbound queue's side of `messages`: what the delivery scheduler reads and writes.
/// Status moves queued → sending → sent | deferred → sending … | failed (SPEC §4). Each
/// finished attempt updates the row and appends a `delivery_attempts` row in the same
/// transaction (the scheduler batches them into the loop iteration's group commit).



extension Database {
    /// At start-up: rows a crashed run left `sending` are due again now. Returns how many.
    public func requeueInterrupted(nowMilliseconds now: Int64) throws(SQLiteError) -> Int {
        try statement("UPDATE messages SET status = 'queued', next_attempt_at = ?1 WHERE status = 'sending'").bind(1, now).run()
        return changes
    }

    /// Due `queued`/`deferred` messages, longest-due first (ties by id: acceptance order), at
    /// most `limit`. One index range per status on the partial index `messages_due (status,
    /// next_attempt_at, id) WHERE status = 'queued' OR status = 'deferred'`, read in index
    /// order: the statement stops after `limit` rows however long the backlog is (`status IN
    /// (…) ORDER BY id` would sort the whole backlog, message bytes included, on every scan).
    /// The status is a literal, not a parameter: only then can SQLite prove the partial index
    /// covers the query. The caller skips those it already holds.
    static func dueSQL(_ status: String) -> String {
        """
        SELECT id, accepted_at, mailbox_name, mailbox_address, recipient, message_id,
               (SELECT raw FROM message_bodies b WHERE b.id = messages.id), attempts, next_attempt_at, recipients
        FROM messages WHERE status = '\(status)' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2
        """
    }
    static let dueStatuses = ["queued", "deferred"]
    static let dueSQLs = dueStatuses.map(dueSQL)

    public func dueMessages(nowMilliseconds now: Int64, limit: Int) throws(SQLiteError) -> [QueuedMessage] {
        var rows: [(due: Int64, message: QueuedMessage)] = []
        for sql in Database.dueSQLs {
            let s = try statement(sql).bind(1, now).bind(2, limit)
            while try s.step() {
                rows.append((s.int64(8), QueuedMessage(id: s.int64(0), acceptedAt: s.int64(1), mailboxName: s.string(2), from: s.string(3),
                                                       recipient: s.string(4), messageID: s.string(5), raw: s.blob(6), attempts: s.int(7),
                                                       recipients: RecipientState.decode(s.optionalString(9)))))
            }
        }
        rows.sort { ($0.due, $0.message.id) < ($1.due, $1.message.id) }
        return rows.prefix(limit).map(\.message)
    }

    public func markSending(id: Int64) throws(SQLiteError) {
        try statement("UPDATE messages SET status = 'sending' WHERE id = ?1").bind(1, id).run()
    }

    /// Records a finished attempt. `status` is `sent`, `deferred` or `failed`;
    /// `nextAttemptAt` matters for `deferred` only.
    public func setRecipients(id: Int64, _ list: String) throws(SQLiteError) {
        try statement("UPDATE messages SET recipients = ?2 WHERE id = ?1").bind(1, id).bind(2, list).run()
    }

    public func recordAttempt(id: Int64, status: String, reply: String, atMilliseconds at: Int64, nextAttemptAt: Int64) throws(SQLiteError) {
        try statement("""
            UPDATE messages SET status = ?2, attempts = attempts + 1, last_reply = ?3,
                   sent_at = CASE WHEN ?2 = 'sent' THEN ?4 ELSE sent_at END, next_attempt_at = ?5
            WHERE id = ?1
            """).bind(1, id).bind(2, status).bind(3, reply).bind(4, at).bind(5, nextAttemptAt).run()
        try statement("INSERT INTO delivery_attempts (message_id, at, outcome, reply) VALUES (?1, ?2, ?3, ?4)")
            .bind(1, id).bind(2, at).bind(3, status).bind(4, reply).run()
    }

    public func deliveryAttempts(messageID id: Int64) throws(SQLiteError) -> [DeliveryAttempt] {
        let s = try statement("SELECT at, outcome, reply FROM delivery_attempts WHERE message_id = ?1 ORDER BY id").bind(1, id)
        var out: [DeliveryAttempt] = []
        while try s.step() { out.append(DeliveryAttempt(at: s.int64(0), outcome: s.string(1), reply: s.string(2))) }
        return out
    }

    /// Messages per status (queue depth).
    public func statusCounts() throws(SQLiteError) -> [String: Int] {
        let s = try statement("SELECT status, count(*) FROM messages GROUP BY status")
        var out: [String: Int] = [:]
        while try s.step() { out[s.string(0)] = s.int(1) }
        return out
    }
}

extension Database {
    /// Shutdown: a message taken from the queue but never handed to a relay goes back.
    public func requeue(id: Int64) throws(SQLiteError) {
        try statement("UPDATE messages SET status = 'queued' WHERE id = ?1 AND status = 'sending'").bind(1, id).run()
    }

    /// The earliest retry time after `now` (what is due now is picked up by the scan itself).
    public func nextDueTime(after now: Int64) throws(SQLiteError) -> Int64? {
        var next: Int64?
        for sql in Database.nextDueSQLs {
            let s = try statement(sql).bind(1, now)
            defer { s.finish() }
            if try s.step(), !s.isNull(0) { next = min(next ?? .max, s.int64(0)) }
        }
        return next
    }

    static let nextDueSQLs = dueStatuses.map {
        "SELECT min(next_attempt_at) FROM messages WHERE status = '\($0)' AND next_attempt_at > ?1"
    }
}

extension Database {
    /// The backlog by status (`queued`, `sending`, `deferred`): three ranges of the status
    /// index, never the whole audit.
    public func queueCounts() throws(SQLiteError) -> [String: Int] {
        var out: [String: Int] = [:]
        for status in ["queued", "sending", "deferred"] {
            let s = try statement("SELECT count(*) FROM messages WHERE status = ?1").bind(1, status)
            defer { s.finish() }
            out[status] = try s.step() ? s.int(0) : 0
        }
        return out
    }
}
