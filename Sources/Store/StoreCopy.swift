/// StoreCopy: `tickiti-mail store copy` — every row of one store into another (SQLite to
/// PostgreSQL and back): tokens, mailboxes, templates, idempotency records, the queue and the
/// audit with its attempts and bodies. Ids are kept, so a copied store serves at once: a
/// replayed key answers as before, `audit show ID` shows the same entry, and new rows continue
/// after the copied ones.
///
/// The source is read in one snapshot (a running server may keep writing; the copy is the
/// state of one moment), in keyset-ordered batches of bounded size; the target is written in
/// one transaction, so an interrupted copy leaves it empty and the command can simply be run
/// again. A target that holds any row is refused.

/// A value of a copied column, the same on both stores.
public enum CopyValue: Equatable, Sendable {
    case null
    case int(Int64)
    case text(String)
    case bytes([UInt8])
}

/// How a column is stored. `bool` is an INTEGER 0/1 in SQLite and a BOOLEAN in PostgreSQL; it
/// travels as `.int`.
public enum CopyColumnType: Sendable {
    case int, text, bytes, bool
}

public struct CopyTable: Sendable {
    public let name: String
    public let columns: [(name: String, type: CopyColumnType)]
    /// The unique key the batches are ordered and resumed by (a prefix of `columns`).
    public let key: [String]
    /// Rows per batch: bounded memory whatever the table's size (bodies are large).
    public let batch: Int
}

/// What each store must offer for a copy (both `AdminStore`s do).
public protocol CopyableStore: AnyObject {
    func copyRowCount(_ table: CopyTable) throws -> Int
    /// Up to `limit` rows in key order, after the row whose key values are `after`.
    func copyRead(_ table: CopyTable, after: [CopyValue]?, limit: Int) throws -> [[CopyValue]]
    func copyWrite(_ table: CopyTable, _ rows: [[CopyValue]]) throws
    /// Runs `body` in one read snapshot (without taking any write lock).
    func copySnapshot<T>(_ body: () throws -> T) throws -> T
    /// Runs `body` in one write transaction: all of its rows or none.
    func copyTransaction<T>(_ body: () throws -> T) throws -> T
    /// After the last row, inside the write transaction (PostgreSQL: identities continue after
    /// the copied ids).
    func copyFinish() throws
}

public enum StoreCopy {
    /// Every table of the product, parents before children.
    public static let tables: [CopyTable] = [
        CopyTable(name: "tokens", columns: [("id", .int), ("name", .text), ("secret_hash", .bytes), ("abilities", .text),
                                            ("created_at", .int), ("revoked_at", .int), ("last_used_at", .int)], key: ["id"], batch: 1000),
        CopyTable(name: "mailboxes", columns: [("id", .int), ("name", .text), ("address", .text), ("display_name", .text),
                                               ("dsn", .text), ("enabled", .bool), ("created_at", .int)], key: ["id"], batch: 1000),
        CopyTable(name: "templates", columns: [("id", .int), ("identifier", .text), ("subject", .text), ("html", .text), ("text", .text),
                                               ("created_at", .int), ("updated_at", .int)], key: ["id"], batch: 200),
        CopyTable(name: "idempotency", columns: [("token_id", .int), ("key", .text), ("fingerprint", .bytes), ("status", .int),
                                                 ("body", .bytes), ("created_at", .int)], key: ["token_id", "key"], batch: 1000),
        CopyTable(name: "messages", columns: [("id", .int), ("accepted_at", .int), ("sent_at", .int), ("token_name", .text),
                                              ("idempotency_key", .text), ("mailbox_name", .text), ("mailbox_address", .text),
                                              ("recipient", .text), ("subject", .text), ("template", .text), ("message_id", .text),
                                              ("status", .text), ("attempts", .int), ("next_attempt_at", .int), ("last_reply", .text),
                                              ("recipients", .text), ("metadata", .text), ("uncertain", .int),
                                              ("record_token", .int), ("record_fingerprint", .bytes), ("record_status", .int),
                                              ("record_body", .bytes)],
                  key: ["id"], batch: 1000),
        CopyTable(name: "message_bodies", columns: [("id", .int), ("raw", .bytes)], key: ["id"], batch: 100),
        CopyTable(name: "message_metadata", columns: [("message_id", .int), ("key", .text), ("value", .text), ("accepted_at", .int)],
                  key: ["message_id", "key"], batch: 1000),
        CopyTable(name: "delivery_attempts", columns: [("id", .int), ("message_id", .int), ("at", .int), ("outcome", .text),
                                                       ("reply", .text)], key: ["id"], batch: 1000),
    ]

    public struct TargetNotEmpty: Error, CustomStringConvertible {
        public let table: String
        public let rows: Int
        public var description: String { "the target is not empty (\(table): \(rows) rows); copy into a new, empty store" }
    }

    public struct Progress: Sendable {
        public let table: String
        public let copied: Int
        public let total: Int
    }

    /// Copies every table; returns the rows copied per table, in `tables` order.
    @discardableResult
    public static func run(from source: CopyableStore, to target: CopyableStore,
                           progress: (Progress) -> Void = { _ in }) throws -> [(table: String, rows: Int)] {
        for t in tables {
            let n = try target.copyRowCount(t)
            if n > 0 { throw TargetNotEmpty(table: t.name, rows: n) }
        }
        return try source.copySnapshot {
            let totals = try tables.map { try source.copyRowCount($0) }
            return try target.copyTransaction {
                var copied: [(table: String, rows: Int)] = []
                for (t, total) in zip(tables, totals) {
                    let keyIndexes = t.key.map { k in t.columns.firstIndex { $0.name == k }! }
                    var after: [CopyValue]?
                    var done = 0
                    progress(Progress(table: t.name, copied: 0, total: total))
                    while true {
                        let rows = try source.copyRead(t, after: after, limit: t.batch)
                        if rows.isEmpty { break }
                        try target.copyWrite(t, rows)
                        done += rows.count
                        after = keyIndexes.map { rows[rows.count - 1][$0] }
                        progress(Progress(table: t.name, copied: done, total: total))
                        if rows.count < t.batch { break }
                    }
                    copied.append((t.name, done))
                }
                try target.copyFinish()
                return copied
            }
        }
    }
}
