/// Tokens: created by `token create`, looked up by ID on every authenticated request (a
/// primary-key read, so a revoke by the admin CLI takes effect on the very next request),
/// revoked by name. Only the SHA-256 of the secret is stored.
import Auth


extension Database {
    public func createToken(name: String, secretHash: [UInt8], abilities: [String], now: Int64) throws(SQLiteError) -> Int64 {
        try statement("INSERT INTO tokens (name, secret_hash, abilities, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(1, name).bind(2, blob: secretHash).bind(3, abilities.joined(separator: ",")).bind(4, now).run()
        return lastInsertRowID
    }

    public func token(id: Int64) throws(SQLiteError) -> StoredToken? {
        let s = try statement("SELECT id, name, secret_hash, abilities, revoked_at FROM tokens WHERE id = ?1").bind(1, id)
        defer { s.finish() }
        guard try s.step() else { return nil }
        return StoredToken(id: s.int64(0), name: s.string(1), secretHash: s.blob(2),
                           abilities: s.string(3).split(separator: ",").map(String.init), revoked: !s.isNull(4))
    }

    /// Never moves back (two processes may write out of order).
    public func noteTokenUse(id: Int64, at: Int64) throws(SQLiteError) {
        try statement("UPDATE tokens SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1").bind(1, id).bind(2, at).run()
    }

    public func tokens() throws(SQLiteError) -> [TokenSummary] {
        let s = try statement("SELECT id, name, abilities, created_at, revoked_at, last_used_at FROM tokens ORDER BY id")
        var out: [TokenSummary] = []
        while try s.step() {
            out.append(TokenSummary(id: s.int64(0), name: s.string(1), abilities: s.string(2).split(separator: ",").map(String.init),
                                    createdAt: s.int64(3), revokedAt: s.isNull(4) ? nil : s.int64(4), lastUsedAt: s.isNull(5) ? nil : s.int64(5)))
        }
        return out
    }

    /// Returns false when no active token has that name.
    public func removeToken(name: String) throws(SQLiteError) -> Bool {
        try statement("DELETE FROM idempotency WHERE token_id IN (SELECT id FROM tokens WHERE name = ?1)").bind(1, name).run()
        try statement("DELETE FROM tokens WHERE name = ?1").bind(1, name).run()
        return changes > 0
    }

    public func revokeToken(name: String, now: Int64) throws(SQLiteError) -> Bool {
        try statement("UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL").bind(1, name).bind(2, now).run()
        return changes > 0
    }
}
