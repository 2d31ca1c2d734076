/// `POST /api/send_email` end to end over HTTPS against the real binary and a real SQLite
/// file: every row of SPEC §4's status table in its check order, the seed's two examples,
/// replay / conflict / in-use, fix-and-retry with the same key, a token revoked by the CLI
/// while the server runs, the embedded demo, and kill -9 right after a 200.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A server with its own database, certificate, tokens, mailboxes and a template.
final class SendFixture {
    let dir = makeTempDir()
    let cert: TestCertificate
    lazy var db: String = TestStore.freshLocation(dir: dir)
    var server: ServerProcess!
    var port: UInt16 = 0
    var sendToken = ""
    var auditToken = ""

    /// `relayDSN`: set up only a send-email token and one mailbox "Relay" with that DSN.
    /// `store`: this database instead of a fresh one of `TestStore.current`.
    init(relayDSN: String? = nil, mailFrom: String? = nil, extraArgs: [String] = [], setUp: Bool = true, store: String? = nil) throws {
        cert = try TestCertificate.make()
        if let store { db = store }
        if let relayDSN {
            sendToken = try cli(["token", "create", "--name", "shop", "--ability", "send-email"]).lastLine
            let r = try cli(["mailbox", "add", "--name", "Relay", "--address", "sales@shop.example", "--display-name", "Shop", "--dsn", relayDSN])
            guard r.status == 0 else { throw WaitTimeout(what: "mailbox add: \(r.output)") }
        } else if setUp {
            sendToken = try cli(["token", "create", "--name", "shop", "--ability", "send-email"]).lastLine
            auditToken = try cli(["token", "create", "--name", "auditor", "--ability", "audit-read"]).lastLine
            _ = try cli(["mailbox", "add", "--name", "Sales", "--address", "sales@shop.example", "--display-name", "Shop Sales", "--dsn", "file://outbox"])
            _ = try cli(["mailbox", "add", "--name", "Support", "--address", "support@shop.example", "--dsn", "file://outbox"])
            _ = try cli(["mailbox", "add", "--name", "Old", "--address", "old@shop.example", "--dsn", "file://outbox", "--disabled"])
            try "<p>Invoice {{invoice_number}}: {{amount}} due {{due_date}}</p>".write(toFile: dir + "/inv.html", atomically: true, encoding: .utf8)
            _ = try cli(["template", "add", "--identifier", "invoice_delivery", "--subject", "Invoice {{invoice_number}}", "--html-file", dir + "/inv.html"])
        }
        try start(mailFrom: mailFrom, extraArgs: extraArgs)
    }

    func start(mailFrom: String? = nil, extraArgs: [String] = []) throws {
        var args = ["serve", "--db", db, "--listen", "127.0.0.1:0", "--tls-cert", cert.cert, "--tls-key", cert.key] + extraArgs
        if let mailFrom { args += ["--mail-from-address", mailFrom] }
        server = try ServerProcess(arguments: args, workingDirectory: dir)
        port = try server.waitForPort()
    }

    @discardableResult
    /// On PostgreSQL an admin change reaches the running server as a NOTIFY and a fresh copy of
    /// the directory, an event later; a change made while it runs waits for its "directory
    /// reloaded" line, so the next request is answered as of the change (SQLite's server sees it
    /// on its next loop iteration anyway).
    func cli(_ args: [String]) throws -> (status: Int32, output: String, lastLine: String) {
        let changes = ["create", "revoke", "add", "disable", "enable", "remove", "update"].contains(args[1])
        let awaitReload = changes && !TestStore.isSQLite && server.map { $0.process.isRunning } == true
        var before = 0
        if awaitReload {
            _ = try server.waitForLine(containing: "directory loaded: ")
            before = server.count("directory reloaded: ")
        }
        let (rc, out) = try run([binaryPath()] + [args[0], args[1], "--db", db] + args.dropFirst(2))
        if awaitReload && rc == 0 {
            try server.waitForCount(of: "directory reloaded: ", above: before)
        }
        return (rc, out, out.split(separator: "\n").last.map(String.init) ?? "")
    }

    func connect() throws -> TestClient { try TestClient(port: port, caFile: cert.cert) }

    /// `token`: "default" = the send-email token, nil = no Authorization header.
    func post(_ body: String, token: String? = "default", key: String? = UUID().uuidString, contentType: String? = "application/json",
              on client: TestClient? = nil) throws -> TestResponse {
        let c = try client ?? connect()
        try c.send(request(body, token: token == "default" ? sendToken : token, key: key, contentType: contentType))
        return try c.readResponse()
    }

    func request(_ body: String, token: String?, key: String?, contentType: String? = "application/json") -> String {
        var r = "POST /api/send_email HTTP/1.1\r\nHost: localhost\r\n"
        if let token { r += "Authorization: Bearer \(token)\r\n" }
        if let key { r += "Idempotency-Key: \(key)\r\n" }
        if let contentType { r += "Content-Type: \(contentType)\r\n" }
        return r + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    /// Accepted messages (any status), or those with `status`.
    func auditCount(status: String? = nil) throws -> Int {
        try cli(["audit", "list", "--limit", "10000", "--json"] + (status.map { ["--status", $0] } ?? []))
            .output.split(separator: "\n").filter { $0.hasPrefix("{") }.count
    }

    deinit { server?.signal(SIGKILL) }
}

/// The seed article's two examples, verbatim (Example B with a mailbox name added).
let directBody = """
    {
    "to_address": "marcus@trailblazers-club.example",
    "subject": "Your order SP-2412-0489 has shipped",
    "content": "<p>Hi Marcus,</p><p>Tracking: TRACK-XYZ.</p>"
    }
    """
let templateBody = """
    {
    "to_address": "marcus@trailblazers-club.example",
    "template_identifier": "invoice_delivery",
    "data": {
    "invoice_number": "INV-2026-0488",
    "amount": "£189.00",
    "due_date": "2026-05-15"
    },
    "mailbox": "Sales"
    }
    """

@Suite(.serialized) struct SendEmailTests {
    @Test func seedExamplesAreAcceptedQueuedAndAudited() throws {
        let f = try SendFixture()
        let a = try f.post(directBody)
        #expect(a.status == 200)
        #expect(a.text == #"{"ok":true,"data":{"mailbox":"sales@shop.example","used_template":false}}"#)   // first enabled by creation order
        #expect(a.header("Content-Type") == "application/json")
        let b = try f.post(templateBody)
        #expect(b.text == #"{"ok":true,"data":{"mailbox":"sales@shop.example","used_template":true}}"#)
        #expect(try f.auditCount() == 2)
        let list = try f.cli(["audit", "list"]).output
        #expect(list.hasPrefix("ID\tACCEPTED\tSTATUS\tTO\tSUBJECT\tMAILBOX\tATTEMPTS\n"), "a header row: \(list)")
        #expect(list.contains("marcus@trailblazers-club.example\tInvoice INV-2026-0488\tSales"), "\(list)")
        // Delivered through the file:// transport: the stored bytes, as <id>.eml.
        try waitUntil("both messages sent") { try f.auditCount(status: "sent") == 2 }
        let show = try f.cli(["audit", "show", "2"]).output
        #expect(show.contains("Subject: Invoice INV-2026-0488"))
        #expect(show.contains("From: \"Shop Sales\" <sales@shop.example>"))
        #expect(show.contains("-- HTML part\n<p>Invoice INV-2026-0488: £189.00 due 2026-05-15</p>"), "decoded: \(show)")
        #expect(show.contains("token:           shop"))
        #expect(show.range(of: #"\n  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  sent     "#, options: .regularExpression) != nil, "each attempt: \(show)")
        let raw = try f.cli(["audit", "show", "--raw", "2"]).output
        #expect(raw.contains("Invoice INV-2026-0488: =C2=A3189.00 due 2026-05-15"), "--raw: the exact bytes: \(raw)")   // £ quoted-printable
        let json = try f.cli(["audit", "list", "--json", "--limit", "1"]).output
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(entry["to"] as? String == "marcus@trailblazers-club.example" && entry["attempt_count"] as? Int == 1, "the API's names: \(json)")
        #expect((entry["accepted_at"] as? String)?.contains(".") == true || (entry["accepted_at"] as? String)?.hasSuffix("Z") == true)
        let since = try f.cli(["audit", "list", "--since", "2999-01-01T00:00:00Z"]).output
        #expect(since.contains("no messages"), "\(since)")
        #expect(try f.cli(["audit", "list", "--since", "yesterday"]).status != 0)
        let eml = try String(contentsOfFile: f.dir + "/outbox/2.eml", encoding: .utf8)
        #expect(eml.contains("Subject: Invoice INV-2026-0488\r\n") && show.contains(eml.split(separator: "\r\n").first(where: { $0.hasPrefix("Message-ID:") }).map(String.init) ?? "?"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: f.dir + "/outbox").filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
    }

    /// A process holding `db`'s write lock (BEGIN IMMEDIATE) until it is killed.
    func holdWriteLock(_ db: String) throws -> ServerProcess {
        let locker = try ServerProcess(arguments: ["python3", "-c", """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
            c.execute("BEGIN IMMEDIATE")
            print("LOCKED", file=sys.stderr, flush=True)
            time.sleep(60)
            """, db], executable: "/usr/bin/env")
        _ = try locker.waitForLine(containing: "LOCKED")
        return locker
    }

    /// Another process holds the database's write lock: the loop never waits on it per
    /// request (it did, 250 ms each, one after another: /healthz took seconds). The sends
    /// that meet it wait for the store's patience (2 s), then get 503 with Retry-After; later
    /// ones get 503 at once while the lock stays held; /healthz stays fast throughout; once
    /// the lock is released sends are accepted again.
    @Test(.enabled(if: TestStore.isSQLite, "SQLite's write lock: on PostgreSQL, PostgresStoreTests stop and freeze the server"))
    func anotherProcessHoldingTheWriteLockNeverStallsTheLoop() throws {
        let f = try SendFixture()
        #expect(try f.post(directBody).status == 200)
        let locker = try holdWriteLock(f.db)
        // Twenty sends pipelined on one connection, then /healthz on another, repeatedly.
        let c = try f.connect()
        let start = Date()
        try c.send((0..<20).map { _ in f.request(directBody, token: f.sendToken, key: UUID().uuidString) }.joined())
        var statuses: [Int] = []
        for _ in 0..<20 {
            let r = try c.readResponse()
            statuses.append(r.status)
            if r.status == 503 { #expect(r.header("Retry-After") == "1") }
        }
        let batchSeconds = Date().timeIntervalSince(start)
        #expect(statuses.allSatisfy { $0 == 503 }, "\(statuses)")
        #expect(batchSeconds < 10, "20 refused sends took \(batchSeconds) s: they wait 2 s together, not one after another")
        var slowest = 0.0
        let probe = try f.connect()
        for _ in 0..<10 {
            #expect(try f.post(directBody).status == 503)
            let t = Date()
            try probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try probe.readResponse().status == 200)
            slowest = max(slowest, Date().timeIntervalSince(t))
        }
        #expect(slowest < 0.1, "/healthz took \(slowest) s while the lock was held")
        locker.signal(SIGKILL)   // releases the lock
        _ = try locker.waitForExit()
        var accepted = false
        for _ in 0..<50 where !accepted {   // bounded: the store is retried every 100 ms
            accepted = try f.post(directBody).status == 200
        }
        #expect(accepted)
        #expect(try f.auditCount() == 2, "nothing answered 503 was stored")
    }

    /// A write lock another process holds for a moment (two servers on one file, one
    /// committing) is waited for on a timer, not answered 503 and not slept on: the sends that
    /// meet it are all accepted once it is released, and /healthz is answered meanwhile.
    @Test(.enabled(if: TestStore.isSQLite, "SQLite's write lock"))
    func aWriteLockHeldForAMomentIsWaitedFor() throws {
        let f = try SendFixture(extraArgs: ["--log-level", "debug"])
        #expect(try f.post(directBody).status == 200)
        let locker = try holdWriteLock(f.db)
        let c = try f.connect()
        try c.send((0..<10).map { _ in f.request(directBody, token: f.sendToken, key: UUID().uuidString) }.joined())
        _ = try f.server.waitForLine(containing: "the database is locked by another process")
        let probe = try f.connect()
        try probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try probe.readResponse().status == 200, "the loop answers while the sends wait")
        locker.signal(SIGKILL)   // releases the lock
        _ = try locker.waitForExit()
        let statuses = try (0..<10).map { _ in try c.readResponse().status }
        #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
        #expect(try f.auditCount() == 11)
    }

    /// Two Authorization or two Content-Type headers: 400 (the first silently won before),
    /// answered on the head.
    @Test func headersThatMustBeGivenOnce() throws {
        let f = try SendFixture()
        let base = f.request(directBody, token: f.sendToken, key: UUID().uuidString)
        for (name, value) in [("Authorization", "Bearer \(f.auditToken)"), ("Content-Type", "text/plain"), ("Content-Type", "application/json")] {
            let c = try f.connect()
            try c.send(base.replacingOccurrences(of: "Host: localhost\r\n", with: "Host: localhost\r\n\(name): \(value)\r\n"))
            let r = try c.readResponse()
            #expect(r.status == 400, "\(name)")
            #expect(r.text.contains("The \(name) header must be given once."))
            #expect(try c.readsEOF())
        }
        #expect(try f.auditCount() == 0)
    }

    /// A rendered subject follows the rules of a given one: template data with NUL, ESC or
    /// DEL, or one rendering past 998 bytes, is a 422 naming `data`; a long rendered subject
    /// within the limit is folded to header lines of ≤ 78 columns.
    @Test func renderedSubjectsFollowTheRulesOfGivenOnes() throws {
        let f = try SendFixture()
        for (value, problem) in [("\\u0000", "control characters"), ("\\u001b[31m", "control characters"), ("\\u007f", "control characters"),
                                 (String(repeating: "x", count: 5_000), "at most 998 bytes")] {
            let r = try f.post(templateBody.replacingOccurrences(of: "INV-2026-0488", with: value))
            #expect(r.status == 422)
            #expect(r.text.contains("\"data\":[\"renders a subject that must") && r.text.contains(problem), "\(r.text)")
        }
        #expect(try f.auditCount() == 0)
        let long = Array(repeating: "INV-2026-0488", count: 60).joined(separator: " ")
        #expect(try f.post(templateBody.replacingOccurrences(of: "INV-2026-0488", with: long)).status == 200)
        try waitUntil("the message sent") { try f.auditCount(status: "sent") == 1 }
        let raw = try #require(try f.entry(1)).raw
        let head = raw[..<raw.firstRange(of: [0x0D, 0x0A, 0x0D, 0x0A])!.lowerBound]
        for line in head.split(separator: 0x0A) { #expect(line.count <= 79, "\(line.count)") }   // 78 + CR
    }

    /// The WAL and shared-memory files deleted under the running server: it notices before
    /// the next commit and answers 503 (it answered 200 for messages a later crash lost).
    @Test(.enabled(if: TestStore.isSQLite, "SQLite's own files"))
    func deletingTheWALWhileRunningStopsAccepting() throws {
        let f = try SendFixture()
        #expect(try f.post(directBody).status == 200)
        unlink(f.db + "-wal")
        unlink(f.db + "-shm")
        let r = try f.post(directBody)
        #expect(r.status == 503)
        _ = try f.server.waitForLine(containing: "tickiti.db-wal was deleted while the server has it open")
        for _ in 0..<3 { #expect(try f.post(directBody).status == 503) }
        // Liveness is unaffected.
        let c = try f.connect()
        try c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try c.readResponse().status == 200)
    }

    /// Two databases delivering into one folder both write message 1: neither file is
    /// overwritten (the second becomes 1-1.eml), and each holds its own message.
    @Test func theFileTransportNeverOverwrites() throws {
        let shared = makeTempDir() + "/outbox"
        let a = try SendFixture(relayDSN: "file://\(shared)")
        #expect(try a.post(directBody).status == 200)
        let first = try a.waitFor(1, status: "sent")
        let b = try SendFixture(relayDSN: "file://\(shared)")
        #expect(try b.post(directBody.replacingOccurrences(of: "has shipped", with: "is on its way")).status == 200)
        let second = try b.waitFor(1, status: "sent")
        #expect(first.messageID != second.messageID)
        let one = try Array(Data(contentsOf: URL(fileURLWithPath: shared + "/1.eml")))
        let oneOne = try Array(Data(contentsOf: URL(fileURLWithPath: shared + "/1-1.eml")))
        #expect(one == first.raw, "the first database's message is intact")
        #expect(oneOne == second.raw)
        #expect(second.lastReply?.contains("1-1.eml") == true, "\(second.lastReply ?? "")")
        #expect(try FileManager.default.contentsOfDirectory(atPath: shared).sorted() == ["1-1.eml", "1.eml"])
    }

    @Test func authenticationComesFirst() throws {
        let f = try SendFixture()
        // No token, bad content type, no key, bad JSON: 401 wins.
        let none = try f.post("nope", token: nil, key: nil, contentType: "text/plain")
        #expect(none.status == 401)
        #expect(none.header("WWW-Authenticate") == "Bearer")
        #expect(none.text.contains("\"code\":\"unauthenticated\""))
        for bad in ["garbage", "1|wrongsecret", "999|\(f.sendToken.split(separator: "|")[1])"] {
            #expect(try f.post(directBody, token: bad).status == 401)
        }
        // A token without send-email: 403, before the media type is looked at.
        let forbidden = try f.post("x", token: f.auditToken, contentType: "text/plain")
        #expect(forbidden.status == 403)
        #expect(forbidden.text.contains("\"code\":\"forbidden\""))
        // Then Content-Type (before the key), then the key (before the JSON).
        #expect(try f.post("x", key: nil, contentType: "text/plain").status == 415)
        #expect(try f.post("x", key: nil, contentType: nil).status == 415)
        let noKey = try f.post("not json", key: nil)
        #expect(noKey.status == 422 && noKey.text.contains("Idempotency-Key"))
        let badJSON = try f.post("not json")
        #expect(badJSON.status == 422 && badJSON.text.contains("\"body\""))
        #expect(try f.post("[1,2]").status == 422)
        #expect(try f.post(directBody, contentType: "application/json; charset=utf-8").status == 200)
        #expect(try f.auditCount() == 1)
    }

    @Test(arguments: [
        (#"{"subject":"s","content":"c"}"#, "to_address"),
        (#"{"to_address":"a@b.example","subject":"s","content":"c","template_identifier":"invoice_delivery","data":{}}"#, "template_identifier"),
        (#"{"to_address":"a@b.example","subject":"s"}"#, "content"),
        (#"{"to_address":"a@b.example","template_identifier":"nope","data":{}}"#, "template_identifier"),
        (#"{"to_address":"a@b.example","template_identifier":"invoice_delivery","data":{"amount":"1"}}"#, "invoice_number"),
        (#"{"to_address":"a@b.example","subject":"s","content":"c","mailbox":"Nope"}"#, "mailbox"),
        (#"{"to_address":"a@b.example","subject":"s","content":"c","mailbox":"Old"}"#, "disabled"),
        (#"{"to_address":"a@b.example\r\nBcc: x@evil.example","subject":"s","content":"c"}"#, "to_address"),
        (#"{"to_address":"a@b.example","subject":"Hi\r\nBcc: x@evil.example","content":"c"}"#, "subject"),
        (#"{"to_address":"a@localhost","subject":"s","content":"c","validate_address":true}"#, "to_address"),
        (#"{"to_address":"a@b.example","subject":1,"content":"c"}"#, "subject"),
    ])
    func validationFailuresAre422AndStoreNothing(body: String, mention: String) throws {
        let f = try SendFixture()
        let r = try f.post(body)
        #expect(r.status == 422, "\(r.text)")
        #expect(r.text.contains("\"code\":\"validation_failed\""))
        #expect(r.text.contains("\"fields\":{"))
        #expect(r.text.contains(mention), "\(r.text)")
        #expect(try f.auditCount() == 0)
    }

    @Test func missingPlaceholdersAreNamed() throws {
        let f = try SendFixture()
        let r = try f.post(#"{"to_address":"a@b.example","template_identifier":"invoice_delivery","data":{"amount":"5"}}"#)
        #expect(r.status == 422)
        #expect(r.text.contains(#""data":["is missing the placeholder \"invoice_number\"","is missing the placeholder \"due_date\""]"#), "\(r.text)")
    }

    @Test func replayConflictAndFixAndRetry() throws {
        let f = try SendFixture()
        let key = "key-\(UUID().uuidString)"
        // Fails validation first: nothing stored, the same key may be used again.
        #expect(try f.post(#"{"to_address":"x@y.example","subject":"s"}"#, key: key).status == 422)
        let first = try f.post(directBody, key: key)
        #expect(first.status == 200)
        #expect(first.header("Idempotent-Replayed") == nil)
        // Same key, same payload in another key order and spacing: the stored answer again.
        let reordered = #"{"content":"<p>Hi Marcus,</p><p>Tracking: TRACK-XYZ.</p>","subject":"Your order SP-2412-0489 has shipped","to_address":"marcus@trailblazers-club.example"}"#
        let replay = try f.post(reordered, key: key)
        #expect(replay.status == 200)
        #expect(replay.body == first.body)
        #expect(replay.header("Idempotent-Replayed") == "true")
        // Same key, different payload: conflict.
        let conflict = try f.post(#"{"to_address":"other@example.com","subject":"s","content":"c"}"#, key: key)
        #expect(conflict.status == 409)
        #expect(conflict.text.contains("idempotency_key_conflict"))
        // Keys are per token.
        let other = try f.cli(["token", "create", "--name", "other", "--ability", "*"]).lastLine
        #expect(try f.post(directBody, token: other, key: key).header("Idempotent-Replayed") == nil)
        #expect(try f.auditCount() == 2)
    }

    @Test func twoRequestsWithOneKeyInOneLoopTurnQueueExactlyOneMessage() throws {
        let f = try SendFixture()
        let key = UUID().uuidString
        // Pipelined in one write: both are handled in the same loop iteration, before the commit.
        let c = try f.connect()
        try c.send(f.request(directBody, token: f.sendToken, key: key) + f.request(directBody, token: f.sendToken, key: key))
        let r1 = try c.readResponse()
        let r2 = try c.readResponse()
        #expect(r1.status == 200)
        #expect(r2.status == 409)
        #expect(r2.text.contains("idempotency_key_in_use"))
        // Two connections, sent back to back: one 200, the other in-use or a replay.
        let key2 = UUID().uuidString
        let a = try f.connect(), b = try f.connect()
        try a.send(f.request(directBody, token: f.sendToken, key: key2))
        try b.send(f.request(directBody, token: f.sendToken, key: key2))
        let ra = try a.readResponse(), rb = try b.readResponse()
        let fresh = [ra, rb].filter { $0.status == 200 && $0.header("Idempotent-Replayed") == nil }
        #expect(fresh.count == 1)
        for r in [ra, rb] where !(r.status == 200 && r.header("Idempotent-Replayed") == nil) {
            #expect((r.status == 409 && r.text.contains("in_use")) || r.header("Idempotent-Replayed") == "true")
        }
        #expect(try f.auditCount() == 2)
    }

    @Test func mailboxChoiceFollowsTheSpec() throws {
        let f = try SendFixture(mailFrom: "SUPPORT@shop.example")
        #expect(try f.post(directBody).text.contains("support@shop.example"))   // the mail-from address, case-insensitive
        #expect(try f.post(#"{"to_address":"a@b.example","subject":"s","content":"c","mailbox":"Sales"}"#).text.contains("sales@shop.example"))
        _ = try f.cli(["mailbox", "disable", "Sales"])
        _ = try f.cli(["mailbox", "disable", "Support"])
        let none = try f.post(directBody)
        #expect(none.status == 422 && none.text.contains("no enabled mailbox"))
    }

    @Test func aTokenRevokedWhileTheServerRunsStopsAtOnce() throws {
        let f = try SendFixture()
        let c = try f.connect()
        #expect(try f.post(directBody, on: c).status == 200)
        #expect(try f.cli(["token", "revoke", "shop"]).status == 0)
        #expect(try f.post(directBody, on: c).status == 401)
    }

    /// `token list` shows each token's last use, written with a group commit at most once a
    /// minute per token: later requests within the minute leave it as it was.
    @Test func tokenListShowsTheLastUse() throws {
        let f = try SendFixture()
        func lastUse(_ name: String) throws -> Int64? { try adminStore(f.db).tokens().first { $0.name == name }?.lastUsedAt }
        #expect(try lastUse("shop") == nil)
        #expect(try f.cli(["token", "list"]).output.contains("never used"))
        #expect(try f.post(directBody).status == 200)
        let first = try #require(try lastUse("shop"))
        #expect(abs(first - Int64(Date().timeIntervalSince1970 * 1000)) < 60_000)
        for _ in 0..<5 { #expect(try f.post(directBody).status == 200) }
        #expect(try lastUse("shop") == first, "not a write per request")
        #expect(try lastUse("auditor") == nil)
        let listed = try f.cli(["token", "list"]).output.split(separator: "\n")
        #expect(listed.first { $0.contains("\tshop\t") }?.contains("last used ") == true, "\(listed)")
        #expect(listed.first { $0.contains("\tauditor\t") }?.contains("never used") == true, "\(listed)")
    }

    @Test func anAcceptedMessageSurvivesKill9() throws {
        let f = try SendFixture()
        let r = try f.post(templateBody)
        #expect(r.status == 200)
        f.server.signal(SIGKILL)
        _ = try? f.server.waitForExit()
        #expect(try f.auditCount() == 1)
        try f.start()
        // The same key after the restart is a replay, not a second message.
        #expect(try f.auditCount() == 1)
    }

    @Test func embeddedDemoWorksAsPrinted() throws {
        let f = try SendFixture(setUp: false)
        let tokenLine = try f.server.waitForLine(containing: "demo token (shown once): ")
        let token = String(tokenLine.split(separator: " ").last!)
        let curlLine = try f.server.waitForLine(containing: "curl ")
        #expect(curlLine.contains("--cacert \(f.cert.cert)"))
        let (rc, out) = try run(["sh", "-c", curlLine + " -sS"])
        #expect(rc == 0, "\(out)")
        #expect(out == #"{"ok":true,"data":{"mailbox":"billing@tickiti.localhost","used_template":true}}"#, "\(out)")
        #expect(token.contains("|"))
        #expect(try f.auditCount() == 1)
        // The banner points at the audit page, which answers.
        let auditLine = try f.server.waitForLine(containing: "the sent-mail audit page: ")
        #expect(auditLine.contains("https://127.0.0.1:\(f.port)/audit "))
        // The commands it prints work as printed, from the directory the server runs in.
        let listLine = try f.server.waitForLine(containing: " audit list shows it")
        let listCommand = try #require(listLine.range(of: "(").map { listLine[$0.upperBound...] }?.components(separatedBy: " shows it").first)
        let (lrc, listed) = try run(["sh", "-c", "cd '\(f.dir)' && \(listCommand) --db '\(f.db)'"])
        #expect(lrc == 0 && listed.contains("\tbilling@") == false && listed.contains("customer@example.com"), "\(listCommand): \(listed)")
        let createCommand = try #require(auditLine.range(of: "make a token for it: ").map { String(auditLine[$0.upperBound...].dropLast()) })
        let (crc, created) = try run(["sh", "-c", "cd '\(f.dir)' && \(createCommand) --db '\(f.db)'"])
        #expect(crc == 0 && created.contains("|"), "\(createCommand): \(created)")
        let (arc, page) = try run(["curl", "-sS", "--cacert", f.cert.cert, "https://127.0.0.1:\(f.port)/audit"])
        #expect(arc == 0 && page.contains("<title>Sent mail audit"), "\(page)")
        try waitUntil("the demo message written to data/outbox") { FileManager.default.fileExists(atPath: f.dir + "/data/outbox/1.eml") }
        // A second start on the same database creates nothing new.
        f.server.signal(SIGTERM)
        _ = try f.server.waitForExit()
        try f.start()
        #expect(!f.server.stderrLines.contains { $0.contains("demo token") })
    }
}

@Suite struct FirstStartTests {
    /// A browser at `/` lands on the audit page; an API client still gets the JSON 404;
    /// `/audit/` is the page too and the favicon probe is quiet.
    @Test func theRootSendsBrowsersToTheAudit() throws {
        let f = try SendFixture()
        func get(_ path: String, accept: String?) throws -> TestResponse {
            let c = try f.connect()
            try c.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n" + (accept.map { "Accept: \($0)\r\n" } ?? "") + "\r\n")
            return try c.readResponse()
        }
        let browser = try get("/", accept: "text/html,application/xhtml+xml,*/*;q=0.8")
        #expect(browser.status == 303 && browser.header("Location") == "/audit")
        let api = try get("/", accept: "application/json")
        #expect(api.status == 404 && api.text.contains("not_found"))
        #expect(try get("/", accept: nil).status == 404)
        let page = try get("/audit/", accept: "text/html")
        #expect(page.status == 200 && page.text.contains("<title>Sent mail audit") && page.text.contains("rel=\"icon\""))
        #expect(try get("/favicon.ico", accept: nil).status == 204)
    }

    /// A first start that cannot bind its port makes no demo, so the next start still shows
    /// the demo token (it used to be made, never shown, and never made again).
    @Test func aStartThatCannotBindLeavesTheDemoForTheNextStart() throws {
        let dir = makeTempDir()
        let (fd, port) = boundLoopbackSocket(SOCK_STREAM)
        defer { close(fd) }
        #expect(listen(fd, 1) == 0)
        let (rc, out) = try run([binaryPath(), "serve", "--db", dir + "/d.db", "--listen", "127.0.0.1:\(port)", "--plain-http"])
        #expect(rc != 0 && out.contains("cannot listen"), "\(out)")
        #expect(!out.contains("demo token"))
        let p = try ServerProcess(arguments: ["serve", "--db", dir + "/d.db", "--listen", "127.0.0.1:0", "--plain-http"], workingDirectory: dir)
        defer { p.signal(SIGKILL) }   // its stderr reader holds it alive until the pipe closes
        _ = try p.waitForLine(containing: "demo token (shown once): ")
    }

    /// The demo token goes to stdout (what a newcomer copies, or a script captures), every log
    /// line to stderr.
    @Test func theDemoTokenIsOnStdoutAndTheLogsOnStderr() throws {
        let dir = makeTempDir()
        let out = dir + "/stdout", err = dir + "/stderr"
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryPath())
        p.arguments = ["serve", "--db", dir + "/d.db", "--listen", "127.0.0.1:0", "--plain-http"]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        try waitUntil("the demo banner on stdout") { text(out).contains("demo token (shown once): ") }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(!text(err).contains("demo token (shown once)") && text(err).contains("listening on") && text(err).contains("notice"), "\(text(err))")
        #expect(!text(out).contains(" notice ") && !text(out).contains("listening on"), "\(text(out))")
    }

    /// Plain HTTP sent to the HTTPS port is answered in plain HTTP, saying so (as nginx does),
    /// not with a TLS alert the client cannot read; the port still serves TLS after it.
    @Test func plainHTTPOnTheTLSPortIsToldSo() throws {
        let f = try SendFixture()
        let plain = try TestClient(port: f.port, caFile: nil)
        try plain.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let r = try plain.readResponse()
        #expect(r.status == 400 && r.text.contains("sent as plain HTTP") && r.header("Connection") == "close", "\(r.status) \(r.text)")
        let c = try f.connect()
        try c.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(try c.readResponse().status == 200)
    }

    /// `--mail-from-address` naming no enabled mailbox is said once at start.
    @Test func aMailFromAddressOfNoMailboxIsWarnedAbout() throws {
        let f = try SendFixture(mailFrom: "nobody@nowhere.example")
        let line = try f.server.waitForLine(containing: "--mail-from-address nobody@nowhere.example is the address of no enabled mailbox")
        #expect(line.contains("Sales"), "names the mailbox used instead: \(line)")
        let g = try SendFixture(mailFrom: "support@shop.example")
        #expect(try g.post(directBody).status == 200)
        #expect(g.server.count("is the address of no enabled mailbox") == 0)
    }
}
