import Testing
@testable import SMTPProtocol

/// Golden transcripts (Postfix `.in/.ref` style): the server's replies go in one by one; what
/// the machine sends and does comes out as lines — `C:` bytes sent, `=` other actions. The
/// runner plays the driver: TLS "completes" when asked, each `ready` gets the next message or
/// QUIT.
struct SessionMachineTests {
    static let message = Array("Subject: hi\r\n\r\n.leading dot\r\nbody\r\n".utf8)

    func run(_ policy: SessionMachine.Policy, _ replies: [String], messages: [Envelope]? = nil, then: SessionMachine.Event? = nil) -> [String] {
        var m = SessionMachine(policy: policy)
        var queue = messages ?? [Envelope(from: "from@example.com", to: "to@example.net", message: SessionMachineTests.message)]
        var out: [String] = []
        func perform(_ actions: [SessionMachine.Action]) {
            var follow: [SessionMachine.Event] = []
            for a in actions {
                switch a {
                case .send(let b):
                    let text = String(decoding: b, as: UTF8.self)
                    if text.hasSuffix("\r\n.\r\n") && text.count > 5 {
                        out.append("C: <message \(b.count) octets>")
                        #expect(text.contains("\r\n..leading dot\r\n"))
                    } else {
                        for line in text.split(separator: "\r\n", omittingEmptySubsequences: true) { out.append("C: \(line)") }
                    }
                case .startTLS:
                    out.append("= starttls")
                    follow.append(.tlsEstablished)
                case .ready:
                    out.append("= ready")
                    if queue.isEmpty { follow.append(.quit) } else { follow.append(.submit(queue.removeFirst())) }
                case .pipelineNext:
                    // As SMTPSession does: the next message behind this one's data, unless
                    // preflight refuses it (reported at once, the one after it tried).
                    while let e = queue.first {
                        queue.removeFirst()
                        if let refusal = m.preflight(e) {
                            out.append("= \(refusal) (preflight)")
                            continue
                        }
                        out.append("= pipeline next")
                        follow.append(.submit(e))
                        break
                    }
                case .outcome(let o, let recipients):
                    // Recipient replies shown only for envelopes of several recipients.
                    if let recipients, recipients.count > 1 {
                        out.append("= \(o) [\(recipients.map(\.description).joined(separator: " | "))]")
                    } else {
                        out.append("= \(o)")
                    }
                case .close(let failure):
                    out.append("= close" + (failure.map { " (\($0))" } ?? ""))
                }
            }
            for e in follow { perform(m.receive(e)) }
        }
        for r in replies {
            out.append("S: \(r)")
            var parser = ReplyParser()
            var parsed: [SMTPReply] = []
            try! parser.feed(Array((r.split(separator: "|").joined(separator: "\r\n") + "\r\n").utf8), into: &parsed)
            for p in parsed { perform(m.receive(.reply(p))) }
        }
        if let then { perform(m.receive(then)) }
        return out
    }

    static let starttlsAuth = SessionMachine.Policy(security: .startTLS(required: true),
                                                    credentials: .init(user: "user", password: "pass"), clientName: "client.test")
    static let plainNoAuth = SessionMachine.Policy(security: .plain, credentials: nil, clientName: "client.test")

    /// Several recipients: one RCPT each; a refused one does not stop the others (its reply is
    /// reported with the outcome), and only a transaction whose every RCPT was refused is
    /// refused — pipelined (DATA then refused by the relay) and not (no DATA sent).
    @Test func severalRecipientsEachWithItsReply() {
        let e = Envelope(from: "f@example.com", recipients: ["a@example.net", "b@example.net", "c@example.net"], message: Self.message)
        let pipelined = run(Self.plainNoAuth, [
            "220 relay ESMTP", "250-relay|250 PIPELINING",
            "250 2.1.0 ok|250 2.1.5 ok|550 5.1.1 no such user|451 4.2.1 busy|354 go",
            "250 2.0.0 queued", "221 bye",
        ], messages: [e])
        #expect(pipelined.contains("C: <message 39 octets>"), "the data goes: two recipients may still take it")
        #expect(pipelined.contains("= sent: 250 2.0.0 queued [250 2.1.5 ok | 550 5.1.1 no such user | 451 4.2.1 busy]"), "\(pipelined)")
        #expect(pipelined.filter { $0.hasPrefix("C: RCPT") }.count == 3)

        let allRefused = run(Self.plainNoAuth, [
            "220 relay ESMTP", "250 relay",
            "250 2.1.0 ok", "550 5.1.1 no such user", "450 4.2.0 later", "554 5.7.1 denied",
            "250 2.0.0 reset", "221 bye",
        ], messages: [e])
        #expect(!allRefused.contains("C: DATA"), "\(allRefused)")
        #expect(allRefused.contains("= failed: 550 5.1.1 no such user [550 5.1.1 no such user | 450 4.2.0 later | 554 5.7.1 denied]"), "\(allRefused)")
        #expect(allRefused.filter { $0.hasPrefix("C: RCPT") } == ["C: RCPT TO:<a@example.net>", "C: RCPT TO:<b@example.net>", "C: RCPT TO:<c@example.net>"])

        let mailRefused = run(Self.plainNoAuth, ["220 relay ESMTP", "250 relay", "550 5.7.1 sender denied", "250 reset", "221 bye"], messages: [e])
        #expect(mailRefused.contains("= failed: 550 5.7.1 sender denied"), "no RCPT replies: \(mailRefused)")
    }

    @Test func pipelinedSessionWithSTARTTLSAndAuthPlain() {
        let t = run(Self.starttlsAuth, [
            "220 relay ESMTP",
            "250-relay|250-PIPELINING|250-SIZE 1000000|250-STARTTLS|250 AUTH PLAIN LOGIN",
            "220 2.0.0 go ahead",
            "250-relay|250-PIPELINING|250-SIZE 1000000|250-8BITMIME|250 AUTH PLAIN LOGIN",
            "235 2.7.0 ok",
            "250 2.1.0 ok|250 2.1.5 ok|354 go",
            "250 2.0.0 queued as ABC",
            "221 bye",
        ])
        #expect(t == [
            "S: 220 relay ESMTP", "C: EHLO client.test",
            "S: 250-relay|250-PIPELINING|250-SIZE 1000000|250-STARTTLS|250 AUTH PLAIN LOGIN", "C: STARTTLS",
            "S: 220 2.0.0 go ahead", "= starttls", "C: EHLO client.test",
            "S: 250-relay|250-PIPELINING|250-SIZE 1000000|250-8BITMIME|250 AUTH PLAIN LOGIN", "C: AUTH PLAIN AHVzZXIAcGFzcw==",
            "S: 235 2.7.0 ok", "= ready", "C: MAIL FROM:<from@example.com> SIZE=35", "C: RCPT TO:<to@example.net>", "C: DATA",
            "S: 250 2.1.0 ok|250 2.1.5 ok|354 go", "C: <message 39 octets>",
            "S: 250 2.0.0 queued as ABC", "= sent: 250 2.0.0 queued as ABC", "= ready", "C: QUIT",
            "S: 221 bye", "= close",
        ])
    }

    @Test func unpipelinedWithAuthLoginAndTwoMessages() {
        let e = Envelope(from: "f@x.org", to: "t@y.org", message: Array("a\r\n".utf8))
        let t = run(SessionMachine.Policy(security: .implicitTLS, credentials: .init(user: "u", password: "p"), clientName: "c"), [
            "220 hi", "250-hi|250 AUTH LOGIN", "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 ok",
            "250 ok", "250 ok", "354 go", "250 one",
            "250 ok", "250 ok", "354 go", "250 two", "221 bye",
        ], messages: [e, e])
        #expect(t == [
            "S: 220 hi", "C: EHLO c", "S: 250-hi|250 AUTH LOGIN", "C: AUTH LOGIN",
            "S: 334 VXNlcm5hbWU6", "C: dQ==", "S: 334 UGFzc3dvcmQ6", "C: cA==", "S: 235 ok", "= ready",
            "C: MAIL FROM:<f@x.org>", "S: 250 ok", "C: RCPT TO:<t@y.org>", "S: 250 ok", "C: DATA", "S: 354 go", "C: a", "C: .",
            "S: 250 one", "= sent: 250 one", "= ready",
            "C: MAIL FROM:<f@x.org>", "S: 250 ok", "C: RCPT TO:<t@y.org>", "S: 250 ok", "C: DATA", "S: 354 go", "C: a", "C: .",
            "S: 250 two", "= sent: 250 two", "= ready", "C: QUIT", "S: 221 bye", "= close",
        ])
    }

    /// RFC 2920 §3.1 across transactions: the next message's MAIL/RCPT/DATA follow the data in
    /// the same write; replies are matched in order; a refused end of data or a refused
    /// recipient in the middle affects only its own message.
    @Test func nextTransactionPipelinedBehindTheData() {
        let e = { (to: String) in Envelope(from: "f@x.org", to: to, message: Array("a\r\n".utf8)) }
        let t = run(Self.plainNoAuth, [
            "220 hi", "250-hi|250 PIPELINING",
            "250 ok|250 ok|354 go",
            "250 one|250 ok|250 ok|354 go",                // 1 sent; 2's MAIL/RCPT/DATA
            "552 5.3.4 two too big|250 ok|550 5.1.1 nobody|554 5.5.1 no recipients",  // 2 failed; 3 refused
            "250 reset",                                    // RSET after 3
            "250 ok|250 ok|354 go", "250 four", "221 bye",
        ], messages: [e("1@y.org"), e("2@y.org"), e("3@y.org"), e("4@y.org")])
        #expect(t == [
            "S: 220 hi", "C: EHLO client.test", "S: 250-hi|250 PIPELINING", "= ready",
            "C: MAIL FROM:<f@x.org>", "C: RCPT TO:<1@y.org>", "C: DATA",
            "S: 250 ok|250 ok|354 go", "C: a", "C: .", "= pipeline next", "C: MAIL FROM:<f@x.org>", "C: RCPT TO:<2@y.org>", "C: DATA",
            "S: 250 one|250 ok|250 ok|354 go", "= sent: 250 one",
            "C: a", "C: .", "= pipeline next", "C: MAIL FROM:<f@x.org>", "C: RCPT TO:<3@y.org>", "C: DATA",
            "S: 552 5.3.4 two too big|250 ok|550 5.1.1 nobody|554 5.5.1 no recipients", "= failed: 552 5.3.4 two too big",
            "= failed: 550 5.1.1 nobody", "C: RSET",
            "S: 250 reset", "= ready", "C: MAIL FROM:<f@x.org>", "C: RCPT TO:<4@y.org>", "C: DATA",
            "S: 250 ok|250 ok|354 go", "C: a", "C: .",
            "S: 250 four", "= sent: 250 four", "= ready", "C: QUIT", "S: 221 bye", "= close",
        ])
    }

    /// `canPipelineNext` (what RelayPool asks before handing a held session another message):
    /// only while waiting for an end-of-data reply with nothing behind it, on a relay that
    /// pipelines — the states in which `.submit` is valid without `.ready`.
    @Test(arguments: [true, false])
    func canPipelineNextOnlyBehindData(pipelining: Bool) {
        var m = SessionMachine(policy: Self.plainNoAuth)
        let e = Envelope(from: "f@x.org", to: "1@y.org", message: Array("a\r\n".utf8))
        func reply(_ text: String) -> [SessionMachine.Action] {
            var parser = ReplyParser()
            var parsed: [SMTPReply] = []
            try! parser.feed(Array((text.split(separator: "|").joined(separator: "\r\n") + "\r\n").utf8), into: &parsed)
            return parsed.flatMap { m.receive(.reply($0)) }
        }
        _ = reply("220 hi")
        #expect(!m.canPipelineNext, "before EHLO's reply")
        _ = reply(pipelining ? "250-hi|250 PIPELINING" : "250 hi")
        #expect(!m.canPipelineNext, "idle: a message is submitted, not pipelined")
        _ = m.receive(.submit(e))
        #expect(!m.canPipelineNext, "in the transaction, before 354")
        _ = pipelining ? reply("250 ok|250 ok|354 go") : reply("250 ok") + reply("250 ok") + reply("354 go")
        #expect(m.canPipelineNext == pipelining, "the data sent, waiting for its reply")
        if pipelining {
            _ = m.receive(.submit(e))
            #expect(!m.canPipelineNext, "one message behind the data at most")
        }
    }

    /// The message whose dot went out is uncertain (the relay may have it); the one pipelined
    /// behind it never had its data sent: deferred.
    @Test func lostWithAPipelinedMessageLeavesTheFirstUncertainAndDefersTheSecond() {
        let e = Envelope(from: "f@x.org", to: "t@y.org", message: Array("a\r\n".utf8))
        let t = run(Self.plainNoAuth, ["220 hi", "250-hi|250 PIPELINING", "250 ok|250 ok|354 go"], messages: [e, e],
                    then: .lost("connection reset by peer"))
        let why = "421 4.4.2 connection reset by peer while waiting for the reply to the end of data"
        #expect(t.suffix(3) == ["= uncertain: \(why)", "= deferred: \(why)", "= close (\(why))"])
        // Not pipelining: nothing is begun behind the data.
        let u = run(Self.plainNoAuth, ["220 hi", "250 hi", "250 ok", "250 ok", "354 go"], messages: [e, e], then: .lost("reset"))
        #expect(!u.contains("= pipeline next"))
        #expect(u.filter { $0.hasPrefix("= uncertain") }.count == 1 && !u.contains { $0.hasPrefix("= deferred") })
    }

    @Test func pipelinedMessageThePreflightRefusesIsSkipped() {
        let ok = Envelope(from: "f@x.org", to: "t@y.org", message: Array("a\r\n".utf8))
        let utf8 = Envelope(from: "f@x.org", to: "jörg@example.de", message: Array("a\r\n".utf8))
        let t = run(Self.plainNoAuth, ["220 hi", "250-hi|250 PIPELINING", "250 ok|250 ok|354 go"], messages: [ok, utf8, ok])
        #expect(Array(t.suffix(7)) == ["C: a", "C: .",
                                       "= failed: 553 5.6.7 the relay does not support SMTPUTF8, which this address needs (preflight)",
                                       "= pipeline next", "C: MAIL FROM:<f@x.org>", "C: RCPT TO:<t@y.org>", "C: DATA"])
    }

    @Test func requiredSTARTTLSNotOfferedSendsNothingMore() {
        let t = run(Self.starttlsAuth, ["220 hi", "250-hi|250 AUTH PLAIN"])
        #expect(t == ["S: 220 hi", "C: EHLO client.test", "S: 250-hi|250 AUTH PLAIN",
                      "= close (421 4.7.0 the relay does not offer STARTTLS (starttls=required))"])
    }

    @Test func opportunisticWithoutSTARTTLSAndCredentialsRefusesToAuthenticateInClear() {
        let p = SessionMachine.Policy(security: .startTLS(required: false), credentials: .init(user: "u", password: "p"), clientName: "c")
        let t = run(p, ["220 hi", "250-hi|250 AUTH PLAIN"])
        #expect(t.last == "= close (421 4.7.0 refusing to send credentials without TLS (the relay offered no STARTTLS))")
        #expect(!t.contains { $0.contains("AUTH") && $0.hasPrefix("C:") })
    }

    @Test func opportunisticWithoutSTARTTLSAndNoCredentialsCarriesOn() {
        let p = SessionMachine.Policy(security: .startTLS(required: false), credentials: nil, clientName: "c")
        let t = run(p, ["220 hi", "250 hi"], messages: [])
        #expect(t == ["S: 220 hi", "C: EHLO c", "S: 250 hi", "= ready", "C: QUIT"])
    }

    @Test func capabilitiesFromBeforeTLSAreForgotten() {
        // PIPELINING offered only in clear: after STARTTLS the second EHLO doesn't list it.
        let t = run(SessionMachine.Policy(security: .startTLS(required: true), credentials: nil, clientName: "c"),
                    ["220 hi", "250-hi|250-PIPELINING|250 STARTTLS", "220 go", "250 hi", "250 ok"])
        #expect(t.suffix(4) == ["= ready", "C: MAIL FROM:<from@example.com>", "S: 250 ok", "C: RCPT TO:<to@example.net>"])
    }

    @Test func plaintextInjectedAfterSTARTTLSKillsTheSession() {
        // "220 go" and "250 injected" in one read: the 250 arrives before the handshake.
        var m = SessionMachine(policy: .init(security: .startTLS(required: true), credentials: nil, clientName: "c"))
        _ = m.receive(.reply(SMTPReply(code: 220, lines: ["hi"])))
        _ = m.receive(.reply(SMTPReply(code: 250, lines: ["hi", "STARTTLS"])))
        #expect(m.receive(.reply(SMTPReply(code: 220, lines: ["go"]))) == [.startTLS])
        let actions = m.receive(.reply(SMTPReply(code: 250, lines: ["injected"])))
        #expect(actions == [.close(failure: .local(421, "4.7.0", "the relay sent plaintext after agreeing to STARTTLS"))])
    }

    @Test func authFailureDefersWithTheServersWords() {
        let t = run(Self.starttlsAuth, ["220 hi", "250-hi|250 STARTTLS", "220 go", "250-hi|250 AUTH PLAIN", "535 5.7.8 bad credentials"])
        #expect(t.last == "= close (454 4.7.8 authentication failed: 535 5.7.8 bad credentials)")
    }

    @Test func noCommonAuthMechanism() {
        let t = run(Self.starttlsAuth, ["220 hi", "250-hi|250 STARTTLS", "220 go", "250-hi|250 AUTH CRAM-MD5"])
        #expect(t.last?.hasPrefix("= close (421 4.7.0 the relay offers neither AUTH PLAIN nor AUTH LOGIN") == true)
    }

    // Replies in each phase → the outcome and what follows.
    static let phases: [(String, [String], String, String)] = [
        ("greeting 554", ["554 go away"], "", "= close (554 go away)"),
        ("greeting 421", ["421 busy"], "", "= close (421 busy)"),
        ("MAIL 451", ["220 hi", "250-hi|250 PIPELINING", "451 4.3.0 later|554 5.5.1 no valid recipients|554 no"],
         "= deferred: 451 4.3.0 later", "C: RSET"),
        ("RCPT 550", ["220 hi", "250-hi|250 PIPELINING", "250 ok|550 5.1.1 unknown|554 5.5.1 no valid recipients"],
         "= failed: 550 5.1.1 unknown", "C: RSET"),
        ("lying DATA 354 after RCPT 550", ["220 hi", "250-hi|250 PIPELINING", "250 ok|550 5.1.1 unknown|354 go", "554 no message"],
         "= failed: 550 5.1.1 unknown", "C: RSET"),
        ("DATA 451", ["220 hi", "250-hi|250 PIPELINING", "250 ok|250 ok|451 4.3.1 no space"], "= deferred: 451 4.3.1 no space", "C: RSET"),
        ("final 552", ["220 hi", "250-hi|250 PIPELINING", "250 ok|250 ok|354 go", "552 5.3.4 too big"], "= failed: 552 5.3.4 too big", "= ready"),
        ("final 451", ["220 hi", "250-hi|250 PIPELINING", "250 ok|250 ok|354 go", "451 4.3.0 try again"], "= deferred: 451 4.3.0 try again", "= ready"),
        ("421 mid-transaction", ["220 hi", "250-hi|250 PIPELINING", "250 ok|421 4.4.2 closing"], "= deferred: 421 4.4.2 closing", "= close (421 4.4.2 closing)"),
        ("unpipelined RCPT 550", ["220 hi", "250 hi", "250 ok", "550 5.1.1 unknown"], "= failed: 550 5.1.1 unknown", "C: RSET"),
    ]

    @Test(arguments: phases)
    func repliesInEachPhase(name: String, replies: [String], outcome: String, next: String) {
        let t = run(Self.plainNoAuth, replies)
        if !outcome.isEmpty {
            guard let i = t.firstIndex(of: outcome) else {
                Issue.record("\(name): no \(outcome) in \(t)")
                return
            }
            #expect(t.count > i + 1 && t[i + 1] == next, "\(name): \(t)")
            #expect(t.filter { $0.hasPrefix("= sent") || $0.hasPrefix("= failed") || $0.hasPrefix("= deferred") }.count == 1, "\(name)")
        } else {
            #expect(t.last == next, "\(name): \(t)")
        }
        if name.hasPrefix("lying") { #expect(t.contains("C: ."), "a lone dot ends the empty transaction") }
        #expect(!t.contains { $0.hasPrefix("C: <message") } || name.hasPrefix("final"), "\(name): message bytes sent after a refusal")
    }

    @Test func timeoutAndLostConnectionNameWhatWeWereDoing() {
        var t = run(Self.plainNoAuth, ["220 hi", "250 hi", "250 ok", "250 ok", "354 go"], then: .timeout)
        #expect(t.suffix(2) == ["= uncertain: 421 4.4.2 timeout while waiting for the reply to the end of data", "= close (421 4.4.2 timeout while waiting for the reply to the end of data)"])
        // A reply is an answer, even a 421 to the end of data: deferred, not uncertain.
        t = run(Self.plainNoAuth, ["220 hi", "250 hi", "250 ok", "250 ok", "354 go", "421 4.3.2 shutting down"])
        #expect(t.contains("= deferred: 421 4.3.2 shutting down"), "\(t)")
        t = run(Self.plainNoAuth, ["220 hi", "250 hi", "250 ok"], then: .lost("connection reset by peer"))
        #expect(t.suffix(2) == ["= deferred: 421 4.4.2 connection reset by peer while sending RCPT TO", "= close (421 4.4.2 connection reset by peer while sending RCPT TO)"])
        t = run(Self.plainNoAuth, [], then: .timeout)
        #expect(t == ["= close (421 4.4.2 timeout while waiting for the greeting)"])
    }

    @Test func smtputf8AndSize() {
        let utf8 = Envelope(from: "f@x.org", to: "jörg@example.de", message: Array("a\r\n".utf8))
        var t = run(Self.plainNoAuth, ["220 hi", "250 hi"], messages: [utf8])
        #expect(t.contains("= failed: 553 5.6.7 the relay does not support SMTPUTF8, which this address needs"))
        #expect(!t.contains { $0.hasPrefix("C: MAIL") })
        t = run(Self.plainNoAuth, ["220 hi", "250-hi|250-SMTPUTF8|250 8BITMIME"], messages: [utf8])
        #expect(t.contains("C: MAIL FROM:<f@x.org> SMTPUTF8"))
        let big = Envelope(from: "f@x.org", to: "t@y.org", message: Array(repeating: 0x61, count: 2000))
        t = run(Self.plainNoAuth, ["220 hi", "250-hi|250 SIZE 1000"], messages: [big])
        #expect(t.contains("= failed: 552 5.3.4 message of 2000 octets exceeds the relay's SIZE 1000"))
    }

    @Test func heloFallbackOnlyWhenNothingNeedsEHLO() {
        var t = run(Self.plainNoAuth, ["220 hi", "502 no EHLO", "250 hello"], messages: [])
        #expect(t == ["S: 220 hi", "C: EHLO client.test", "S: 502 no EHLO", "C: HELO client.test", "S: 250 hello", "= ready", "C: QUIT"])
        t = run(Self.starttlsAuth, ["220 hi", "502 no EHLO"], messages: [])
        #expect(t.last == "= close (502 no EHLO)")
    }

    @Test func injectionInAddressesIsRefused() {
        let e = Envelope(from: "f@x.org", to: "t@y.org>\r\nRCPT TO:<evil@z.org", message: [])
        let t = run(Self.plainNoAuth, ["220 hi", "250 hi"], messages: [e])
        #expect(t.contains("= failed: 553 5.1.3 address not allowed in an SMTP command"))
        #expect(!t.contains { $0.contains("evil") })
    }
}
