/// RelayPool: the sessions to one mailbox's relay and the messages waiting for them.
///
/// At most `maxConnections` sessions (the DSN's `max_connections=`); a new one is opened only
/// while more messages wait than sessions are starting. A session that becomes ready takes the
/// next message (FIFO, so acceptance order is kept per relay) — and, when the relay pipelines,
/// the one after it behind the first one's data; with nothing to do it stays
/// open `idleSeconds` and then QUITs. Several messages go over one session
/// (`maxMessagesPerSession`, 0 = no limit).
///
/// A session that fails before the relay accepted it while others work (a relay's connection
/// limit, say) holds off new sessions for `reconnectDelay`, so the pool never spins on
/// connect-fail-connect.
///
/// Site failure: when a session fails before the relay ever accepted us (cannot resolve,
/// refused, TLS or STARTTLS failure, AUTH refused) and no other session to it is working, every
/// waiting message is deferred with that reply — the relay is unusable now, and hammering it
/// once per message would help nobody (Postfix defers the whole destination alike).
import DequeModule
import Logging
import Reactor
import Resolver
import SMTPProtocol
import TLS

public protocol DeliveryHandler: AnyObject {
    /// The outcome of one message. Called from the loop; `.sent` should be committed before
    /// anything else is done for this message (the duplicate window, SessionMachine `.data`):
    /// the session that reported it writes nothing more until `outcomesCommitted()` is called.
    /// `recipients`: each envelope recipient's RCPT reply, in order, when they all came (a
    /// refused one was not given the message whatever the outcome says).
    func delivered(_ job: DeliveryJob, _ outcome: DeliveryOutcome, recipients: [SMTPReply]?)
    /// A session failed before the relay accepted it, with `failure` said by the relay (a
    /// `432 4.3.2` connection limit, say). True when the owner paused the pool for it
    /// (`pause`): the waiting messages are then the pause's business, not a site failure.
    func sessionRefused(_ pool: RelayPool, _ failure: SMTPReply) -> Bool
    /// The budget makes the next message wait `milliseconds`, longer than the pool holds
    /// messages for (`RelayPool.longestHold`): the owner takes the waiting ones back.
    func budgetWait(_ pool: RelayPool, milliseconds: Int64)
}

extension DeliveryHandler {
    public func sessionRefused(_ pool: RelayPool, _ failure: SMTPReply) -> Bool { false }
    public func budgetWait(_ pool: RelayPool, milliseconds: Int64) {}
}

/// A mailbox's sending budget (`rate=`, `daily_recipients=`; Relay.TokenBucket and
/// RollingDailyCount, or the same arithmetic in a shared store): asked before each message is
/// handed to a session.
public protocol SendBudget: AnyObject {
    /// One message for `recipients` recipients may go now: calls back once, from the loop —
    /// at once or later — with nil (granted, and counted) or how many milliseconds to wait
    /// before asking again.
    func take(recipients: Int, completion: @escaping (Int64?) -> Void)
}

/// Session slots of a mailbox shared by several processes (PostgreSQL: session-level advisory
/// locks): a session is opened only on a slot this process holds, so `max_connections` holds
/// for the mailbox as a whole.
public protocol SessionSlots: AnyObject {
    /// Up to `count` free slots in `0..<max` other than `held`, locked for this process (fewer,
    /// or none, when other processes hold the rest). Calls back once, from the loop.
    func acquireSlots(mailbox: String, max: Int, held: [Int], count: Int, completion: @escaping ([Int]) -> Void)
    func releaseSlot(mailbox: String, slot: Int)
}

public final class RelayPool: SessionOwner, DeadlineHandler {
    /// With every slot taken elsewhere, asked again after this.
    public static let slotRetryDelay: Duration = .milliseconds(250)
    public static let defaultIdleSeconds = 5
    /// After a session failed to start, no new session for this long.
    public static let reconnectDelay: Duration = .seconds(1)

    public let name: String
    let endpoint: RelayEndpoint
    let reactor: Reactor
    let resolver: Resolver
    let tlsContext: TLSClientContext?
    var logger: Logger
    public weak var handler: DeliveryHandler?

    public var maxConnections: Int
    public var idleSeconds = RelayPool.defaultIdleSeconds
    public var maxMessagesPerSession = 0
    /// After a session reports `.sent` it writes nothing more until `outcomesCommitted()`: set
    /// by an owner that records outcomes durably (the server), so a crash can duplicate at most
    /// the one message per session whose final reply is not recorded yet.
    public var holdOutputUntilCommitted = false
    /// Mailbox-wide session slots (nil: this process is the only one; `maxConnections` is then
    /// counted here alone).
    public var slots: SessionSlots?
    var slotRequestInFlight = false

    var waiting = Deque<DeliveryJob>()
    var sessions: [ObjectIdentifier: SMTPSession] = [:]
    var draining = false
    var openAfter: Instant?
    var reconnectTimer: TimerHandle?
    /// Sessions holding output until the `.sent` outcomes they reported are committed.
    var holding: [SMTPSession] = []
    /// Sessions that became ready with nothing to take (`sessionReady`), newest last: every
    /// idle session is here (a session becomes idle only through `sessionReady`), and an entry
    /// may have turned busy or closed since — `dispatch` checks each one it pops. Handing a
    /// message out costs one look, not a walk over every session (64 busy ones under load).
    var idleCandidates: [SMTPSession] = []
    /// Sessions that reached `ready` at least once (`sessionsWanted` counts the others).
    var establishedCount = 0

    /// The mailbox's budget (nil: no `rate=` or `daily_recipients=`): a message is handed to a
    /// session only with a credit the budget granted.
    public var budget: SendBudget?
    var credits = 0
    var budgetRequestInFlight = false
    var budgetRetryAt: Instant?
    /// Waits for the budget longer than this hand the waiting messages back to the owner.
    public static let longestHold: Int64 = 300_000

    /// The relay asked us to slow down (SPEC §6): no new session before `pausedUntil`; with
    /// `pauseAll` (a quota, or a throttling reply to a message) no message either.
    public private(set) var pausedUntil: Instant?
    public private(set) var pauseAll = false

    /// Counters (tests, metrics, benchmarks).
    public private(set) var sessionsOpened = 0
    public private(set) var sessionFailures = 0

    public init(name: String, endpoint: RelayEndpoint, maxConnections: Int, reactor: Reactor, resolver: Resolver,
                tlsContext: TLSClientContext?, logger: Logger) {
        self.name = name
        self.endpoint = endpoint
        self.maxConnections = max(1, maxConnections)
        self.reactor = reactor
        self.resolver = resolver
        self.tlsContext = tlsContext
        self.logger = logger
    }

    public var waitingCount: Int { waiting.count }
    public var sessionCount: Int { sessions.count }
    /// Messages handed to a session and not finished.
    public var inFlightCount: Int { sessions.values.reduce(0) { $0 + $1.jobs.count } }
    public var isIdle: Bool { waiting.isEmpty && inFlightCount == 0 }
    public var isPaused: Bool {
        guard let t = pausedUntil else { return false }
        return reactor.now < t
    }
    /// Paused so that a message enqueued now would wait for the pause's end.
    public var refusesWork: Bool { isPaused && (pauseAll || !sessions.values.contains { $0.established }) }

    /// No new session for `duration` (and, `allSessions`, no message either); returns the
    /// waiting messages when none can go meanwhile, for the owner to defer until then.
    public func pause(for duration: Duration, allSessions: Bool) -> [DeliveryJob] {
        let until = reactor.now + duration
        if isPaused {
            pausedUntil = max(pausedUntil!, until)
            pauseAll = pauseAll || allSessions
        } else {
            pausedUntil = until
            pauseAll = allSessions
        }
        armWake()
        guard refusesWork else { return [] }
        let back = Array(waiting)
        waiting.removeAll()
        return back
    }

    /// A job may be handed to a session now (the budget granted one); asks for the next grant.
    func mayHand() -> Bool {
        if pauseAll && isPaused { return false }
        guard budget != nil else { return true }
        if credits == 0 { requestCredit() }
        return credits > 0
    }

    func handed() {
        if budget != nil { credits = max(credits - 1, 0) }
    }

    func requestCredit() {
        guard let budget, !budgetRequestInFlight, let head = waiting.first else { return }
        if let t = budgetRetryAt, reactor.now < t { return }
        budgetRequestInFlight = true
        var synchronous = true
        budget.take(recipients: head.envelope.recipients.count) { [self] wait in
            budgetRequestInFlight = false
            if let wait {
                if wait > RelayPool.longestHold {
                    budgetRetryAt = nil
                    handler?.budgetWait(self, milliseconds: wait)
                    return
                }
                budgetRetryAt = reactor.now + .milliseconds(max(wait, 1))
                armWake()
            } else {
                credits += 1
                budgetRetryAt = nil
                if !synchronous { dispatch() }
            }
        }
        synchronous = false
    }

    /// The owner takes back what waits (a long budget wait, a pause).
    public func takeWaiting() -> [DeliveryJob] {
        let back = Array(waiting)
        waiting.removeAll()
        return back
    }

    public func enqueue(_ job: DeliveryJob) {
        waiting.append(job)
        dispatch()
    }

    /// Gives waiting messages to sessions holding their output first, then to idle sessions,
    /// then opens sessions for what is left.
    ///
    /// A session holding output (its last `.sent` not committed yet) usually has the next
    /// message's data waiting in its buffer and nothing behind it: a message given to it now
    /// rides in that same write (MAIL, RCPT, DATA after the data), where an idle session would
    /// need a write for the commands and another for the data. The server hands freshly
    /// accepted messages over before it releases the held sessions, so under load most
    /// messages cost one write instead of two.
    func dispatch() {
        guard !draining, !waiting.isEmpty else { return }
        if let p = pausedUntil, reactor.now >= p {
            pausedUntil = nil
            pauseAll = false
        }
        for s in holding where !s.quitWhenIdle {
            s.pipelineNext()
            if waiting.isEmpty { return }
        }
        while let s = idleCandidates.last {
            guard sessions[ObjectIdentifier(s)] === s, !s.quitWhenIdle, s.isIdle else {
                idleCandidates.removeLast()   // busy or closed since it was idle
                continue
            }
            guard mayHand() else { return }
            idleCandidates.removeLast()
            handed()
            s.submit(waiting.removeFirst())
            if waiting.isEmpty { return }   // the usual case: one message, one idle session
        }
        if let t = openAfter {
            if reactor.now < t { return }
            openAfter = nil
        }
        if isPaused { return }
        // A budget that holds messages back: no session beyond the first until it grants one.
        if budget != nil && !sessions.isEmpty && !mayHand() { return }
        var toOpen = sessionsWanted
        guard toOpen > 0 else { return }
        if let slots {
            // One request at a time: two in flight could both be granted the same slot (a
            // session-level lock taken twice by one holder is held once).
            guard !slotRequestInFlight else { return }
            slotRequestInFlight = true
            slots.acquireSlots(mailbox: name, max: maxConnections, held: sessions.values.compactMap(\.slot), count: toOpen) { [self] granted in
                slotRequestInFlight = false
                var rest = granted[...]
                var want = draining ? 0 : sessionsWanted
                while want > 0, let slot = rest.popFirst() {
                    want -= 1
                    open(slot: slot)
                }
                for slot in rest { slots.releaseSlot(mailbox: name, slot: slot) }
                if want > 0 {
                    // Every slot is taken elsewhere: ask again shortly.
                    openAfter = reactor.now + RelayPool.slotRetryDelay
                    armWake()
                }
            }
            return
        }
        while toOpen > 0 {
            toOpen -= 1
            open(slot: nil)
        }
    }

    /// Sessions to open now: one per waiting message beyond those sessions still starting, up
    /// to `maxConnections`.
    var sessionsWanted: Int {
        let starting = sessions.count - establishedCount
        return max(0, min(waiting.count - starting, maxConnections - sessions.count))
    }

    func open(slot: Int?) {
        let s = SMTPSession(endpoint: endpoint, reactor: reactor, resolver: resolver, tlsContext: tlsContext, logger: logger, owner: self)
        s.slot = slot
        sessions[ObjectIdentifier(s)] = s
        sessionsOpened += 1
        s.start()
    }

    /// Shutdown: waiting messages are handed back (returned), idle sessions quit, sessions with
    /// a message finish it and then quit.
    public func drain() -> [DeliveryJob] {
        draining = true
        let back = Array(waiting)
        waiting.removeAll()
        for s in Array(sessions.values) {
            s.quitWhenIdle = true
            if s.isIdle || !s.established { s.quit() }
        }
        return back
    }

    /// Hard stop at the shutdown deadline: sessions are closed; their messages are deferred by
    /// the session (the caller does not commit those, so they stay `sending` and are retried
    /// after restart).
    public func abandon() {
        for s in Array(sessions.values) { s.end(failure: .local(421, "4.4.2", "shutting down")) }
    }

    // MARK: SessionOwner

    func sessionReady(_ s: SMTPSession, first: Bool) {
        if first { establishedCount += 1 }
        if s.quitWhenIdle || draining || (maxMessagesPerSession > 0 && s.messagesSent >= maxMessagesPerSession) {
            s.quitWhenIdle = true
            return s.quit()
        }
        if !waiting.isEmpty, mayHand(), let j = waiting.popFirst() {
            handed()
            s.submit(j)
        } else {
            s.armIdle(seconds: idleSeconds)
            idleCandidates.append(s)
        }
    }

    func nextPipelinedJob(for s: SMTPSession) -> DeliveryJob? {
        if s.quitWhenIdle || draining || waiting.isEmpty { return nil }
        if maxMessagesPerSession > 0 && s.messagesSent + s.jobs.count >= maxMessagesPerSession { return nil }
        guard mayHand() else { return nil }
        handed()
        return waiting.popFirst()
    }

    func session(_ s: SMTPSession, finished job: DeliveryJob, _ outcome: DeliveryOutcome, recipients: [SMTPReply]?) {
        if holdOutputUntilCommitted, case .sent = outcome, !s.holdingOutput {
            s.holdingOutput = true
            holding.append(s)
        }
        handler?.delivered(job, outcome, recipients: recipients)
    }

    /// The outcomes reported so far are committed: sessions may write again.
    public func outcomesCommitted() {
        guard !holding.isEmpty else { return }
        let sessions = holding
        holding.removeAll(keepingCapacity: true)
        for s in sessions { s.releaseOutput() }
    }

    func sessionClosed(_ s: SMTPSession, failure: SMTPReply?) {
        if sessions.removeValue(forKey: ObjectIdentifier(s)) != nil, s.established { establishedCount -= 1 }
        idleCandidates.removeAll { $0 === s }
        if let slot = s.slot {
            s.slot = nil
            slots?.releaseSlot(mailbox: name, slot: slot)
        }
        if let failure {
            sessionFailures += 1
            if !s.established, !failure.isLocal, handler?.sessionRefused(self, failure) == true {
                // Paused by the owner: what waits goes on with the working sessions or was
                // handed back by `pause`.
                return dispatch()
            }
            if !s.established {
                openAfter = reactor.now + RelayPool.reconnectDelay
                armWake()
            }
            if !s.established && !sessions.values.contains(where: { $0.established }) && !waiting.isEmpty {
                let jobs = Array(waiting)
                waiting.removeAll()
                // Debug: each message's outcome line carries the reply (one line per outcome).
                logger.debug("relay \(name) unusable, deferring \(jobs.count) waiting message(s): \(failure)")
                for j in jobs { handler?.delivered(j, DeliveryOutcome.classify(failure).asSiteFailure, recipients: nil) }
            }
        }
        dispatch()
    }
}

extension RelayPool {
    public func onDeadline() {
        dispatch()
        armWake()
    }

    /// One timer for every wait of the pool (a reconnect delay, slots taken elsewhere, a
    /// pause, the budget): armed at the earliest one still ahead.
    func armWake() {
        let now = reactor.now
        let next = [openAfter, budgetRetryAt, pausedUntil].compactMap { $0 }.filter { $0 > now }.min()
        guard let next else { return }
        let t = reconnectTimer ?? reactor.makeTimer(self)
        reconnectTimer = t
        reactor.arm(t, at: next)
    }
}

extension DeliveryOutcome {
    /// A session-level failure never fails messages for good: the next attempt may find the
    /// relay working (a wrong password, an expired certificate, a relay restarting).
    var asSiteFailure: DeliveryOutcome {
        switch self {
        case .sent(let r), .failed(let r), .uncertain(let r): return .deferred(r)
        case .deferred: return self
        }
    }
}
