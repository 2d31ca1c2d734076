/// `GET /audit`: the page's files and their security headers, the API the page leans on
/// (search by subject or recipient substring, the capped count, the From display name), and
/// the page itself driven in a real browser (Debian's chromium through chromedriver and
/// selenium, started by Tests/Scripts/browser_audit.py): token prompt, list and count, times
/// in UTC and local time, deferred and failed rows with their replies, searches, a URL per
/// message with back and forward, Download .eml, blocked images, hostile HTML that runs
/// nothing, a wrong and a revoked token. Screenshots land in .build/test-artifacts/.
///
/// `searchAtScale` (off unless `TICKITI_AUDIT_SCALE_ROWS` is set, e.g. to 1000000) fills a
/// SQLite database through the store's own insert code and measures the audit's requests on it.
import Foundation
import Testing
import Store

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Screenshots and downloads of the browser tests.
let auditArtifacts = repositoryRoot + "/.build/test-artifacts"

@Suite(.serialized) struct AuditPageTests {
    @Test func thePageAndItsFilesCarryTheSecurityHeaders() throws {
        let f = try SendFixture()
        for (path, type) in [("/audit", "text/html"), ("/audit/audit.js", "text/javascript"), ("/audit/audit.css", "text/css")] {
            let r = try f.get(path, token: nil)
            #expect(r.status == 200, "\(path)")
            #expect(r.header("Content-Type")?.hasPrefix(type) == true)
            #expect(r.header("X-Content-Type-Options") == "nosniff")
            #expect(r.header("X-Frame-Options") == "DENY")
            let csp = try #require(r.header("Content-Security-Policy"))
            #expect(csp.contains("script-src 'self';") && !csp.contains("unsafe-eval") && csp.contains("frame-ancestors 'none'"))
            #expect(!csp.components(separatedBy: "script-src")[1].components(separatedBy: ";")[0].contains("unsafe-inline"))
        }
        let html = try f.get("/audit", token: nil).text
        #expect(!html.contains("<script>") && html.contains("<script src=\"/audit/audit.js\" defer></script>"), "no inline script")
        #expect(!html.contains("http://") && !html.contains("https://"), "nothing from another origin")
        let js = try f.get("/audit/audit.js", token: nil).text
        #expect(!js.contains("innerHTML") && !js.contains("outerHTML") && !js.contains("insertAdjacentHTML") && !js.contains("document.write"))
        #expect(!js.contains("eval(") && !js.contains("new Function"))
        #expect(!js.contains("setAttribute(\"on") && !js.contains("setAttribute('on"), "no inline handler attribute: the policy refuses them")
        #expect(!js.contains("URLSearchParams"), "it writes a space as '+', which the API reads as a plus sign")
    }

    /// `q` (subject or recipient substring, any case, alone or with the other filters, paged),
    /// `count=true`, bad values named, and the detail's From as the header has it.
    @Test func searchCountAndFromOverTheAPI() throws {
        let f = try SendFixture()
        try f.send(to: "alice@example.org", subject: "Order 1 confirmed")
        try f.send(to: "Bob@Example.org", subject: "Invoice 1")
        try f.send(to: "bob@example.org", subject: "Invoice 2")
        try f.send(to: "carol@example.net", subject: "Ärger im Büro")
        try f.send(to: "dave@invoices.example", subject: "Hello")
        try f.waitFor(5, status: "sent")
        func page(_ q: String) throws -> (ids: [Int], body: [String: Any]) {
            let body = try f.audit("/api/audit?" + q)
            return (try #require(body["data"] as? [[String: Any]]).map { $0["id"] as! Int }, body)
        }
        #expect(try page("q=invoice").ids == [5, 3, 2], "subject or recipient, any case")
        #expect(try page("q=INVOICE%20").ids == [3, 2], "the text as typed, its space included")
        #expect(try page("q=bob%40").ids == [3, 2])
        #expect(try page("q=%40example.NET").ids == [4])
        #expect(try page("q=%C3%A4RGER").ids == [4], "beyond ASCII: äRGER finds Ärger")
        #expect(try page("q=order&to=alice%40example.org").ids == [1])
        #expect(try page("q=invoice&status=failed").ids.isEmpty)
        #expect(try page("q=invoice&since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z").ids.isEmpty)
        let none = try page("q=nothing%20like%20this")
        #expect(none.ids.isEmpty && none.body["next"] is NSNull)
        let search = try #require(none.body["search"] as? [String: Any])
        #expect(search["examined"] as? Int == 5 && search["partial"] as? Bool == false && search["budget"] as? Int == 10_000)
        #expect(try page("").body["search"] == nil && page("").body["total"] == nil, "neither block unless asked")

        // Paged: each page's next follows on from its last match.
        let first = try page("q=invoice&limit=2")
        #expect(first.ids == [5, 3])
        let cursor = try #require(first.body["next"] as? String)
        let second = try page("q=invoice&limit=2&cursor=\(cursor)")
        #expect(second.ids == [2] && second.body["next"] is NSNull)

        // The count: exact here (far below the cap), with and without a search.
        let counted = try #require(try page("count=true").body["total"] as? [String: Any])
        #expect(counted["count"] as? Int == 5 && counted["exact"] as? Bool == true)
        let two = try page("count=true&limit=2")
        #expect(two.ids == [5, 4] && two.body["next"] is String)
        #expect((two.body["total"] as? [String: Any])?["count"] as? Int == 5, "the count is of every match, not of the page")
        let q = try #require(try page("q=invoice&count=true").body["total"] as? [String: Any])
        #expect(q["count"] as? Int == 3 && q["exact"] as? Bool == true)

        for (bad, field) in [("q=", "q"), ("q=%0A", "q"), ("q=\(String(repeating: "x", count: 201))", "q"), ("count=1", "count"), ("q=a&q=b", "q")] {
            let r = try f.get("/api/audit?" + bad, token: f.auditToken)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
            let fields = (json["error"] as? [String: Any])?["fields"] as? [String: Any]
            #expect(r.status == 422 && fields?[field] != nil, "\(bad): \(r.text)")
        }

        // The From display name as in the header (mailbox Sales: "Shop Sales"; Support has none).
        let detail = try #require(try f.audit("/api/audit/1")["data"] as? [String: Any])
        let from = try #require(detail["from"] as? [String: Any])
        #expect(from["name"] as? String == "Shop Sales" && from["address"] as? String == "sales@shop.example" && detail["mailbox"] as? String == "Sales")
        let r = try f.post(#"{"to_address":"x@example.org","subject":"s","content":"<p>x</p>","mailbox":"Support"}"#)
        #expect(r.status == 200)
        let plain = try #require(try f.audit("/api/audit/6")["data"] as? [String: Any])
        #expect((plain["from"] as? [String: Any])?["name"] is NSNull && (plain["from"] as? [String: Any])?["address"] as? String == "support@shop.example")
    }

    @Test func inARealBrowser() throws {
        let f = try SendFixture()
        let relay = try TestRelay(["--rcpt", "frank@example.org=550 5.1.1 No such user here",
                                   "--rcpt", "erin@example.org=451 4.3.0 Mailbox busy, try again later"])
        _ = try f.cli(["mailbox", "add", "--name", "Relay", "--address", "relay@shop.example", "--display-name", "Shop Relay",
                       "--dsn", "smtp://127.0.0.1:\(relay.port)?starttls=off"])
        let evilSubject = #"<img src=x onerror="document.body.dataset.pwned=1">Weekly deals"#
        let evilHTML = """
            <h1 id="m">Evil newsletter</h1>
            <script>document.getElementById('m').textContent = 'SCRIPT RAN'; try { parent.document.body.dataset.pwned = '1'; parent.__pwned = 1 } catch (e) {}</script>
            <img src="x" onerror="document.body.append('HANDLER RAN'); parent.__pwned = 2">
            <p><a id="js" href="javascript:document.body.append('LINK RAN'); parent.__pwned = 3">Claim your prize</a></p>
            <form action="javascript:parent.__pwned = 4"><button>Go</button></form>
            """
        // Remote, cid: and data: images, a tracking pixel and a <picture> with a remote source.
        let dot = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAMklEQVR42mNQ9q4iCTEMWg3/iQDYNWAaiVMDphwyF7sGTOchC+LUgBUNiAbSgnVIpyUA4d1QKna+5tgAAAAASUVORK5CYII="
        let imagesHTML = """
            <html lang="en"><body style="font-family:sans-serif">
            <p><img src="https://images.example.net/logo.png" alt="Shop logo" width="120" height="40"></p>
            <h2>Spring collection</h2>
            <img src="http://tracker.example/open.gif" width="1" height="1" alt="">
            <p><img src="cid:banner@shop.example" alt="Banner"></p>
            <picture><source srcset="https://images.example.net/hero.webp"><img src="https://images.example.net/hero.jpg" alt="Hero"></picture>
            <p>Our mark: <img src="data:image/png;base64,\(dot)" alt="dot" width="16" height="16"></p>
            </body></html>
            """
        var sent = 0
        func send(_ to: String, _ subject: String, _ html: String, mailbox: String = "Sales") throws {
            let body = try JSONSerialization.data(withJSONObject: ["to_address": to, "subject": subject, "content": html, "mailbox": mailbox])
            let r = try f.post(String(decoding: body, as: UTF8.self))
            guard r.status == 200 else { throw TestFailure("send: \(r.status) \(r.text)") }
            sent += 1
        }
        for i in 1...3 { try send("alice@example.org", "Order \(i) confirmed", "<p>Thanks for order <b>\(i)</b>.</p>") }
        for i in 1...2 { try send("Bob@Example.org", "Invoice \(i)", "<p>Invoice <i>\(i)</i> is attached.</p>") }
        try send("carol@example.org", evilSubject, evilHTML)
        try send("dora@example.org", "Pictures from our shop", imagesHTML)
        try send("erin@example.org", "Delayed shipment notice", "<p>Soon.</p>", mailbox: "Relay")
        try send("frank@example.org", "Bounced notice", "<p>Never.</p>", mailbox: "Relay")
        for id in 1...7 { try f.waitFor(Int64(id), status: "sent") }
        let deferred = try f.waitFor(8, status: "deferred")
        let failed = try f.waitFor(9, status: "failed")
        let deferredReply = try #require(deferred.lastReply)
        let failedReply = try #require(failed.lastReply)
        #expect(deferredReply.contains("451 4.3.0") && failedReply.contains("550 5.1.1"))

        let expect: [String: Any] = [
            "total": sent, "evil_subject": evilSubject,
            "deferred_subject": "Delayed shipment notice", "deferred_reply": deferredReply,
            "failed_subject": "Bounced notice", "failed_reply": failedReply,
            "subject_search": "INVOICE", "subject_matches": 2, "recipient_search": "bob@", "recipient_matches": 2,
            "recipient": "BOB@example.ORG", "recipient_count": 2,
            "from_id": 1, "from_subject": "Order 1 confirmed", "from_header": "Shop Sales <sales@shop.example>", "from_mailbox": "Sales",
            "images_id": 7, "blocked_boxes": 3, "image_alt": "Shop logo", "images_text": "Spring collection",
        ]
        let revoke = try JSONSerialization.data(withJSONObject: [binaryPath(), "token", "revoke", "--db", f.db, "auditor"])
        let out = try browser(f, scenario: "main", expect: expect, extra: ["--revoke", String(decoding: revoke, as: UTF8.self)],
                              screenshots: ["audit-list.png", "audit-local-time.png", "audit-search-subject.png", "audit-search-recipient.png",
                                            "audit-back-forward.png", "audit-from-download.png", "audit-images-blocked.png", "audit-detail.png"])
        #expect(out.contains("BROWSER CHECKS PASSED"))
    }

    /// More entries than the count's cap: the API says "more than 1 000" (a LIMIT-bounded read,
    /// never a count of the table), with and without a search, and so does the page.
    @Test func beyondTheCountsCap() throws {
        let f = try SendFixture()
        for n in [500, 500, 1] {
            let r = try f.call("/api/send_email/batch", BatchTests.batch(n))
            #expect(r.status == 200, "\(r.text.prefix(300))")
        }
        try f.send(to: "refunds@example.org", subject: "Refund RF-77 issued")
        func total(_ q: String) throws -> (count: Int?, exact: Bool?) {
            let t = try f.audit("/api/audit?" + q)["total"] as? [String: Any]
            return (t?["count"] as? Int, t?["exact"] as? Bool)
        }
        #expect(try total("count=true") == (1_000, false))
        #expect(try total("count=true&q=order") == (1_000, false))
        #expect(try total("count=true&q=refund%20rf-77") == (1, true))
        #expect(try total("count=true&to=refunds%40example.org") == (1, true))
        // A search that reads more than one page of rows (250, then the rest, the second read
        // in a later loop iteration): every row examined once, the one match found.
        let scan = try f.audit("/api/audit?limit=50&q=RF-77")
        #expect((scan["data"] as? [[String: Any]])?.count == 1)
        let searched = scan["search"] as? [String: Any]
        #expect(searched?["examined"] as? Int == 1_002 && searched?["partial"] as? Bool == false, "\(scan["search"] ?? "no search block")")
        let expect: [String: Any] = ["subject_search": "order", "rare_search": "refund rf-77"]
        let out = try browser(f, scenario: "many", expect: expect, screenshots: ["audit-many.png", "audit-many-search.png"])
        #expect(out.contains("BROWSER CHECKS PASSED"))
    }

    /// Runs browser_audit.py against the fixture's server; its output (the checks made).
    func browser(_ f: SendFixture, scenario: String, expect: [String: Any], extra: [String] = [], screenshots: [String]) throws -> String {
        try FileManager.default.createDirectory(atPath: auditArtifacts, withIntermediateDirectories: true)
        for name in screenshots + ["audit-failure.png"] { try? FileManager.default.removeItem(atPath: auditArtifacts + "/" + name) }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: expect), as: UTF8.self)
        let (rc, out) = try run(["python3", scriptsDirectory + "/browser_audit.py", "--url", "https://127.0.0.1:\(f.port)", "--token", f.auditToken,
                                 "--scenario", scenario, "--expect", json, "--artifacts", auditArtifacts] + extra, timeoutSeconds: 240)
        #expect(rc == 0, "browser checks failed (Tests/run installs chromium, chromium-driver and selenium):\n\(out)")
        for name in screenshots {
            let size = (try? FileManager.default.attributesOfItem(atPath: auditArtifacts + "/" + name)[.size] as? Int) ?? 0
            #expect(size > 10_000, "screenshot \(name)")
        }
        return out
    }

    // MARK: At scale (opt-in)

    /// The audit's requests on a SQLite store of `TICKITI_AUDIT_SCALE_ROWS` entries (1 000 000 for
    /// the figure in AuditQuery's doc comment), filled through `Database.insertAccepted` — the
    /// store's own insert code — and served by the real binary (`TICKITI_AUDIT_SCALE_BINARY`, e.g.
    /// a release build; else the one beside the tests). Each request is timed by the server's
    /// access log (head to answer) and by the client; the figures are printed, never asserted
    /// (STYLE 19): what is asserted is that a search reads its budget and no more.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TICKITI_AUDIT_SCALE_ROWS"] != nil && TestStore.isSQLite))
    func searchAtScale() throws {
        let rows = Int(ProcessInfo.processInfo.environment["TICKITI_AUDIT_SCALE_ROWS"] ?? "") ?? 1_000_000
        let dir = makeTempDir()
        let path = dir + "/scale.db"
        let start = Date()
        do {
            let db = try Database(path: path, synchronous: .normal)
            let base: Int64 = 1_790_000_000_000
            let raw = Array(String(repeating: "x", count: 300).utf8)
            var i = 0
            while i < rows {
                try db.begin()
                for _ in 0..<min(20_000, rows - i) {
                    let subject = i == rows / 2 ? "Refund RF-NEEDLE issued" : ["Order SP-\(i) confirmed", "Invoice INV-\(i)", "Your parcel \(i) has shipped"][i % 3]
                    try db.insertAccepted(NewMessage(acceptedAt: base + Int64(i) * 40, tokenID: 1, tokenName: "shop", idempotencyKey: "k-\(i)",
                                                     fingerprint: [1, 2, 3], responseStatus: 200, responseBody: Array("{\"ok\":true}".utf8),
                                                     mailboxName: "Sales", mailboxAddress: "sales@shop.example",
                                                     recipient: "customer\(i % 200_000)@example-\(i % 7).org", subject: subject, template: nil,
                                                     messageID: "<\(base + Int64(i) * 40).\(i)@shop.example>", raw: raw))
                    i += 1
                }
                try db.commit()
            }
            try db.execute("UPDATE messages SET status = CASE WHEN id % 1000 = 0 THEN 'failed' ELSE 'sent' END, sent_at = accepted_at + 800, attempts = 1, "
                           + "last_reply = CASE WHEN id % 1000 = 0 THEN '550 5.1.1 no such user' ELSE '250 2.0.0 OK' END")
            let plan = try db.auditPagePlan(AuditFilter(), paged: true).joined(separator: " | ")
            print("scale: plan of a search's read (no other filter, after a cursor): \(plan)")
            #expect(plan.contains("messages_accepted") && !plan.contains("TEMP B-TREE"), "\(plan)")
        }
        let fill = Date().timeIntervalSince(start)
        let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) / 1_048_576
        print("scale: \(rows) rows inserted through Database.insertAccepted in \(Int(fill)) s (\(size) MiB)")

        let binary = ProcessInfo.processInfo.environment["TICKITI_AUDIT_SCALE_BINARY"] ?? binaryPath()
        let (rc, tokenOut) = try run([binary, "token", "create", "--db", path, "--name", "auditor", "--ability", "audit-read"])
        #expect(rc == 0)
        let token = String(tokenOut.split(separator: "\n").last ?? "")
        let cert = try TestCertificate.make()
        let server = try ServerProcess(arguments: ["serve", "--db", path, "--listen", "127.0.0.1:0", "--tls-cert", cert.cert, "--tls-key", cert.key],
                                       workingDirectory: dir, executable: binary)
        let port = try server.waitForPort()
        let client = try TestClient(port: port, caFile: cert.cert, receiveTimeoutSeconds: 60)
        func get(_ target: String) throws -> [String: Any] {
            try client.send("GET \(target) HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n\r\n")
            let r = try client.readResponse()
            guard r.status == 200 else { throw TestFailure("\(target): \(r.status) \(r.text)") }
            return try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        }
        // A cursor three quarters down the table (AuditCursor's format: base64url of "v1.<at>.<id>").
        let middle = Data("v1.\(1_790_000_000_000 + Int64(rows / 4 - 1) * 40).\(rows / 4)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let cases: [(String, String)] = [
            ("newest page (50)", "/api/audit?limit=50"),
            ("newest page + count=true (capped at 1 000)", "/api/audit?limit=50&count=true"),
            ("q= common word (fills the page at once)", "/api/audit?limit=50&q=invoice"),
            ("q= no match (reads the whole budget)", "/api/audit?limit=50&q=no-such-text"),
            ("q= no match + count=true", "/api/audit?limit=50&q=no-such-text&count=true"),
            ("q= no match, 3/4 deep (cursor)", "/api/audit?limit=50&q=no-such-text&cursor=\(middle)"),
            ("q= recipient piece + status=failed", "/api/audit?limit=50&q=example-3&status=failed"),
            ("exact to= (recipient index)", "/api/audit?limit=50&to=customer4242%40example-0.org"),
        ]
        var report = ["audit at \(rows) rows (SQLite, \(binary == binaryPath() ? "the tests' build" : binary)):"]
        for (name, target) in cases {
            var client_ms: [Double] = []
            let before = server.count(" access ")
            for _ in 0..<15 {
                let t = Date()
                let body = try get(target)
                client_ms.append(Date().timeIntervalSince(t) * 1000)
                if target.contains("no-such-text") {
                    let s = try #require(body["search"] as? [String: Any])
                    #expect(s["examined"] as? Int == 10_000 && s["partial"] as? Bool == true && body["next"] is String, "\(name): \(s)")
                }
            }
            try server.waitForCount(of: " access ", above: before + 14)
            let server_ms = server.stderrLines.filter { $0.contains(" access ") }.suffix(15).compactMap { line -> Double? in
                line.split(separator: " ").first { $0.hasSuffix("ms") }.flatMap { Double($0.dropLast(2)) }
            }.sorted()
            client_ms.sort()
            let s50 = server_ms.isEmpty ? -1 : server_ms[server_ms.count / 2], s95 = server_ms.last ?? -1
            report.append(String(format: "  %-48@ server p50 %6.1f ms  max %6.1f ms   client p50 %6.1f ms", name as NSString, s50, s95, client_ms[client_ms.count / 2]))
        }
        let text = report.joined(separator: "\n")
        print(text)
        try? FileManager.default.createDirectory(atPath: auditArtifacts, withIntermediateDirectories: true)
        try? text.write(toFile: auditArtifacts + "/audit-scale.txt", atomically: true, encoding: .utf8)
        server.signal(SIGTERM)
        _ = try? server.waitForExit()
        try? FileManager.default.removeItem(atPath: dir)
    }
}
