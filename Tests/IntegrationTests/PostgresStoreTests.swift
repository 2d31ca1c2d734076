/// The PostgreSQL store's own promises (SPEC §7), on a private PostgreSQL server this suite
/// starts (and stops, freezes and restarts): the group commit's pipeline with a key taken
/// mid-batch and with a statement that fails, and a server that keeps its promises while the
/// database is stopped or frozen under load — every client gets 200 or 503, every 200 is in
/// the audit afterwards, `/healthz` answers meanwhile, and it recovers without a restart.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Idempotency
import Logging
import PostgresClient
@testable import PostgresStore
import Reactor
import Resolver
import Store
import Testing

/// A PostgreSQL server of this suite's own (Tests/Scripts/postgres).
final class PrivatePostgres {
    let dir = makeTempDir()
    let port: UInt16
    var base: String { "postgresql://tickiti@127.0.0.1:\(port)/" }

    init() throws {
        port = try freeTCPPort()
        try start()
    }

    func start() throws {
        let (rc, out) = try run([scriptsDirectory + "/postgres", "start", dir, "\(port)"], timeoutSeconds: 120)
        guard rc == 0 else { throw TestFailure("cannot start PostgreSQL: \(out)") }
    }

    /// `pg_ctl stop -m immediate`: the server dies as in a crash.
    func crash() throws {
        let (rc, out) = try run(["runuser", "-u", "postgres", "--", pgBin + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "-w", "stop"])
        guard rc == 0 else { throw TestFailure("pg_ctl stop: \(out)") }
    }

    var pgBin: String {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        return "/usr/lib/postgresql/\(versions.sorted().last ?? "15")/bin"
    }

    /// The postmaster and every process it started.
    func processIDs() throws -> [pid_t] {
        let pidFile = try String(contentsOfFile: dir + "/data/postmaster.pid", encoding: .utf8)
        guard let master = pid_t(pidFile.split(separator: "\n").first ?? "") else { return [] }
        let (_, children) = try run(["pgrep", "-P", "\(master)"])
        return [master] + children.split(separator: "\n").compactMap { pid_t($0) }
    }

    func freeze() throws { for p in try processIDs() { kill(p, SIGSTOP) } }
    func thaw() { for p in (try? processIDs()) ?? [] { kill(p, SIGCONT) } }

    func newDatabase() throws -> String {
        let name = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let (rc, out) = try run(["psql", base + "postgres", "-qAtc", "CREATE DATABASE \(name)"])
        guard rc == 0 else { throw TestFailure("CREATE DATABASE: \(out)") }
        return base + name
    }

    deinit {
        thaw()
        _ = try? run([scriptsDirectory + "/postgres", "stop", dir], timeoutSeconds: 120)
    }
}

@Suite(.serialized) struct PostgresStoreTests {
    static func message(_ key: String, fingerprint: [UInt8] = [1, 2, 3], now: Int64 = 1_000) -> NewMessage {
        NewMessage(acceptedAt: now, tokenID: 1, tokenName: "t", idempotencyKey: key, fingerprint: fingerprint, responseStatus: 200,
                   responseBody: Array("{\"ok\":true}".utf8), mailboxName: "m", mailboxAddress: "m@x.test", recipient: "r@x.test",
                   subject: "s", template: nil, messageID: "<\(key)@x.test>", raw: Array("Subject: s\r\n\r\nbody \(key)\r\n".utf8))
    }

    /// Runs the loop until `done` (bounded).
    static func drive(_ reactor: Reactor, seconds: Double = 10, until done: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !done() {
            guard Date() < deadline else { throw TestFailure("timed out") }
            try reactor.runOnce(maxWait: .milliseconds(20))
        }
    }

    static func commit(_ store: PostgresServerStore, _ reactor: Reactor, _ batch: CommitBatch) throws -> CommitOutcome {
        var outcome: CommitOutcome?
        store.commit(batch) { outcome = $0 }
        try drive(reactor) { outcome != nil }
        return outcome!
    }

    /// `serve` migrates in its loop (no blocking libpq): two servers starting at once on an
    /// empty database make one schema (each version once) and one demo, the schema identical
    /// to the one the admin commands' blocking migration makes; a database whose schema is
    /// newer than the program stops `serve` at start with a clear line.
    @Test func serveMigratesInTheLoopAsTheAdminCommandsDo() throws {
        let pg = try PrivatePostgres()
        let served = try pg.newDatabase(), administered = try pg.newDatabase()
        let cert = try TestCertificate.make()
        let args = ["serve", "--db", served, "--listen", "127.0.0.1:0", "--tls-cert", cert.cert, "--tls-key", cert.key]
        let a = try ServerProcess(arguments: args), b = try ServerProcess(arguments: args)
        defer { a.signal(SIGKILL); b.signal(SIGKILL) }
        _ = try a.waitForPort()
        _ = try b.waitForPort()
        _ = try run([binaryPath(), "token", "list", "--db", administered])
        let (_, versions) = try run(["psql", served, "-qAtc", "SELECT string_agg(version::text, ',' ORDER BY version) FROM tickiti_schema"])
        #expect(versions.trimmingCharacters(in: .whitespacesAndNewlines) == (1...PostgresSchema.steps.count).map(String.init).joined(separator: ","))
        try waitUntil("the demo token on one of the two servers") { a.count("demo token (shown once)") + b.count("demo token (shown once)") == 1 }
        #expect(try adminStore(served).tokens().map(\.name) == ["demo"])

        let shape = """
            SELECT string_agg(table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, ''), ' | ' ORDER BY table_name, column_name)
            FROM information_schema.columns WHERE table_schema = 'public'
            UNION ALL SELECT string_agg(indexdef, ' | ' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'
            """
        let (_, s1) = try run(["psql", served, "-qAtc", shape]), (_, s2) = try run(["psql", administered, "-qAtc", shape])
        #expect(s1.contains("messages.status text NO") && s1.contains("CREATE"))
        #expect(s1 == s2)

        let newer = try pg.newDatabase()
        _ = try run([binaryPath(), "token", "list", "--db", newer])
        _ = try run(["psql", newer, "-qAtc", "INSERT INTO tickiti_schema VALUES (99)"])
        let c = try ServerProcess(arguments: ["serve", "--db", newer, "--listen", "127.0.0.1:0", "--tls-cert", cert.cert, "--tls-key", cert.key])
        defer { c.signal(SIGKILL) }
        #expect(try c.waitForExit() != 0)
        #expect(c.stderrLines.contains { $0.contains("schema version 99 is newer than this program's") })
        #expect(c.count("listening on") == 0)
    }

    /// One batch of accepted messages (the batched statement) with metadata and recipients:
    /// each message's pairs land on its own row and in the index; a metadata page finds them.
    @Test func aBatchWithMetadataAndRecipients() throws {
        let pg = try PrivatePostgres()
        let uri = try pg.newDatabase()
        let admin = try PostgresAdminStore(uri: uri)
        let reactor = try Reactor()
        let store = try PostgresServerStore(uri: uri, reactor: reactor, resolver: Resolver(reactor: reactor, configuration: .load()), logger: Logger(label: "test"))
        try Self.drive(reactor) { store.unavailableReason == nil }
        var items: [CommitItem] = []
        for i in 0..<4 {
            var m = Self.message("m\(i)")
            m.metadata = i == 2 ? [] : [MetadataPair(key: "order", value: i % 2 == 0 ? "even" : "odd"), MetadataPair(key: "n", value: "\(i)")]
            m.recipients = i == 1 ? [RecipientState(address: "r@x.test", kind: .to), RecipientState(address: "b@x.test", kind: .bcc)] : nil
            items.append(.accept(m, sending: false))
        }
        guard case .committed(let r) = try Self.commit(store, reactor, CommitBatch(items: items, statusWrites: [], idempotencyCutoff: 0)) else {
            Issue.record("the batch failed"); return
        }
        let ids = r.compactMap { if case .inserted(let id) = $0 { return id } else { return nil } }
        #expect(ids.count == 4 && store.perItemFallbacks == 0)
        #expect(try admin.auditPage(AuditFilter(metadata: MetadataPair(key: "order", value: "odd")), limit: 10, after: nil).map(\.id) == [ids[3], ids[1]])
        #expect(try admin.auditPage(AuditFilter(metadata: MetadataPair(key: "n", value: "0")), limit: 10, after: nil).map(\.id) == [ids[0]])
        let one = try #require(try admin.auditEntry(id: ids[1]))
        #expect(one.metadata == [MetadataPair(key: "order", value: "odd"), MetadataPair(key: "n", value: "1")])
        #expect(one.recipients?.map(\.kind) == [.to, .bcc])
        #expect(try admin.auditEntry(id: ids[2])?.metadata == [])
    }

    /// The host is a name (`localhost`): resolved by our resolver from /etc/hosts, handed to
    /// libpq as hostaddr. A key taken mid-batch is answered by its record; the rest commit.
    /// A status write that fails (a CHECK) is dropped and the batch is committed again
    /// without it.
    @Test func aTakenKeyMidBatchAndAFailingStatement() throws {
        let pg = try PrivatePostgres()
        let uri = try pg.newDatabase().replacingOccurrences(of: "127.0.0.1", with: "localhost")
        let admin = try PostgresAdminStore(uri: uri)   // migrates
        let reactor = try Reactor()
        let resolver = Resolver(reactor: reactor, configuration: .load())
        let store = try PostgresServerStore(uri: uri, reactor: reactor, resolver: resolver, logger: Logger(label: "test"))
        try Self.drive(reactor) { store.unavailableReason == nil }

        guard case .committed(let first) = try Self.commit(store, reactor, CommitBatch(items: [.accept(Self.message("k2"), sending: false)],
                                                                                        statusWrites: [], idempotencyCutoff: 0)),
              case .inserted(let id2) = first[0] else { Issue.record("the first commit failed"); return }

        // The usual batch: look-ups first, then the accepted messages (one batched statement,
        // in which k2 turns out to be taken), then status writes.
        let taken = CommitItemResult.taken(IdempotencyRecord(fingerprint: [1, 2, 3], status: 200, body: Array("{\"ok\":true}".utf8), createdAt: 1000))
        let batch = CommitBatch(items: [.lookUp(tokenID: 1, key: "k2"), .lookUp(tokenID: 1, key: "nope"),
                                        .accept(Self.message("k1"), sending: false),
                                        .accept(Self.message("k2", fingerprint: [9]), sending: false),
                                        .accept(Self.message("k3"), sending: true)],
                                statusWrites: [.sending(id2), .attempt(id: id2, status: "deferred", outcome: "deferred", reply: "451 later", at: 1500, next: 1500)],
                                idempotencyCutoff: 0)
        guard case .committed(let r) = try Self.commit(store, reactor, batch) else { Issue.record("the batch failed"); return }
        #expect(r.count == 5)
        #expect(r[0] == taken && r[1] == .absent)
        guard case .inserted(let id1) = r[2], case .inserted(let id3) = r[4] else { Issue.record("k1, k3: \(r)"); return }
        #expect(r[3] == taken)
        #expect(id1 > id2 && id3 == id1 + 1, "ids in acceptance order, none used by the taken key: \(id1) \(id3)")
        #expect(store.perItemFallbacks == 0 && store.resentBatches == 0)
        #expect(try admin.statusCounts() == ["deferred": 1, "queued": 1, "sending": 1])
        #expect(try admin.auditEntry(id: id3)?.messageID == "<k3@x.test>")

        // A status write that fails (a status the CHECK refuses): the batched statements fail,
        // the batch is sent again one by one, and that write is dropped; the rest commits, and
        // a look-up after an accept is taken one by one from the start.
        let failing = CommitBatch(items: [.accept(Self.message("k4"), sending: false), .lookUp(tokenID: 1, key: "k2")],
                                  statusWrites: [.sending(id2), .attempt(id: id2, status: "bogus", outcome: "bogus", reply: "x", at: 2000, next: 2000),
                                                 .attempt(id: id2, status: "sent", outcome: "sent", reply: "250 ok", at: 2000, next: 2000)],
                                  idempotencyCutoff: 0)
        guard case .committed(let f) = try Self.commit(store, reactor, failing) else { Issue.record("the batch failed"); return }
        if case .inserted = f[0] {} else { Issue.record("k4: \(f[0])") }
        #expect(f[1] == taken)
        #expect(store.resentBatches == 1, "re-sent once, without the failing status write")
        let again = CommitBatch(items: [.accept(Self.message("k5"), sending: false)],
                                statusWrites: [.attempt(id: id3, status: "bogus", outcome: "bogus", reply: "x", at: 2100, next: 2100)], idempotencyCutoff: 0)
        guard case .committed(let g) = try Self.commit(store, reactor, again) else { Issue.record("the batch failed"); return }
        if case .inserted = g[0] {} else { Issue.record("k5: \(g[0])") }
        #expect(store.perItemFallbacks == 1 && store.resentBatches == 2, "batched, failed, one by one: \(store.perItemFallbacks) \(store.resentBatches)")
        #expect(try admin.statusCounts() == ["sent": 1, "queued": 3, "sending": 1])
        #expect(try admin.deliveryAttempts(messageID: id2).map(\.outcome) == ["deferred", "sent"])

        // A status write for a row this process does not own (its lease was taken over, or it
        // never claimed it) changes nothing: id2 is `sent` and no one's.
        guard case .committed = try Self.commit(store, reactor, CommitBatch(items: [], statusWrites: [.attempt(id: id2, status: "deferred", outcome: "deferred", reply: "451 x", at: 2200, next: 2200)],
                                                                          idempotencyCutoff: 0)) else { Issue.record("not-owned write"); return }
        #expect(try admin.deliveryAttempts(messageID: id2).map(\.outcome) == ["deferred", "sent"])

        // A key another process is committing at this moment (its transaction holds the key's
        // lock) is in use at once — never a wait on that transaction's row — and free after.
        let other = try PostgresAdminStore(uri: uri)
        var during: CommitItemResult?
        try other.transaction {
            _ = try other.connection.exec("SELECT pg_advisory_xact_lock(hashtextextended('k9', 1))")
            guard case .committed(let r) = try Self.commit(store, reactor, CommitBatch(items: [.accept(Self.message("k9"), sending: false)],
                                                                                       statusWrites: [], idempotencyCutoff: 0)) else { return }
            during = r[0]
        }
        #expect(during == .inUse)
        guard case .committed(let after) = try Self.commit(store, reactor, CommitBatch(items: [.accept(Self.message("k9"), sending: false)],
                                                                                      statusWrites: [], idempotencyCutoff: 0)),
              case .inserted = after[0] else { Issue.record("k9 after the other transaction ended"); return }

        // An expired record is replaced by a new acceptance.
        guard case .committed(let again) = try Self.commit(store, reactor, CommitBatch(items: [.accept(Self.message("k2", fingerprint: [7], now: 5000), sending: false)],
                                                                                        statusWrites: [], idempotencyCutoff: 4000)) else { Issue.record("expired"); return }
        if case .inserted = again[0] {} else { Issue.record("an expired key is free again: \(again[0])") }

        // A key committed by another transaction after this statement's snapshot and before
        // its lock attempt (two workers taking the same keys): ON CONFLICT meets the record,
        // the statement's own look-up cannot see it. In use (409, the retry gets the replay),
        // never `.failed` (503 for a key that is stored). Made deterministic here: the other
        // transaction inserts the record without the key's lock and commits while our
        // statement waits on its row.
        let racer = try PostgresAdminStore(uri: uri), watcher = try PostgresAdminStore(uri: uri)
        var raced: CommitOutcome?
        try racer.transaction {
            _ = try racer.connection.exec("INSERT INTO idempotency VALUES (1, 'k10', '\\x09'::bytea, 200, '\\x7b7d'::bytea, 1000)")
            store.commit(CommitBatch(items: [.accept(Self.message("k10"), sending: false)], statusWrites: [], idempotencyCutoff: 0)) { raced = $0 }
            try Self.drive(reactor) {
                let waiting = try? watcher.connection.exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
                return raced != nil || waiting.map { $0.int64(0, 0) > 0 } == true
            }
        }
        try Self.drive(reactor) { raced != nil }
        guard case .committed(let rr) = raced else { Issue.record("the raced commit failed: \(String(describing: raced))"); return }
        #expect(rr[0] == .inUse, "\(rr[0])")
        guard case .committed(let retried) = try Self.commit(store, reactor, CommitBatch(items: [.accept(Self.message("k10"), sending: false)],
                                                                                          statusWrites: [], idempotencyCutoff: 0)) else { Issue.record("retry"); return }
        #expect(retried[0] == .taken(IdempotencyRecord(fingerprint: [9], status: 200, body: Array("{}".utf8), createdAt: 1000)), "\(retried[0])")
        store.close()
    }

    /// PostgreSQL crashes (`-m immediate`) and later freezes (SIGSTOP) under a running server:
    /// every request is answered 200 or 503 (503s while it is down or frozen), /healthz
    /// answers within 100 ms throughout, the server reconnects by itself, and every 200's
    /// message is in the audit.
    @Test func stoppedAndFrozenUnderLoad() throws {
        let pg = try PrivatePostgres()
        let f = try SendFixture(store: try pg.newDatabase())
        var accepted: [String] = []
        var unavailable = 0
        func send(_ n: Int) throws {
            for _ in 0..<n {
                let key = UUID().uuidString
                let r = try f.post(directBody, key: key)
                #expect(r.status == 200 || r.status == 503, "\(r.status) \(r.text)")
                if r.status == 200 { accepted.append(key) } else {
                    unavailable += 1
                    #expect(r.header("Retry-After") == "1")
                }
            }
        }
        func healthzIsFast() throws {
            let start = Date()
            let c = try f.connect()
            try c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try c.readResponse().status == 200)
            #expect(Date().timeIntervalSince(start) < 0.1, "healthz took \(Date().timeIntervalSince(start)) s")
        }
        func ready() throws -> Int {
            let c = try f.connect()
            try c.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            return try c.readResponse().status
        }
        try send(20)
        #expect(accepted.count == 20)

        try pg.crash()
        try send(10)
        #expect(unavailable >= 9, "the database is down: 503 (one request may have been in the commit that broke)")
        try healthzIsFast()
        #expect(try ready() == 503)
        try pg.start()
        try waitUntil("ready again", seconds: 30) { try ready() == 200 }
        try send(20)

        // Frozen: a request waits for the query timeout and gets 503; the loop keeps serving.
        try pg.freeze()
        let waiting = try f.connect()
        try waiting.send(f.request(directBody, token: f.sendToken, key: UUID().uuidString))
        for _ in 0..<5 { try healthzIsFast() }
        pg.thaw()
        let late = try waiting.readResponse()
        #expect(late.status == 200 || late.status == 503)
        try waitUntil("ready after the freeze", seconds: 30) { try ready() == 200 }
        try send(10)

        let stored = Set(try adminStore(f.db).auditEntries(limit: 1000).map(\.idempotencyKey))
        for key in accepted { #expect(stored.contains(key), "a 200 not in the audit: \(key)") }
        #expect(accepted.count >= 50)
    }
}
