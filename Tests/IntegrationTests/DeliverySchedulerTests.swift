/// DeliveryScheduler's queue scans: a large backlog is taken in bounded batches, one per loop
/// iteration, each after the previous batch's `sending` marks were committed — never the whole
/// backlog (and its status writes) in one iteration while requests wait.
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Reactor
import Resolver
import SMTPProtocol
import Store
import Testing
@testable import App

@Suite struct DeliverySchedulerTests {
    @Test func aBacklogIsTakenInBoundedBatchesOnePerIteration() throws {
        let dir = makeTempDir()
        let db = try Database(path: dir + "/t.db", synchronous: .normal)
        // A relay nobody listens on: the reactor is never run here, so nothing is connected;
        // the messages wait in the pool, held by the scheduler.
        let port = try freeTCPPort()
        _ = try db.addMailbox(name: "relay", address: "billing@x.test", displayName: nil,
                              dsn: "smtp://127.0.0.1:\(port)?starttls=off", enabled: true, now: 0)
        let backlog = 2 * DeliveryScheduler.scanBatch + 100
        try db.begin()
        for i in 0..<backlog {
            try db.insertAccepted(NewMessage(acceptedAt: 1000 + Int64(i), tokenID: 1, tokenName: "t", idempotencyKey: "k\(i)",
                                             fingerprint: [1], responseStatus: 200, responseBody: [], mailboxName: "relay",
                                             mailboxAddress: "billing@x.test", recipient: "r\(i)@x.test", subject: "s", template: nil,
                                             messageID: "<\(i)@x.test>", raw: Array("Subject: s\r\n\r\nbody\r\n".utf8)))
        }
        try db.commit()

        let reactor = try Reactor()
        let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration(nameServers: ["127.0.0.1"], port: 9))
        let store = SQLiteServerStore(db: db, reactor: reactor, logger: Logger(label: "test"))
        let scheduler = DeliveryScheduler(store: store, reactor: reactor, resolver: resolver, logger: Logger(label: "test"),
                                          options: .init(retry: RetryPolicy(baseSeconds: 60, maxSeconds: 3600, maxQueueAgeSeconds: 86400),
                                                         smtpTimeoutSeconds: 30, clientName: "test"))
        func commitIteration() throws {
            var ok = false
            store.commit(CommitBatch(items: [], statusWrites: scheduler.takePendingWrites(), idempotencyCutoff: 0)) { outcome in
                if case .committed = outcome { ok = true }
            }
            #expect(ok)
            scheduler.committed(ok)
        }
        func sendingRows() throws -> Int { try db.queueCounts()["sending"] ?? 0 }
        var batchArmed: Bool { scheduler.scanTimer.map { reactor.isArmed($0) } ?? false }
        /// What the reactor does in the next iteration: the timer is due, disarmed, fired.
        func nextIteration() {
            if let t = scheduler.scanTimer { reactor.cancel(t) }
            scheduler.onDeadline()
        }

        scheduler.scan()
        #expect(scheduler.active.count == DeliveryScheduler.scanBatch)
        #expect(batchArmed, "the next batch waits for the next iteration")
        try commitIteration()
        #expect(try sendingRows() == DeliveryScheduler.scanBatch)

        nextIteration()   // the rows just marked `sending` are not taken again
        #expect(scheduler.active.count == 2 * DeliveryScheduler.scanBatch)
        #expect(batchArmed)
        try commitIteration()

        nextIteration()
        #expect(scheduler.active.count == backlog)
        try commitIteration()
        #expect(try sendingRows() == backlog)
        #expect(try db.queueCounts()["queued"] == 0)
        // Everything taken: no batch is pending (nothing else is due later either).
        #expect(!batchArmed)
    }
}
