/// RelayPool's hand-out policy against a real relay (Postfix's smtp-sink, which pipelines): a
/// message accepted while a session holds its output for a commit — the next message's data
/// already waiting in its buffer, nothing behind it — rides in that session's next write
/// instead of waking (or opening) another session for a write of its own.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Reactor
import Resolver
import SMTPProtocol
import Testing
@testable import SMTPClient

final class Outcomes: DeliveryHandler {
    var sent: [Int64] = []
    var other: [Int64] = []
    func delivered(_ job: DeliveryJob, _ outcome: DeliveryOutcome, recipients: [SMTPReply]?) {
        if case .sent = outcome { sent.append(job.id) } else { other.append(job.id) }
    }
}

/// A pool for the mailbox "sink" on a fresh smtp-sink, its outcomes, messages and a bounded wait.
struct PoolFixture {
    let sink: SMTPSink
    let reactor: Reactor
    let pool: RelayPool
    let outcomes = Outcomes()

    init(maxConnections: Int) throws {
        sink = try SMTPSink()
        Reactor.ignoreSIGPIPE()
        reactor = try Reactor()
        let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration(nameServers: ["127.0.0.1"], port: 9))
        pool = RelayPool(name: "sink", endpoint: RelayEndpoint(host: "127.0.0.1", port: sink.port,
                         policy: .init(security: .plain, credentials: nil, clientName: "test.localhost"), timeoutSeconds: 30),
                         maxConnections: maxConnections, reactor: reactor, resolver: resolver, tlsContext: nil, logger: Logger(label: "test"))
        pool.handler = outcomes
    }

    func job(_ id: Int64) -> DeliveryJob {
        DeliveryJob(id: id, envelope: Envelope(from: "billing@x.test", to: "r\(id)@x.test",
                                               message: Array("Subject: \(id)\r\n\r\nbody \(id)\r\n".utf8)))
    }

    /// Runs the loop until `done` (at most 20 s).
    func run(until what: String, _ done: () -> Bool) throws {
        let deadline = Instant.now() + .seconds(20)
        while !done() {
            guard Instant.now() < deadline else { throw WaitTimeout(what: what) }
            try reactor.runOnce(maxWait: .milliseconds(50))
        }
    }
}

@Suite struct RelayPoolTests {
    @Test func aMessageAcceptedWhileASessionHoldsRidesInItsNextWrite() throws {
        let f = try PoolFixture(maxConnections: 1)
        let (sink, pool, outcomes) = (f.sink, f.pool, f.outcomes)
        pool.holdOutputUntilCommitted = true
        let job = f.job

        // Two messages on one session: the second is pipelined behind the first one's data.
        // Nothing is committed, so once the first is `sent` the session holds: the second's
        // data waits in its buffer, the relay waiting for it.
        pool.enqueue(job(1))
        pool.enqueue(job(2))
        let held = { pool.holding.first { $0.holdingOutput && $0.jobs.count == 1 && $0.machine.canPipelineNext } }
        try f.run(until: "a session holding the second message's data") { held() != nil }
        #expect(outcomes.sent == [1])
        let session = try #require(held())

        // A message accepted now (room for a second session) joins the held session.
        pool.maxConnections = 2
        pool.enqueue(job(3))
        #expect(pool.sessionsOpened == 1, "no session opened for it")
        #expect(session.jobs.map(\.id) == [2, 3])
        #expect(pool.waitingCount == 0)

        // Committing releases the write: data 2 and the commands of 3 go together; all three arrive.
        try f.run(until: "three messages sent") {
            pool.outcomesCommitted()
            return outcomes.sent.count == 3
        }
        #expect(outcomes.sent == [1, 2, 3])
        #expect(outcomes.other.isEmpty)
        #expect(pool.sessionsOpened == 1)
        try waitUntil("the sink counted three messages", seconds: 10) { sink.counters().messages == 3 }
    }

    /// Idle sessions are found from the list `sessionReady` keeps, not by a walk over every
    /// session: after a first wave, every later message goes to a session that is idle — none
    /// is opened — and a session closed while idle is passed over.
    @Test func laterMessagesGoToIdleSessionsAndAClosedOneIsPassedOver() throws {
        let f = try PoolFixture(maxConnections: 3)
        let (sink, pool, outcomes) = (f.sink, f.pool, f.outcomes)
        let job = f.job
        let idle = { pool.sessions.values.filter(\.isIdle).count }

        for i in 1...3 { pool.enqueue(job(Int64(i))) }
        try f.run(until: "three sent, three idle sessions") { outcomes.sent.count == 3 && idle() == 3 }
        #expect(pool.sessionsOpened == 3)
        #expect(pool.sessionsWanted == 0)

        for i in 4...6 { pool.enqueue(job(Int64(i))) }
        #expect(idle() == 0, "each went to an idle session at once")
        #expect(pool.waitingCount == 0)
        try f.run(until: "six sent, three idle sessions") { outcomes.sent.count == 6 && idle() == 3 }
        #expect(pool.sessionsOpened == 3)

        // One idle session quits; the two others take the next two messages, none is opened.
        let quitting = try #require(pool.sessions.values.first { $0.isIdle })
        quitting.quit()
        try f.run(until: "the session closed") { pool.sessionCount == 2 }
        for i in 7...8 { pool.enqueue(job(Int64(i))) }
        #expect(pool.waitingCount == 0)
        #expect(pool.sessionsOpened == 3)
        try f.run(until: "eight sent") { outcomes.sent.count == 8 }
        #expect(outcomes.sent.sorted() == Array(1...8))
        #expect(outcomes.other.isEmpty)
        try waitUntil("the sink counted eight messages", seconds: 10) { sink.counters().messages == 8 }
    }
}
