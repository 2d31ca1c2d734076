/// DeliveryScheduler: moves accepted messages from the queue to their relays (SPEC §4
/// "Delivery and the audit") — the outbox half of the App.
///
/// Work arrives two ways: straight from the group commit (the rows just made durable, with
/// their bytes still in memory — picked up within the same loop iteration, no polling) and
/// from scans of the table (at start-up, at the next retry time of a deferred message, and
/// when memory frees up after an overflow). At most `maxInMemory` messages are held; beyond
/// that they simply wait in the table.
///
/// Status writes (`sending` for what a scan picked up — rows the group commit hands over are
/// inserted as `sending` already — then the attempt's result) join the loop iteration's group
/// commit (`CommitParticipant`); they are kept and retried if that commit fails. A final
/// `250` is committed at the end of the iteration that received it — the only duplicate
/// window is between that reply and this commit (see `SessionMachine.State.data`), and a
/// retry then carries the same stored bytes and Message-ID.
///
/// Outcomes: sent → `sent`; 5xx → `failed`; otherwise `deferred` with exponential backoff
/// (`RetryPolicy`) until `--max-queue-age-seconds`, then `failed`; no reply to the end of data →
/// `uncertain`, sent again at most `--uncertain-retries` times. Replies that speak for the
/// mailbox (throttling, quotas) pause it instead (DeliveryScheduler+RelayPolicy).
/// The `file://` transport is done here: `<id>.eml` written to a temporary name, fsynced and
/// renamed, so a reader never sees half a message.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Reactor
import Relay
import Resolver
import SMTPClient
import SMTPProtocol
import Store
import TLS

/// Writes that must join the next group commit.
protocol CommitParticipant: AnyObject {
    var hasPendingWrites: Bool { get }
    /// The writes for the commit being made; `committed` follows once with its outcome.
    func takePendingWrites() -> [StatusWrite]
    func committed(_ ok: Bool)
}

public final class DeliveryScheduler: DeliveryHandler, DeadlineHandler, CommitParticipant {
    public struct Options: Sendable {
        public var retry: RetryPolicy
        /// nil: RFC 5321's value for each reply.
        public var smtpTimeoutSeconds: Int?
        /// Sends again after an `uncertain` outcome before the message ends `uncertain`.
        public var uncertainRetries = 1
        /// The EHLO name.
        public var clientName: String
        public var maxInMemory = 20_000
        /// 0 = no limit (benchmarks use 1 for "one message per session").
        public var maxMessagesPerSession = 0
        public var idleSeconds = RelayPool.defaultIdleSeconds

        public init(retry: RetryPolicy, smtpTimeoutSeconds: Int?, clientName: String) {
            self.retry = retry
            self.smtpTimeoutSeconds = smtpTimeoutSeconds
            self.clientName = clientName
        }
    }

    typealias Write = StatusWrite

    let store: ServerStore
    let reactor: Reactor
    let resolver: Resolver
    var logger: Logger
    public let options: Options

    /// How each mailbox delivers, decided once (DSN parsed, TLS context and pool made).
    enum Route {
        case file(directory: String)
        case relay(RelayPool)
        case unusable(SMTPReply)
    }

    var routes: [String: Route] = [:]
    /// The DSN each cached route was made from: a mailbox changed by `mailbox update` (or
    /// removed) gets a new route for its next messages.
    var routeDSNs: [String: String] = [:]
    /// Pools of routes replaced by a change: they finish the messages they hold, then idle.
    var retiredPools: [RelayPool] = []
    var routesCheckedVersion: Int64 = -1
    /// The directory's version, read once a loop iteration (Application hands the Directory's,
    /// so requests and routes share one read).
    var directoryVersion: () -> Int64?
    var active: [Int64: QueuedMessage] = [:]
    var writes: [Write] = []
    var writing: [Write] = []
    /// A relay session reported `sent` and writes nothing more until the next commit.
    var outputHeld = false
    /// The commit on its way carries a `sent` some session waits for.
    var releaseOnCommit = false
    /// A scan is on its way (PostgreSQL answers later): no second one meanwhile.
    var scanning = false
    /// Rows a crashed run left `sending` were requeued (the first thing the first scan does).
    var interruptedRequeued = false
    var scanFailures = 0
    var scanFailureLogged = false
    var scanTimer: TimerHandle?
    var watchTimer: TimerHandle?
    var scanAt: Instant?
    var overflowed = false
    var stopping = false
    /// The shutdown deadline passed: outcomes of closed sessions are not attempts.
    var abandoning = false
    /// Called once, when stopping and nothing is in flight any more.
    var onIdle: (() -> Void)?

    /// Mailboxes their relay paused (SPEC §6; DeliveryScheduler+RelayPolicy).
    var pauses: [String: MailboxPause] = [:]

    /// Counters (tests, logs, metrics).
    public internal(set) var sentCount = 0
    public internal(set) var deferredCount = 0
    public internal(set) var failedCount = 0
    public internal(set) var uncertainCount = 0
    /// Messages deferred by a mailbox's pause or budget (not counted as attempts).
    public internal(set) var throttledCount = 0
    /// Pauses begun.
    public internal(set) var throttleCount = 0

    /// Messages held in memory at most: `maxInMemory`, or on a store shared by several processes
    /// (`scansClaim`) at most `claimAhead` — a process holding 20 000 claimed messages while
    /// the mailbox's sessions are spread over four processes would keep the other three idle;
    /// what it does not hold stays queued for whichever process has a session free.
    let maxHeld: Int
    static let claimAhead = 2000

    public init(store: ServerStore, reactor: Reactor, resolver: Resolver, logger: Logger, options: Options) {
        maxHeld = store.scansClaim ? min(options.maxInMemory, DeliveryScheduler.claimAhead) : options.maxInMemory
        self.store = store
        self.reactor = reactor
        self.resolver = resolver
        self.logger = logger
        self.options = options
        directoryVersion = { [store] in try? store.directoryVersion() }   // alone (tests): a read per route look-up
        scanTimer = reactor.makeTimer(self)
    }

    static func nowMilliseconds() -> Int64 { SendEmailService.nowMilliseconds() }

    /// Start-up: what a crash left `sending` is due again; then the first scan. (Done by the
    /// first scan, and retried with it until the store answers.)
    public func start() {
        scan()
        watch()
    }

    /// Once a second: did another connection commit (an admin command)? A changed mailbox gets
    /// a new route, a pause another process recorded is adopted, and a `message retry` is
    /// picked up by the scan that follows — with the loop idle, nothing else would look.
    func watch() {
        let t = watchTimer ?? reactor.makeTimer(ClosureDeadline { [weak self] in
            guard let self, !self.stopping else { return }
            self.dropChangedRoutes()
            self.watch()
        })
        watchTimer = t
        reactor.arm(t, after: .seconds(1))
    }

    // MARK: Intake

    /// How many of the next accepted messages `accepted` will take at once: the group commit
    /// inserts that many rows as `sending` already.
    var intakeRoom: Int { stopping ? 0 : max(maxHeld - active.count, 0) }

    /// Rows the group commit just made durable.
    func accepted(_ messages: [QueuedMessage]) {
        for m in messages {
            if stopping || active.count >= maxHeld {
                overflowed = overflowed || !stopping
                // Inserted as `sending` but not taken after all: back to the queue.
                if m.markedSending { writes.append(.requeue(m.id)) }
                continue
            }
            if store.scansClaim && !m.markedSending {
                // Inserted `queued` (no room when the batch was made): on a shared queue it is
                // any process's now, and only a claim may take it.
                armScanNextIteration()
                continue
            }
            deliver(m)
        }
    }

    /// Rows one scan takes at most. Each row is read with its bytes and costs a `sending` UPDATE
    /// in the iteration's commit: taking a backlog of 10 000 at once (what memory freeing up
    /// allowed) held one iteration — and every request in flight — for hundreds of milliseconds
    /// of SQLite work; in batches it is taken over many iterations with requests in between.
    static let scanBatch = 512
    static let minScanBatch = 128

    /// Reads due rows not already held, up to the memory cap and `scanBatch`; then arms the
    /// timer for the next batch (the next loop iteration, after this one's commit) or the next
    /// future retry.
    func scan() {
        guard !stopping, !scanning else { return }
        let now = DeliveryScheduler.nowMilliseconds()
        if !interruptedRequeued {
            scanning = true
            store.requeueInterrupted(nowMilliseconds: now) { [self] result in
                scanning = false
                switch result {
                case .success(let n):
                    interruptedRequeued = true
                    if n > 0 { logger.notice("\(n) message(s) were being sent when the last run stopped; retrying them") }
                    scanSucceeded()
                    scan()
                case .failure(let error):
                    scanFailed(error, now: now)
                }
            }
            return
        }
        let room = maxHeld - active.count
        guard room > 0, !(overflowed && active.count >= maxHeld / 2) else {
            overflowed = true
            return
        }
        let take = min(room, DeliveryScheduler.scanBatch)
        // A claiming store returns only rows it just made ours; else rows already held may be
        // among the due ones (their `sending` write not committed yet).
        let limit = store.scansClaim ? take : take + min(active.count, 1000)
        scanning = true
        store.dueMessages(nowMilliseconds: now, limit: limit) { [self] result in
            scanning = false
            guard !stopping else { return }
            switch result {
            case .success(let scan):
                // Room may have changed while a PostgreSQL scan was on its way.
                let room = maxHeld - active.count
                let take = min(max(room, 0), take)
                let fresh = scan.rows.filter { active[$0.id] == nil }
                for m in fresh.prefix(take) { deliver(m) }
                // Claimed but no room for them after all: back to the queue.
                for m in fresh.dropFirst(take) where m.markedSending { writes.append(.requeue(m.id)) }
                // A full result may hide more due rows: the next batch if a worthwhile one fits
                // (deliveries free room while a scan is on its way, a few rows at a time: batches
                // of those cost a statement each), else when half the memory is free again.
                let more = scan.rows.count == limit || fresh.count > take
                // (At most half of memory: below that, deliveries still in flight are what
                // frees it, and their completion rescans.)
                overflowed = more && maxHeld - active.count < min(DeliveryScheduler.minScanBatch, maxHeld / 2)
                if more && !overflowed { armScanNextIteration() }
                // Memory full: the next scan comes when half of it is free again (`delivered`),
                // not at the next due time — with the intake overflowing, that is a few
                // milliseconds away again and again, and each scan would take a handful of rows.
                if !overflowed {
                    if let next = scan.nextDue { armScan(atMilliseconds: next) }
                    if let poll = store.scanPollMilliseconds { armScan(atMilliseconds: now + poll) }
                }
                scanSucceeded()
            case .failure(let error):
                scanFailed(error, now: now)
            }
        }
    }

    /// Retried every second; logged once per episode (the store down is said by the store).
    func scanFailed(_ error: Error, now: Int64) {
        scanFailures += 1
        // A store that is not connected says so itself (and at start-up it is not, yet).
        if scanFailures == 1 && store.unavailableReason == nil {
            scanFailureLogged = true
            logger.error("queue scan failed (retrying every second until it works): \(error)")
        }
        armScan(atMilliseconds: now + 1000)
    }

    func scanSucceeded() {
        if scanFailureLogged { logger.notice("queue scans work again (after \(scanFailures) failed)") }
        scanFailures = 0
        scanFailureLogged = false
    }

    func armScan(atMilliseconds ms: Int64) {
        guard let t = scanTimer else { return }
        let delay = max(ms - DeliveryScheduler.nowMilliseconds(), 0)
        let at = reactor.now + .milliseconds(delay)
        if let current = scanAt, reactor.isArmed(t), current <= at { return }
        scanAt = at
        reactor.arm(t, at: at)
    }

    /// Due one nanosecond after this iteration's time: the reactor fires it in the next
    /// iteration (after this one's commit and writes), not in the same pass over due timers.
    func armScanNextIteration() {
        guard let t = scanTimer else { return }
        let at = reactor.now + .nanoseconds(1)
        if let current = scanAt, reactor.isArmed(t), current <= at { return }
        scanAt = at
        reactor.arm(t, at: at)
    }

    public func onDeadline() {
        scanAt = nil
        scan()
    }

    // MARK: Delivery

    func deliver(_ m: QueuedMessage) {
        active[m.id] = m
        if !m.markedSending { writes.append(.sending(m.id)) }
        switch route(for: m.mailboxName) {
        case .file(let directory):
            delivered(m.id, FileTransport.write(m, to: directory))
        case .relay(let pool):
            if pool.refusesWork, let p = pauses[m.mailboxName] {
                return deferThrottled(m.id, until: p.until, reply: p.reason)
            }
            // Several recipients: an RCPT for each one still pending (one refused for now is
            // retried alone in a later transaction; one accepted is never given it twice).
            let pending = m.recipients?.filter { $0.status == .pending }.map(\.address) ?? []
            let envelope = pending.isEmpty ? Envelope(from: m.from, to: m.recipient, message: m.raw)
                : Envelope(from: m.from, recipients: pending, message: m.raw)
            pool.enqueue(DeliveryJob(id: m.id, envelope: envelope))
        case .unusable(let reply):
            delivered(m.id, .deferred(reply))
        }
    }

    var pools: [RelayPool] {
        routes.values.compactMap { if case .relay(let p) = $0 { return p } else { return nil } } + retiredPools
    }

    /// Once per loop iteration, when an admin command changed the directory: routes whose
    /// mailbox is gone or has another DSN are made again on their next use.
    func dropChangedRoutes() {
        guard let v = directoryVersion(), v != routesCheckedVersion else { return }
        let first = routesCheckedVersion == -1
        routesCheckedVersion = v
        // Another connection committed (an admin command: `message retry` may have queued
        // messages that are due now).
        if !first && !stopping { armScanNextIteration() }
        guard !routes.isEmpty, let current = try? store.mailboxes() else { return }
        for mailbox in current { if let p = mailbox.pause { adoptPause(mailbox.name, p) } }
        let dsns = Dictionary(current.map { ($0.name, $0.dsn) }, uniquingKeysWith: { a, _ in a })
        for (name, dsn) in routeDSNs where dsns[name] != dsn {
            if case .relay(let p)? = routes[name] { retiredPools.append(p) }
            routes[name] = nil
            routeDSNs[name] = nil
            logger.info("mailbox \(name) changed: its next messages use the new settings")
        }
        retiredPools.removeAll { $0.isIdle && $0.sessionCount == 0 }   // idle sessions close after --smtp idle time
    }

    /// The cached route; a mailbox not (yet) in the table is looked up again next time.
    func route(for name: String) -> Route {
        dropChangedRoutes()
        if let r = routes[name] { return r }
        let mailbox: MailboxRecord?
        do {
            mailbox = try store.mailboxes().first { $0.name == name }
        } catch {
            logger.error("reading mailboxes: \(error)")
            return .unusable(.local(451, "4.3.0", "cannot read mailbox \(name): \(error)"))
        }
        guard let mailbox else { return .unusable(.local(451, "4.3.0", "mailbox \(name) does not exist")) }
        let r = makeRoute(mailbox)
        routes[name] = r
        routeDSNs[name] = mailbox.dsn
        if let p = mailbox.pause { adoptPause(name, p) }
        return r
    }

    func makeRoute(_ mailbox: MailboxRecord) -> Route {
        let dsn: RelayDSN
        do {
            dsn = try RelayDSN(parsing: mailbox.dsn)
        } catch {
            return .unusable(.local(451, "4.3.5", "mailbox \(mailbox.name): \(error)"))
        }
        let host: String
        let port: UInt16
        let security: SessionMachine.Security
        switch dsn.transport {
        case .file(let directory):
            return .file(directory: directory)
        case .smtp(let h, let p):
            (host, port) = (h, p)
            switch dsn.startTLS {
            case .required: security = .startTLS(required: true)
            case .opportunistic: security = .startTLS(required: false)
            case .off: security = .plain
            }
        case .smtps(let h, let p):
            (host, port, security) = (h, p, .implicitTLS)
        }
        var tls: TLSClientContext?
        if security != .plain {
            do {
                tls = try TLSClientContext(caFile: dsn.caFile, verifyPeer: dsn.verifyPeer)
            } catch {
                logger.error("mailbox \(mailbox.name): cannot set up TLS: \(error)")
                return .unusable(.local(454, "4.7.5", "TLS configuration error: \(error)"))
            }
            if !dsn.verifyPeer {
                logger.warning("mailbox \(mailbox.name): verify_peer=false — the relay's certificate is NOT checked; anyone on the path can read and change this mail (development only)")
            }
        }
        let credentials = dsn.user.map { SessionMachine.Credentials(user: $0, password: dsn.password ?? "") }
        let endpoint = RelayEndpoint(host: host, port: port,
                                     policy: .init(security: security, credentials: credentials, clientName: options.clientName),
                                     timeoutSeconds: options.smtpTimeoutSeconds)
        let p = RelayPool(name: mailbox.name, endpoint: endpoint, maxConnections: dsn.maxConnections, reactor: reactor,
                          resolver: resolver, tlsContext: tls, logger: logger)
        p.handler = self
        p.maxMessagesPerSession = options.maxMessagesPerSession
        p.holdOutputUntilCommitted = true
        p.idleSeconds = options.idleSeconds
        if store.sharesSessionSlots { p.slots = StoreSessionSlots(store: store) }
        p.budget = makeBudget(mailbox: mailbox.name, dsn: dsn)
        return .relay(p)
    }

    // MARK: Outcomes

    public func delivered(_ job: DeliveryJob, _ outcome: DeliveryOutcome, recipients: [SMTPReply]?) {
        if case .sent = outcome { outputHeld = true }   // the pool holds that session's output (holdOutputUntilCommitted)
        delivered(job.id, outcome, recipients: recipients)
    }

    func delivered(_ id: Int64, _ transactionOutcome: DeliveryOutcome, recipients replies: [SMTPReply]? = nil) {
        guard let m = active.removeValue(forKey: id) else { return }
        if abandoning {
            // Not the relay's doing: back to `queued`, due at once after the restart.
            writes.append(.requeue(id))
            return
        }
        let now = DeliveryScheduler.nowMilliseconds()
        // The relay's word on the mailbox (SPEC §6): a throttling or quota reply — to the
        // transaction, or to a recipient of it — pauses the mailbox and requeues the message
        // without counting an attempt.
        var hold: (reply: SMTPReply, quota: Bool)?
        switch transactionOutcome {
        case .deferred(let r), .failed(let r):
            let v = verdict(r, stage: .endOfData)
            if DeliveryScheduler.holdsMailbox(v) { hold = (r, v == .quota) }
        case .sent, .uncertain:
            break
        }
        if hold == nil, let replies {
            for r in replies where !r.isPositive {
                let v = verdict(r, stage: .rcpt)
                if DeliveryScheduler.holdsMailbox(v) { hold = (r, v == .quota); break }
            }
        }
        if let hold {
            active[id] = m   // deferThrottled takes it out again
            let until = pauseMailbox(m.mailboxName, quota: hold.quota, reply: hold.reply, allSessions: false)
            if var list = m.recipients, let replies {
                // Recipients the relay refused for good keep that; the rest stay pending.
                _ = RecipientOutcomes.settle(&list, .deferred(hold.reply), replies: replies.map { DeliveryScheduler.holdsMailbox(verdict($0, stage: .rcpt)) ? .local(451, "4.7.0", "\($0)") : $0 })
                writes.append(.recipients(id: id, list: RecipientState.encode(list)))
            }
            deferThrottled(id, until: until, reply: "\(hold.reply) (the mailbox is paused; not counted as an attempt)")
            return
        }
        if case .sent = transactionOutcome { mailboxWorked(m.mailboxName) }
        let attempts = m.attempts + 1
        var outcome = transactionOutcome
        var list = m.recipients
        if list != nil {
            outcome = RecipientOutcomes.settle(&list!, transactionOutcome, replies: replies)
            // No reply to the end of data: the recipients the relay took at RCPT are as
            // uncertain as the message.
            if case .uncertain(let r) = transactionOutcome, case .deferred = outcome { outcome = .uncertain(r) }
            if case .deferred = outcome, case .giveUp = options.retry.afterDeferral(attempts: attempts, acceptedAtMilliseconds: m.acceptedAt, nowMilliseconds: now) {
                outcome = RecipientOutcomes.giveUp(&list!, after: "gave up after \(attempts) attempt(s) and \(options.retry.maxQueueAgeSeconds)s in the queue")
            }
            // Before the attempt's own write (which ends this process's claim on the row).
            writes.append(.recipients(id: id, list: RecipientState.encode(list!)))
        }
        switch outcome {
        case .sent(let r):
            sentCount += 1
            writes.append(.attempt(id: id, status: "sent", outcome: "sent", reply: r.description, at: now, next: now))
            logger.debug("message \(id) sent: \(r)")
        case .failed(let r):
            failedCount += 1
            writes.append(.attempt(id: id, status: "failed", outcome: "failed", reply: r.description, at: now, next: now))
            logger.info("message \(id) to \(m.recipient) failed: \(r)")
        case .deferred(let r):
            switch options.retry.afterDeferral(attempts: attempts, acceptedAtMilliseconds: m.acceptedAt, nowMilliseconds: now) {
            case .retry(let at):
                deferredCount += 1
                writes.append(.attempt(id: id, status: "deferred", outcome: "deferred", reply: r.description, at: now, next: at))
                if !stopping { armScan(atMilliseconds: at) }
                logger.info("message \(id) to \(m.recipient) deferred (attempt \(attempts)): \(r)")
            case .giveUp:
                failedCount += 1
                let reply = "\(r) (gave up after \(attempts) attempt(s) and \(options.retry.maxQueueAgeSeconds)s in the queue)"
                writes.append(.attempt(id: id, status: "failed", outcome: "failed", reply: reply, at: now, next: now))
                logger.info("message \(id) to \(m.recipient) failed: \(reply)")
            }
        case .uncertain(let r):
            // RFC 5321 §4.5.3.2.6: the relay may have the message. Sent again (same bytes, same
            // Message-ID) at most --uncertain-retries times, then left `uncertain`: never an
            // endless loop of copies.
            uncertainCount += 1
            let decision = m.uncertainAttempts < options.uncertainRetries
                ? options.retry.afterDeferral(attempts: attempts, acceptedAtMilliseconds: m.acceptedAt, nowMilliseconds: now) : .giveUp
            switch decision {
            case .retry(let at):
                let reply = "\(r) (no reply to the end of data: the relay may have it; sending again, uncertain \(m.uncertainAttempts + 1) of \(options.uncertainRetries + 1))"
                writes.append(.attempt(id: id, status: "deferred", outcome: "uncertain", reply: reply, at: now, next: at))
                if !stopping { armScan(atMilliseconds: at) }
                logger.warning("message \(id) to \(m.recipient) uncertain (attempt \(attempts)): \(reply)")
            case .giveUp:
                let reply = "\(r) (no reply to the end of data \(m.uncertainAttempts + 1) time(s): the relay may have delivered it; not sent again)"
                writes.append(.attempt(id: id, status: "uncertain", outcome: "uncertain", reply: reply, at: now, next: now))
                logger.warning("message \(id) to \(m.recipient) ends uncertain: \(reply)")
            }
        }
        if overflowed && !stopping && active.count < maxHeld / 2 {
            overflowed = false
            armScan(atMilliseconds: now)
        }
        if stopping { checkIdle() }
    }

    // MARK: CommitParticipant

    var hasPendingWrites: Bool { !writes.isEmpty || outputHeld }

    func takePendingWrites() -> [StatusWrite] {
        writing = writes
        writes.removeAll(keepingCapacity: true)
        // The sessions holding their output wait for this commit, not one already on its way.
        releaseOnCommit = outputHeld
        outputHeld = false
        return writing
    }

    func committed(_ ok: Bool) {
        if !ok {
            // Keep them, in order, for the next commit.
            writes = writing + writes
            outputHeld = outputHeld || releaseOnCommit
        }
        writing.removeAll(keepingCapacity: true)
        // Sessions that reported a `sent` wait for it to be durable before writing on.
        if ok && releaseOnCommit {
            for p in pools { p.outcomesCommitted() }
        }
        releaseOnCommit = false
    }

    // MARK: Shutdown

    /// Stop taking work: waiting messages go back to `queued`, idle sessions quit, messages in
    /// a transaction finish. `onIdle` is called when nothing is in flight.
    func beginShutdown() {
        stopping = true
        if let t = scanTimer { reactor.cancel(t) }
        if let t = watchTimer { reactor.cancel(t) }
        for p in pools {
            for j in p.drain() {
                active[j.id] = nil
                writes.append(.requeue(j.id))
            }
        }
        // Messages held but not in a pool (none today) go back too.
        checkIdle()
    }

    var isIdle: Bool { pools.allSatisfy(\.isIdle) }

    func checkIdle() {
        guard stopping, isIdle, let f = onIdle else { return }
        onIdle = nil
        f()
    }

    /// The shutdown deadline passed: close every session; what was in flight is retried after
    /// the restart.
    func abandon() {
        abandoning = true
        for p in pools { p.abandon() }
    }
}

/// A timer calling a closure.
final class ClosureDeadline: DeadlineHandler {
    let call: () -> Void
    init(_ call: @escaping () -> Void) { self.call = call }
    func onDeadline() { call() }
}

/// A relay pool's mailbox-wide session slots, from a store shared with other processes.
final class StoreSessionSlots: SessionSlots {
    let store: ServerStore
    init(store: ServerStore) { self.store = store }

    func acquireSlots(mailbox: String, max: Int, held: [Int], count: Int, completion: @escaping ([Int]) -> Void) {
        store.acquireSessionSlots(mailbox: mailbox, max: max, held: held, count: count, completion: completion)
    }

    func releaseSlot(mailbox: String, slot: Int) { store.releaseSessionSlot(mailbox: mailbox, slot: slot) }
}
