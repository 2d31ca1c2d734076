/// SQLiteServerStore: `ServerStore` on the embedded SQLite database — every call runs its
/// statements on the loop and completes before it returns.
///
/// The group commit: one `BEGIN IMMEDIATE … COMMIT` per loop iteration holding every item's
/// idempotency look-up and insert and the scheduler's status writes. Durability: commits that
/// answer requests use the server's `synchronous` (FULL by default: one fsync of the WAL);
/// under FULL, commits that carry only status writes are not synced — like every commit they
/// survive a process crash, and the next synced commit or, at the latest a second later, an
/// fdatasync of the WAL makes them durable (a power loss can lose at most a second of `sent`
/// statuses: those messages are sent again with their Message-ID; nothing accepted is lost).
///
/// The write lock held by another process (two servers on one file): the commit's BEGIN does
/// not wait in SQLite's busy handler (a sleep on the loop); the commit answers `.busy` and
/// wakes the loop `busyRetryDelay` later to try again, and the requests wait — for at most
/// `busyPatience` since the lock was first found busy. Past that, or on any other
/// failure (the disk full), the commit fails and rests the store for `retryDelay`: meanwhile
/// nothing is tried and requests get 503 at once, and every busy commit fails at once until
/// one succeeds.
/// Before each commit the database files are checked to be the ones opened (deleted or
/// replaced files would take every later commit with them): then nothing more is accepted
/// until a restart.
#if canImport(Glibc)
import Glibc
#endif
import AuditAPI
import Auth
import Logging
import Reactor

public final class SQLiteServerStore: ServerStore {
    public let db: Database
    /// The WAL checkpoint helper, when there is one (stopped by `finish`).
    public var checkpoints: CheckpointHandOff?
    let reactor: Reactor
    var logger: Logger
    /// What a commit that answers requests uses (`--sqlite-synchronous`).
    let durableSynchronous: Database.Synchronous
    /// Off at shutdown: every commit then syncs.
    public var relaxStatusCommits = true
    var walSyncTimer: TimerHandle?
    public private(set) var unsyncedCommits = false
    public static let statusSyncDelay: Duration = .seconds(1)

    /// What a commit carrying only status writes uses while `relaxStatusCommits` (see the
    /// type's comment): under FULL it is not synced; the WAL is synced `statusSyncDelay` later.
    public static func statusCommitSynchronous(_ durable: Database.Synchronous) -> Database.Synchronous {
        durable == .full ? .normal : durable
    }

    var retryTimer: TimerHandle?
    public static let retryDelay: Duration = .milliseconds(100)
    var busyTimer: TimerHandle?
    /// Since when the write lock has been found busy, commit after commit (nil: it was not).
    var busySince: Instant?
    public static let busyRetryDelay: Duration = .milliseconds(2)
    /// How long requests wait for another process's write lock before they get 503.
    public var busyPatience: Duration = .seconds(2)
    var failureEpisode = 0
    let openedFiles: OpenedFiles
    public private(set) var filesBroken: String?

    public init(db: Database, reactor: Reactor, logger: Logger) {
        self.db = db
        self.reactor = reactor
        self.logger = logger
        durableSynchronous = db.synchronous
        openedFiles = db.openedFiles()
        walSyncTimer = reactor.makeTimer(WALSyncTimer(self))
        retryTimer = reactor.makeTimer(WakeTimer())
        busyTimer = reactor.makeTimer(WakeTimer())
    }

    var isResting: Bool { retryTimer.map { reactor.isArmed($0) } ?? false }

    public var unavailableReason: String? {
        if let f = filesBroken { return f }
        return isResting ? "the database did not accept the last write; retrying" : nil
    }

    public var isCommitting: Bool { false }
    public var commitsInline: Bool { true }

    // MARK: Group commit

    public func commit(_ batch: CommitBatch, completion: (CommitOutcome) -> Void) {
        var results: [CommitItemResult] = []
        results.reserveCapacity(batch.items.count)
        do {
            let answersRequests = !batch.items.isEmpty
            // The files' identity is checked before a commit that answers requests (3 stat
            // calls): a 200 must never be a write into a deleted file. A commit of delivery
            // statuses alone promises no client anything — checking it too was 4 % of the
            // server's CPU delivering with 4 sessions — and the next request's commit checks.
            if answersRequests { try checkFiles() } else if filesBroken != nil { throw FilesBroken() }
            if isResting { throw Resting() }
            try db.setSynchronous(!answersRequests && relaxStatusCommits ? SQLiteServerStore.statusCommitSynchronous(durableSynchronous) : durableSynchronous)
            try db.beginWithoutWaiting()
            for item in batch.items { results.append(try write(item, cutoff: batch.idempotencyCutoff)) }
            for w in batch.statusWrites { try write(w) }
            try db.commit()
            if db.synchronous == durableSynchronous {
                unsyncedCommits = false
            } else if !unsyncedCommits, let t = walSyncTimer {
                unsyncedCommits = true
                reactor.arm(t, after: SQLiteServerStore.statusSyncDelay)
            }
            noteRecovered()
            busySince = nil
        } catch {
            db.rollback()
            if let e = error as? SQLiteError, e.isBusy {
                let now = Instant.now()
                let since = busySince ?? now
                // Within the patience, and not in an episode of failures (a lock held past the
                // patience: then every commit fails at once until one succeeds).
                if failureEpisode == 0, now - since < busyPatience, let t = busyTimer {
                    if busySince == nil {
                        logger.debug("the database is locked by another process: \(batch.items.count) request(s) wait for it (at most \(busyPatience))")
                    }
                    busySince = since
                    reactor.arm(t, after: SQLiteServerStore.busyRetryDelay)
                    completion(.busy)
                    return
                }
                busySince = nil
            }
            if !(error is Resting) && !(error is FilesBroken) {
                noteFailure(error, "the group commit of \(batch.items.count) message(s)")
            }
            completion(.failed("\(error)"))
            return
        }
        completion(.committed(results))
    }

    func write(_ item: CommitItem, cutoff: Int64) throws(SQLiteError) -> CommitItemResult {
        switch item {
        case .accept(let m, let sending):
            if let r = try db.idempotencyRecord(tokenID: m.tokenID, key: m.idempotencyKey), r.createdAt >= cutoff { return .taken(r) }
            return .inserted(try db.insertAccepted(m, sending: sending))
        case .batch(let tokenID, let key, let record, let messages):
            if let r = try db.idempotencyRecord(tokenID: tokenID, key: key), r.createdAt >= cutoff { return .taken(r) }
            try db.putIdempotencyRecord(tokenID: tokenID, key: key, record)
            var ids: [Int64] = []
            ids.reserveCapacity(messages.count)
            for (m, sending) in messages { ids.append(try db.insertAccepted(m, sending: sending, storesRecord: false)) }
            return .insertedBatch(ids)
        case .record(let tokenID, let key, let record):
            if let r = try db.idempotencyRecord(tokenID: tokenID, key: key), r.createdAt >= cutoff { return .taken(r) }
            try db.putIdempotencyRecord(tokenID: tokenID, key: key, record)
            return .inserted(0)
        case .lookUp(let tokenID, let key):
            if let r = try db.idempotencyRecord(tokenID: tokenID, key: key), r.createdAt >= cutoff { return .taken(r) }
            return .absent
        }
    }

    func write(_ w: StatusWrite) throws(SQLiteError) {
        switch w {
        case .sending(let id): try db.markSending(id: id)
        case .requeue(let id): try db.requeue(id: id)
        case .attempt(let id, let status, let outcome, let reply, let at, let next):
            try db.recordAttempt(id: id, status: status, outcome: outcome, reply: reply, atMilliseconds: at, nextAttemptAt: next)
        case .mailboxPause(let mailbox, let pause):
            try db.setMailboxPause(mailbox, pause)
        case .recipientsSent(let mailbox, let at, let count):
            try db.addRecipientsSent(mailbox, at: at, count: count)
        case .recipients(let id, let list):
            try db.setRecipients(id: id, list)
        case .tokenUsed(let id, let at):
            try db.noteTokenUse(id: id, at: at)
        }
    }

    /// Before a commit answering requests: are the files still the ones we opened? (3 stat calls.)
    func checkFiles() throws {
        if filesBroken != nil { throw FilesBroken() }
        guard let problem = openedFiles.change() else { return }
        filesBroken = problem
        logger.critical("\(problem): no longer accepting messages (503) — what is committed now would be lost. Stop the server, restore the files or remove the database, and start again.")
        throw FilesBroken()
    }

    /// Rest until `retryDelay` from now and wake the loop then (the writes kept for the next
    /// transaction need no other event). One log line per episode, not one per failure.
    func noteFailure(_ error: Error, _ what: String) {
        if let t = retryTimer { reactor.arm(t, after: SQLiteServerStore.retryDelay) }
        failureEpisode += 1
        if failureEpisode == 1 {
            let cause = (error as? SQLiteError)?.isBusy == true ? "the database is locked by another process" : "\(error)"
            logger.error("\(what) failed: \(cause); answering 503 and retrying every \(SQLiteServerStore.retryDelay) until it works")
        }
    }

    func noteRecovered() {
        if failureEpisode > 0 {
            logger.notice("the database accepts writes again (after \(failureEpisode) failed attempts)")
            failureEpisode = 0
        }
    }

    // MARK: Directory

    public func directoryVersion() throws -> Int64 { try db.dataVersion() }

    public func recipientUsage(mailbox: String, nowMilliseconds: Int64) throws -> [(minute: Int64, count: Int)] {
        try db.recipientUsage(mailbox, at: nowMilliseconds)
    }
    public func token(id: Int64) throws -> StoredToken? { try db.token(id: id) }
    public func mailboxes() throws -> [MailboxRecord] { try db.mailboxes() }
    public func template(identifier: String) throws -> TemplateRecord? { try db.template(identifier: identifier) }

    // MARK: Queue

    public func requeueInterrupted(nowMilliseconds now: Int64, completion: (Result<Int, Error>) -> Void) {
        completion(Result { try db.requeueInterrupted(nowMilliseconds: now) })
    }

    public func dueMessages(nowMilliseconds now: Int64, limit: Int, completion: (Result<DueScan, Error>) -> Void) {
        completion(Result { DueScan(rows: try db.dueMessages(nowMilliseconds: now, limit: limit), nextDue: try db.nextDueTime(after: now)) })
    }

    // MARK: Audit

    public func auditPage(_ filter: AuditFilter, limit: Int, after: AuditCursor?, completion: (Result<[AuditEntry], Error>) -> Void) {
        completion(Result { try db.auditPage(filter, limit: limit, after: after) })
    }

    public func auditDetail(id: Int64, completion: (Result<(AuditEntry, [DeliveryAttempt])?, Error>) -> Void) {
        completion(Result {
            guard let e = try db.auditEntry(id: id) else { return nil }
            return (e, try db.deliveryAttempts(messageID: id))
        })
    }

    public func queueCounts(completion: @escaping ([String: Int]?) -> Void) { completion(try? db.queueCounts()) }

    // MARK: Start-up

    public func seedIfEmpty(_ seed: DemoSeed, completion: (Result<Int64?, Error>) -> Void) {
        completion(Result { try db.seedIfEmpty(seed) })
    }

    // MARK: Upkeep

    public func sweepIdempotency(createdBefore cutoff: Int64, limit: Int, completion: (Result<Int, Error>) -> Void) {
        completion(Result { try db.sweepIdempotency(createdBefore: cutoff, limit: limit) })
    }

    public func finish() {
        relaxStatusCommits = false
        defer { checkpoints?.stop() }
        guard unsyncedCommits else { return }
        do {
            try db.syncWAL()
            unsyncedCommits = false
        } catch {
            logger.error("syncing the WAL at shutdown: \(error)")
        }
    }

    /// A second after the first unsynced status commit: if no synced commit came since, sync
    /// the WAL (one fdatasync, as a FULL commit would have done).
    func syncWALIfNeeded() {
        guard unsyncedCommits else { return }
        do {
            try db.syncWAL()
            unsyncedCommits = false
        } catch {
            logger.error("syncing the WAL: \(error); retrying in a second")
            if let t = walSyncTimer { reactor.arm(t, after: SQLiteServerStore.statusSyncDelay) }
        }
    }
}

struct Resting: Error, CustomStringConvertible { var description: String { "the store is resting after a failure" } }
struct FilesBroken: Error, CustomStringConvertible { var description: String { "the database files were deleted or replaced" } }

/// Wakes the loop when a resting store may be tried again (the commit phase then runs with the
/// writes that were kept).
final class WakeTimer: DeadlineHandler {
    func onDeadline() {}
}

final class WALSyncTimer: DeadlineHandler {
    weak var store: SQLiteServerStore?
    init(_ store: SQLiteServerStore) { self.store = store }
    func onDeadline() { store?.syncWALIfNeeded() }
}

extension Database: AdminStore {}
