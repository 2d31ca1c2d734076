/// PostgresServerStore: `ServerStore` on PostgreSQL — one connection driven by the reactor
/// (`PostgresClient`), every call a pipeline segment whose completion arrives in a later loop
/// iteration while the loop goes on serving.
///
/// The group commit is one segment: an `accept` statement per accepted message (its
/// idempotency record by `INSERT … ON CONFLICT … RETURNING`: a key found taken is an answer,
/// not an error), a `look_up` per look-up, the scheduler's status writes, then the sync — one
/// implicit transaction, one round trip, committed when the sync's result arrives. One commit
/// is on its way at a time; what arrives meanwhile is the next batch. A statement failing for
/// an unexpected reason aborts the segment: it is sent again without that statement (its
/// request gets 503, or the status write is dropped and logged), so one bad request never
/// costs the others their 200.
///
/// The directory (tokens, mailboxes, templates) is an in-memory copy loaded when the
/// connection is made and again on every `NOTIFY tickiti_directory` (the admin commands send
/// one with each change): reads are synchronous and cost no round trip.
///
/// While the database is unreachable every call fails at once (`unavailableReason` says why:
/// requests get 503, `/readyz` too), the connection reconnects with backoff, and the commit on
/// its way when the connection broke is answered 503 (if it reached the database after all,
/// the client's retry with the same key is a replay).
#if canImport(Glibc)
import Glibc
#endif
import AuditAPI
import Auth
import Idempotency
import Logging
import PostgresClient
import Reactor
import Resolver
import Store

public final class PostgresServerStore: ServerStore, PostgresConnectionDelegate, DeadlineHandler {
    let connection: PostgresConnection
    let reactor: Reactor
    var logger: Logger
    /// This process on the shared queue: the owner number its rows carry, and its lease.
    let lease: PostgresSQL.Lease
    let startedAt = PostgresServerStore.nowMilliseconds()
    var leaseTimer: TimerHandle?
    var heartbeats = 0
    /// The mailbox session slots held, by the connection (count of reconnects) that took them.
    var slotEpochs: [SlotKey: Int] = [:]
    var renewing = false
    var takingOver = false
    var takeOverPasses = 0
    /// Rows queued again because the process sending them stopped renewing its lease.
    public private(set) var leaseTakeovers = 0

    /// Connected and migrated: statements may be sent.
    var connected = false
    var migrating = false
    /// A migration the database refused: the store stays unavailable, saying why.
    var migrationFailure: String?
    var directoryLoaded = false
    var directoryLoading = false
    var directoryStale = false
    var version: Int64 = 0
    var tokensByID: [Int64: StoredToken] = [:]
    var mailboxList: [MailboxRecord] = []
    var templatesByIdentifier: [String: TemplateRecord] = [:]

    public private(set) var isCommitting = false
    /// Counters (tests, logs).
    public private(set) var reconnects = 0
    public private(set) var resentBatches = 0
    /// Batches whose batched statements failed and were sent again statement by statement.
    public private(set) var perItemFallbacks = 0

    public init(uri: String, reactor: Reactor, resolver: Resolver, logger: Logger, options: PostgresConnection.Options = .init(),
                leaseSeconds: Int = 60) throws {
        self.reactor = reactor
        self.logger = logger
        var owner: Int64 = 0
        while owner == 0 { owner = Int64.random(in: 1...Int64.max) }
        lease = PostgresSQL.Lease(owner: owner, milliseconds: Int64(max(leaseSeconds, 1)) * 1000)
        connection = try PostgresConnection(uri: uri, reactor: reactor, resolver: resolver, logger: logger, options: options)
        connection.delegate = self
        connection.start()
        leaseTimer = reactor.makeTimer(self)
        armLeaseTimer()
    }

    public var scansClaim: Bool { true }
    /// Other processes queue rows this one must see (a takeover, another's overflow).
    public var scanPollMilliseconds: Int64? { 2000 }

    static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    // MARK: Leases

    func armLeaseTimer() {
        guard let t = leaseTimer else { return }
        reactor.arm(t, at: reactor.now + .milliseconds(max(lease.milliseconds / 3, 100)))
    }

    var heartbeatQuery: PGQuery {
        PGQuery(PostgresSQL.heartbeat, [.int(lease.owner), .int(PostgresServerStore.nowMilliseconds() + lease.milliseconds),
                                        .int(startedAt), .text(PostgresServerStore.hostName)])
    }

    static let hostName: String = {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "?" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// Every third of a lease: this process's lease renewed (one row), then the rows of
    /// processes whose lease ran out queued again for whoever claims them first.
    public func onDeadline() {
        armLeaseTimer()
        guard connected else { return }
        if !renewing {
            renewing = true
            run([heartbeatQuery], { [self] (result: Result<Bool, Error>) in
                renewing = false
                heartbeatAnswered(result)
            }) { $0[0].rowCount == 1 && $0[0].bool(0, 0) }
        }
        if !takingOver {
            takingOver = true
            takeOverPasses += 1
            // Every tenth pass also rows whose owner has no `processes` row at all (a process
            // that claimed after its row was removed as dead, then died): a scan of every
            // `sending` row, so not every time.
            run([PGQuery(PostgresSQL.takeOver, [.int(PostgresServerStore.nowMilliseconds()), .text(takeOverPasses % 10 == 1 ? "true" : "false")])], { [self] (result: Result<Int, Error>) in
                takingOver = false
                if case .success(let n) = result, n > 0 {
                    leaseTakeovers += n
                    logger.notice("\(n) message(s) queued again: the process sending them stopped renewing its lease (--lease-seconds)")
                }
            }) { $0[0].rowCount == 1 ? $0[0].int(0, 0) : 0 }
        }
    }

    func heartbeatAnswered(_ result: Result<Bool, Error>) {
        heartbeats += 1
        switch result {
        case .success(true) where heartbeats > 1:
            logger.warning("this process's lease had run out (stalled or cut off longer than --lease-seconds): messages it was sending may have been taken over and sent by another process as well")
        case .success: break
        case .failure(let e): logger.warning("lease renewal failed (retried in \(lease.milliseconds / 3000) s): \(e)")
        }
    }

    public var unavailableReason: String? {
        if let f = migrationFailure { return "the schema migration failed: \(f)" }
        if migrating { return "migrating the database schema" }
        if !connected { return "the database is unreachable; reconnecting" }
        if !directoryLoaded { return "loading tokens, mailboxes and templates" }
        return nil
    }

    // MARK: Connection events

    public var startupFailure: String? { migrationFailure }

    public func postgresConnected(_ c: PostgresConnection) {
        if reconnects > 0 { logger.notice("PostgreSQL connection back") }
        migrationFailure = nil
        migrate { [self] in
            connected = true
            loadDirectory()
        }
    }

    public func postgresDisconnected(_ c: PostgresConnection, _ error: PGError) {
        if connected { logger.error("PostgreSQL connection lost: \(error); answering 503 and reconnecting") }
        connected = false
        migrating = false
        reconnects += 1
        // NOTIFYs sent meanwhile are lost: the copy is loaded again on the next connection.
        directoryLoaded = false
        directoryLoading = false
    }

    public func postgresNotification(_ c: PostgresConnection, channel: String, payload: String) {
        guard channel == PostgresSchema.directoryChannel else { return }
        if directoryLoading { directoryStale = true } else { loadDirectory() }
    }

    /// LISTEN (again, on a new connection) and read the whole directory in one segment.
    func loadDirectory() {
        directoryLoading = true
        directoryStale = false
        // The lease first: no row of this process is ever `sending` without its `processes` row
        // (a process that died before its first renewal would leave rows no one takes over).
        let sent = send([heartbeatQuery, PGQuery(PostgresSQL.listen), PGQuery(PostgresSQL.tokens), PGQuery(PostgresSQL.mailboxes),
                                    PGQuery(PostgresSQL.templates)]) { [self] result in
            directoryLoading = false
            switch result {
            case .success(let outcomes):
                guard outcomes.count == 5, case .ok(let hb) = outcomes[0], case .ok = outcomes[1], case .ok(let t) = outcomes[2],
                      case .ok(let m) = outcomes[3], case .ok(let tp) = outcomes[4] else {
                    logger.error("reading the directory failed: \(outcomes); retrying on the next notification or connection")
                    return
                }
                heartbeatAnswered(.success(hb.rowCount == 1 && hb.bool(0, 0) && heartbeats > 0))
                tokensByID = Dictionary(PostgresRows.tokens(t).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                mailboxList = PostgresRows.mailboxes(m)
                templatesByIdentifier = Dictionary(PostgresRows.templates(tp).map { ($0.identifier, $0) }, uniquingKeysWith: { a, _ in a })
                version += 1
                // Said once per load: tests (and operators) wait on it to know a change is seen.
                logger.info("directory \(directoryLoaded ? "reloaded" : "loaded"): \(tokensByID.count) tokens, \(mailboxList.count) mailboxes, \(templatesByIdentifier.count) templates")
                directoryLoaded = true
                if directoryStale { loadDirectory() }
            case .failure:
                break   // the disconnect handler runs; the next connection loads again
            }
        }
        if !sent { directoryLoading = false }
    }

    // MARK: Start-up

    public func seedIfEmpty(_ seed: DemoSeed, completion: @escaping (Result<Int64?, Error>) -> Void) {
        run([PGQuery(PostgresSQL.seedLock, [.int(PostgresSchema.migrationLock + 1)]), PGQuery(PostgresSQL.seed, PostgresSQL.seedParameters(seed))],
            completion) { $0[1].rowCount == 1 ? $0[1].int64(0, 0) : nil }
    }

    // MARK: Directory

    public func directoryVersion() throws -> Int64 { version }

    public func token(id: Int64) throws -> StoredToken? {
        guard directoryLoaded else { throw StoreNotReady() }
        return tokensByID[id]
    }

    public func mailboxes() throws -> [MailboxRecord] {
        guard directoryLoaded else { throw StoreNotReady() }
        return mailboxList
    }

    public func template(identifier: String) throws -> TemplateRecord? {
        guard directoryLoaded else { throw StoreNotReady() }
        return templatesByIdentifier[identifier]
    }

    // MARK: Group commit

    /// The batch as few statements: look-ups one by one (they come first, SPEC §4's order),
    /// every accepted message in one `accept_batch`, status writes in runs of one kind. If any
    /// of them fails, the whole batch is sent again statement by statement (`commitPerItem`),
    /// which finds the one to blame and commits the rest without it.
    public func commit(_ batch: CommitBatch, completion: @escaping (CommitOutcome) -> Void) {
        isCommitting = true
        let now = PostgresServerStore.nowMilliseconds()
        let done: (CommitOutcome) -> Void = { [self] outcome in
            isCommitting = false
            completion(outcome)
        }
        // The whole segment with generic plans over index scans (PostgresSQL.batchPlans): its
        // statements run once per loop iteration, and planning each for its arguments was most
        // of their cost (a fifth of the server's CPU per accepted message; for the outcome
        // writes of a few rows each, more than executing them).
        var queries: [PGQuery] = [PGQuery(PostgresSQL.batchPlans)]
        var lookUps: [Int] = [], accepts: [Int] = []
        var accepted: [(NewMessage, Bool)] = []
        for (i, item) in batch.items.enumerated() {
            switch item {
            case .lookUp(let tokenID, let key):
                guard accepts.isEmpty else { return commitPerItem(batch, completion: done) }   // not the usual order
                lookUps.append(i)
                queries.append(PGQuery(PostgresSQL.lookUp, [.int(tokenID), .text(key), .int(batch.idempotencyCutoff)]))
            case .accept(let m, let sending):
                accepts.append(i)
                accepted.append((m, sending))
            case .record, .batch:
                return commitPerItem(batch, completion: done)   // render_template, a batch: a statement of their own
            }
        }
        var acceptAt: Int?
        if !accepted.isEmpty {
            acceptAt = queries.count
            queries.append(PGQuery(PostgresSQL.acceptBatch, PostgresSQL.acceptBatchParameters(accepted, cutoff: batch.idempotencyCutoff, lease: lease)))
        }
        queries += PostgresSQL.batchedQueries(batch.statusWrites, lease: lease, now: now)
        queries.append(PGQuery(PostgresSQL.sessionPlans))
        let sent = send(queries) { [self] result in
            switch result {
            case .failure(let e):
                done(.failed("\(e)"))
            case .success(let outcomes):
                var results = [CommitItemResult](repeating: .failed, count: batch.items.count)
                for (n, outcome) in outcomes.enumerated() {
                    guard case .ok(let r) = outcome else {
                        perItemFallbacks += 1
                        return commitPerItem(batch, completion: done)
                    }
                    if n >= 1 && n <= lookUps.count {
                        results[lookUps[n - 1]] = PostgresServerStore.itemResult(r, isAccept: false)
                    } else if n == acceptAt {
                        guard r.rowCount == accepts.count else { return done(.failed("accept_batch answered \(r.rowCount) rows for \(accepts.count)")) }
                        for row in 0..<r.rowCount { results[accepts[row]] = PostgresServerStore.acceptResult(r, row, offset: 1) }
                    }
                }
                done(.committed(results))
            }
        }
        if !sent { done(.failed(unavailableReason ?? "not connected")) }
    }

    /// The batch statement by statement (the fallback after a failed batched statement).
    func commitPerItem(_ batch: CommitBatch, completion: @escaping (CommitOutcome) -> Void) {
        var queries: [PGQuery] = []
        queries.reserveCapacity(batch.items.count + batch.statusWrites.count)
        for item in batch.items {
            switch item {
            case .accept(let m, let sending):
                queries.append(PGQuery(PostgresSQL.accept, PostgresSQL.acceptParameters(m, sending: sending, cutoff: batch.idempotencyCutoff, lease: lease)))
            case .lookUp(let tokenID, let key):
                queries.append(PGQuery(PostgresSQL.lookUp, [.int(tokenID), .text(key), .int(batch.idempotencyCutoff)]))
            case .batch(let tokenID, let key, let r, let items):
                queries.append(PGQuery(PostgresSQL.acceptMany, PostgresSQL.acceptManyParameters(tokenID: tokenID, key: key, r, items,
                                                                                              cutoff: batch.idempotencyCutoff, lease: lease)))
            case .record(let tokenID, let key, let r):
                queries.append(PGQuery(PostgresSQL.record, [.int(tokenID), .text(key), .bytes(r.fingerprint), .int(Int64(r.status)), .bytes(r.body),
                                                            .int(r.createdAt), .int(batch.idempotencyCutoff)]))
            }
        }
        let now = PostgresServerStore.nowMilliseconds()
        for w in batch.statusWrites { queries.append(PostgresSQL.query(w, lease: lease, now: now)) }
        // Positions of the queries still sent (a re-sent batch leaves some out).
        let positions = Array(0..<queries.count)
        let results = [CommitItemResult](repeating: .failed, count: batch.items.count)
        send(queries, positions: positions, itemCount: batch.items.count, results: results, attempt: 0, completion: completion)
    }

    func send(_ all: [PGQuery], positions: [Int], itemCount: Int, results: [CommitItemResult], attempt: Int,
              completion: @escaping (CommitOutcome) -> Void) {
        var held = results
        let sent = send(positions.map { all[$0] }) { [self] result in
            switch result {
            case .failure(let e):
                completion(.failed("\(e)"))
            case .success(let outcomes):
                if let bad = outcomes.firstIndex(where: { if case .failed = $0 { return true } else { return false } }) {
                    // The whole segment was rolled back: again without the culprit.
                    let culprit = positions[bad]
                    if case .failed(let e) = outcomes[bad] {
                        if culprit < itemCount {
                            logger.error("the group commit refused one request (answered 503, the others are committed again): \(e)")
                        } else {
                            logger.error("a delivery status write failed and is dropped (the others are committed again): \(e)")
                        }
                    }
                    resentBatches += 1
                    var rest = positions
                    rest.remove(at: bad)
                    if culprit < itemCount { held[culprit] = .failed }
                    guard !rest.isEmpty else {
                        completion(.committed(held))
                        return
                    }
                    send(all, positions: rest, itemCount: itemCount, results: held, attempt: attempt + 1, completion: completion)
                    return
                }
                for (n, position) in positions.enumerated() where position < itemCount {
                    guard case .ok(let r) = outcomes[n] else { continue }
                    if all[position].statement == PostgresSQL.acceptMany {
                        held[position] = PostgresServerStore.acceptManyResult(r)
                        continue
                    }
                    held[position] = PostgresServerStore.itemResult(r, isAccept: all[position].statement == PostgresSQL.accept
                                                                      || all[position].statement == PostgresSQL.record)
                }
                completion(.committed(held))
            }
        }
        if !sent { completion(.failed(unavailableReason ?? "not connected")) }
    }

    static func itemResult(_ r: PGResult, isAccept: Bool) -> CommitItemResult {
        if isAccept {
            guard r.rowCount == 1 else { return .failed }
            return acceptResult(r, 0, offset: 0)
        }
        guard r.rowCount == 1 else { return .absent }
        return .taken(IdempotencyRecord(fingerprint: r.bytes(0, 0), status: r.int(0, 1), body: r.bytes(0, 2), createdAt: r.int64(0, 3)))
    }

    /// A batch's row: its messages' ids (comma-separated), or the record holding the key.
    static func acceptManyResult(_ r: PGResult) -> CommitItemResult {
        guard r.rowCount == 1 else { return .failed }
        if !r.isNull(0, 0) { return .insertedBatch(r.string(0, 0).split(separator: ",").compactMap { Int64($0) }) }
        return acceptResult(r, 0, offset: 0)
    }

    /// An accept's row from column `offset`: the message id, or the record holding the key.
    ///
    /// Neither (the key's lock was free, its INSERT met a record, and the statement cannot see
    /// that record): another process committed the key between this statement's snapshot and
    /// its lock attempt. READ COMMITTED takes one snapshot per statement; ON CONFLICT sees the
    /// committed row, the statement's own SELECT does not. That request was in flight when this
    /// one started: `409 idempotency_key_in_use`, and its retry is answered the replay — never a
    /// 503 for a key that is safely stored (it was, for a whole group commit's keys at once,
    /// when two workers took the same keys).
    static func acceptResult(_ r: PGResult, _ row: Int, offset c: Int) -> CommitItemResult {
        if !r.isNull(row, c) { return .inserted(r.int64(row, c)) }
        if !r.isNull(row, c + 5) && r.bool(row, c + 5) { return .inUse }
        guard !r.isNull(row, c + 1) else { return .inUse }
        return .taken(IdempotencyRecord(fingerprint: r.bytes(row, c + 1), status: r.int(row, c + 2), body: r.bytes(row, c + 3),
                                        createdAt: r.int64(row, c + 4)))
    }

    // MARK: Queue

    /// Nothing to do on a shared queue: what a crashed process left `sending` is queued again
    /// once its lease has run out (`onDeadline`), by whichever process notices first.
    public func requeueInterrupted(nowMilliseconds now: Int64, completion: @escaping (Result<Int, Error>) -> Void) {
        completion(.success(0))
    }

    /// Claims up to `limit` due rows for this process (they come back `sending`, leased).
    public func dueMessages(nowMilliseconds now: Int64, limit: Int, completion: @escaping (Result<DueScan, Error>) -> Void) {
        run([PGQuery(PostgresSQL.batchPlans),
             PGQuery(PostgresSQL.claim, [.int(now), .int(Int64(limit)), .int(lease.owner)]),
             PGQuery(PostgresSQL.nextDue, [.int(now)]), PGQuery(PostgresSQL.sessionPlans)], completion) { r in
            let d = r[1]
            let rows = (0..<d.rowCount).map {
                var m = QueuedMessage(id: d.int64($0, 0), acceptedAt: d.int64($0, 1), mailboxName: d.string($0, 2), from: d.string($0, 3),
                                      recipient: d.string($0, 4), messageID: d.string($0, 5), raw: d.bytes($0, 6), attempts: d.int($0, 7),
                                      markedSending: true, recipients: RecipientState.decode(d.optionalString($0, 8)))
                m.uncertainAttempts = d.int($0, 9)
                return m
            }
            return DueScan(rows: rows, nextDue: r[2].isNull(0, 0) ? nil : r[2].int64(0, 0))
        }
    }

    // MARK: Mailbox session slots

    public var sharesSessionSlots: Bool { true }

    public var sharesSendBudgets: Bool { true }

    /// One call of `tickiti_take_budget` (PostgresSchema): the mailbox's budget for every process.
    /// A failure (store down) is a wait of a second.
    public func takeSendBudget(_ q: BudgetRequest, completion: @escaping (Int64?) -> Void) {
        run([PGQuery(PostgresSQL.takeBudget, [.text(q.mailbox), .int(q.nowMilliseconds),
                                               q.rate.map { .int($0.intervalNanoseconds) } ?? .null, .int(Int64(q.rate?.burst ?? 1)),
                                               q.dailyRecipients.map { .int(Int64($0)) } ?? .null, .int(Int64(q.recipients))])],
            { (result: Result<Int64?, Error>) in
                switch result {
                case .success(let wait): completion(wait)
                case .failure: completion(1000)
                }
            }) { r in r[0].isNull(0, 0) ? nil : r[0].int64(0, 0) }
    }

    public func acquireSessionSlots(mailbox: String, max: Int, held: [Int], count: Int, completion: @escaping ([Int]) -> Void) {
        let epoch = reconnects
        run([PGQuery(PostgresSQL.acquireSlots, [.text(mailbox), .int(Int64(max)), PGArray.int4(held.map { Int32($0) }),
                                                 .int(Int64(count))])], { [self] (result: Result<[Int], Error>) in
            switch result {
            case .success(let slots):
                for slot in slots { slotEpochs[SlotKey(mailbox: mailbox, slot: slot)] = epoch }
                completion(slots)
            case .failure:
                completion([])   // asked again shortly (RelayPool)
            }
        }) { r in (0..<r[0].rowCount).map { r[0].int(0 + $0, 0) } }
    }

    public func releaseSessionSlot(mailbox: String, slot: Int) {
        let key = SlotKey(mailbox: mailbox, slot: slot)
        // Taken on an earlier connection: PostgreSQL released it when that connection ended.
        guard let epoch = slotEpochs.removeValue(forKey: key), epoch == reconnects else { return }
        run([PGQuery(PostgresSQL.releaseSlot, [.text(mailbox), .int(Int64(slot))])], { (_: Result<Int, Error>) in }) { _ in 0 }
    }

    struct SlotKey: Hashable {
        var mailbox: String
        var slot: Int
    }

    // MARK: Audit

    public func auditPage(_ filter: AuditFilter, limit: Int, after: AuditCursor?, completion: @escaping (Result<[AuditEntry], Error>) -> Void) {
        run([PostgresSQL.auditPage(filter, limit: limit, after: after)], completion) { r in
            (0..<r[0].rowCount).map { PostgresSQL.auditEntry(r[0], $0, raw: false) }
        }
    }

    public func auditDetail(id: Int64, completion: @escaping (Result<(AuditEntry, [DeliveryAttempt])?, Error>) -> Void) {
        run([PGQuery(PostgresSQL.auditEntry, [.int(id)]), PGQuery(PostgresSQL.attempts, [.int(id)])], completion) { r in
            guard r[0].rowCount == 1 else { return nil }
            return (PostgresSQL.auditEntry(r[0], 0, raw: true), PostgresSQL.attempts(r[1]))
        }
    }

    /// The last known counts; a fresh reading is asked for at most once a second (a scrape
    /// shows the previous one: no scrape ever waits on the database).
    public func queueCounts(completion: @escaping ([String: Int]?) -> Void) {
        run([PGQuery(PostgresSQL.queueCounts)], { (result: Result<[String: Int], Error>) in
            completion(try? result.get())
        }) { r in
            var c: [String: Int] = [:]
            for i in 0..<r[0].rowCount { c[r[0].string(i, 0)] = r[0].int(i, 1) }
            return c
        }
    }

    // MARK: Upkeep

    public func sweepIdempotency(createdBefore cutoff: Int64, limit: Int, completion: @escaping (Result<Int, Error>) -> Void) {
        run([PGQuery(PostgresSQL.sweep, [.int(cutoff), .int(Int64(limit))])], completion) { $0[0].affectedRows }
    }

    /// Nothing in flight any more when this is called. (This process's `processes` row stays:
    /// it expires with its lease and goes in a later takeover pass, holding nothing.)
    public func finish() {}

    public func close() { connection.stop() }

    /// A segment, once connected and migrated (false, nothing sent, before).
    func send(_ queries: [PGQuery], completion: @escaping (Result<[PGOutcome], PGError>) -> Void) -> Bool {
        guard connected else { return false }
        return connection.send(queries, completion: completion)
    }

    /// One segment; `read` turns its results into the answer. Not connected: fails at once.
    func run<T>(_ queries: [PGQuery], _ completion: @escaping (Result<T, Error>) -> Void, read: @escaping ([PGResult]) -> T) {
        let sent = send(queries) { result in
            switch result {
            case .failure(let e):
                completion(.failure(e))
            case .success(let outcomes):
                var results: [PGResult] = []
                for o in outcomes {
                    switch o {
                    case .ok(let r): results.append(r)
                    case .failed(let e):
                        completion(.failure(e))
                        return
                    case .skipped:
                        completion(.failure(PGError(sqlState: nil, message: "skipped after an earlier error", connectionLost: false)))
                        return
                    }
                }
                completion(.success(read(results)))
            }
        }
        if !sent { completion(.failure(StoreNotReady())) }
    }
}

