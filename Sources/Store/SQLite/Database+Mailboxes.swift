
extension Database {
    public func addMailbox(name: String, address: String, displayName: String?, dsn: String, enabled: Bool, now: Int64) throws(SQLiteError) -> Int64 {
        try statement("INSERT INTO mailboxes (name, address, display_name, dsn, enabled, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(1, name).bind(2, address).bind(3, displayName).bind(4, dsn).bind(5, enabled ? 1 : 0).bind(6, now).run()
        return lastInsertRowID
    }

    public func updateMailbox(name: String, address: String?, displayName: String?, dsn: String?) throws(SQLiteError) -> Bool {
        try statement("""
            UPDATE mailboxes SET address = coalesce(?2, address), dsn = coalesce(?4, dsn),
                   display_name = CASE WHEN ?3 IS NULL THEN display_name WHEN ?3 = '' THEN NULL ELSE ?3 END
            WHERE name = ?1
            """).bind(1, name).bind(2, address).bind(3, displayName).bind(4, dsn).run()
        return changes > 0
    }

    public func unfinishedMessages(mailbox: String) throws(SQLiteError) -> Int {
        let s = try statement("SELECT count(*) FROM messages WHERE status IN ('queued', 'sending', 'deferred') AND mailbox_name = ?1").bind(1, mailbox)
        defer { s.finish() }
        return try s.step() ? s.int(0) : 0
    }

    public func removeMailbox(name: String) throws(SQLiteError) -> Bool {
        try statement("DELETE FROM mailboxes WHERE name = ?1").bind(1, name).run()
        return changes > 0
    }

    /// All mailboxes by creation order (ties by id).
    public func mailboxes() throws(SQLiteError) -> [MailboxRecord] {
        let s = try statement("""
            SELECT m.id, m.name, m.address, m.display_name, m.dsn, m.enabled, m.created_at, p.until, p.level, p.reason
            FROM mailboxes m LEFT JOIN mailbox_pauses p ON p.mailbox = m.name ORDER BY m.created_at, m.id
            """)
        var out: [MailboxRecord] = []
        while try s.step() {
            out.append(MailboxRecord(id: s.int64(0), name: s.string(1), address: s.string(2), displayName: s.optionalString(3),
                                     dsn: s.string(4), enabled: s.int(5) != 0, createdAt: s.int64(6),
                                     pause: s.isNull(7) ? nil : MailboxPause(until: s.int64(7), level: s.int(8), reason: s.string(9))))
        }
        return out
    }

    /// Returns false when there is no mailbox with that name.
    public func setMailboxEnabled(name: String, _ enabled: Bool) throws(SQLiteError) -> Bool {
        try statement("UPDATE mailboxes SET enabled = ?2 WHERE name = ?1").bind(1, name).bind(2, enabled ? 1 : 0).run()
        return changes > 0
    }
}
