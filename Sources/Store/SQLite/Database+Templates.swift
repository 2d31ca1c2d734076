
extension Database {
    /// Adds or replaces the template with this identifier.
    public func putTemplate(identifier: String, subject: String, html: String, text: String?, now: Int64) throws(SQLiteError) {
        try statement("""
            INSERT INTO templates (identifier, subject, html, text, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
            ON CONFLICT(identifier) DO UPDATE SET subject = excluded.subject, html = excluded.html, text = excluded.text,
            updated_at = excluded.updated_at
            """).bind(1, identifier).bind(2, subject).bind(3, html).bind(4, text).bind(5, now).run()
    }

    public func template(identifier: String) throws(SQLiteError) -> TemplateRecord? {
        let s = try statement("SELECT identifier, subject, html, text, updated_at FROM templates WHERE identifier = ?1").bind(1, identifier)
        defer { s.finish() }
        guard try s.step() else { return nil }
        return TemplateRecord(identifier: s.string(0), subject: s.string(1), html: s.string(2), text: s.optionalString(3), updatedAt: s.int64(4))
    }

    public func removeTemplate(identifier: String) throws(SQLiteError) -> Bool {
        try statement("DELETE FROM templates WHERE identifier = ?1").bind(1, identifier).run()
        return changes > 0
    }

    public func templates() throws(SQLiteError) -> [TemplateRecord] {
        let s = try statement("SELECT identifier, subject, html, text, updated_at FROM templates ORDER BY identifier")
        var out: [TemplateRecord] = []
        while try s.step() {
            out.append(TemplateRecord(identifier: s.string(0), subject: s.string(1), html: s.string(2), text: s.optionalString(3), updatedAt: s.int64(4)))
        }
        return out
    }
}
