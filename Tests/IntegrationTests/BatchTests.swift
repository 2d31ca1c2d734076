/// `POST /api/send_email/batch` against the real binary: 500 messages in both modes with
/// invalid ones at the start, the middle and the end; replay and conflict; two batches racing
/// with one key; attachments delivered to aiosmtpd; kill -9 right after a batch's 200; a batch
/// over --max-body-bytes refused before it is read.
import Foundation
import Testing

@Suite struct BatchTests {
    static func message(_ i: Int, valid: Bool = true) -> String {
        valid ? #"{"to_address":"c\#(i)@example.org","subject":"Order \#(i)","content":"<p>Shipped \#(i)</p>","metadata":{"order":"O-\#(i)"}}"#
            : #"{"to_address":"not-an-address","subject":"Order \#(i)","content":"<p>x</p>"}"#
    }

    static func batch(_ count: Int, invalid: Set<Int> = [], mode: String? = nil) -> String {
        let messages = (0..<count).map { message($0, valid: !invalid.contains($0)) }.joined(separator: ",")
        return "{\"messages\":[\(messages)]" + (mode.map { ",\"validation\":\"\($0)\"" } ?? "") + "}"
    }

    static func json(_ r: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
    }

    @Test func fiveHundredPermissiveAndStrict() throws {
        let f = try SendFixture()
        let bad: Set<Int> = [0, 250, 499]
        // strict: the whole batch refused, each bad message named, nothing stored — the key stays free.
        let key = UUID().uuidString
        let strict = try f.call("/api/send_email/batch", Self.batch(500, invalid: bad), key: key)
        #expect(strict.status == 422, "\(strict.text.prefix(300))")
        let fields = try #require((try Self.json(strict)["error"] as? [String: Any])?["fields"] as? [String: [String]])
        #expect(Set(fields.keys) == ["messages[0].to_address", "messages[250].to_address", "messages[499].to_address"], "\(fields.keys)")
        #expect(try f.auditCount() == 0)
        // permissive, same key (nothing was stored for it): the valid ones accepted in one commit.
        let r = try f.call("/api/send_email/batch", Self.batch(500, invalid: bad, mode: "permissive"), key: key)
        #expect(r.status == 200, "\(r.text.prefix(300))")
        let items = try #require(try Self.json(r)["data"] as? [[String: Any]])
        #expect(items.count == 500)
        #expect(items.enumerated().allSatisfy { $0.element["index"] as? Int == $0.offset })
        #expect(items.enumerated().allSatisfy { ($0.element["ok"] as? Bool) == !bad.contains($0.offset) })
        #expect(((items[250]["error"] as? [String: Any])?["fields"] as? [String: [String]])?["to_address"] != nil, "the fields a single send gives")
        #expect((items[1]["data"] as? [String: Any])?["mailbox"] as? String == "sales@shop.example")
        #expect(try f.auditCount() == 497)
        // Every message carries the batch's key (the audit finds them all by it) and its own metadata.
        let byKey = try adminStore(f.db).auditPage(.init(idempotencyKey: key), limit: 1000, after: nil)
        #expect(byKey.count == 497)
        #expect(Set(byKey.flatMap { $0.metadata.map(\.value) }).count == 497)
        try waitUntil("all 497 delivered", seconds: 60) { try f.auditCount(status: "sent") == 497 }

        // Replay: the stored answer byte for byte; another body with the key: a conflict.
        let again = try f.call("/api/send_email/batch", Self.batch(500, invalid: bad, mode: "permissive"), key: key)
        #expect(again.status == 200 && again.header("Idempotent-Replayed") == "true" && again.body == r.body)
        let other = try f.call("/api/send_email/batch", Self.batch(3), key: key)
        #expect(other.status == 409 && other.text.contains("idempotency_key_conflict"))
        #expect(try f.auditCount() == 497)
    }

    /// Permissive with every message invalid: 200 with each one's error, the answer stored under
    /// the key and replayed, nothing accepted (PostgreSQL answered 503: the key was taken with no
    /// message ids, read back as "someone else holds it"; schemathesis found it).
    @Test func permissiveWithNothingValid() throws {
        let f = try SendFixture()
        let key = UUID().uuidString
        let body = Self.batch(3, invalid: [0, 1, 2], mode: "permissive")
        let r = try f.call("/api/send_email/batch", body, key: key)
        #expect(r.status == 200, "\(r.text.prefix(300))")
        let items = try #require(try Self.json(r)["data"] as? [[String: Any]])
        #expect(items.count == 3 && items.allSatisfy { $0["ok"] as? Bool == false })
        let again = try f.call("/api/send_email/batch", body, key: key)
        #expect(again.status == 200 && again.header("Idempotent-Replayed") == "true" && again.body == r.body)
        #expect(try f.auditCount() == 0)
    }

    @Test(arguments: [
        (#"{"messages":[]}"#, "messages"), (#"{"messages":"x"}"#, "messages"), (#"{}"#, "messages"),
        (#"{"messages":[{"to_address":"a@b.example","subject":"s","content":"c"}],"validation":"loose"}"#, "validation"),
        (#"{"messages":[{"to_address":"a@b.example","subject":"s","content":"c"}],"mode":"strict"}"#, "mode"),
        (#"{"messages":[5]}"#, "messages[0]"),
    ])
    func badBatches(body: String, field: String) throws {
        let f = try SendFixture()
        let r = try f.call("/api/send_email/batch", body)
        #expect(r.status == 422, "\(r.text)")
        let fields = try #require((try Self.json(r)["error"] as? [String: Any])?["fields"] as? [String: [String]])
        #expect(fields.keys.contains(field), "\(fields)")
    }

    @Test func fiveHundredAndOneIsRefused() throws {
        let f = try SendFixture()
        let r = try f.call("/api/send_email/batch", Self.batch(501))
        #expect(r.status == 422 && r.text.contains("1 to 500"))
    }

    @Test func twoBatchesRacingWithOneKey() throws {
        let f = try SendFixture()
        let key = UUID().uuidString
        let body = Self.batch(20)
        let a = try f.connect(), b = try f.connect()
        func request() -> String {
            "POST /api/send_email/batch HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(f.sendToken)\r\nIdempotency-Key: \(key)\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        }
        try a.send(request())
        try b.send(request())
        let ra = try a.readResponse(), rb = try b.readResponse()
        let fresh = [ra, rb].filter { $0.status == 200 && $0.header("Idempotent-Replayed") == nil }
        #expect(fresh.count == 1)
        for r in [ra, rb] where !(r.status == 200 && r.header("Idempotent-Replayed") == nil) {
            #expect((r.status == 409 && r.text.contains("in_use")) || r.header("Idempotent-Replayed") == "true", "\(r.status) \(r.text)")
        }
        #expect(try f.auditCount() == 20, "one batch's messages, once")
    }

    @Test func aBatchSurvivesKill9RightAfterIts200() throws {
        let f = try SendFixture()
        let r = try f.call("/api/send_email/batch", Self.batch(100))
        #expect(r.status == 200)
        f.server.signal(SIGKILL)
        _ = try? f.server.waitForExit()
        #expect(try f.auditCount() == 100)
        try f.start()
        try waitUntil("all 100 delivered after the restart", seconds: 60) { try f.auditCount(status: "sent") == 100 }
    }

    @Test func aBatchOverTheBodyLimitIsRefusedBeforeItIsRead() throws {
        let f = try SendFixture(extraArgs: ["--max-body-bytes", "10000", "--max-body-bytes-in-flight", "10000"])
        let body = Self.batch(200)
        #expect(body.utf8.count > 10_000)
        let c = try f.connect()
        try c.send("POST /api/send_email/batch HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(f.sendToken)\r\nIdempotency-Key: k\r\n"
                   + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        let r = try c.readResponse()
        #expect(r.status == 413 && r.text.contains("payload_too_large"))
    }
}

extension DeliveryTests {
    /// Resend's batch drops attachments (resend-node#409); ours delivers them.
    @Test func aBatchWithAttachmentsIsDelivered() throws {
        let relay = try TestRelay(["--starttls", cert.cert, cert.key])
        let f = try SendFixture(relayDSN: "smtp://localhost:\(relay.port)?ca_file=\(cert.cert)")
        let pdf = Data((0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 29) })
        let one = { (i: Int) in #"{"to_address":"c\#(i)@acme.example","subject":"Invoice \#(i)","content":"<p>Attached.</p>","attachments":[{"filename":"INV-\#(i).pdf","content":"\#(pdf.base64EncodedString())"}]}"# }
        let r = try f.call("/api/send_email/batch", "{\"messages\":[\(one(1)),\(one(2)),\(one(3))]}")
        #expect(r.status == 200, "\(r.text)")
        try waitUntil("three delivered", seconds: 30) { relay.messages.count == 3 }
        for m in relay.messages {
            let data = (m["data"] as! String)
            let start = try #require(data.range(of: "Content-Transfer-Encoding: base64\r\n\r\n"))
            let b64 = String(data[start.upperBound...].prefix { $0 != "-" })
            #expect(Data(base64Encoded: b64, options: .ignoreUnknownCharacters) == pdf)
        }
    }
}
