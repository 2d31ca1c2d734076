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
               (SELECT raw FROM message_bodies b WHERE b.id = messages.id), attempts, next_attempt_at, recipients, uncertain
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
                var m = QueuedMessage(id: s.int64(0), acceptedAt: s.int64(1), mailboxName: s.string(2), from: s.string(3),
                                      recipient: s.string(4), messageID: s.string(5), raw: s.blob(6), attempts: s.int(7),
                                      recipients: RecipientState.decode(s.optionalString(9)))
                m.uncertainAttempts = s.int(10)
                rows.append((s.int64(8), m))
            }
        }
        rows.sort { ($0.due, $0.message.id) < ($1.due, $1.message.id) }
        return rows.prefix(limit).map(\.message)
    }

    // The delivery's statement texts (printed by `tickiti-mail store sql` for Benchmarks/floor, like
    // the acceptance's in Database+Messages.swift).

    /// A message accepted as `queued` when the scheduler takes it: ?1 message id.
    public static let markSendingSQL = "UPDATE messages SET status = 'sending' WHERE id = ?1"
    /// ?1 message id, ?2 status, ?3 reply, ?4 at (sent_at when `sent`), ?5 next_attempt_at, ?6 1 when the
    /// attempt counts (AttemptOutcome.counts) else 0, ?7 1 when `uncertain` else 0.
    public static let recordAttemptSQL = """
        UPDATE messages SET status = ?2, attempts = attempts + ?6, uncertain = uncertain + ?7, last_reply = ?3,
               sent_at = CASE WHEN ?2 = 'sent' THEN ?4 ELSE sent_at END, next_attempt_at = ?5
        WHERE id = ?1
        """
    /// ?1 message id, ?2 at, ?3 outcome, ?4 reply.
    public static let insertAttemptSQL = "INSERT INTO delivery_attempts (message_id, at, outcome, reply) VALUES (?1, ?2, ?3, ?4)"

    public func markSending(id: Int64) throws(SQLiteError) {
        try statement(Database.markSendingSQL).bind(1, id).run()
    }

    public func setRecipients(id: Int64, _ list: String) throws(SQLiteError) {
        try statement("UPDATE messages SET recipients = ?2 WHERE id = ?1").bind(1, id).bind(2, list).run()
    }

    /// Records a finished attempt: the message's new `status` (`nextAttemptAt` matters for
    /// `deferred` only) and the attempt's `outcome` (StatusWrite.attempt).
    public func recordAttempt(id: Int64, status: String, outcome: String, reply: String, atMilliseconds at: Int64, nextAttemptAt: Int64) throws(SQLiteError) {
        try statement(Database.recordAttemptSQL).bind(1, id).bind(2, status).bind(3, reply).bind(4, at).bind(5, nextAttemptAt)
            .bind(6, AttemptOutcome.counts(outcome) ? 1 : 0).bind(7, outcome == "uncertain" ? 1 : 0).run()
        try statement(Database.insertAttemptSQL).bind(1, id).bind(2, at).bind(3, outcome).bind(4, reply).run()
    }

    // MARK: Relay policy (SPEC §6)

    public func setMailboxPause(_ mailbox: String, _ pause: MailboxPause?) throws(SQLiteError) {
        if let pause {
            try statement("""
                INSERT INTO mailbox_pauses (mailbox, until, level, reason) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT (mailbox) DO UPDATE SET until = excluded.until, level = excluded.level, reason = excluded.reason
                """).bind(1, mailbox).bind(2, pause.until).bind(3, pause.level).bind(4, pause.reason).run()
        } else {
            try statement("DELETE FROM mailbox_pauses WHERE mailbox = ?1").bind(1, mailbox).run()
        }
    }

    /// One more minute's count of the mailbox's `daily_recipients=` window; minutes that left
    /// the window are deleted when a new one begins.
    public func addRecipientsSent(_ mailbox: String, at: Int64, count: Int) throws(SQLiteError) {
        let minute = at / 60_000
        try statement("""
            INSERT INTO mailbox_usage (mailbox, minute, recipients) VALUES (?1, ?2, ?3)
            ON CONFLICT (mailbox, minute) DO UPDATE SET recipients = recipients + excluded.recipients
            """).bind(1, mailbox).bind(2, minute).bind(3, count).run()
        try statement("DELETE FROM mailbox_usage WHERE mailbox = ?1 AND minute <= ?2").bind(1, mailbox).bind(2, minute - 1440).run()
    }

    /// The per-minute counts of the last 24 hours before `at` (oldest first).
    public func recipientUsage(_ mailbox: String, at: Int64) throws(SQLiteError) -> [(minute: Int64, count: Int)] {
        let s = try statement("SELECT minute, recipients FROM mailbox_usage WHERE mailbox = ?1 AND minute > ?2 ORDER BY minute")
            .bind(1, mailbox).bind(2, at / 60_000 - 1440)
        var out: [(minute: Int64, count: Int)] = []
        while try s.step() { out.append((s.int64(0), s.int(1))) }
        return out
    }

    public func recipientsSent(mailbox: String, since: Int64) throws(SQLiteError) -> Int {
        let s = try statement("SELECT coalesce(sum(recipients), 0) FROM mailbox_usage WHERE mailbox = ?1 AND minute > ?2")
            .bind(1, mailbox).bind(2, since / 60_000)
        defer { s.finish() }
        return try s.step() ? s.int(0) : 0
    }

    // MARK: Operators (`message retry|cancel`)

    public func retryMessage(id: Int64, now: Int64) throws(SQLiteError) -> MessageChange {
        guard let row = try messageStatus(id: id) else { return .notFound }
        let (status, recipients) = row
        guard status == "deferred" || status == "failed" || status == "uncertain" else { return .refused(status: status) }
        var list = RecipientState.decode(recipients)
        if list != nil { for i in list!.indices where list![i].status == .failed { list![i].status = .pending } }
        try statement("""
            UPDATE messages SET status = 'queued', next_attempt_at = ?2, attempts = 0, uncertain = 0,
                   recipients = coalesce(?3, recipients) WHERE id = ?1
            """).bind(1, id).bind(2, now).bind(3, list.map(RecipientState.encode)).run()
        try statement("INSERT INTO delivery_attempts (message_id, at, outcome, reply) VALUES (?1, ?2, 'retried', ?3)")
            .bind(1, id).bind(2, now).bind(3, "retried by an operator (was \(status))").run()
        return .changed
    }

    public func cancelMessage(id: Int64, now: Int64) throws(SQLiteError) -> MessageChange {
        guard let status = try messageStatus(id: id)?.0 else { return .notFound }
        guard status == "queued" || status == "deferred" else { return .refused(status: status) }
        try statement("UPDATE messages SET status = 'cancelled', next_attempt_at = ?2 WHERE id = ?1").bind(1, id).bind(2, now).run()
        try statement("INSERT INTO delivery_attempts (message_id, at, outcome, reply) VALUES (?1, ?2, 'cancelled', ?3)")
            .bind(1, id).bind(2, now).bind(3, "cancelled by an operator (was \(status))").run()
        return .changed
    }

    func messageStatus(id: Int64) throws(SQLiteError) -> (String, String?)? {
        let s = try statement("SELECT status, recipients FROM messages WHERE id = ?1").bind(1, id)
        defer { s.finish() }
        return try s.step() ? (s.string(0), s.optionalString(1)) : nil
    }

    /// One range of `messages_status (status, accepted_at)`.
    public func messageIDs(status: String, mailbox: String?, limit: Int) throws(SQLiteError) -> [Int64] {
        let s = try statement("""
            SELECT id FROM messages WHERE status = ?1 AND (?2 IS NULL OR mailbox_name = ?2) ORDER BY accepted_at, id LIMIT ?3
            """).bind(1, status).bind(2, mailbox).bind(3, limit)
        var out: [Int64] = []
        while try s.step() { out.append(s.int64(0)) }
        return out
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
    /// The backlog by status (`queued`, `sending`, `deferred`) and the messages an operator may
    /// want to look at (`uncertain`, `cancelled`): ranges of the status index, never the whole audit.
    public func queueCounts() throws(SQLiteError) -> [String: Int] {
        var out: [String: Int] = [:]
        for status in ["queued", "sending", "deferred", "uncertain", "cancelled"] {
            let s = try statement("SELECT count(*) FROM messages WHERE status = ?1").bind(1, status)
            defer { s.finish() }
            out[status] = try s.step() ? s.int(0) : 0
        }
        return out
    }
}
