/// The endpoints next to send_email (SPEC §4 "More endpoints of the same family"), against the
/// real binary over HTTPS: render_template's checks in send_email's order with its rows of the
/// error table, its answer equal to what a send of the same template delivers, nothing queued;
/// keys scoped to the endpoint; idempotency_key's fresh UUIDv4s without authentication.
#if canImport(Glibc)
import Glibc
#endif
@testable import App
import Foundation
@testable import HTTPServer
import MIME
import Testing

extension SendFixture {
    func call(_ path: String, _ body: String, token: String? = "default", key: String? = UUID().uuidString,
              contentType: String? = "application/json") throws -> TestResponse {
        let c = try connect()
        var r = "POST \(path) HTTP/1.1\r\nHost: localhost\r\n"
        if let t = token == "default" ? sendToken : token { r += "Authorization: Bearer \(t)\r\n" }
        if let key { r += "Idempotency-Key: \(key)\r\n" }
        if let contentType { r += "Content-Type: \(contentType)\r\n" }
        try c.send(r + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
        return try c.readResponse()
    }
}

@Suite struct EndpointFamilyTests {
    static let renderBody = #"{"template_identifier":"invoice_delivery","data":{"invoice_number":"INV-7","amount":"<b>12 €</b>","due_date":"2026-12-31"}}"#

    @Test func renderTemplateAnswersWhatASendWouldDeliver() throws {
        let f = try SendFixture()
        let r = try f.call("/api/render_template", Self.renderBody)
        #expect(r.status == 200, "\(r.text)")
        let data = try #require((try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["data"] as? [String: String])
        #expect(data["subject"] == "Invoice INV-7")
        #expect(data["html"] == "<p>Invoice INV-7: &lt;b&gt;12 €&lt;/b&gt; due 2026-12-31</p>", "escaped as a send escapes")
        #expect(try f.auditCount() == 0, "nothing queued or audited")

        let send = try f.post(#"{"to_address":"a@b.example","template_identifier":"invoice_delivery","data":{"invoice_number":"INV-7","amount":"<b>12 €</b>","due_date":"2026-12-31"}}"#)
        #expect(send.status == 200)
        let delivered = MessageReader.read(try #require(try f.entry(1)).raw)
        #expect(delivered.header("Subject") == data["subject"])
        #expect(delivered.html?.replacingOccurrences(of: "\r\n", with: "\n") == data["html"])
        #expect(delivered.text?.replacingOccurrences(of: "\r\n", with: "\n") == data["text"])
    }

    @Test func renderTemplateKeepsItsAnswerAndScopesKeysToTheEndpoint() throws {
        let f = try SendFixture()
        let key = UUID().uuidString
        let first = try f.call("/api/render_template", Self.renderBody, key: key)
        let again = try f.call("/api/render_template", Self.renderBody, key: key)
        #expect(first.status == 200 && again.status == 200)
        #expect(again.header("Idempotent-Replayed") == "true" && again.body == first.body)
        let other = try f.call("/api/render_template", Self.renderBody.replacingOccurrences(of: "INV-7", with: "INV-8"), key: key)
        #expect(other.status == 409 && other.text.contains("idempotency_key_conflict"))
        // One key, two endpoints: a conflict both ways.
        let sendKey = UUID().uuidString
        #expect(try f.post(#"{"to_address":"a@b.example","subject":"s","content":"c"}"#, key: sendKey).status == 200)
        let render = try f.call("/api/render_template", Self.renderBody, key: sendKey)
        #expect(render.status == 409 && render.text.contains("idempotency_key_conflict"))
        #expect(try f.post(Self.renderBody, key: key).status == 409)
        #expect(try f.auditCount() == 1)
    }

    /// send_email's error table as it applies to render_template, in its check order.
    @Test(arguments: [
        ("no token", 401, "unauthenticated"), ("audit token", 403, "forbidden"), ("text/plain", 415, "unsupported_media_type"),
        ("no key", 422, "Idempotency-Key"), ("bad JSON", 422, "not valid JSON"), ("an array", 422, "must be a JSON object"),
        ("to_address", 422, "render_template takes template_identifier and data"), ("no data", 422, "\"data\":[\"is required\"]"),
        ("no template", 422, "no template \\\"nope\\\" exists"), ("missing placeholder", 422, "is missing the placeholder \\\"due_date\\\""),
        ("data not an object", 422, "must be an object"),
    ] as [(String, Int, String)])
    func renderTemplateErrors(row: String, status: Int, mention: String) throws {
        let f = try SendFixture()
        var body = Self.renderBody
        var token: String? = "default", key: String? = UUID().uuidString, type: String? = "application/json"
        switch row {
        case "no token": token = nil
        case "audit token": token = f.auditToken
        case "text/plain": type = "text/plain"
        case "no key": key = nil
        case "bad JSON": body = "{"
        case "an array": body = "[]"
        case "to_address": body = #"{"to_address":"a@b.example","template_identifier":"invoice_delivery","data":{}}"#
        case "no data": body = #"{"template_identifier":"invoice_delivery"}"#
        case "no template": body = #"{"template_identifier":"nope","data":{}}"#
        case "missing placeholder": body = #"{"template_identifier":"invoice_delivery","data":{"invoice_number":"1","amount":"2"}}"#
        case "data not an object": body = #"{"template_identifier":"invoice_delivery","data":[1]}"#
        default: Issue.record("no such row")
        }
        let r = try f.call("/api/render_template", body, token: token, key: key, contentType: type)
        #expect(r.status == status, "\(row): \(r.text)")
        #expect(r.text.contains(mention), "\(row): \(r.text)")
        if status == 401 { #expect(r.header("WWW-Authenticate") == "Bearer") }
        // A refused call stores nothing: the same key then works.
        if let key, status == 422 { #expect(try f.call("/api/render_template", Self.renderBody, key: key).status == 200) }
    }

    @Test func idempotencyKeysAreFreshUUIDsForAnyone() throws {
        let f = try SendFixture()
        var seen = Set<String>()
        for body in ["", "{}", " { } "] {
            let r = try f.call("/api/idempotency_key", body, token: nil, key: nil, contentType: body.isEmpty ? nil : "application/json")
            #expect(r.status == 200, "\(r.text)")
            let key = try #require(((try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["data"] as? [String: String])?["idempotency_key"])
            #expect(key.range(of: "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", options: .regularExpression) != nil, "\(key)")
            #expect(seen.insert(key).inserted)
            #expect(r.header("Cache-Control") == "no-store")
        }
        #expect(try f.call("/api/idempotency_key", #"{"count":5}"#, token: nil, key: nil).status == 422)
        #expect(try f.call("/api/idempotency_key", "x", token: nil, key: nil, contentType: "text/plain").status == 415)
        #expect(try f.auditCount() == 0)
    }
}

/// `mailbox update|remove`, `token remove`, `template remove` while the server runs: each
/// change is what the next request sees; a removal that would strand messages is refused.
@Suite struct EditAndRemoveTests {
    @Test func editAndRemoveWhileTheServerRuns() throws {
        let f = try SendFixture(extraArgs: ["--retry-base-seconds", "600"])
        // update: the next send goes from the new address, with the new display name.
        #expect(try f.cli(["mailbox", "update", "Sales", "--address", "orders@shop.example", "--display-name", "Orders"]).status == 0)
        let r = try f.post(#"{"to_address":"a@b.example","subject":"s","content":"c","mailbox":"Sales"}"#)
        #expect(r.text.contains("orders@shop.example"), "\(r.text)")
        #expect(String(decoding: try #require(try f.entry(1)).raw, as: UTF8.self).contains("From: \"Orders\" <orders@shop.example>"))
        #expect(try f.cli(["mailbox", "update", "Sales"]).status != 0, "nothing to change is a usage error")
        #expect(try f.cli(["mailbox", "update", "Sales", "--dsn", "ftp://x"]).status != 0)
        #expect(try f.cli(["mailbox", "update", "Nope", "--address", "x@y.example"]).status == 1)

        // remove: refused while a message waits for the mailbox; done once none does.
        _ = try f.cli(["mailbox", "add", "--name", "Stuck", "--address", "stuck@shop.example", "--dsn", "smtp://127.0.0.1:9?starttls=off"])
        #expect(try f.post(#"{"to_address":"a@b.example","subject":"s","content":"c","mailbox":"Stuck"}"#).status == 200)
        try f.waitFor(2, status: "deferred")
        let refused = try f.cli(["mailbox", "remove", "Stuck"])
        #expect(refused.status == 1 && refused.output.contains("1 message(s) are still queued, sending or deferred"), "\(refused.output)")
        #expect(try f.cli(["mailbox", "remove", "Old"]).status == 0)
        let gone = try f.post(#"{"to_address":"a@b.example","subject":"s","content":"c","mailbox":"Old"}"#)
        #expect(gone.status == 422 && gone.text.contains("no mailbox named"), "\(gone.text)")
        #expect(!(try f.cli(["mailbox", "list"]).output.contains("Old\t")))

        // template remove: later sends are refused; what was accepted with it stays as built.
        #expect(try f.post(templateBody).status == 200)
        #expect(try f.cli(["template", "remove", "invoice_delivery"]).status == 0)
        let noTemplate = try f.post(templateBody)
        #expect(noTemplate.status == 422 && noTemplate.text.contains("no template"), "\(noTemplate.text)")
        #expect(try f.cli(["template", "remove", "invoice_delivery"]).status == 1)

        // token remove: gone from the list, refused at once, the audit keeps its name.
        #expect(try f.cli(["token", "remove", "shop"]).status == 0)
        #expect(try f.post(directBody).status == 401)
        #expect(!(try f.cli(["token", "list"]).output.contains("\tshop\t")))
        #expect(try f.entry(1)?.tokenName == "shop")
        #expect(try f.cli(["token", "remove", "shop"]).status == 1)
    }
}

/// The access log: a line per request with method, target, status, bytes, duration, client
/// address and token name — never the secret; as JSON with --log-format json (the other logs
/// too); none with --no-access-log.
@Suite struct AccessLogTests {
    @Test func aLinePerRequestNeverTheSecret() throws {
        let f = try SendFixture()
        #expect(try f.post(directBody).status == 200)
        #expect(try f.post(directBody, token: "1|wrong").status == 401)
        let line = try f.server.waitForLine(containing: "\"POST /api/send_email\" 200 ")
        #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z access 127\.0\.0\.1:\d+ "POST /api/send_email" 200 \d+ [\d.]+ms token=shop$"#,
                           options: .regularExpression) != nil, "\(line)")
        _ = try f.server.waitForLine(containing: "\"POST /api/send_email\" 401 ")
        let secret = String(f.sendToken.split(separator: "|").last!)
        #expect(!f.server.stderrLines.contains { $0.contains(secret) }, "the secret is never logged")
    }

    @Test func jsonLinesForLogShippers() throws {
        let f = try SendFixture(extraArgs: ["--log-format", "json"])
        #expect(try f.post(directBody).status == 200)
        let line = try f.server.waitForLine(containing: "\"type\":\"access\"")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(o["status"] as? Int == 200 && o["method"] as? String == "POST" && o["target"] as? String == "/api/send_email")
        #expect(o["token"] as? String == "shop" && (o["client"] as? String)?.hasPrefix("127.0.0.1:") == true)
        #expect((o["ms"] as? Double ?? 0) > 0, "the time from the head to the answer")
        // The other log lines are JSON objects too (the shutdown's, here).
        f.server.signal(SIGTERM)
        _ = try f.server.waitForExit()
        let logged = f.server.stderrLines.filter { $0.hasPrefix("{") }
        #expect(logged.contains { $0.contains("\"level\":") && $0.contains("\"message\":") }, "\(f.server.stderrLines)")
        for l in logged { #expect((try? JSONSerialization.jsonObject(with: Data(l.utf8))) != nil, "\(l)") }
    }

    /// The line is appended byte by byte (no String per request): it must read exactly as the
    /// interpolated line it replaced — durations as Double's description of tenths of a
    /// millisecond ("0.0", "3.2", "12.0", "1234.6"), quoting, no token as "-".
    @Test(arguments: [
        (0.0, "GET", "/healthz", 200, 11, nil as String?),
        (0.00032, "POST", "/api/send_email", 200, 71, "shop"),
        (0.00325, "POST", "/api/send_email?x=\"y\"", 409, 0, "shop \\ \u{7}"),
        (0.012, "GET\u{1}", "/a b\tc", 404, 1234567, nil),
        (1.23456, "DELETE", "/", 503, 9, "t"),
        (86_400.0, "PUT", "/über", 500, 0, "naïve"),
    ])
    func theLineReadsAsTheInterpolatedOneDid(_ seconds: Double, _ method: String, _ target: String, _ status: Int, _ bytes: Int,
                                             _ user: String?) throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let log = AccessLog(json: false, fd: fds[1])
        let r = AccessRecord(method: method, target: target, status: status, bytes: bytes, seconds: seconds, peer: "127.0.0.1:43210", user: user)
        log.record(r)
        log.record(r)
        log.flush()
        close(fds[1])
        var bytesRead: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            guard n > 0 else { break }
            bytesRead += buffer[0..<n]
        }
        let lines = String(decoding: bytesRead, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[2].isEmpty, "two lines, each ended")
        let ms = (seconds * 10_000).rounded() / 10
        let expected = "access 127.0.0.1:43210 \"\(AccessLog.quoted(method)) \(AccessLog.quoted(target))\" \(status) \(bytes) \(ms)ms token=\(user.map(AccessLog.quoted) ?? "-")"
        for line in lines.prefix(2) {
            #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "#, options: .regularExpression) != nil, "\(line)")
            #expect(line.dropFirst(25) == expected[...], "\(line)")
        }
    }

    @Test func noAccessLogWhenAsked() throws {
        let f = try SendFixture(extraArgs: ["--no-access-log"])
        #expect(try f.post(directBody).status == 200)
        #expect(try f.post(directBody).status == 200)
        f.server.signal(SIGTERM)
        _ = try f.server.waitForExit()
        #expect(f.server.count(" access ") == 0)
    }

    /// Failed authentications are warnings with the client's address — access log or not —
    /// and a client trying many tokens gets one line per 10 s with a count, not one per try.
    @Test func failedAuthenticationsAreWarningsWithTheClientAddress() throws {
        let f = try SendFixture(extraArgs: ["--no-access-log"])
        for _ in 0..<5 { #expect(try f.post(directBody, token: "1|wrong").status == 401) }
        let line = try f.server.waitForLine(containing: "authentication failed")
        #expect(line.contains("warning") && line.contains("POST /api/send_email from 127.0.0.1:") && line.contains("answered 401"), "\(line)")
        #expect(try f.post(directBody, token: f.auditToken).status == 403)
        f.server.signal(SIGTERM)
        _ = try f.server.waitForExit()
        #expect(f.server.count("authentication failed") == 1, "the other four (and the 403) within 10 s of the first are counted, not logged")
        #expect(!f.server.stderrLines.contains { $0.contains("wrong") }, "no token text in the log")
    }

    /// A failed TLS handshake is logged with the client's address and a reason in plain words.
    @Test func aFailedHandshakeSaysWhoAndWhyInPlainWords() throws {
        let f = try SendFixture()
        _ = try run(["sh", "-c", "echo | timeout 10 openssl s_client -connect 127.0.0.1:\(f.port) -tls1_1 -cipher DEFAULT@SECLEVEL=0 >/dev/null 2>&1; true"])
        let line = try f.server.waitForLine(containing: "TLS handshake with 127.0.0.1:")
        #expect(line.contains("older than 1.2") || line.contains("protocol version"), "\(line)")
    }
}
