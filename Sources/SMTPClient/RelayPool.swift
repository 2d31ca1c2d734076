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
        for s in holding where !s.quitWhenIdle {
            s.pipelineNext()
            if waiting.isEmpty { return }
        }
        for s in sessions.values where !s.quitWhenIdle && s.isIdle {
            s.submit(waiting.removeFirst())
            if waiting.isEmpty { return }   // the usual case: one message, one idle session
        }
        if let t = openAfter {
            if reactor.now < t { return }
            openAfter = nil
        }
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
                    let t = reconnectTimer ?? reactor.makeTimer(self)
                    reconnectTimer = t
                    openAfter = reactor.now + RelayPool.slotRetryDelay
                    reactor.arm(t, at: openAfter!)
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
        let starting = sessions.values.reduce(0) { $0 + ($1.established ? 0 : 1) }
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

    func sessionReady(_ s: SMTPSession) {
        if s.quitWhenIdle || draining || (maxMessagesPerSession > 0 && s.messagesSent >= maxMessagesPerSession) {
            s.quitWhenIdle = true
            return s.quit()
        }
        if let j = waiting.popFirst() {
            s.submit(j)
        } else {
            s.armIdle(seconds: idleSeconds)
        }
    }

    func nextPipelinedJob(for s: SMTPSession) -> DeliveryJob? {
        if s.quitWhenIdle || draining { return nil }
        if maxMessagesPerSession > 0 && s.messagesSent + s.jobs.count >= maxMessagesPerSession { return nil }
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
        sessions[ObjectIdentifier(s)] = nil
        if let slot = s.slot {
            s.slot = nil
            slots?.releaseSlot(mailbox: name, slot: slot)
        }
        if let failure {
            sessionFailures += 1
            if !s.established {
                let t = reconnectTimer ?? reactor.makeTimer(self)
                reconnectTimer = t
                openAfter = reactor.now + RelayPool.reconnectDelay
                reactor.arm(t, at: openAfter!)
            }
            if !s.established && !sessions.values.contains(where: { $0.established }) && !waiting.isEmpty {
                let jobs = Array(waiting)
                waiting.removeAll()
                logger.warning("relay \(name) unusable, deferring \(jobs.count) waiting message(s): \(failure)")
                for j in jobs { handler?.delivered(j, DeliveryOutcome.classify(failure).asSiteFailure, recipients: nil) }
            }
        }
        dispatch()
    }
}

extension RelayPool {
    public func onDeadline() { dispatch() }
}

extension DeliveryOutcome {
    /// A session-level failure never fails messages for good: the next attempt may find the
    /// relay working (a wrong password, an expired certificate, a relay restarting).
    var asSiteFailure: DeliveryOutcome {
        switch self {
        case .sent(let r), .failed(let r): return .deferred(r)
        case .deferred: return self
        }
    }
}
