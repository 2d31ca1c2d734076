/// SQLiteError: a failed SQLite call with its result codes, SQLite's message and the SQL
/// that failed (GRDB habit). Raw codes stay inside the module; callers ask questions.
import CSQLite

public struct SQLiteError: StoreError, Sendable, CustomStringConvertible {
    let code: Int32
    let extendedCode: Int32
    public let message: String
    public let sql: String?

    public var description: String {
        "SQLite error \(extendedCode) (\(message))" + (sql.map { " in «\($0)»" } ?? "")
    }

    /// Another connection holds the write lock (the admin CLI while the server commits).
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    /// A UNIQUE or PRIMARY KEY constraint failed.
    public var isUniqueViolation: Bool {
        extendedCode == CSQLITE_CONSTRAINT_UNIQUE || extendedCode == CSQLITE_CONSTRAINT_PRIMARYKEY
    }
    /// The disk or database is full.
    public var isFull: Bool { code == SQLITE_FULL }

    init(db: OpaquePointer?, code: Int32, sql: String?) {
        self.code = code & 0xff
        self.extendedCode = db.map { sqlite3_extended_errcode($0) } ?? code
        self.message = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        self.sql = sql
    }

    init(message: String, sql: String? = nil) {
        code = SQLITE_ERROR
        extendedCode = SQLITE_ERROR
        self.message = message
        self.sql = sql
    }
}
