/// Store: the page cache wrapper (CSQLitePageCache) skips the truncation that ends every write
/// transaction when nothing lies at or beyond the database's end — the case in which SQLite's
/// own cache would walk its whole hash table after a page split — and forwards it whenever
/// pages beyond the end may exist (a rolled-back growth, a database made smaller), so the
/// database stays what SQLite would have made it.
import Testing
import CSQLite
@testable import Store

@Suite struct PageCacheTests {
    /// The calling thread's truncation counts around `body` (the counts are per thread; a
    /// synchronous test body runs on one).
    func truncations(_ body: () throws -> Void) rethrows -> (forwarded: UInt64, skipped: UInt64) {
        let before = Database.pageCacheTruncations
        try body()
        let after = Database.pageCacheTruncations
        return (after.forwarded - before.forwarded, after.skipped - before.skipped)
    }

    func database() throws -> Database {
        let db = try Database(path: tempDatabasePath())
        try db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, body BLOB)")
        return db
    }

    /// Random keys of 36 characters: inserts land all over the index and split its pages.
    func insert(_ db: Database, rows: Int, seed: inout UInt64) throws {
        let s = try db.statement("INSERT INTO t(k, body) VALUES (?, zeroblob(600))")
        for _ in 0..<rows {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            try s.bind(1, String(seed, radix: 16) + String(seed >> 7, radix: 36) + "-key").run()
            s.finish()
        }
    }

    func check(_ db: Database, rows: Int) throws {
        let ok = try db.statement("PRAGMA integrity_check")
        #expect(try ok.step() && ok.string(0) == "ok")
        ok.finish()
        let n = try db.statement("SELECT count(*), count(DISTINCT k) FROM t")
        #expect(try n.step() && n.int(0) == rows && n.int(1) == rows)
        n.finish()
    }

    @Test func isInstalledBeforeTheFirstConnection() throws {
        _ = try Database(path: tempDatabasePath())
        #expect(Database.pageCache == SQLITE_OK)
    }

    @Test func commitsAfterPageSplitsSkipTheTruncation() throws {
        let db = try database()
        var seed: UInt64 = 7
        let counts = try truncations {
            for _ in 0..<30 {   // 30 commits of 40 rows: the index splits in most of them
                try db.begin()
                try insert(db, rows: 40, seed: &seed)
                try db.commit()
            }
        }
        #expect(counts.skipped >= 30)
        #expect(counts.forwarded == 0)
        try check(db, rows: 1200)
    }

    @Test func aRolledBackGrowthIsTruncated() throws {
        let db = try database()
        var seed: UInt64 = 11
        try db.begin(); try insert(db, rows: 200, seed: &seed); try db.commit()
        let counts = try truncations {
            try db.begin()
            try insert(db, rows: 400, seed: &seed)   // new pages past the committed end
            db.rollback()
        }
        #expect(counts.forwarded >= 1)
        // The same page numbers are allocated again, for other rows.
        try db.begin(); try insert(db, rows: 400, seed: &seed); try db.commit()
        try check(db, rows: 600)
    }

    @Test func aDatabaseMadeSmallerIsTruncated() throws {
        let db = try database()
        var seed: UInt64 = 13
        try db.begin(); try insert(db, rows: 600, seed: &seed); try db.commit()
        try db.execute("DELETE FROM t WHERE id > 100")
        let counts = try truncations { try db.execute("VACUUM") }
        #expect(counts.forwarded >= 1)
        try check(db, rows: 100)
        try db.begin(); try insert(db, rows: 300, seed: &seed); try db.commit()
        try check(db, rows: 400)
    }
}
