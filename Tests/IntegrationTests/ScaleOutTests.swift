/// Scale-out (SPEC §7): several real `tickiti-mail serve` processes on one PostgreSQL database
/// (a private server this suite starts) keep every promise as if they were one — one message
/// per idempotency key however the requests are spread, every message delivered when one
/// process is killed mid-load (only a transaction past its final `.` may arrive twice, with the
/// same Message-ID), admin changes seen by all of them within a second, and all of them
/// recovering from a database restart.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Store
import Testing

extension SendFixture {
    /// Another server process on this fixture's database and working directory.
    func another(_ extraArgs: [String] = []) throws -> (ServerProcess, UInt16) {
        let p = try ServerProcess(arguments: ["serve", "--db", db, "--listen", "127.0.0.1:0", "--tls-cert", cert.cert, "--tls-key", cert.key]
                                    + extraArgs, workingDirectory: dir)
        return (p, try p.waitForPort())
    }

    func post(_ body: String, port: UInt16, key: String = UUID().uuidString) throws -> TestResponse {
        let c = try TestClient(port: port, caFile: cert.cert)
        try c.send(request(body, token: sendToken, key: key))
        return try c.readResponse()
    }

    func ready(port: UInt16) -> Bool {
        guard let c = try? TestClient(port: port, caFile: cert.cert) else { return false }
        guard (try? c.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")) != nil else { return false }
        return (try? c.readResponse().status) == 200
    }
}

let otherBody = """
    {"to_address": "marcus@trailblazers-club.example", "subject": "Another subject", "content": "<p>Other</p>"}
    """

@Suite(.serialized) struct ScaleOutTests {
    /// 400 requests in flight at once over two processes: 50 keys, each sent 8 times (4 to
    /// each process). With one body per key: exactly one message per key, every other answer a
    /// replay or `409 idempotency_key_in_use`. With two bodies per key: conflicts, never a
    /// second message.
    @Test func fiftyKeysEightTimesEachOverTwoProcesses() throws {
        let pg = try PrivatePostgres()
        let f = try SendFixture(store: try pg.newDatabase())
        let (second, port2) = try f.another()
        defer { second.signal(SIGKILL) }
        try Self.fiftyKeysEightTimes(f, ports: [f.port, port2])
    }

    /// The same with one `serve --workers 2` (both workers listening on the one port).
    @Test func fiftyKeysEightTimesEachOverTwoWorkers() throws {
        let pg = try PrivatePostgres()
        let f = try SendFixture(extraArgs: ["--workers", "2"], store: try pg.newDatabase())
        try waitUntil("both workers listening", seconds: 30) { f.server.count("listening on ") == 2 }
        try Self.fiftyKeysEightTimes(f, ports: [f.port, f.port])
    }

    static func fiftyKeysEightTimes(_ f: SendFixture, ports: [UInt16]) throws {
        let port2 = ports[1]
        var inUse = 0
        for twoBodies in [false, true] {
            let keys = (0..<50).map { _ in UUID().uuidString }
            var requests: [(client: TestClient, key: String, body: Int)] = []
            for i in 0..<400 {
                let c = try TestClient(port: i % 2 == 0 ? f.port : port2, caFile: f.cert.cert)
                requests.append((c, keys[i % 50], twoBodies ? (i / 50) % 2 : 0))
            }
            // Every request is written before any answer is read: all 400 are in flight.
            for r in requests { try r.client.send(f.request(r.body == 0 ? directBody : otherBody, token: f.sendToken, key: r.key)) }
            var firsts: [String: Int] = [:]
            var firstBody: [String: Int] = [:]
            var answers: [(key: String, body: Int, response: TestResponse)] = []
            for r in requests {
                let response = try r.client.readResponse()
                answers.append((r.key, r.body, response))
                if response.status == 200 && response.header("Idempotent-Replayed") == nil {
                    firsts[r.key, default: 0] += 1
                    firstBody[r.key] = r.body
                }
            }
            for key in keys { #expect(firsts[key] == 1, "key \(key) accepted \(firsts[key] ?? 0) times") }
            for a in answers {
                switch a.response.status {
                case 200:
                    if a.response.header("Idempotent-Replayed") != nil {
                        #expect(a.body == firstBody[a.key], "a replay answers only the same body")
                    }
                case 409:
                    let code = a.response.text.contains("idempotency_key_in_use") ? "in_use"
                        : a.response.text.contains("idempotency_key_conflict") ? "conflict" : "other"
                    if code == "in_use" { inUse += 1 }
                    #expect(code == "in_use" || (twoBodies && code == "conflict" && a.body != firstBody[a.key]), "\(a.response.text)")
                default:
                    Issue.record("unexpected \(a.response.status): \(a.response.text)")
                }
            }
            let stored = try adminStore(f.db).auditEntries(limit: 10_000).filter { keys.contains($0.idempotencyKey) }
            #expect(stored.count == 50, "one message per key")
            #expect(Set(stored.map(\.idempotencyKey)).count == 50)
        }
        // Not asserted (it depends on timing), but worth seeing in the log.
        print("ScaleOutTests: \(inUse) answers were 409 idempotency_key_in_use")
    }

    /// 5 000 messages over two processes to a real relay; one process is killed (SIGKILL) in
    /// the middle. The other takes over the messages the dead one held once their leases run
    /// out (`--lease-seconds 3`; it says so in its log): every accepted message reaches the relay, and a message
    /// arrives twice only if the dead process was past its final `.` (same Message-ID).
    @Test func aKilledProcessesMessagesAreDeliveredByTheOther() throws {
        let pg = try PrivatePostgres()
        let relay = try TestRelay()
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off", extraArgs: ["--lease-seconds", "3"],
                                store: try pg.newDatabase())
        let (b, portB) = try f.another(["--lease-seconds", "3"])
        defer { b.signal(SIGKILL) }
        var clientsA = try (0..<8).map { _ in try TestClient(port: f.port, caFile: f.cert.cert) }
        let clientsB = try (0..<8).map { _ in try TestClient(port: portB, caFile: f.cert.cert) }
        var accepted = 0
        var sent = 0
        var aAlive = true
        while sent < 5000 {
            if aAlive && sent >= 2500 {
                f.server.signal(SIGKILL)
                _ = try? f.server.waitForExit()
                aAlive = false
                clientsA = []
            }
            let round = clientsA + clientsB
            for c in round { try c.send(f.request(directBody, token: f.sendToken, key: UUID().uuidString)) }
            for c in round {
                let r = try c.readResponse()
                #expect(r.status == 200, "\(r.status) \(r.text)")
                if r.status == 200 { accepted += 1 }
            }
            sent += round.count
        }
        #expect(accepted == sent)
        _ = try b.waitForLine(containing: "queued again: the process sending them stopped renewing its lease", timeoutSeconds: 30)
        let admin = try adminStore(f.db)
        try waitUntil("every message sent", seconds: 120) { try admin.statusCounts() == ["sent": accepted] }
        let stored = try admin.auditEntries(limit: 10_000)
        #expect(stored.count == accepted)
        var received: [String: Int] = [:]
        for m in relay.messages {
            guard let data = m["data"] as? String,
                  let line = data.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("Message-ID: ") }) else {
                Issue.record("a relayed message without a Message-ID")
                continue
            }
            received[String(line.dropFirst("Message-ID: ".count)), default: 0] += 1
        }
        #expect(Set(received.keys) == Set(stored.map(\.messageID)), "every accepted message arrived, nothing else did")
        let duplicates = received.values.reduce(0) { $0 + $1 - 1 }
        // At most the transactions the dead process had past their final dot: one per session
        // (the mailbox's 4 sessions, each pipelining at most one more message behind it).
        #expect(duplicates <= 8, "\(duplicates) duplicate deliveries")
        print("ScaleOutTests: \(accepted) accepted, \(duplicates) delivered twice after the kill")
    }

    /// A mailbox with `max_connections=3` and four processes under load, through a relay that
    /// counts its concurrent sessions and refuses a fourth with `432 4.3.2` (Microsoft 365's
    /// reply): it never sees more than 3, and every message is delivered.
    @Test func maxConnectionsHoldsForTheMailboxAcrossFourProcesses() throws {
        let pg = try PrivatePostgres()
        let relay = try TestRelay(["--max-sessions", "3", "--eod-delay", "0.02"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off&max_connections=3", store: try pg.newDatabase())
        var others: [ServerProcess] = []
        defer { for p in others { p.signal(SIGKILL) } }
        var ports = [f.port]
        for _ in 0..<3 {
            let (p, port) = try f.another()
            others.append(p)
            ports.append(port)
        }
        let clients = try ports.flatMap { port in try (0..<4).map { _ in try TestClient(port: port, caFile: f.cert.cert) } }
        var accepted = 0
        for _ in 0..<25 {
            for c in clients { try c.send(f.request(directBody, token: f.sendToken, key: UUID().uuidString)) }
            for c in clients where try c.readResponse().status == 200 { accepted += 1 }
        }
        #expect(accepted == 400)
        let admin = try adminStore(f.db)
        try waitUntil("every message sent", seconds: 120) { try admin.statusCounts() == ["sent": accepted] }
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: relay.dir + "/out/sessions.state"))) as? [String: Int]
        #expect(state?["refused"] == 0, "\(state ?? [:])")
        #expect((state?["max"] ?? 99) <= 3, "\(state ?? [:])")
        print("ScaleOutTests: the relay saw at most \(state?["max"] ?? -1) concurrent sessions from four processes")
    }

    /// `serve --workers 2`: a worker killed is restarted (the port keeps serving), SIGHUP
    /// reaches every worker, SIGTERM stops them all and the parent exits 0.
    @Test func workersAreRestartedSignalledAndStoppedTogether() throws {
        let pg = try PrivatePostgres()
        let f = try SendFixture(extraArgs: ["--workers", "2"], store: try pg.newDatabase())
        try waitUntil("both workers listening", seconds: 30) { f.server.count("listening on ") == 2 }
        func workerPIDs() throws -> [pid_t] {
            try run(["pgrep", "-P", "\(f.server.pid)"]).1.split(separator: "\n").compactMap { pid_t($0) }
        }
        let before = try workerPIDs()
        #expect(before.count == 2)
        kill(before[0], SIGKILL)
        _ = try f.server.waitForLine(containing: "was killed by signal 9")
        try waitUntil("the worker restarted", seconds: 30) { f.server.count("listening on ") == 3 }
        let after = try workerPIDs()
        #expect(after.count == 2 && !after.contains(before[0]) && after.contains(before[1]))
        for _ in 0..<4 { #expect(try f.post(directBody).status == 200) }

        f.server.signal(SIGHUP)
        try waitUntil("every worker reloaded its certificate", seconds: 10) { f.server.count("SIGHUP: reloaded certificate") == 2 }

        f.server.signal(SIGTERM)
        #expect(try f.server.waitForExit() == 0)
        #expect(try workerPIDs().isEmpty)
        for p in after { #expect(kill(p, 0) != 0, "worker \(p) outlived its parent") }
    }

    /// SQLite is one process's file: `--workers 2` is refused with one clear line.
    @Test func workersOnSQLiteAreRefused() throws {
        let dir = makeTempDir()
        let (rc, out) = try run([binaryPath(), "serve", "--workers", "2", "--db", dir + "/x.db", "--listen", "127.0.0.1:0", "--plain-http"])
        #expect(rc == 64, "a usage error: EX_USAGE")
        #expect(out.contains("--workers 2 needs a PostgreSQL store"), "\(out)")
        #expect(out.split(separator: "\n").count == 1, "\(out)")
    }

    /// Three processes: a token revoked by the CLI is refused by every one of them within a
    /// second; then PostgreSQL restarts under them and all three recover by themselves, losing
    /// nothing they accepted.
    @Test func threeProcessesSeeAdminChangesAndSurviveARestart() throws {
        let pg = try PrivatePostgres()
        let f = try SendFixture(store: try pg.newDatabase())
        let (p2, port2) = try f.another()
        let (p3, port3) = try f.another()
        defer { p2.signal(SIGKILL); p3.signal(SIGKILL) }
        let ports = [f.port, port2, port3]
        var keys: [String] = []
        for port in ports {
            let key = UUID().uuidString
            #expect(try f.post(directBody, port: port, key: key).status == 200)
            keys.append(key)
        }

        try pg.crash()
        try pg.start()
        for port in ports { try waitUntil("process on \(port) ready again", seconds: 30) { f.ready(port: port) } }
        for port in ports {
            let key = UUID().uuidString
            #expect(try f.post(directBody, port: port, key: key).status == 200)
            keys.append(key)
        }
        let stored = Set(try adminStore(f.db).auditEntries(limit: 100).map(\.idempotencyKey))
        for key in keys { #expect(stored.contains(key), "accepted and lost: \(key)") }

        #expect(try f.cli(["token", "revoke", "shop"]).status == 0)
        let revoked = Date()
        for port in ports {
            try waitUntil("process on \(port) refuses the revoked token", seconds: 1) { try f.post(directBody, port: port).status == 401 }
        }
        #expect(Date().timeIntervalSince(revoked) < 1.5)
    }
}
