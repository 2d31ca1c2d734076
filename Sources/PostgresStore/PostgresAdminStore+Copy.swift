/// `store copy` on PostgreSQL: the source read in one REPEATABLE READ, READ ONLY transaction
/// (one snapshot, no locks that stop a running server), batches by keyset; the target written
/// with multi-row INSERTs in the admin store's transaction, then every identity set to continue
/// after the copied ids (explicit ids do not advance them).
import PostgresClient
import Store

extension PostgresAdminStore: CopyableStore {
    static let identityTables = ["tokens", "mailboxes", "templates", "messages", "delivery_attempts"]

    public func copyRowCount(_ table: CopyTable) throws -> Int {
        try connection.exec("SELECT count(*) FROM \(table.name)").int(0, 0)
    }

    static func cast(_ type: CopyColumnType) -> String {
        switch type {
        case .int: return "bigint"
        case .text: return "text"
        case .bytes: return "bytea"
        case .bool: return "integer::boolean"
        }
    }

    static func parameter(_ v: CopyValue) -> PGValue {
        switch v {
        case .null: return .null
        case .int(let x): return .int(x)
        case .text(let t): return .text(t)
        case .bytes(let b): return .bytes(b)
        }
    }

    public func copyRead(_ table: CopyTable, after: [CopyValue]?, limit: Int) throws -> [[CopyValue]] {
        let columns = table.columns.map { $0.type == .bool ? "\($0.name)::integer" : $0.name }.joined(separator: ", ")
        let key = table.key.joined(separator: ", ")
        var parameters: [PGValue] = []
        var sql = "SELECT \(columns) FROM \(table.name)"
        if let after {
            let types = table.key.map { k in table.columns.first { $0.name == k }!.type }
            let marks = types.enumerated().map { "$\($0.offset + 1)::\(Self.cast($0.element))" }.joined(separator: ", ")
            sql += " WHERE (\(key)) > (\(marks))"
            parameters = after.map(Self.parameter)
        }
        parameters.append(.int(Int64(limit)))
        sql += " ORDER BY \(key) LIMIT $\(parameters.count)::bigint"
        let r = try connection.exec(sql, parameters)
        return (0..<r.rowCount).map { row in
            table.columns.enumerated().map { col, c in
                if r.isNull(row, col) { return .null }
                switch c.type {
                case .int, .bool: return .int(r.int64(row, col))
                case .text: return .text(r.string(row, col))
                case .bytes: return .bytes(r.bytes(row, col))
                }
            }
        }
    }

    public func copyWrite(_ table: CopyTable, _ rows: [[CopyValue]]) throws {
        guard !rows.isEmpty else { return }
        let casts = table.columns.map { Self.cast($0.type) }
        var sql = "INSERT INTO \(table.name) (\(table.columns.map(\.name).joined(separator: ", "))) VALUES "
        var parameters: [PGValue] = []
        parameters.reserveCapacity(rows.count * casts.count)
        for (r, row) in rows.enumerated() {
            if r > 0 { sql += ", " }
            sql += "("
            for (i, v) in row.enumerated() {
                parameters.append(Self.parameter(v))
                sql += (i > 0 ? ", $" : "$") + String(parameters.count) + "::" + casts[i]
            }
            sql += ")"
        }
        _ = try connection.exec(sql, parameters)
    }

    public func copySnapshot<T>(_ body: () throws -> T) throws -> T {
        _ = try connection.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let v = try body()
            _ = try connection.exec("COMMIT")
            return v
        } catch {
            _ = try? connection.exec("ROLLBACK")
            throw error
        }
    }

    /// The copied tokens, mailboxes and templates are news to a server already LISTENing.
    public func copyTransaction<T>(_ body: () throws -> T) throws -> T { try directoryWrite(body) }

    /// SQLite keeps a send_email call's idempotency record on its message's row; here the
    /// records go to `idempotency` (the newest of each token and key, unless the copied table
    /// already holds a newer one); the row's columns stay as copied (PostgreSQL reads only the
    /// table; a copy back to SQLite then has the same rows and the records in both places).
    public func copyFinish() throws {
        _ = try connection.exec("""
            INSERT INTO idempotency (token_id, key, fingerprint, status, body, created_at)
            SELECT DISTINCT ON (record_token, idempotency_key) record_token, idempotency_key, record_fingerprint, record_status,
                   record_body, accepted_at
            FROM messages m WHERE record_token IS NOT NULL
              AND token_name = (SELECT name FROM tokens t WHERE t.id = m.record_token)
            ORDER BY record_token, idempotency_key, accepted_at DESC
            ON CONFLICT (token_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, status = excluded.status,
                body = excluded.body, created_at = excluded.created_at
              WHERE idempotency.created_at < excluded.created_at
            """)
        for t in Self.identityTables {
            _ = try connection.exec("SELECT setval(pg_get_serial_sequence('\(t)', 'id'), GREATEST(max(id), 1), max(id) IS NOT NULL) FROM \(t)")
        }
    }
}
