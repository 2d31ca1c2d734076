/// Database: the one SQLite connection of a process (the server's or an admin command's).
///
/// Owns: opening (WAL, `synchronous`, busy timeout, foreign keys), versioned migrations
/// (PRAGMA user_version), a cache of prepared statements keyed by SQL, transactions.
/// Every call blocks the calling thread — in the server that is the loop — so statements
/// stay short and indexed, and the server's busy timeout is small.
///
/// Durability: `synchronous=FULL` by default — in WAL mode that is one fsync of the WAL per
/// commit, which is what makes "the 200 is sent only after its row is durable" true across a
/// power loss, not just a process crash; the group commit amortises that fsync over every
/// request of a loop iteration. (`NORMAL` survives kill -9 but may lose the last commits on
/// power loss.)
#if canImport(Glibc)
import Glibc
#endif
import CSQLite
import CSQLitePageCache

public final class Database {
    public enum Synchronous: String, Sendable { case normal = "NORMAL", full = "FULL" }

    private(set) var db: OpaquePointer
    /// The connection's busy timeout (`configure`).
    private(set) var busyTimeoutMilliseconds: Int32 = 0
    public let path: String
    var statements: [SQLKey: Statement] = [:]
    /// The commit hook's context (Database+Checkpoint), released with the connection.
    var walHookBox: UnsafeMutableRawPointer?
    public private(set) var inTransaction = false
    /// The connection's current `PRAGMA synchronous` (it may change between transactions).
    public private(set) var synchronous: Synchronous

    /// Opens (creating it and its folder when missing) and migrates the database.
    public convenience init(path: String, synchronous: Synchronous = .full, busyTimeoutMilliseconds: Int32 = 5000) throws(SQLiteError) {
        try self.init(path: path, synchronous: synchronous, busyTimeoutMilliseconds: busyTimeoutMilliseconds, migratingThrough: Migrations.steps.count)
    }

    /// `migratingThrough`: the schema version to stop at (tests of a migration start older).
    init(path: String, synchronous: Synchronous, busyTimeoutMilliseconds: Int32, migratingThrough version: Int) throws(SQLiteError) {
        self.path = path
        try Database.makeParentDirectory(of: path)
        db = try Database.openHandle(path)
        self.synchronous = synchronous
        try configure(busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        if try Migrations.run(on: self, through: version) {
            // A connection that rewrote table definitions (writable_schema) stays slower for
            // its whole life: ~400 more allocations per transaction, measured. A fresh one
            // reads the new definitions like any other.
            let fresh = try Database.openHandle(path)   // first: a failure leaves `db` as it was
            for s in statements.values { s.finalize() }
            statements.removeAll()
            sqlite3_close_v2(db)
            db = fresh
            try configure(busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        }
    }

    static func openHandle(_ path: String) throws(SQLiteError) -> OpaquePointer {
        _ = Database.pageCache
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let e = SQLiteError(db: handle, code: rc, sql: nil)
            sqlite3_close_v2(handle)
            throw SQLiteError(message: "cannot open \(path): \(e.message)")
        }
        return handle
    }

    func configure(busyTimeoutMilliseconds: Int32) throws(SQLiteError) {
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
        for pragma in Database.connectionPragmas(synchronous) { try execute(pragma) }
    }

    /// What every connection runs at open, in order (printed by `tickiti-mail store sql` for
    /// Benchmarks/floor). Page size and `wal_autocheckpoint` are SQLite's defaults.
    public static func connectionPragmas(_ synchronous: Synchronous) -> [String] {
        [
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=\(synchronous.rawValue)",
            "PRAGMA foreign_keys=ON",
            // 32 MiB of page cache (the default is 2 MiB): the b-tree pages the acceptance and
            // delivery batches touch — random idempotency-key leaves above all — stay in memory
            // instead of being read back from the WAL under load.
            "PRAGMA cache_size=-32768",
        ]
    }

    /// The page cache wrapper (CSQLitePageCache), installed once before the process's first
    /// open: SQLite's own cache, without the walk of its whole hash table that a commit after a
    /// page split otherwise makes. SQLITE_OK, or why SQLite keeps its cache unwrapped (another
    /// library initialised it first).
    public static let pageCache: Int32 = tickiti_sqlite_install_page_cache()

    /// How many cache truncations (one per transaction) the wrapper forwarded to SQLite's cache
    /// and how many it skipped because nothing lay at or beyond the database's end, on the
    /// calling thread.
    public static var pageCacheTruncations: (forwarded: UInt64, skipped: UInt64) {
        var f: UInt64 = 0, s: UInt64 = 0
        tickiti_sqlite_page_cache_counts(&f, &s)
        return (f, s)
    }

    /// The group commit's bounds (`begin`, `commit`).
    public static let beginSQL = "BEGIN IMMEDIATE"
    public static let commitSQL = "COMMIT"

    deinit {
        for s in statements.values { s.finalize() }
        sqlite3_close_v2(db)
        if let box = walHookBox { Unmanaged<AnyObject>.fromOpaque(box).release() }
    }

    static func makeParentDirectory(of path: String) throws(SQLiteError) {
        guard let slash = path.lastIndex(of: "/") else { return }
        let dir = String(path[..<slash])
        if dir.isEmpty { return }
        var current = dir.hasPrefix("/") ? "" : "."
        for part in dir.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw SQLiteError(message: "cannot create folder \(current): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Runs SQL without results (may hold several statements).
    public func execute(_ sql: String) throws(SQLiteError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? ""
            sqlite3_free(err)
            var e = SQLiteError(db: db, code: rc, sql: sql)
            if !msg.isEmpty && e.message.isEmpty { e = SQLiteError(message: msg, sql: sql) }
            throw e
        }
    }

    /// A cached prepared statement for `sql`, reset and with bindings cleared.
    public func statement(_ sql: String) throws(SQLiteError) -> Statement {
        let key = SQLKey(sql)
        if let s = statements[key] {
            s.reset()
            return s
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw SQLiteError(db: db, code: rc, sql: sql) }
        let s = Statement(db: db, stmt: stmt, sql: sql)
        statements[key] = s
        return s
    }

    /// Changes how the next commits reach the disk. In WAL mode a NORMAL commit is not synced
    /// (it survives a process crash, not a power loss) and the next FULL commit syncs the WAL
    /// with every frame before it.
    public func setSynchronous(_ s: Synchronous) throws(SQLiteError) {
        guard s != synchronous else { return }
        precondition(!inTransaction, "PRAGMA synchronous inside a transaction")
        try execute("PRAGMA synchronous=\(s.rawValue)")
        synchronous = s
    }

    /// Syncs the write-ahead log to disk (what a FULL commit does), for commits made under
    /// NORMAL. Any descriptor of the file flushes its data; a missing WAL has nothing to sync.
    public func syncWAL() throws(SQLiteError) {
        let fd = open(path + "-wal", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw SQLiteError(message: "cannot open \(path)-wal to sync it: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        if fdatasync(fd) != 0 {
            throw SQLiteError(message: "fdatasync \(path)-wal: \(String(cString: strerror(errno)))")
        }
    }

    public func begin() throws(SQLiteError) {
        precondition(!inTransaction, "nested transaction")
        try execute(Database.beginSQL)
        inTransaction = true
    }

    /// `begin`, but answering SQLITE_BUSY at once when another connection holds the write
    /// lock, instead of sleeping in SQLite's busy handler (the server's loop retries on a
    /// timer: SQLiteServerStore).
    public func beginWithoutWaiting() throws(SQLiteError) {
        sqlite3_busy_timeout(db, 0)
        defer { sqlite3_busy_timeout(db, busyTimeoutMilliseconds) }
        try begin()
    }

    public func commit() throws(SQLiteError) {
        precondition(inTransaction, "commit without begin")
        do {
            try execute(Database.commitSQL)
        } catch {
            try? execute("ROLLBACK")
            inTransaction = false
            throw error
        }
        inTransaction = false
    }

    public func rollback() {
        guard inTransaction else { return }
        try? execute("ROLLBACK")
        inTransaction = false
    }

    /// Runs `body` in one transaction (IMMEDIATE: take the write lock up front).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try begin()
        do {
            let v = try body()
            try commit()
            return v
        } catch {
            rollback()
            throw error
        }
    }

    /// Changes made by other connections since the last call change this number
    /// (PRAGMA data_version): the server's cue that an admin command changed something.
    public func dataVersion() throws(SQLiteError) -> Int64 {
        let s = try statement("PRAGMA data_version")
        defer { s.finish() }
        guard try s.step() else { return 0 }
        return s.int64(0)
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }
    public var changes: Int { Int(sqlite3_changes(db)) }
}

/// A prepared statement: bind by 1-based index, step, read columns by 0-based index.
public final class Statement {
    let db: OpaquePointer
    let stmt: OpaquePointer
    public let sql: String

    /// Parameters bound since the last reset, one bit each (checked in debug builds: a cached
    /// statement keeps its previous values, so every use must bind every parameter).
    var bound: UInt64 = 0
    let parameterMask: UInt64

    init(db: OpaquePointer, stmt: OpaquePointer, sql: String) {
        self.db = db
        self.stmt = stmt
        self.sql = sql
        // The largest index; "?NNN" texts may skip some (the audit's pages do), and a skipped
        // index has no name. Plain "?" parameters have none either, and cannot skip.
        let n = Int(sqlite3_bind_parameter_count(stmt))
        precondition(n <= 64, "more than 64 parameters")
        var named: UInt64 = 0
        for i in 0..<n where sqlite3_bind_parameter_name(stmt, Int32(i + 1)) != nil { named |= 1 << UInt64(i) }
        // EXPLAIN compiles without running: its parameters need no values.
        parameterMask = sqlite3_stmt_isexplain(stmt) != 0 ? 0 : named != 0 ? named : (n == 64 ? .max : (1 << UInt64(n)) - 1)
    }

    func finalize() { sqlite3_finalize(stmt) }

    /// Ready for the next use. The values stay bound (sqlite3_clear_bindings walked every
    /// parameter, ~700 instructions per use); the next use binds each one again.
    func reset() {
        sqlite3_reset(stmt)
        bound = 0
    }

    @inline(__always) func markBound(_ i: Int32) {
        assert(i >= 1 && i <= 64, "parameter index \(i)")
        bound |= 1 << UInt64(i - 1)
    }

    /// Ends the statement's use: a statement left on a row keeps its read transaction (and
    /// so an old WAL snapshot) open, and this connection would not see other connections'
    /// commits — an admin's revoke, say. Call after reading a single row.
    public func finish() {
        sqlite3_reset(stmt)
    }

    @discardableResult
    public func bind(_ i: Int32, _ v: Int64) throws(SQLiteError) -> Statement {
        markBound(i)
        try check(sqlite3_bind_int64(stmt, i, v))
        return self
    }

    @discardableResult
    public func bind(_ i: Int32, _ v: Int) throws(SQLiteError) -> Statement { try bind(i, Int64(v)) }

    /// NULL for nil.
    @discardableResult
    public func bind(_ i: Int32, _ v: Int64?) throws(SQLiteError) -> Statement {
        guard let v else {
            markBound(i)
            try check(sqlite3_bind_null(stmt, i))
            return self
        }
        return try bind(i, v)
    }

    @discardableResult
    public func bind(_ i: Int32, _ v: String?) throws(SQLiteError) -> Statement {
        markBound(i)
        guard var v else { try check(sqlite3_bind_null(stmt, i)); return self }
        let rc = v.withUTF8 { b in
            b.withMemoryRebound(to: CChar.self) { c in
                // A nil pointer would bind NULL; an empty string must stay an empty string.
                c.count == 0 ? csqlite_bind_text_transient(stmt, i, "", 0)
                    : csqlite_bind_text_transient(stmt, i, c.baseAddress, Int32(c.count))
            }
        }
        try check(rc)
        return self
    }

    @discardableResult
    public func bind(_ i: Int32, blob v: [UInt8]?) throws(SQLiteError) -> Statement {
        markBound(i)
        guard let v else { try check(sqlite3_bind_null(stmt, i)); return self }
        let rc = v.isEmpty ? sqlite3_bind_zeroblob(stmt, i, 0)
            : v.withUnsafeBytes { csqlite_bind_blob_transient(stmt, i, $0.baseAddress, Int32($0.count)) }
        try check(rc)
        return self
    }

    func check(_ rc: Int32) throws(SQLiteError) {
        if rc != SQLITE_OK { throw SQLiteError(db: db, code: rc, sql: sql) }
    }

    /// Advances; true when a row is available.
    public func step() throws(SQLiteError) -> Bool {
        assert(bound & parameterMask == parameterMask, "parameters left unbound (they would keep the previous use's values): \(sql)")
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let e = SQLiteError(db: db, code: rc, sql: sql)
        sqlite3_reset(stmt)
        throw e
    }

    /// Runs to completion (INSERT/UPDATE/DELETE).
    public func run() throws(SQLiteError) {
        while try step() {}
    }

    public func isNull(_ c: Int32) -> Bool { sqlite3_column_type(stmt, c) == SQLITE_NULL }
    public func int64(_ c: Int32) -> Int64 { sqlite3_column_int64(stmt, c) }
    public func int(_ c: Int32) -> Int { Int(sqlite3_column_int64(stmt, c)) }
    public func string(_ c: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, c) else { return "" }
        let n = Int(sqlite3_column_bytes(stmt, c))
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }
    public func optionalString(_ c: Int32) -> String? { isNull(c) ? nil : string(c) }
    public func blob(_ c: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, c))
        guard n > 0, let p = sqlite3_column_blob(stmt, c) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}

/// The statement cache's key: the SQL text, hashed by its length and its last 16 bytes only
/// (a statement is looked up several times per request; SipHash over a few hundred bytes of
/// SQL each time showed in profiles). The texts differ near their end — WHERE, VALUES,
/// ORDER BY — and equal hashes only cost a full comparison, which for the same literal is
/// an identity check.
struct SQLKey: Hashable {
    let sql: String
    init(_ sql: String) { self.sql = sql }

    func hash(into hasher: inout Hasher) {
        var text = sql
        text.withUTF8 { bytes in
            // One word: the length and the last 16 bytes folded (SipHash over 32 bytes plus
            // the look-up was ~650 instructions a statement).
            var word = UInt64(bytes.count)
            if bytes.count >= 16 {
                let raw = UnsafeRawBufferPointer(bytes)
                word ^= raw.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self)
                word = word &* 0x9E37_79B9_7F4A_7C15 ^ raw.loadUnaligned(fromByteOffset: bytes.count - 16, as: UInt64.self)
            } else {
                for b in bytes { word = word &* 31 &+ UInt64(b) }
            }
            hasher.combine(word)
        }
    }

    static func == (a: SQLKey, b: SQLKey) -> Bool { a.sql == b.sql }
}
