/// Delivery end to end: the real binary accepts over HTTPS and delivers through its own SMTP
/// client to a real relay (aiosmtpd, `Tests/Scripts/smtp_relay.py`) on 127.0.0.1 — STARTTLS
/// + AUTH, implicit TLS, plain by choice; a relay without STARTTLS under `required`; an
/// untrusted and a wrong-host certificate; scripted 451/550/421 replies and the retry that
/// follows; a relay that stalls after DATA; a refused port; SMTPUTF8 with and without the
/// extension; a relay name resolved through DNS servers started here (silent, wrong ID, good).
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Store
import Testing

let scriptsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Scripts").path

/// The aiosmtpd relay; `messages` are the JSON records it wrote, `authLog` its AUTH attempts.
final class TestRelay {
    let dir = makeTempDir()
    let process: ServerProcess
    let port: UInt16

    init(_ args: [String] = []) throws {
        process = try ServerProcess(arguments: ["python3", scriptsDirectory + "/smtp_relay.py", "--outdir", dir + "/out"] + args,
                                    executable: "/usr/bin/env")
        let line = try process.waitForLine(containing: "PORT ")
        port = UInt16(line.split(separator: " ").last!)!
    }

    var messages: [[String: Any]] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/out")) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().compactMap {
            (try? Data(contentsOf: URL(fileURLWithPath: dir + "/out/" + $0))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        }
    }

    var authLog: String { (try? String(contentsOfFile: dir + "/out/auth.log", encoding: .utf8)) ?? "" }

    deinit { process.signal(SIGKILL) }
}

extension SendFixture {
    func entry(_ id: Int64) throws -> AuditEntry? {
        try adminStore(db).auditEntry(id: id)
    }

    func attempts(_ id: Int64) throws -> [DeliveryAttempt] {
        try adminStore(db).deliveryAttempts(messageID: id)
    }

    /// Waits until message `id` has `status` (and returns its audit entry).
    @discardableResult
    func waitFor(_ id: Int64, status: String, seconds: Double = 20) throws -> AuditEntry {
        var last: AuditEntry?
        do {
            try waitUntil("message \(id) \(status)", seconds: seconds) {
                last = try entry(id)
                return last?.status == status
            }
        } catch {
            throw WaitTimeout(what: "message \(id) to become \(status); it is \(last?.status ?? "missing"): \(last?.lastReply ?? "")")
        }
        return last!
    }
}

@Suite(.serialized) struct DeliveryTests {
    let cert: TestCertificate
    init() throws { cert = try TestCertificate.make() }

    @Test func starttlsAndAuthDeliverTheStoredBytes() throws {
        let relay = try TestRelay(["--starttls", cert.cert, cert.key, "--auth", "mailer:s3cr%t"])
        let f = try SendFixture(relayDSN: "smtp://mailer:s3cr%25t@localhost:\(relay.port)?ca_file=\(cert.cert)")
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "sent")
        let m = try #require(relay.messages.first)
        #expect(m["tls"] as? Bool == true)
        #expect(m["auth"] as? String == "mailer")
        #expect(m["from"] as? String == "sales@shop.example" && m["to"] as? [String] == ["marcus@trailblazers-club.example"])
        let data = Array((m["data"] as! String).unicodeScalars.map { UInt8($0.value) })
        #expect(data == e.raw, "the relay received exactly the stored bytes")
        #expect(String(decoding: e.raw, as: UTF8.self).contains("Message-ID: \(e.messageID)"))
        #expect(relay.authLog.split(separator: "\n").allSatisfy { $0.hasSuffix(" tls") } && !relay.authLog.isEmpty)
        #expect(e.attempts == 1 && e.sentAt != nil && e.lastReply?.hasPrefix("250 2.0.0 OK queued as 1") == true)
        #expect(try f.attempts(1).map(\.outcome) == ["sent"])
    }

    /// The invoice with its PDF: a 5 MiB attachment, reply-to and custom headers, accepted,
    /// stored once and delivered over STARTTLS byte for byte; the attachment decodes back
    /// bit for bit. The same key with another attachment is a conflict; an unknown field, a
    /// data: URL and an attachment over --max-attachment-bytes are 422s naming the field.
    @Test func aFiveMebibyteAttachmentOverSTARTTLS() throws {
        let relay = try TestRelay(["--starttls", cert.cert, cert.key])
        let f = try SendFixture(relayDSN: "smtp://localhost:\(relay.port)?ca_file=\(cert.cert)", extraArgs: ["--max-attachment-bytes", "6000000"])
        var rng = SystemRandomNumberGenerator()
        let pdf = (0..<(5 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let encoded = Data(pdf).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
            .replacingOccurrences(of: "\r\n", with: "\\r\\n")
        func body(_ content: String) -> String {
            #"{"to_address":"billing@acme.example","subject":"Invoice INV-7","content":"<p>Attached.</p>","reply_to":"accounts@shop.example","headers":{"X-Invoice":"INV-7"},"attachments":[{"filename":"INV-7.pdf","content":""# + content + #""}]}"#
        }
        let key = UUID().uuidString
        let r = try f.post(body(encoded), key: key)
        #expect(r.status == 200, "\(r.text)")
        let e = try f.waitFor(1, status: "sent", seconds: 60)
        let m = try #require(relay.messages.first)
        #expect(m["tls"] as? Bool == true)
        let data = Array((m["data"] as! String).unicodeScalars.map { UInt8($0.value) })
        #expect(data == e.raw, "the relay received exactly the stored bytes")
        let raw = String(decoding: e.raw, as: UTF8.self)
        #expect(raw.contains("Reply-To: accounts@shop.example\r\n") && raw.contains("X-Invoice: INV-7\r\n"))
        #expect(raw.contains("Content-Type: multipart/mixed;"))
        let start = try #require(raw.range(of: "filename=\"INV-7.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"))
        let tail = raw[start.upperBound...]
        let b64 = String(tail[..<tail.range(of: "\r\n--")!.lowerBound])
        #expect(b64.split(separator: "\r\n").allSatisfy { $0.count <= 76 })
        #expect(Data(base64Encoded: b64, options: .ignoreUnknownCharacters).map(Array.init) == pdf, "the attachment bit for bit")

        let other = try f.post(body(Data(pdf.prefix(1000)).base64EncodedString()), key: key)
        #expect(other.status == 409 && other.text.contains("idempotency_key_conflict"))
        let unknown = try f.post(#"{"to_address":"a@b.example","subject":"s","content":"c","validate_adress":true}"#)
        #expect(unknown.status == 422 && unknown.text.contains(#""validate_adress":["is not a known field"]"#))
        let dataURL = try f.post(body("data:application/pdf;base64,JVBERi0x"))
        #expect(dataURL.status == 422 && dataURL.text.contains("attachments[0].content") && dataURL.text.contains("data: URL"))
        let big = try f.post(body(Data(count: 6_000_001).base64EncodedString()))
        #expect(big.status == 422 && big.text.contains("--max-attachment-bytes"))
        #expect(try f.auditCount() == 1)
    }

    /// Cc and Bcc become RCPTs, Bcc in no header and not in the stored bytes; each recipient
    /// its own outcome: one refused for good at RCPT (550) is not tried again, one refused for
    /// now (451) is tried alone in a later transaction and then taken; the message ends `sent`
    /// with the refused recipient named, and the audit shows each recipient's last reply.
    @Test func ccAndBccWithPerRecipientOutcomes() throws {
        let relay = try TestRelay(["--starttls", cert.cert, cert.key, "--rcpt", "gone@acme.example=550 5.1.1 no such user",
                                   "--rcpt", "nobody@acme.example=550 5.1.1 no such user",
                                   "--rcpt-once", "busy@acme.example=451 4.2.1 mailbox busy, try later"])
        let f = try SendFixture(relayDSN: "smtp://localhost:\(relay.port)?ca_file=\(cert.cert)", extraArgs: ["--retry-base-seconds", "1"])
        let body = #"{"to_address":"billing@acme.example","cc":["accounts@acme.example","gone@acme.example","Billing@acme.example"],"bcc":"busy@acme.example","subject":"Invoice","content":"<p>Attached.</p>"}"#
        #expect(try f.post(body).status == 200)
        let first = try f.waitFor(1, status: "deferred")
        #expect(first.lastReply?.contains("busy@acme.example") == true, "\(first.lastReply ?? "")")
        let e = try f.waitFor(1, status: "sent", seconds: 30)
        let raw = String(decoding: e.raw, as: UTF8.self)
        #expect(raw.contains("\r\nCc: accounts@acme.example, gone@acme.example\r\n"), "Billing@ is the To again: once")
        // (Not "bcc" anywhere: a random Message-ID or boundary may hold those three hex digits.)
        #expect(!raw.lowercased().contains("\nbcc:") && !raw.contains("busy@acme.example"), "no Bcc in the stored bytes")
        let sent = relay.messages
        #expect(sent.count == 2)
        #expect(sent.first?["to"] as? [String] == ["billing@acme.example", "accounts@acme.example"])
        #expect(sent.last?["to"] as? [String] == ["busy@acme.example"], "only the deferred recipient, in the later transaction")
        for m in sent { #expect(!(m["data"] as! String).lowercased().contains("bcc:")) }
        #expect(e.lastReply?.contains("refused: gone@acme.example: 550 5.1.1 no such user") == true, "\(e.lastReply ?? "")")
        let states = try #require(e.recipients)
        #expect(states.map(\.address) == ["billing@acme.example", "accounts@acme.example", "gone@acme.example", "busy@acme.example"])
        #expect(states.map(\.kind) == [.to, .cc, .cc, .bcc])
        #expect(states.map(\.status) == [.accepted, .accepted, .failed, .accepted])
        #expect(states[2].lastReply == "550 5.1.1 no such user")
        #expect(states[3].lastReply?.hasPrefix("250 ") == true)
        #expect(try f.attempts(1).map(\.outcome) == ["deferred", "sent"])
        // The audit API and CLI show each recipient (the Bcc marked by its kind).
        let shown = try f.cli(["audit", "show", "1"]).output
        #expect(shown.contains("bcc busy@acme.example: accepted") && shown.contains("cc  gone@acme.example: failed (550 5.1.1 no such user)"), "\(shown)")
        f.auditToken = try f.cli(["token", "create", "--name", "support", "--ability", "audit-read"]).lastLine
        let api = try f.audit("/api/audit/1")
        let listed = try #require(((api["data"] as? [String: Any])?["recipients"] as? [[String: Any]]))
        #expect(listed.map { $0["kind"] as? String } == ["to", "cc", "cc", "bcc"])
        #expect(listed.map { $0["status"] as? String } == ["accepted", "accepted", "failed", "accepted"])

        // Every recipient refused for good: failed at once, and no DATA reached the relay.
        let all = #"{"to_address":"gone@acme.example","bcc":"nobody@acme.example","subject":"s","content":"c"}"#
        #expect(try f.post(all).status == 200)
        let failed = try f.waitFor(2, status: "failed")
        #expect(failed.lastReply?.contains("every recipient refused") == true, "\(failed.lastReply ?? "")")
        #expect(failed.recipients?.map(\.status) == [.failed, .failed])
        #expect(relay.messages.count == 2)
    }

    /// `mailbox update --dsn` while the server runs: the message deferred on the old relay is
    /// delivered through the new one at its next attempt, no restart.
    @Test func aMailboxUpdatedWhileTheServerRunsUsesItsNewDSN() throws {
        let relay = try TestRelay()
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:9?starttls=off", extraArgs: ["--retry-base-seconds", "1"])
        #expect(try f.post(directBody).status == 200)
        try f.waitFor(1, status: "deferred")
        #expect(try f.cli(["mailbox", "update", "Relay", "--dsn", "smtp://127.0.0.1:\(relay.port)?starttls=off"]).status == 0)
        try f.waitFor(1, status: "sent", seconds: 30)
        #expect(relay.messages.count == 1)
    }

    @Test func authLoginWhenPlainIsNotOffered() throws {
        let relay = try TestRelay(["--starttls", cert.cert, cert.key, "--auth", "mailer:pw", "--login-only"])
        let f = try SendFixture(relayDSN: "smtp://mailer:pw@localhost:\(relay.port)?ca_file=\(cert.cert)")
        #expect(try f.post(directBody).status == 200)
        try f.waitFor(1, status: "sent")
        #expect(relay.messages.first?["auth"] as? String == "mailer")
        #expect(relay.authLog == "LOGIN tls\n")
    }

    @Test func aWrongPasswordIsDeferredNotFailed() throws {
        let relay = try TestRelay(["--starttls", cert.cert, cert.key, "--auth", "mailer:right"])
        let f = try SendFixture(relayDSN: "smtp://mailer:wrong@localhost:\(relay.port)?ca_file=\(cert.cert)")
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "deferred")
        #expect(e.lastReply?.hasPrefix("454 4.7.8 authentication failed: 535") == true, "\(e.lastReply ?? "")")
        #expect(relay.messages.isEmpty)
    }

    @Test func implicitTLSAndSessionReuse() throws {
        let relay = try TestRelay(["--implicit-tls", cert.cert, cert.key])
        let f = try SendFixture(relayDSN: "smtps://localhost:\(relay.port)?ca_file=\(cert.cert)&max_connections=1")
        let c = try f.connect()
        for _ in 0..<5 { #expect(try f.post(directBody, on: c).status == 200) }
        for id in 1...5 { try f.waitFor(Int64(id), status: "sent") }
        #expect(relay.messages.count == 5 && relay.messages.allSatisfy { $0["tls"] as? Bool == true })
        // One session carried them all (max_connections=1 and reuse): one peer port.
        #expect(Set(relay.messages.compactMap { ($0["peer"] as? [Any])?.last as? Int }).count == 1)
    }

    /// A message larger than one TLS record (1 MiB here) was truncated to its first record by
    /// the session's write and never completed (STARTTLS and smtps; plain SMTP was fine). On
    /// an idle relay it must arrive whole, at once.
    @Test(arguments: ["starttls", "smtps"])
    func aOneMebibyteMessageOverTLSArrivesWhole(mode: String) throws {
        let relay = try TestRelay(mode == "smtps" ? ["--implicit-tls", cert.cert, cert.key] : ["--starttls", cert.cert, cert.key])
        let scheme = mode == "smtps" ? "smtps" : "smtp"
        let f = try SendFixture(relayDSN: "\(scheme)://localhost:\(relay.port)?ca_file=\(cert.cert)", extraArgs: ["--max-body-bytes", "4194304"])
        var html = "<p>Invoice lines</p>"
        var line = 0
        while html.utf8.count < 1 << 20 { html += "<p>line \(line): 1 x widget at 9.99 EUR</p>\n"; line += 1 }
        let body = "{\"to_address\":\"marcus@trailblazers-club.example\",\"subject\":\"Big\",\"content\":\"\(html.replacingOccurrences(of: "\n", with: "\\n"))\"}"
        #expect(try f.post(body).status == 200)
        let e = try f.waitFor(1, status: "sent", seconds: 5)
        #expect(e.raw.count > 1 << 20)
        let m = try #require(relay.messages.first)
        #expect(m["tls"] as? Bool == true)
        let data = Array((m["data"] as! String).unicodeScalars.map { UInt8($0.value) })
        #expect(data == e.raw, "the relay received exactly the stored bytes")
    }

    @Test func plainOnlyWhenAskedFor() throws {
        let relay = try TestRelay()
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off")
        #expect(try f.post(directBody).status == 200)
        try f.waitFor(1, status: "sent")
        #expect(relay.messages.first?["tls"] as? Bool == false)
    }

    @Test func requiredSTARTTLSNotOfferedSendsNothing() throws {
        let relay = try TestRelay(["--auth", "mailer:pw"])
        let f = try SendFixture(relayDSN: "smtp://mailer:pw@127.0.0.1:\(relay.port)", extraArgs: ["--retry-base-seconds", "60"])
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "deferred")
        #expect(e.lastReply?.contains("does not offer STARTTLS") == true, "\(e.lastReply ?? "")")
        #expect(relay.messages.isEmpty && relay.authLog.isEmpty, "no mail and no credentials reached the relay")
    }

    @Test func untrustedAndWrongHostCertificatesAreRefused() throws {
        let relay = try TestRelay(["--starttls", cert.cert, cert.key])
        // No ca_file: the system store does not know the test certificate.
        let f = try SendFixture(relayDSN: "smtp://localhost:\(relay.port)")
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "deferred")
        #expect(e.lastReply?.contains("certificate") == true, "\(e.lastReply ?? "")")
        // Trusted certificate, but the name we connect to is not in it (resolved via --hosts-file).
        let hosts = makeTempDir() + "/hosts"
        try "127.0.0.1 relay.test\n".write(toFile: hosts, atomically: true, encoding: .utf8)
        let g = try SendFixture(relayDSN: "smtp://relay.test:\(relay.port)?ca_file=\(cert.cert)", extraArgs: ["--hosts-file", hosts])
        #expect(try g.post(directBody).status == 200)
        let w = try g.waitFor(1, status: "deferred")
        #expect(w.lastReply?.contains("certificate") == true, "\(w.lastReply ?? "")")
        #expect(relay.messages.isEmpty)
    }

    @Test func scriptedRepliesDecideStatusAndRetry() throws {
        // 550 on RCPT: failed at once, one attempt.
        let r550 = try TestRelay(["--reply", "RCPT=550 5.1.1 no such user"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(r550.port)?starttls=off")
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "failed")
        #expect(e.attempts == 1 && e.lastReply == "550 5.1.1 no such user")

        // 451 on MAIL once, then accepted: deferred, retried after the (tiny) backoff, sent.
        let r451 = try TestRelay(["--reply", "MAIL=451 4.3.0 try later", "--reply-once"])
        let g = try SendFixture(relayDSN: "smtp://127.0.0.1:\(r451.port)?starttls=off", extraArgs: ["--retry-base-seconds", "1"])
        #expect(try g.post(directBody).status == 200)
        let sent = try g.waitFor(1, status: "sent")
        #expect(sent.attempts == 2)
        let attempts = try g.attempts(1)
        #expect(attempts.map(\.outcome) == ["deferred", "sent"])
        #expect(attempts[0].reply == "451 4.3.0 try later")
        #expect(attempts[1].at - attempts[0].at >= 900, "retried after the 1 s backoff, not at once")

        // 452 after the data, then max queue age 0: failed instead of deferred.
        let rEOD = try TestRelay(["--reply", "EOD=452 4.3.1 mailbox full"])
        let h = try SendFixture(relayDSN: "smtp://127.0.0.1:\(rEOD.port)?starttls=off", extraArgs: ["--max-queue-age-seconds", "0"])
        #expect(try h.post(directBody).status == 200)
        let gaveUp = try h.waitFor(1, status: "failed")
        #expect(gaveUp.lastReply?.hasPrefix("452 4.3.1 mailbox full (gave up after 1 attempt(s)") == true, "\(gaveUp.lastReply ?? "")")

        // 421 on MAIL: the relay closes; deferred.
        let r421 = try TestRelay(["--reply", "MAIL=421 4.3.2 shutting down"])
        let k = try SendFixture(relayDSN: "smtp://127.0.0.1:\(r421.port)?starttls=off")
        #expect(try k.post(directBody).status == 200)
        #expect(try k.waitFor(1, status: "deferred").lastReply == "421 4.3.2 shutting down")
    }

    /// No reply to the end of data: an uncertain attempt (the relay may have it), retried.
    @Test func aRelayThatStallsAfterDataTimesOut() throws {
        let relay = try TestRelay(["--stall-eod"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off", extraArgs: ["--smtp-timeout-seconds", "1"])
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "deferred")
        #expect(e.lastReply?.hasPrefix("421 4.4.2 timeout while waiting for the reply to the end of data (no reply to the end of data") == true,
                "\(e.lastReply ?? "")")
        #expect(try f.attempts(1).map(\.outcome) == ["uncertain"])
    }

    @Test func sigtermWithATransactionInFlightLeavesTheQueueConsistent() throws {
        let relay = try TestRelay(["--stall-eod"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off", extraArgs: ["--shutdown-grace-seconds", "1"])
        #expect(try f.post(directBody).status == 200)
        try f.waitFor(1, status: "sending")
        f.server.signal(SIGTERM)
        #expect(try f.server.waitForExit(timeoutSeconds: 10) == 0)
        let e = try #require(try f.entry(1))
        #expect(e.status == "queued" && e.attempts == 0, "given up at the deadline, due again at the next start: \(e.status)")
    }

    @Test func aRefusedPortIsDeferred() throws {
        let (fd, port) = boundLoopbackSocket(SOCK_STREAM)
        defer { close(fd) }   // bound, never listening: connections are refused
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(port)?starttls=off")
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "deferred")
        #expect(e.lastReply?.contains("refused") == true, "\(e.lastReply ?? "")")
        // One line per delivery outcome: the session's end and the relay's state do not repeat it.
        _ = try f.server.waitForLine(containing: "message 1 to ")
        #expect(f.server.count("cannot connect to the relay") == 1, "\(f.server.stderrLines.filter { $0.contains("relay") })")
    }

    @Test func smtputf8RecipientWithAndWithoutTheExtension() throws {
        let body = #"{"to_address":"jörg@exämple.de","subject":"Grüße","content":"<p>Hallo</p>"}"#
        let with = try TestRelay()
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(with.port)?starttls=off")
        #expect(try f.post(body).status == 200)
        try f.waitFor(1, status: "sent")
        #expect((with.messages.first?["mail_options"] as? [String])?.contains("SMTPUTF8") == true)
        #expect(with.messages.first?["to"] as? [String] == ["jörg@exämple.de"])

        let without = try TestRelay(["--no-smtputf8"])
        let g = try SendFixture(relayDSN: "smtp://127.0.0.1:\(without.port)?starttls=off")
        #expect(try g.post(body).status == 200)
        let e = try g.waitFor(1, status: "failed")
        #expect(e.lastReply?.hasPrefix("553 5.6.7") == true, "\(e.lastReply ?? "")")
        #expect(without.messages.isEmpty)
    }

    @Test func aRelayNameResolvedThroughDNSServersStartedHere() throws {
        let relay = try TestRelay()
        // A free UDP port shared by three servers on three loopback addresses.
        let (probe, port) = boundLoopbackSocket(SOCK_DGRAM)
        close(probe)
        var servers: [ServerProcess] = []
        defer { for s in servers { s.signal(SIGKILL) } }
        for (ip, mode) in [("127.0.0.2", "silent"), ("127.0.0.3", "wrongid"), ("127.0.0.1", "answer")] {
            let s = try ServerProcess(arguments: ["python3", scriptsDirectory + "/dns_server.py", ip, "\(port)", mode], executable: "/usr/bin/env")
            _ = try s.waitForLine(containing: "READY")
            servers.append(s)
        }
        let conf = makeTempDir() + "/resolv.conf"
        try "nameserver 127.0.0.2\nnameserver 127.0.0.3\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let f = try SendFixture(relayDSN: "smtp://mail.relay.test:\(relay.port)?starttls=off",
                                extraArgs: ["--resolv-conf", conf, "--dns-port", "\(port)", "--hosts-file", "/dev/null"])
        #expect(try f.post(directBody).status == 200)
        try f.waitFor(1, status: "sent")
        #expect(relay.messages.count == 1)
        // Each server was asked (A and AAAA), the silent and the lying one first.
        for s in servers { #expect(try s.waitForLine(containing: "question type 1", timeoutSeconds: 1).contains("type 1")) }
    }
}
