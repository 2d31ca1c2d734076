/// Relays in the real world (SPEC §6), end to end: the real binary against scripted aiosmtpd
/// relays (`Tests/Scripts/smtp_relay.py`) that limit concurrent sessions the way Microsoft 365
/// does (`432 4.3.2`), answer Gmail's `550 5.4.5` quota and SES's `454 Throttling failure`, or
/// take the data and never answer the final dot; a `rate=30/m` mailbox measured at the relay
/// over three minutes; `message retry|cancel` while the server runs. Not serialized: the long
/// rate test runs beside the others.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Store
import Testing

@Suite struct RelayPolicyTests {
    static func body(to: String) -> String {
        #"{"to_address":"\#(to)","subject":"Your order has shipped","content":"<p>Hi</p>"}"#
    }

    static func sessions(_ relay: TestRelay) throws -> [String: Int] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: relay.dir + "/out/sessions.state"))) as? [String: Int] ?? [:]
    }

    /// Accepts `n` messages over 4 connections (ids 1…n).
    static func load(_ f: SendFixture, _ n: Int) throws {
        let clients = try (0..<4).map { _ in try f.connect() }
        var accepted = 0
        for i in 0..<n {
            let c = clients[i % 4]
            try c.send(f.request(directBody, token: f.sendToken, key: UUID().uuidString))
            if i % 4 == 3 || i == n - 1 {
                for c in clients.prefix(i % 4 + 1) where try c.readResponse().status == 200 { accepted += 1 }
            }
        }
        #expect(accepted == n)
    }

    @Test func maxConnectionsThreeNeverOpensAFourthSession() throws {
        let relay = try TestRelay(["--max-sessions", "3", "--eod-delay", "0.03"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off&max_connections=3")
        try Self.load(f, 80)
        let admin = try adminStore(f.db)
        try waitUntil("every message sent", seconds: 60) { try admin.statusCounts() == ["sent": 80] }
        let state = try Self.sessions(relay)
        #expect(state["refused"] == 0 && (state["max"] ?? 99) <= 3, "\(state)")
    }

    /// The mailbox says 4, the relay allows 2: the pool meets `432 4.3.2`, stops opening
    /// sessions for the backoff (1 s, 2 s, 4 s…) while the two working ones go on, and no
    /// message pays for it: each is sent on its first counted attempt.
    @Test func aRelayLimitLowerThanConfiguredIsBackedOffFrom() throws {
        let relay = try TestRelay(["--max-sessions", "2", "--eod-delay", "0.03"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off&max_connections=4",
                                extraArgs: ["--retry-base-seconds", "1", "--retry-max-seconds", "8"])
        try Self.load(f, 120)
        let admin = try adminStore(f.db)
        try waitUntil("every message sent", seconds: 90) { try admin.statusCounts() == ["sent": 120] }
        let state = try Self.sessions(relay)
        #expect((state["refused"] ?? 0) >= 1, "the fourth session was tried: \(state)")
        // One refusal per pause at most (two sessions try at once at first): 1 + 2 + 4 + 8 s…
        #expect((state["refused"] ?? 99) <= 8, "backed off, did not hammer: \(state)")
        _ = try f.server.waitForLine(containing: "is throttled by its relay")
        for id in Int64(1)...120 { #expect(try f.entry(id)?.attempts == 1, "message \(id)") }
    }

    /// Gmail's daily relay quota is a 5xx that resets: the mailbox is paused (for an hour) and
    /// its messages deferred, not failed, and not charged an attempt.
    @Test func aQuotaReplyPausesTheMailboxAndDefersItsMessages() throws {
        let relay = try TestRelay(["--reply", "MAIL=550 5.4.5 Daily SMTP relay limit exceeded for user"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off", extraArgs: ["--metrics-listen", "127.0.0.1:0"])
        #expect(try f.post(directBody).status == 200)
        let first = try f.waitFor(1, status: "deferred")
        #expect(first.attempts == 0 && first.lastReply?.hasPrefix("550 5.4.5") == true, "\(first.lastReply ?? "")")
        #expect(try f.attempts(1).map(\.outcome) == ["throttled"])
        let later = Self.now()
        #expect(try f.post(directBody).status == 200)
        let second = try f.waitFor(2, status: "deferred")
        #expect(second.attempts == 0 && (second.nextAttemptAt ?? 0) > later + 3_000_000, "deferred to the pause's end, an hour away")
        #expect(relay.messages.isEmpty)
        let list = try f.cli(["mailbox", "list"])
        #expect(list.output.contains("paused until") && list.output.contains("quota: 550 5.4.5"), "\(list.output)")
        let m = try f.scrape().samples
        #expect((m["tickiti_mailbox_paused_seconds{mailbox=Relay}"] ?? 0) > 3000, "\(m.filter { $0.key.contains("paused") })")
        #expect(m["tickiti_delivery_attempts_total{outcome=throttled}"] == 2, "\(m.filter { $0.key.contains("attempts") })")
    }

    /// SES's throttling reply to the end of data: deferred without counting, sent after the pause.
    @Test func throttlingAfterDataIsDeferredNotCounted() throws {
        let relay = try TestRelay(["--reply", "EOD=454 4.7.0 Throttling failure: Maximum sending rate exceeded.", "--reply-count", "1"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off", extraArgs: ["--retry-base-seconds", "1"])
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "sent", seconds: 30)
        #expect(e.attempts == 1, "the throttled try is not an attempt")
        #expect(try f.attempts(1).map(\.outcome) == ["throttled", "sent"])
        #expect(relay.messages.count == 1)
    }

    /// A relay that takes the data and never answers the final dot: sent once more with
    /// `--uncertain-retries 1` (the same Message-ID), then `uncertain` — two copies at most.
    @Test func noReplyToTheFinalDotEndsUncertainAfterOneRetry() throws {
        let relay = try TestRelay(["--record-then-stall"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off",
                                extraArgs: ["--smtp-timeout-seconds", "1", "--retry-base-seconds", "1", "--uncertain-retries", "1",
                                            "--metrics-listen", "127.0.0.1:0"])
        #expect(try f.post(directBody).status == 200)
        let e = try f.waitFor(1, status: "uncertain", seconds: 30)
        #expect(e.lastReply?.contains("may have delivered it") == true, "\(e.lastReply ?? "")")
        #expect(try f.attempts(1).map(\.outcome) == ["uncertain", "uncertain"])
        let copies = relay.messages
        #expect(copies.count == 2)
        let ids = Set(copies.compactMap { ($0["data"] as? String)?.split(separator: "\r\n").first { $0.lowercased().hasPrefix("message-id:") } })
        #expect(ids.count == 1, "both copies carry one Message-ID: \(ids)")
        #expect(try f.cli(["audit", "list", "--status", "uncertain", "--json"]).output.contains("\"status\":\"uncertain\""))
        let m = try f.scrape().samples
        #expect(m["tickiti_delivery_attempts_total{outcome=uncertain}"] == 2 && m["tickiti_messages_for_operators{status=uncertain}"] == 1,
                "\(m.filter { $0.key.contains("uncertain") })")
    }

    /// `message retry` and `message cancel` from the command line while the server runs.
    @Test func retryAndCancelWhileTheServerRuns() throws {
        let relay = try TestRelay(["--rcpt-once", "once@x.example=550 5.1.1 no such user", "--rcpt", "later@x.example=451 4.3.0 try later"])
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off")
        #expect(try f.post(Self.body(to: "once@x.example")).status == 200)
        _ = try f.waitFor(1, status: "failed")
        #expect(try f.post(Self.body(to: "later@x.example")).status == 200)
        #expect(try f.post(Self.body(to: "later@x.example")).status == 200)
        _ = try f.waitFor(2, status: "deferred")
        _ = try f.waitFor(3, status: "deferred")

        let retried = try f.cli(["message", "retry", "1"])
        #expect(retried.status == 0 && retried.lastLine == "queued message 1", "\(retried.output)")
        let sent = try f.waitFor(1, status: "sent")
        #expect(sent.attempts == 1, "a retry starts the counts over")
        #expect(try f.attempts(1).map(\.outcome) == ["failed", "retried", "sent"])

        let cancelled = try f.cli(["message", "cancel", "2"])
        #expect(cancelled.status == 0 && cancelled.lastLine == "cancelled message 2", "\(cancelled.output)")
        #expect(try f.entry(2)?.status == "cancelled")
        let byFilter = try f.cli(["message", "cancel", "--status", "deferred", "--mailbox", "Relay"])
        #expect(byFilter.lastLine == "cancelled 1 message(s)", "\(byFilter.output)")
        #expect(try f.entry(3)?.status == "cancelled")
        #expect(try f.attempts(3).last?.outcome == "cancelled")

        // Refusals: one line, exit 1.
        let refused = try f.cli(["message", "cancel", "1"])
        #expect(refused.status == 1 && refused.output.contains("message 1 is sent: cancel applies to queued or deferred messages"), "\(refused.output)")
        let missing = try f.cli(["message", "retry", "99"])
        #expect(missing.status == 1 && missing.output.contains("no message 99"), "\(missing.output)")
        let usage = try f.cli(["message", "retry", "--status", "sent"])
        #expect(usage.status == 64, "\(usage.output)")
    }

    /// `rate=30/m` measured at the relay over three minutes of load: 29–31 a minute, and never a
    /// burst (one message every 2 s: the bucket holds one).
    @Test func rateThirtyPerMinuteHoldsAtTheRelay() throws {
        let relay = try TestRelay()
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(relay.port)?starttls=off&rate=30/m")
        try Self.load(f, 100)
        try waitUntil("three minutes of deliveries", seconds: 240) { relay.messages.count >= 91 }
        let times = relay.messages.compactMap { $0["at"] as? Double }.sorted()
        let t0 = times[0]
        for minute in 0..<3 {
            let n = times.filter { $0 >= t0 + Double(minute) * 60 && $0 < t0 + Double(minute + 1) * 60 }.count
            #expect((29...31).contains(n), "minute \(minute + 1): \(n) messages")
        }
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        #expect((gaps.min() ?? 0) > 1.5, "no burst: the closest two were \(gaps.min() ?? 0) s apart")
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
