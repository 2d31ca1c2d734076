/// `store copy` on SQLite: batches read by keyset in one read transaction (a snapshot: a
/// running server keeps writing meanwhile), rows written with one prepared INSERT per table.
import CSQLite

extension Database: CopyableStore {
    public func copyRowCount(_ table: CopyTable) throws -> Int {
        let s = try statement("SELECT count(*) FROM \(table.name)")
        defer { s.finish() }
        return try s.step() ? s.int(0) : 0
    }

    public func copyRead(_ table: CopyTable, after: [CopyValue]?, limit: Int) throws -> [[CopyValue]] {
        let columns = table.columns.map(\.name).joined(separator: ", ")
        let key = table.key.joined(separator: ", ")
        let marks = table.key.map { _ in "?" }.joined(separator: ", ")
        let s: Statement
        if let after {
            s = try statement("SELECT \(columns) FROM \(table.name) WHERE (\(key)) > (\(marks)) ORDER BY \(key) LIMIT ?")
            for (i, v) in after.enumerated() { try bind(s, Int32(i + 1), v) }
            _ = try s.bind(Int32(after.count + 1), limit)
        } else {
            s = try statement("SELECT \(columns) FROM \(table.name) ORDER BY \(key) LIMIT ?").bind(1, limit)
        }
        defer { s.finish() }
        var rows: [[CopyValue]] = []
        rows.reserveCapacity(limit)
        while try s.step() {
            rows.append(table.columns.enumerated().map { i, c in
                let col = Int32(i)
                if s.isNull(col) { return .null }
                switch c.type {
                case .int, .bool: return .int(s.int64(col))
                case .text: return .text(s.string(col))
                case .bytes: return .bytes(s.blob(col))
                }
            })
        }
        return rows
    }

    public func copyWrite(_ table: CopyTable, _ rows: [[CopyValue]]) throws {
        let marks = table.columns.map { _ in "?" }.joined(separator: ", ")
        let sql = "INSERT INTO \(table.name) (\(table.columns.map(\.name).joined(separator: ", "))) VALUES (\(marks))"
        for row in rows {
            let s = try statement(sql)
            for (i, v) in row.enumerated() { try bind(s, Int32(i + 1), v) }
            try s.run()
        }
    }

    func bind(_ s: Statement, _ i: Int32, _ v: CopyValue) throws {
        switch v {
        case .null: _ = try s.bind(i, nil as String?)
        case .int(let x): _ = try s.bind(i, x)
        case .text(let t): _ = try s.bind(i, t)
        case .bytes(let b): _ = try s.bind(i, blob: b)
        }
    }

    public func copySnapshot<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN DEFERRED")
        do {
            let v = try body()
            try execute("COMMIT")
            return v
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public func copyTransaction<T>(_ body: () throws -> T) throws -> T { try transaction(body) }

    public func copyFinish() throws {}
}
