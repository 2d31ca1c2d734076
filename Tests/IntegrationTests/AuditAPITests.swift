/// `GET /api/audit` and `GET /api/audit/{id}` over HTTPS against the real binary: abilities
/// (401/403), an entry per accepted call and none for rejected ones, pagination that stays
/// stable while new mail arrives, every filter, bad parameters named in a 422, and the detail's
/// rendered message byte-identical to what a real SMTP relay (aiosmtpd) received.
import Foundation
import Testing

extension SendFixture {
    func get(_ target: String, token: String?) throws -> TestResponse {
        let c = try connect()
        var r = "GET \(target) HTTP/1.1\r\nHost: localhost\r\n"
        if let token { r += "Authorization: Bearer \(token)\r\n" }
        try c.send(r + "\r\n")
        return try c.readResponse()
    }

    /// The JSON object of a 200 answer.
    func audit(_ target: String) throws -> [String: Any] {
        let r = try get(target, token: auditToken)
        guard r.status == 200 else { throw WaitTimeout(what: "\(target): \(r.status) \(r.text)") }
        return try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
    }

    func send(to: String, subject: String = "Hello") throws {
        let r = try post(#"{"to_address":"\#(to)","subject":"\#(subject)","content":"<p>Hi</p>"}"#)
        guard r.status == 200 else { throw WaitTimeout(what: "send: \(r.status) \(r.text)") }
    }
}

@Suite(.serialized) struct AuditAPITests {
    @Test func abilitiesAreChecked() throws {
        let f = try SendFixture()
        let star = try f.cli(["token", "create", "--name", "root", "--ability", "*"]).lastLine
        for path in ["/api/audit", "/api/audit/1"] {
            let none = try f.get(path, token: nil)
            #expect(none.status == 401 && none.header("WWW-Authenticate") == "Bearer")
            #expect(try f.get(path, token: "1|wrong").status == 401)
            let send = try f.get(path, token: f.sendToken)
            #expect(send.status == 403 && send.text.contains("\"code\":\"forbidden\"") && send.text.contains("audit-read"))
            #expect(try f.get(path, token: star).status == (path == "/api/audit" ? 200 : 404))
        }
        #expect(try f.get("/api/audit", token: f.auditToken).status == 200)
        // A revoked audit token stops at once.
        #expect(try f.cli(["token", "revoke", "auditor"]).status == 0)
        #expect(try f.get("/api/audit", token: f.auditToken).status == 401)
        // POST is not a method of the audit.
        let c = try f.connect()
        try c.send("POST /api/audit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 405 && r.header("Allow") == "GET, HEAD")
    }

    @Test func anEntryPerAcceptedCallAndNoneForRejectedOnes() throws {
        let f = try SendFixture()
        try f.send(to: "alice@example.org", subject: "First")
        #expect(try f.post(#"{"to_address":"bad","subject":"x","content":"y"}"#).status == 422)
        #expect(try f.post(directBody, token: "1|nope").status == 401)
        let key = UUID().uuidString
        #expect(try f.post(templateBody, key: key).status == 200)
        #expect(try f.post(templateBody, key: key).header("Idempotent-Replayed") == "true")
        try f.waitFor(2, status: "sent")   // the fixture's mailboxes are file:// ones
        let page = try f.audit("/api/audit")
        let data = try #require(page["data"] as? [[String: Any]])
        #expect(data.count == 2)
        #expect(page["next"] is NSNull)
        let newest = data[0]
        #expect(newest["id"] as? Int == 2 && data[1]["id"] as? Int == 1)
        #expect(newest["to"] as? String == "marcus@trailblazers-club.example")
        #expect(newest["subject"] as? String == "Invoice INV-2026-0488")
        #expect(newest["template"] as? String == "invoice_delivery" && data[1]["template"] is NSNull)
        #expect(newest["mailbox"] as? String == "Sales" && newest["mailbox_address"] as? String == "sales@shop.example")
        #expect(newest["token_name"] as? String == "shop" && newest["idempotency_key"] as? String == key)
        #expect(newest["status"] as? String == "sent" && newest["attempt_count"] as? Int == 1 && newest["sent_at"] is String)
        #expect((newest["message_id"] as? String)?.hasSuffix("@shop.example>") == true)
        let accepted = try #require(newest["accepted_at"] as? String)
        #expect(accepted.count == 24 && accepted.hasSuffix("Z"))
        #expect(newest["raw"] == nil && newest["message"] == nil, "a page carries no message bodies")
    }

    @Test func pagesAreStableWhileMailArrives() throws {
        let f = try SendFixture()
        for i in 0..<7 { try f.send(to: "p\(i)@example.org") }
        let first = try f.audit("/api/audit?limit=3")
        #expect((first["data"] as? [[String: Any]])?.map { $0["id"] as! Int } == [7, 6, 5])
        let cursor = try #require(first["next"] as? String)
        for i in 7..<10 { try f.send(to: "p\(i)@example.org") }
        let second = try f.audit("/api/audit?limit=3&cursor=\(cursor)")
        #expect((second["data"] as? [[String: Any]])?.map { $0["id"] as! Int } == [4, 3, 2])
        let third = try f.audit("/api/audit?limit=3&cursor=\(try #require(second["next"] as? String))")
        #expect((third["data"] as? [[String: Any]])?.map { $0["id"] as! Int } == [1])
        #expect(third["next"] is NSNull)
        // Exactly a page's worth left: no empty page after it.
        let fresh = try f.audit("/api/audit?limit=10")
        #expect((fresh["data"] as? [[String: Any]])?.count == 10 && fresh["next"] is NSNull)
    }

    @Test func everyFilter() throws {
        let f = try SendFixture()
        try f.send(to: "Alice@Example.org")
        try f.send(to: "bob@example.org")
        try f.send(to: "alice@example.org")
        #expect(try f.post(#"{"to_address":"carol@example.org","subject":"x","content":"y","mailbox":"Old"}"#).status == 422)
        try f.waitFor(3, status: "sent")
        try f.cli(["mailbox", "disable", "Sales"])
        try f.cli(["mailbox", "disable", "Support"])
        _ = try f.cli(["mailbox", "add", "--name", "Later", "--address", "later@shop.example", "--dsn", "smtp://127.0.0.1:9"])
        try f.send(to: "dave@example.org")   // to a relay that refuses: stays queued or deferred
        try waitUntil("message 4 deferred") { try f.entry(4)?.status == "deferred" }
        // A deferred entry says when it is tried next (CLI and API); a sent one does not.
        #expect(try f.cli(["audit", "show", "4"]).output.contains("next retry:      2"))
        #expect(try !f.cli(["audit", "show", "1"]).output.contains("next retry:"))
        #expect((try f.audit("/api/audit/4")["data"] as? [String: Any])?["next_attempt_at"] is String)
        func ids(_ q: String) throws -> [Int] {
            try #require(try f.audit("/api/audit?" + q)["data"] as? [[String: Any]]).map { $0["id"] as! Int }
        }
        #expect(try ids("to=ALICE%40example.org") == [3, 1])
        #expect(try ids("to=alice@example.org&status=sent") == [3, 1])
        #expect(try ids("to=alice@example.org&status=deferred").isEmpty)
        #expect(try ids("status=sent") == [3, 2, 1])
        #expect(try ids("status=deferred") == [4])
        #expect(try ids("status=failed").isEmpty)
        #expect(try ids("to=carol@example.org").isEmpty)
        let page = try #require(try f.audit("/api/audit")["data"] as? [[String: Any]])
        let middle = try #require(page.first { $0["id"] as? Int == 2 }?["accepted_at"] as? String)
        #expect(try ids("since=\(middle)").contains(2))
        #expect(try !ids("until=\(middle)").contains(2))
        #expect(try ids("since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00%2B02:00").isEmpty)
        #expect(try ids("since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z") == [4, 3, 2, 1])
    }

    @Test(arguments: [
        ("limit=0", "limit"), ("limit=500", "limit"), ("cursor=bogus", "cursor"), ("status=bounced", "status"),
        ("since=yesterday", "since"), ("until=2026-13-01T00:00:00Z", "until"), ("recipient=a@b.c", "recipient"),
        ("to=", "to"), ("limit=1&limit=2", "limit"),
    ])
    func badParametersAreNamed(query: String, field: String) throws {
        let f = try SendFixture()
        let r = try f.get("/api/audit?" + query, token: f.auditToken)
        #expect(r.status == 422)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["code"] as? String == "validation_failed")
        #expect((error["fields"] as? [String: Any])?.keys.sorted() == [field])
    }

    /// `metadata` travels with the entry: returned by the list and the detail, filterable by
    /// `metadata.KEY=VALUE` (exact), and by `audit list --metadata`.
    @Test func metadataFindsTheEntry() throws {
        let f = try SendFixture()
        for (i, order) in ["SP-1", "SP-2", "SP-1"].enumerated() {
            let r = try f.post(#"{"to_address":"c\#(i)@example.org","subject":"s","content":"c","metadata":{"order":"\#(order)","customer_id":"C-\#(i)"}}"#)
            #expect(r.status == 200, "\(r.text)")
        }
        #expect(try f.post(#"{"to_address":"d@example.org","subject":"s","content":"c"}"#).status == 200)
        func ids(_ q: String) throws -> [Int] {
            try #require(try f.audit("/api/audit?" + q)["data"] as? [[String: Any]]).map { $0["id"] as! Int }
        }
        #expect(try ids("metadata.order=SP-1") == [3, 1])
        #expect(try ids("metadata.order=SP-1&to=c2%40example.org") == [3])
        #expect(try ids("metadata.customer_id=C-1") == [2])
        #expect(try ids("metadata.order=sp-1").isEmpty)
        let first = try #require(try f.audit("/api/audit?metadata.order=SP-1&limit=1")["next"] as? String)
        #expect(try ids("metadata.order=SP-1&limit=1&cursor=\(first)") == [1])
        let detail = try #require(try f.audit("/api/audit/2")["data"] as? [String: Any])
        #expect(detail["metadata"] as? [String: String] == ["order": "SP-2", "customer_id": "C-1"])
        let plain = try #require(try f.audit("/api/audit/4")["data"] as? [String: Any])
        #expect(plain["metadata"] as? [String: String] == [:])
        #expect(try f.get("/api/audit?metadata.order=1&metadata.x=2", token: f.auditToken).status == 422)
        let listed = try f.cli(["audit", "list", "--metadata", "order=SP-2"]).output
        #expect(listed.split(separator: "\n").count == 2 && listed.split(separator: "\n")[1].hasPrefix("2\t"), "\(listed)")
        #expect(try f.cli(["audit", "show", "3"]).output.contains("metadata:        order = SP-1"))
    }

    /// The detail lists each file with its name, type and size; each is a download (decoded
    /// bytes, `Content-Disposition: attachment`, never a type the browser renders), and so is
    /// the whole message (`/raw`, message/rfc822, "<id>.eml").
    @Test func attachmentsAndTheRawMessageAreDownloads() throws {
        let f = try SendFixture()
        let pdf = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        let r = try f.post(#"{"to_address":"c@example.org","subject":"s","content":"<p>c <img src=\"cid:logo\"></p>","attachments":[{"filename":"Rechnung März.pdf","content":"\#(pdf.base64EncodedString())"},{"filename":"logo.png","content":"iVBORw==","content_id":"logo"}]}"#)
        #expect(r.status == 200, "\(r.text)")
        let detail = try #require(try f.audit("/api/audit/1")["data"] as? [String: Any])
        let files = try #require((detail["message"] as? [String: Any])?["attachments"] as? [[String: Any]])
        #expect(files.map { $0["filename"] as? String } == ["logo.png", "Rechnung März.pdf"])
        #expect(files.map { $0["size"] as? Int } == [4, 3000])
        #expect(files.map { $0["inline"] as? Bool } == [true, false])
        #expect(files[1]["href"] as? String == "/api/audit/1/attachments/1")
        let file = try f.get("/api/audit/1/attachments/1", token: f.auditToken)
        #expect(file.status == 200 && Data(file.body) == pdf)
        #expect(file.header("Content-Type") == "application/octet-stream")
        #expect(file.header("Content-Disposition") == "attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf")
        #expect(file.header("X-Content-Type-Options") == "nosniff")
        let raw = try f.get("/api/audit/1/raw", token: f.auditToken)
        #expect(raw.status == 200 && raw.header("Content-Type") == "message/rfc822")
        #expect(raw.header("Content-Disposition") == #"attachment; filename="1.eml""#)
        #expect(raw.body == (try f.entry(1))?.raw)
        let shown = try f.cli(["audit", "show", "1"]).output
        #expect(shown.contains("attachment 1:    Rechnung März.pdf (application/pdf, 3000 bytes)"), "\(shown)")
        #expect(shown.contains("attachment 0:    logo.png (image/png, 4 bytes, inline cid:logo)"), "\(shown)")
        #expect(try f.get("/api/audit/1/attachments/2", token: f.auditToken).status == 404)
        #expect(try f.get("/api/audit/1/other", token: f.auditToken).status == 404)
        #expect(try f.get("/api/audit/1/raw", token: f.sendToken).status == 403)
        #expect(try f.get("/api/audit/1/attachments/0", token: nil).status == 401)
    }

    /// After a 200 (which carries no id): the call's entry by its key or its Message-ID.
    @Test func findingOneCallsEntry() throws {
        let f = try SendFixture()
        let key = UUID().uuidString
        #expect(try f.post(#"{"to_address":"a@example.org","subject":"s","content":"c"}"#).status == 200)
        #expect(try f.post(#"{"to_address":"b@example.org","subject":"s","content":"c"}"#, key: key).status == 200)
        let byKey = try #require(try f.audit("/api/audit?idempotency_key=\(key)")["data"] as? [[String: Any]])
        #expect(byKey.map { $0["to"] as? String } == ["b@example.org"])
        let mid = try #require(byKey.first?["message_id"] as? String)
        let encoded = mid.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let byID = try #require(try f.audit("/api/audit?message_id=\(encoded)")["data"] as? [[String: Any]])
        #expect(byID.map { $0["idempotency_key"] as? String } == [key])
        #expect(try #require(try f.audit("/api/audit?idempotency_key=nope")["data"] as? [[String: Any]]).isEmpty)
    }

    @Test func unknownEntriesAre404() throws {
        let f = try SendFixture()
        for id in ["1", "0", "-1", "abc", "99999999999999999999", "1x"] {
            let r = try f.get("/api/audit/\(id)", token: f.auditToken)
            #expect(r.status == 404 && r.text.contains("\"code\":\"not_found\""), "\(id)")
        }
    }
}

@Suite(.serialized) struct AuditDetailTests {
    @Test func theDetailShowsWhatTheRelayReceived() throws {
        let cert = try TestCertificate.make()
        let relay = try TestRelay(["--starttls", cert.cert, cert.key])
        let f = try SendFixture(relayDSN: "smtp://localhost:\(relay.port)?ca_file=\(cert.cert)")
        f.auditToken = try f.cli(["token", "create", "--name", "auditor", "--ability", "audit-read"]).lastLine
        let body = #"{"to_address":"zoë@example.org","subject":"Grüße – Rechnung 42","content":"<p>Hallo <b>Zoë</b>,</p><p>\#(String(repeating: "lang ", count: 60))</p>"}"#
        #expect(try f.post(body).status == 200)
        try f.waitFor(1, status: "sent")
        let detail = try #require(try f.audit("/api/audit/1")["data"] as? [String: Any])
        #expect(detail["status"] as? String == "sent" && detail["attempt_count"] as? Int == 1)
        #expect((detail["sent_at"] as? String)?.hasSuffix("Z") == true)
        #expect((detail["last_reply"] as? String)?.hasPrefix("250") == true)
        let attempts = try #require(detail["attempts"] as? [[String: Any]])
        #expect(attempts.count == 1 && attempts[0]["outcome"] as? String == "sent" && (attempts[0]["reply"] as? String)?.hasPrefix("250") == true)
        let message = try #require(detail["message"] as? [String: Any])
        let relayed = try #require(relay.messages.first?["data"] as? String)
        let relayedBytes = Array(relayed.unicodeScalars.map { UInt8($0.value) })
        #expect(Array((message["raw"] as! String).utf8) == relayedBytes, "the audit's copy is byte-identical to what the relay received")
        let headers = try #require(message["headers"] as? [[String: String]])
        #expect(headers.first { $0["name"] == "Subject" }?["value"] == "Grüße – Rechnung 42")
        #expect(headers.first { $0["name"] == "Message-ID" }?["value"] == detail["message_id"] as? String)
        #expect((message["html"] as? String)?.hasPrefix("<p>Hallo <b>Zoë</b>,</p><p>lang lang") == true)
        #expect((message["text"] as? String)?.contains("Hallo Zoë") == true)
    }
}
