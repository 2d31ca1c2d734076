/// Store: the delivery scan reads due messages longest-due first with a bounded index range
/// — no sort of the backlog (a sort would read every queued message's bytes on every scan,
/// making each delivery cost grow with the backlog).
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Store

@Suite struct QueueScanTests {
    @Test func theDueScanWalksTheIndexWithoutSorting() throws {
        let db = try Database(path: tempDatabasePath())
        for sql in Database.dueSQLs + Database.nextDueSQLs {
            let s = try db.statement("EXPLAIN QUERY PLAN " + sql)
            var plan: [String] = []
            while try s.step() { plan.append(s.string(3)) }
            #expect(plan.joined().contains("USING INDEX messages_due") || plan.joined().contains("USING COVERING INDEX messages_due"), "\(plan)")
            #expect(!plan.joined().contains("TEMP B-TREE"), "\(plan)")
        }
    }

    @Test func dueMessagesComeLongestDueFirstAcrossStatusesAndStopAtTheLimit() throws {
        let db = try Database(path: tempDatabasePath())
        try db.begin()
        for i in 1...6 { try db.insertAccepted(AuditPageQueryTests.message(i, at: Int64(100 * i), to: "a@x.test")) }
        // 2 and 5 were deferred: 2 is due again at 150, 5 at 9999 (not yet).
        try db.recordAttempt(id: 2, status: "deferred", outcome: "deferred", reply: "451", atMilliseconds: 0, nextAttemptAt: 150)
        try db.recordAttempt(id: 5, status: "deferred", outcome: "deferred", reply: "451", atMilliseconds: 0, nextAttemptAt: 9999)
        try db.commit()
        #expect(try db.dueMessages(nowMilliseconds: 1000, limit: 10).map(\.id) == [1, 2, 3, 4, 6])
        #expect(try db.dueMessages(nowMilliseconds: 1000, limit: 3).map(\.id) == [1, 2, 3])
        #expect(try db.dueMessages(nowMilliseconds: 250, limit: 10).map(\.id) == [1, 2])
        #expect(try db.dueMessages(nowMilliseconds: 99_999, limit: 10).map(\.id) == [1, 2, 3, 4, 6, 5])
    }
}

@Suite struct SynchronousTests {
    @Test func theSyncModeChangesBetweenTransactionsAndIsReadBack() throws {
        let db = try Database(path: tempDatabasePath(), synchronous: .full)
        func mode() throws -> Int {
            let s = try db.statement("PRAGMA synchronous")
            defer { s.finish() }
            return try s.step() ? s.int(0) : -1
        }
        #expect(try mode() == 2 && db.synchronous == .full)
        try db.setSynchronous(.normal)
        #expect(try mode() == 1 && db.synchronous == .normal)
        try db.begin()
        try db.insertAccepted(AuditPageQueryTests.message(1, at: 1, to: "a@x.test"))
        try db.commit()
        try db.setSynchronous(.full)
        #expect(try mode() == 2 && db.synchronous == .full)
        #expect(try db.auditEntries(limit: 5).count == 1)
        try db.syncWAL()   // the WAL exists: synced without error
    }

    @Test func syncingAMissingWALIsANoOp() throws {
        let path = tempDatabasePath()
        let db = try Database(path: path)
        _ = unlink(path + "-wal")
        try db.syncWAL()
    }
}
