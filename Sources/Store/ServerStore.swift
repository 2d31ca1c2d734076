/// ServerStore: everything `serve` asks of its store, inside the loop — the group commit of
/// accepted messages (with their idempotency records), the directory the caches read, the
/// delivery queue's scans and status writes, the audit's pages, the queue gauges and the
/// idempotency sweep. Two implementations side by side: `SQLiteServerStore` (`Store/SQLite`)
/// and `PostgresServerStore` (module `PostgresStore`). The admin commands use `AdminStore`.
///
/// Completions are events: SQLite calls them before returning (its statements run on the
/// loop, short and indexed); PostgreSQL from a later loop iteration, when the result arrives,
/// the loop serving meanwhile. A caller never assumes either.
import AuditAPI
import Auth
import Idempotency

public protocol ServerStore: AnyObject {
    /// Why nothing can be committed at this moment (nil = ready): requests are then answered
    /// `503` at once, and `GET /readyz` says so.
    var unavailableReason: String? { get }
    /// Why this store can never become ready as it is (a migration the database refused):
    /// `serve` exits at start saying so.
    var startupFailure: String? { get }
    /// A group commit is on its way (PostgreSQL): the next one waits for its completion.
    var isCommitting: Bool { get }
    /// `commit` completes inside the call (SQLite): a small commit between the events of a
    /// batch costs no loop iteration and holds up nothing.
    var commitsInline: Bool { get }

    /// Makes `batch` durable in one transaction, then calls `completion` once.
    func commit(_ batch: CommitBatch, completion: @escaping (CommitOutcome) -> Void)

    // MARK: Directory (synchronous: SQLite reads its tables, PostgreSQL its in-memory copy)

    /// Changes when an admin command changed tokens, mailboxes or templates.
    func directoryVersion() throws -> Int64
    func token(id: Int64) throws -> StoredToken?
    func mailboxes() throws -> [MailboxRecord]
    func template(identifier: String) throws -> TemplateRecord?

    // MARK: Queue

    /// Start-up: rows a crashed run left `sending` are due again now (count of them).
    func requeueInterrupted(nowMilliseconds: Int64, completion: @escaping (Result<Int, Error>) -> Void)
    /// Due rows, longest-due first, at most `limit`, and the earliest retry time after `now`.
    /// A store that `scansClaim` (PostgreSQL, shared by many processes) returns them claimed for
    /// this process (`markedSending`): each must be delivered or requeued.
    func dueMessages(nowMilliseconds: Int64, limit: Int, completion: @escaping (Result<DueScan, Error>) -> Void)

    /// Scans claim what they return (see `dueMessages`).
    var scansClaim: Bool { get }
    /// Other processes may queue rows for this one at any time: scan at least this often.
    var scanPollMilliseconds: Int64? { get }
    /// Rows claimed after another process's lease on them ran out (a shared store).
    var leaseTakeovers: Int { get }

    /// Other processes may deliver through the same mailboxes: a session needs one of the
    /// mailbox's `max_connections` slots, taken here (SMTPClient.SessionSlots).
    var sharesSessionSlots: Bool { get }
    /// Up to `count` free slots of `mailbox` in `0..<max` other than `held`, now this process's.
    func acquireSessionSlots(mailbox: String, max: Int, held: [Int], count: Int, completion: @escaping ([Int]) -> Void)
    func releaseSessionSlot(mailbox: String, slot: Int)

    /// Other processes send through the same mailboxes: their `rate=` and `daily_recipients=`
    /// budgets are the store's, taken by `takeSendBudget` (else each process keeps its own).
    var sharesSendBudgets: Bool { get }
    /// nil: granted (and counted); else the milliseconds to wait before asking again.
    func takeSendBudget(_ request: BudgetRequest, completion: @escaping (Int64?) -> Void)
    /// A process keeping its own budget: the mailbox's recipient counts per minute of the last
    /// 24 hours (what `.recipientsSent` wrote), to start its window from after a restart.
    func recipientUsage(mailbox: String, nowMilliseconds: Int64) throws -> [(minute: Int64, count: Int)]

    // MARK: Audit

    func auditPage(_ filter: AuditFilter, limit: Int, after: AuditCursor?, completion: @escaping (Result<[AuditEntry], Error>) -> Void)
    /// One entry with its bytes and its delivery attempts; nil when there is none.
    func auditDetail(id: Int64, completion: @escaping (Result<(AuditEntry, [DeliveryAttempt])?, Error>) -> Void)
    /// The backlog by status (`queued`, `sending`, `deferred`), and the `uncertain` and
    /// `cancelled` messages, now; nil if the store cannot say.
    func queueCounts(completion: @escaping ([String: Int]?) -> Void)

    // MARK: Start-up

    /// The embedded demo: `seed` written in one transaction when the store has no mailbox and
    /// no token; the new token's id, or nil when the store was not empty.
    func seedIfEmpty(_ seed: DemoSeed, completion: @escaping (Result<Int64?, Error>) -> Void)

    // MARK: Upkeep

    /// Deletes at most `limit` idempotency records created before `cutoff` (count deleted).
    func sweepIdempotency(createdBefore cutoff: Int64, limit: Int, completion: @escaping (Result<Int, Error>) -> Void)
    /// Shutdown: the last commits are made durable the way the store needs (SQLite syncs a
    /// WAL written unsynced; PostgreSQL has nothing in flight any more when this is called).
    func finish()
}

extension ServerStore {
    public var startupFailure: String? { nil }
    public var commitsInline: Bool { false }
    public var scansClaim: Bool { false }
    public var scanPollMilliseconds: Int64? { nil }
    public var leaseTakeovers: Int { 0 }
    public var sharesSessionSlots: Bool { false }
    public func acquireSessionSlots(mailbox: String, max: Int, held: [Int], count: Int, completion: @escaping ([Int]) -> Void) {
        completion(Array((0..<max).filter { !held.contains($0) }.prefix(count)))
    }
    public func releaseSessionSlot(mailbox: String, slot: Int) {}
    public var sharesSendBudgets: Bool { false }
    public func takeSendBudget(_ request: BudgetRequest, completion: @escaping (Int64?) -> Void) { completion(nil) }
    public func recipientUsage(mailbox: String, nowMilliseconds: Int64) throws -> [(minute: Int64, count: Int)] { [] }
}

/// One message's claim on its mailbox's budget (`rate=`, `daily_recipients=`).
public struct BudgetRequest: Sendable {
    public var mailbox: String
    /// The token bucket: nanoseconds between messages and the burst (nil: no `rate=`).
    public var rate: (intervalNanoseconds: Int64, burst: Int)?
    public var dailyRecipients: Int?
    public var recipients: Int
    public var nowMilliseconds: Int64
    public init(mailbox: String, rate: (intervalNanoseconds: Int64, burst: Int)?, dailyRecipients: Int?, recipients: Int, nowMilliseconds: Int64) {
        self.mailbox = mailbox
        self.rate = rate
        self.dailyRecipients = dailyRecipients
        self.recipients = recipients
        self.nowMilliseconds = nowMilliseconds
    }
}

/// One group commit: the loop iteration's accepted messages and idempotency look-ups, and the
/// delivery status writes that join them.
public struct CommitBatch {
    public var items: [CommitItem]
    public var statusWrites: [StatusWrite]
    /// Idempotency records created before this (milliseconds) have expired: they count as
    /// absent, and an accepted message replaces one.
    public var idempotencyCutoff: Int64

    public init(items: [CommitItem], statusWrites: [StatusWrite], idempotencyCutoff: Int64) {
        self.items = items
        self.statusWrites = statusWrites
        self.idempotencyCutoff = idempotencyCutoff
    }
}

public enum CommitItem {
    /// Store the message and its idempotency record unless the key is taken (then the record
    /// that holds it is the answer). `sending`: the scheduler takes it right after the commit.
    case accept(NewMessage, sending: Bool)
    /// Only read the record of a key (a request that failed validation: a stored record still
    /// answers it with a replay or a conflict, SPEC §4's check order).
    case lookUp(tokenID: Int64, key: String)
    /// Store only an idempotency record (an endpoint that keeps its answer but sends
    /// nothing: render_template) unless the key is taken; `.inserted(0)` when stored.
    case record(tokenID: Int64, key: String, IdempotencyRecord)
    /// `send_email/batch`: the batch's record and its messages, all or nothing — stored only
    /// when the record is (a key already taken stores none of them); `.insertedBatch` when
    /// stored. The messages carry the batch's key and no record of their own.
    case batch(tokenID: Int64, key: String, IdempotencyRecord, [(NewMessage, sending: Bool)])
}

public enum CommitItemResult: Equatable {
    /// Stored under this message id.
    case inserted(Int64)
    /// A batch stored: its messages' ids, in order.
    case insertedBatch([Int64])
    /// The key is held by this (unexpired) record.
    case taken(IdempotencyRecord)
    /// A look-up found no record.
    case absent
    /// Another process is committing this key at this moment (a shared store): 409 in use.
    case inUse
    /// This item could not be written (the rest of the batch was): its request gets 503.
    case failed
}

public enum CommitOutcome {
    /// One result per item, in order; every status write is durable too.
    case committed([CommitItemResult])
    /// Nothing of the batch is known to be stored: every request is answered 503 (a retry
    /// with the same key is a replay if it was stored after all), status writes are kept.
    case failed(String)
    /// Nothing was written because another process holds the database's write lock (SQLite,
    /// two servers on one file): the caller keeps the batch and commits it again soon — the
    /// store wakes the loop for that. Only while the lock has been busy for less than the
    /// store's patience; after that the batch fails (503).
    case busy
}

/// A delivery status write (the scheduler's), joining the next group commit.
public enum StatusWrite: Equatable {
    /// Taken by a scan: `sending` while a session holds it.
    case sending(Int64)
    /// Shutdown or an abandoned session: back to `queued`, due now.
    case requeue(Int64)
    /// A finished attempt: the message's new `status` (`sent`, `deferred` — due again at
    /// `next` —, `failed`, `uncertain`) and the attempt's `outcome` for the audit (the status,
    /// or `uncertain` for a deferral after one, or `throttled`: the relay asked to slow down,
    /// not an attempt that counts — see `AttemptOutcome.counts`).
    case attempt(id: Int64, status: String, outcome: String, reply: String, at: Int64, next: Int64)
    /// The mailbox's pause (nil: it works again), for `mailbox list`, restarts and the other
    /// processes of a shared store.
    case mailboxPause(mailbox: String, MailboxPause?)
    /// `count` recipients given to the mailbox's relay (its `daily_recipients=` window).
    case recipientsSent(mailbox: String, at: Int64, count: Int)
    /// A message with several recipients: where each stands after an attempt (the stored
    /// form, `RecipientState.encode`); written with that attempt's `.attempt`.
    case recipients(id: Int64, list: String)
    /// A token's last use (`token list`): written at most once a minute per token.
    case tokenUsed(id: Int64, at: Int64)
}

/// The outcomes recorded in `delivery_attempts`.
public enum AttemptOutcome {
    public static let all = ["sent", "deferred", "failed", "uncertain", "throttled", "retried", "cancelled"]
    /// Whether an attempt with this outcome adds to the message's `attempts` (its backoff):
    /// a throttled try and an operator's retry or cancel do not.
    public static func counts(_ outcome: String) -> Bool {
        outcome == "sent" || outcome == "deferred" || outcome == "failed" || outcome == "uncertain"
    }
}

/// What `message retry|cancel` did to one message.
public enum MessageChange: Equatable, Sendable {
    case changed
    case notFound
    /// Not in a status the change applies to (this one).
    case refused(status: String)
}

public struct DueScan {
    public var rows: [QueuedMessage]
    /// The earliest `next_attempt_at` after the scan's `now`, if any.
    public var nextDue: Int64?

    public init(rows: [QueuedMessage], nextDue: Int64?) {
        self.rows = rows
        self.nextDue = nextDue
    }
}

/// What the admin commands (and the embedded demo, and `store copy`) ask of a store. They
/// run outside any loop, so these calls block.
public protocol AdminStore: CopyableStore {
    func createToken(name: String, secretHash: [UInt8], abilities: [String], now: Int64) throws -> Int64
    func tokens() throws -> [TokenSummary]
    func revokeToken(name: String, now: Int64) throws -> Bool
    func addMailbox(name: String, address: String, displayName: String?, dsn: String, enabled: Bool, now: Int64) throws -> Int64
    func mailboxes() throws -> [MailboxRecord]
    func setMailboxEnabled(name: String, _ enabled: Bool) throws -> Bool
    func putTemplate(identifier: String, subject: String, html: String, text: String?, now: Int64) throws
    func templates() throws -> [TemplateRecord]
    func auditPage(_ filter: AuditFilter, limit: Int, after: AuditCursor?) throws -> [AuditEntry]
    func auditEntry(id: Int64) throws -> AuditEntry?
    func deliveryAttempts(messageID: Int64) throws -> [DeliveryAttempt]
    /// Messages per status (the whole table: for tests and operators, not the loop).
    func statusCounts() throws -> [String: Int]
    /// Runs `body` in one transaction: all of its writes or none.
    func transaction<T>(_ body: () throws -> T) throws -> T

    // Edits and removals (`mailbox update|remove`, `token remove`, `template remove`).
    /// The fields given replace the stored ones (an empty display name clears it); false
    /// when there is no such mailbox.
    func updateMailbox(name: String, address: String?, displayName: String?, dsn: String?) throws -> Bool
    /// Messages not yet finished (queued, sending, deferred) that would go through it.
    func unfinishedMessages(mailbox: String) throws -> Int
    func removeMailbox(name: String) throws -> Bool
    /// The token and its idempotency records (the audit keeps the token's name).
    func removeToken(name: String) throws -> Bool
    func removeTemplate(identifier: String) throws -> Bool

    // Operators (`message retry|cancel`, SPEC §6), each recorded as an attempt.
    /// deferred, failed or uncertain → queued, due now, its attempt counts reset (failed
    /// recipients pending again).
    func retryMessage(id: Int64, now: Int64) throws -> MessageChange
    /// queued or deferred → cancelled.
    func cancelMessage(id: Int64, now: Int64) throws -> MessageChange
    /// Ids of messages in `status` (through `mailbox` if given), oldest first, at most `limit`.
    func messageIDs(status: String, mailbox: String?, limit: Int) throws -> [Int64]
    /// Recipients given to the mailbox's relay in the 24 hours before `now` (`mailbox list`).
    func recipientsSent(mailbox: String, since: Int64) throws -> Int
}

extension AdminStore {
    /// The newest `limit` entries, optionally filtered.
    public func auditEntries(limit: Int, recipient: String? = nil, status: String? = nil) throws -> [AuditEntry] {
        try auditPage(AuditFilter(recipient: recipient, status: status), limit: limit, after: nil)
    }
}

/// A store that cannot answer yet (not connected, its directory not loaded): a 503.
public struct StoreNotReady: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String = "the store is not connected") { self.description = description }
}

/// Errors both stores' errors answer.
public protocol StoreError: Error {
    /// A UNIQUE constraint refused the write (a name already taken).
    var isUniqueViolation: Bool { get }
}

/// Where `--db` points: a SQLite file path, or a PostgreSQL connection URI.
public enum StoreLocation: Equatable, Sendable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(uri: String)

    public init(_ text: String) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(uri: text)
        } else {
            self = .sqlite(path: text.hasPrefix("sqlite://") ? String(text.dropFirst("sqlite://".count)) : text)
        }
    }

    /// For messages: a URI without its password.
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let uri): return StoreLocation.redacted(uri)
        }
    }

    static func redacted(_ uri: String) -> String {
        let u = Array(uri.utf8)
        guard let sep = (0..<max(u.count - 2, 0)).first(where: { u[$0] == 0x3A && u[$0 + 1] == 0x2F && u[$0 + 2] == 0x2F }) else { return uri }
        let rest = sep + 3
        guard let at = u[rest...].firstIndex(of: 0x40), let colon = u[rest..<at].firstIndex(of: 0x3A) else { return uri }
        return String(decoding: u[...colon], as: UTF8.self) + "***" + String(decoding: u[at...], as: UTF8.self)
    }
}
