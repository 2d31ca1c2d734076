/// The sent-mail audit's pages (`GET /api/audit`, `audit list`): newest first by
/// (accepted_at, id), keyset-paged, filtered by recipient, status and an accepted-at range.
///
/// Every page is one bounded statement over one index (migration 3): the recipient index when a
/// recipient is given (status is then a filter on its few rows), else the status index, else the
/// accepted-at index. The SQL text depends only on which filters are present, so each shape is
/// prepared once and cached. The cursor is the (accepted_at, id) of the last row of a page: rows
/// accepted later never shift the pages after it; it is `AuditAPI`'s `AuditCursor`, the very
/// value the API hands out (opaquely encoded).
import AuditAPI


extension Database {
    static func auditPageSQL(_ filter: AuditFilter, paged: Bool) -> String {
        if filter.metadata != nil { return metadataPageSQL(filter, paged: paged) }
        var sql = "SELECT \(Database.auditColumns) FROM messages"
        var terms: [String] = []
        if filter.idempotencyKey != nil || filter.messageID != nil {
            // One call's entries: its own index, the other filters check those few rows.
            terms.append(filter.idempotencyKey != nil ? "idempotency_key = ?10" : "message_id = ?11")
            if filter.idempotencyKey != nil && filter.messageID != nil { terms.append("+message_id = ?11") }
            if filter.recipient != nil { terms.append("+recipient = ?1 COLLATE NOCASE") }
            if filter.status != nil { terms.append("+status = ?2") }
        } else if filter.recipient != nil {
            terms.append("recipient = ?1 COLLATE NOCASE")
            // Unary + keeps the planner on the recipient index (a recipient's rows are few; a
            // status's may be millions).
            if filter.status != nil { terms.append("+status = ?2") }
        } else if filter.status != nil {
            terms.append("status = ?2")
        }
        if filter.since != nil { terms.append("accepted_at >= ?3") }
        if filter.until != nil { terms.append("accepted_at < ?4") }
        if paged { terms.append("accepted_at <= ?5 AND (accepted_at < ?5 OR id < ?6)") }
        if !terms.isEmpty { sql += " WHERE " + terms.joined(separator: " AND ") }
        return sql + " ORDER BY accepted_at DESC, id DESC LIMIT ?7"
    }

    /// A `metadata.KEY=VALUE` page: the range of `message_metadata_lookup` for the pair, newest
    /// first, each row's entry by its primary key; the other filters check those rows.
    static func metadataPageSQL(_ filter: AuditFilter, paged: Bool) -> String {
        let columns = Database.auditColumns.split(separator: ",").map { "m." + $0.filter { $0 != " " && $0 != "\n" } }.joined(separator: ", ")
        var terms = ["md.key = ?8", "md.value = ?9"]
        if filter.idempotencyKey != nil { terms.append("m.idempotency_key = ?10") }
        if filter.messageID != nil { terms.append("m.message_id = ?11") }
        if filter.recipient != nil { terms.append("m.recipient = ?1 COLLATE NOCASE") }
        if filter.status != nil { terms.append("m.status = ?2") }
        if filter.since != nil { terms.append("md.accepted_at >= ?3") }
        if filter.until != nil { terms.append("md.accepted_at < ?4") }
        if paged { terms.append("md.accepted_at <= ?5 AND (md.accepted_at < ?5 OR md.message_id < ?6)") }
        return "SELECT \(columns) FROM message_metadata md INDEXED BY message_metadata_lookup CROSS JOIN messages m ON m.id = md.message_id WHERE "
            + terms.joined(separator: " AND ") + " ORDER BY md.accepted_at DESC, md.message_id DESC LIMIT ?7"
    }

    /// Up to `limit` entries older than `after` (or the newest ones), newest first.
    public func auditPage(_ filter: AuditFilter, limit: Int, after: AuditCursor? = nil) throws(SQLiteError) -> [AuditEntry] {
        let s = try statement(Database.auditPageSQL(filter, paged: after != nil))
        if let r = filter.recipient { try s.bind(1, r) }
        if let st = filter.status { try s.bind(2, st) }
        if let v = filter.since { try s.bind(3, v) }
        if let v = filter.until { try s.bind(4, v) }
        if let a = after { try s.bind(5, a.acceptedAt).bind(6, a.id) }
        try s.bind(7, limit)
        if let md = filter.metadata { try s.bind(8, md.key).bind(9, md.value) }
        if let k = filter.idempotencyKey { try s.bind(10, k) }
        if let m = filter.messageID { try s.bind(11, m) }
        var out: [AuditEntry] = []
        out.reserveCapacity(min(limit, 256))
        while try s.step() { out.append(readAudit(s, raw: false)) }
        return out
    }

    /// The query plan of a page, one line per step (tests assert that no page sorts or scans).
    public func auditPagePlan(_ filter: AuditFilter, paged: Bool) throws(SQLiteError) -> [String] {
        let s = try statement("EXPLAIN QUERY PLAN " + Database.auditPageSQL(filter, paged: paged))
        defer { s.finish() }
        var out: [String] = []
        while try s.step() { out.append(s.string(3)) }
        return out
    }
}
