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
    /// One statement per shape of filters. The leading index is the metadata pair's, else
    /// the key's or the Message-ID's, else the recipient's, else the status's, else accepted-at's;
    /// every later filter only checks the rows it gives (a unary `+` keeps the planner off that
    /// column's index: a recipient's rows are few, a status's may be millions). A metadata page
    /// walks `message_metadata_lookup` newest first and reads each entry by its primary key.
    static func auditPageSQL(_ filter: AuditFilter, paged: Bool) -> String {
        let viaMetadata = filter.metadata != nil
        let m = viaMetadata ? "m." : ""
        let (at, id) = viaMetadata ? ("md.accepted_at", "md.message_id") : ("accepted_at", "id")
        var terms: [String] = []
        var led = false
        func check(_ term: String) {
            terms.append((led ? "+" : "") + m + term)
            led = true
        }
        if viaMetadata {
            terms += ["md.key = ?8", "md.value = ?9"]
            led = true
        }
        if filter.idempotencyKey != nil { check("idempotency_key = ?10") }
        if filter.messageID != nil { check("message_id = ?11") }
        if filter.recipient != nil { check("recipient = ?1 COLLATE NOCASE") }
        if filter.status != nil { check("status = ?2") }
        if filter.since != nil { terms.append("\(at) >= ?3") }
        if filter.until != nil { terms.append("\(at) < ?4") }
        if paged { terms.append("\(at) <= ?5 AND (\(at) < ?5 OR \(id) < ?6)") }
        var sql = viaMetadata
            ? "SELECT \(Database.auditColumns(prefix: "m.")) FROM message_metadata md INDEXED BY message_metadata_lookup CROSS JOIN messages m ON m.id = md.message_id"
            : "SELECT \(Database.auditColumns) FROM messages"
        if !terms.isEmpty { sql += " WHERE " + terms.joined(separator: " AND ") }
        return sql + " ORDER BY \(at) DESC, \(id) DESC LIMIT ?7"
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
