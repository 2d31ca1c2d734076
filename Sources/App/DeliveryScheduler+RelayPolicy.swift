/// The scheduler's relay policy (SPEC §6 "Relays in the real world"): what the relay's replies
/// mean for the mailbox as a whole (Relay.ReplyClassifier's table), its pauses with backoff, and
/// its sending budget (`rate=`, `daily_recipients=`).
///
/// Pauses: a throttling reply (`432 4.3.2`, `454 Throttling failure`, …) stops new sessions of
/// the mailbox for `--retry-base-seconds`, doubling while the relay keeps throttling (a new
/// throttle within one pause length of the last pause's end), capped at `--retry-max-seconds`;
/// a quota reply (`550 5.4.5`, `…QuotaExceeded`) stops the mailbox for an hour, doubling up to a
/// day — the window of a daily quota can have moved on by then. The message that met the reply
/// and every message waiting for the mailbox are deferred to the pause's end as `throttled`
/// attempts, which count against neither their attempts nor their age. The pause is written to
/// the store (`mailbox list`, a restart) and, on PostgreSQL, read by every process with the
/// directory (its write NOTIFYs), so a relay that throttles one process throttles them all.
///
/// Budget: one pure token bucket and rolling 24 h recipient count per mailbox in this process
/// (SQLite has one process; the counts are persisted per minute and read back at start), or
/// the same arithmetic in one PostgreSQL function under a per-mailbox lock (`tickiti_take_budget`):
/// every process takes each message's token there, so the limits hold for the mailbox as a whole.
import AuditAPI
import Logging
import Relay
import SMTPClient
import SMTPProtocol
import Store

extension DeliveryScheduler {
    /// What a relay's reply means (local replies — timeouts, refused connections — are ours:
    /// 4xx defers, 5xx fails).
    func verdict(_ r: SMTPReply, stage: ReplyStage) -> ReplyVerdict {
        if r.isPositive { return .accepted }
        if r.isLocal { return r.isPermanent ? .failMessage : .deferMessage }
        return ReplyClassifier.classify(code: r.code, enhanced: r.enhancedCode, text: r.lines.joined(separator: " "), stage: stage).verdict
    }

    static func holdsMailbox(_ v: ReplyVerdict) -> Bool { v == .throttle || v == .quota }

    /// Milliseconds of the `level`-th pause in a row.
    func pauseMilliseconds(quota: Bool, level: Int) -> Int64 {
        let shift = Int64(min(max(level - 1, 0), 30))
        if quota { return min(3_600_000 << shift, 86_400_000) }
        let base = Int64(options.retry.baseSeconds) * 1000
        return min(base << shift, Int64(options.retry.maxSeconds) * 1000)
    }

    /// Pauses `mailbox` for the relay's `reply` (or extends nothing when a pause of this episode
    /// is on already); returns when it ends (ms).
    @discardableResult
    func pauseMailbox(_ mailbox: String, quota: Bool, reply: SMTPReply, allSessions: Bool) -> Int64 {
        let now = DeliveryScheduler.nowMilliseconds()
        let previous = pauses[mailbox]
        let until: Int64
        if let p = previous, p.until > now, !(quota && !p.isQuota) {
            until = p.until   // another session's reply of the same episode
        } else {
            var level = 1
            if let p = previous, now - p.until < pauseMilliseconds(quota: quota, level: p.level) { level = p.level + 1 }
            let d = pauseMilliseconds(quota: quota, level: level)
            until = now + d
            let pause = MailboxPause(until: until, level: level, reason: "\(quota ? MailboxPause.quotaPrefix : "throttled"): \(reply)")
            pauses[mailbox] = pause
            writes.append(.mailboxPause(mailbox: mailbox, pause))
            throttleCount += 1
            logger.warning("mailbox \(mailbox) \(quota ? "is over a quota of its relay" : "is throttled by its relay") (\(reply)): no new session for \(d / 1000)s (pause \(level) in a row)")
            if !stopping { armScan(atMilliseconds: until) }
        }
        if case .relay(let pool)? = routes[mailbox] {
            let back = pool.pause(for: .milliseconds(max(until - now, 1)), allSessions: allSessions || quota)
            for j in back { deferThrottled(j.id, until: until, reply: reply.description) }
        }
        return until
    }

    /// A message the mailbox's pause or budget holds back: deferred to `until`, not counted.
    func deferThrottled(_ id: Int64, until: Int64, reply: String) {
        guard active.removeValue(forKey: id) != nil else { return }
        let now = DeliveryScheduler.nowMilliseconds()
        throttledCount += 1
        writes.append(.attempt(id: id, status: "deferred", outcome: "throttled", reply: reply, at: now, next: until))
        if !stopping { armScan(atMilliseconds: until) }
        if stopping { checkIdle() }
    }

    /// A message went: a mailbox whose pause is over works again.
    func mailboxWorked(_ mailbox: String) {
        guard let p = pauses[mailbox], p.until <= DeliveryScheduler.nowMilliseconds() else { return }
        pauses[mailbox] = nil
        writes.append(.mailboxPause(mailbox: mailbox, nil))
        logger.notice("mailbox \(mailbox) works again after \(p.level) pause(s) (\(p.reason))")
    }

    /// A pause some other process (or an earlier run) recorded: this process holds to it too.
    func adoptPause(_ mailbox: String, _ pause: MailboxPause) {
        let now = DeliveryScheduler.nowMilliseconds()
        guard pause.until > now, (pauses[mailbox]?.until ?? 0) < pause.until else { return }
        pauses[mailbox] = pause
        if case .relay(let pool)? = routes[mailbox] {
            let back = pool.pause(for: .milliseconds(pause.until - now), allSessions: pause.isQuota)
            for j in back { deferThrottled(j.id, until: pause.until, reply: pause.reason) }
        }
    }

    /// The pool's budget for a mailbox with `rate=` or `daily_recipients=`.
    func makeBudget(mailbox: String, dsn: RelayDSN) -> SendBudget? {
        guard dsn.rate != nil || dsn.dailyRecipients != nil else { return nil }
        if store.sharesSendBudgets {
            return StoreSendBudget(store: store, mailbox: mailbox, rate: dsn.rate, dailyRecipients: dsn.dailyRecipients)
        }
        let now = DeliveryScheduler.nowMilliseconds()
        let usage = (try? store.recipientUsage(mailbox: mailbox, nowMilliseconds: now)) ?? []
        return LocalSendBudget(mailbox: mailbox, rate: dsn.rate, dailyRecipients: dsn.dailyRecipients,
                               window: RollingDailyCount(buckets: usage.map { .init(minute: $0.minute, count: $0.count) })) { [weak self] w in
            self?.writes.append(w)
        }
    }
}

// MARK: DeliveryHandler (relay policy)

extension DeliveryScheduler {
    public func sessionRefused(_ pool: RelayPool, _ failure: SMTPReply) -> Bool {
        let v = verdict(failure, stage: .session)
        guard DeliveryScheduler.holdsMailbox(v) else { return false }
        pauseMailbox(pool.name, quota: v == .quota, reply: failure, allSessions: false)
        return true
    }

    public func budgetWait(_ pool: RelayPool, milliseconds: Int64) {
        let until = DeliveryScheduler.nowMilliseconds() + milliseconds
        let reply = "451 4.7.0 the mailbox's sending budget (\(pool.budgetDescription)) is used up for now; next message at \(RFC3339.format(milliseconds: until))"
        for j in pool.takeWaiting() { deferThrottled(j.id, until: until, reply: reply) }
    }
}

extension MailboxPause {
    static let quotaPrefix = "quota"
    var isQuota: Bool { reason.hasPrefix(MailboxPause.quotaPrefix) }
}

/// A mailbox's budget kept by this process alone (SQLite: the only process). Each grant is
/// counted at once and its recipients written with the next commit (`.recipientsSent`).
final class LocalSendBudget: SendBudget, CustomStringConvertible {
    let mailbox: String
    let rate: RateLimit?
    var bucket: TokenBucket?
    let dailyRecipients: Int?
    var window: RollingDailyCount
    let record: (StatusWrite) -> Void

    init(mailbox: String, rate: RateLimit?, dailyRecipients: Int?, window: RollingDailyCount, record: @escaping (StatusWrite) -> Void) {
        self.mailbox = mailbox
        self.rate = rate
        bucket = rate.map(TokenBucket.init)
        self.dailyRecipients = dailyRecipients
        self.window = window
        self.record = record
    }

    var description: String { budgetText(rate: rate, daily: dailyRecipients) }

    func take(recipients: Int, completion: @escaping (Int64?) -> Void) {
        let now = DeliveryScheduler.nowMilliseconds()
        let n = dailyRecipients.map { min(recipients, $0) } ?? recipients
        if let limit = dailyRecipients {
            let room = window.whenRoom(for: n, limit: limit, atMilliseconds: now)
            if !room.fits { return completion(max((room.at ?? now + 60_000) - now, 1000)) }
        }
        if bucket != nil {
            let nowNs = now * 1_000_000
            if let at = bucket!.take(nowNanoseconds: nowNs) {
                return completion(max((at - nowNs + 999_999) / 1_000_000, 1))
            }
        }
        if dailyRecipients != nil {
            window.add(n, atMilliseconds: now)
            record(.recipientsSent(mailbox: mailbox, at: now, count: n))
        }
        completion(nil)
    }
}

/// A mailbox's budget in a store shared by several processes (PostgreSQL).
final class StoreSendBudget: SendBudget, CustomStringConvertible {
    let store: ServerStore
    let mailbox: String
    let rate: RateLimit?
    let dailyRecipients: Int?

    init(store: ServerStore, mailbox: String, rate: RateLimit?, dailyRecipients: Int?) {
        self.store = store
        self.mailbox = mailbox
        self.rate = rate
        self.dailyRecipients = dailyRecipients
    }

    var description: String { budgetText(rate: rate, daily: dailyRecipients) }

    func take(recipients: Int, completion: @escaping (Int64?) -> Void) {
        store.takeSendBudget(BudgetRequest(mailbox: mailbox, rate: rate.map { ($0.intervalNanoseconds, $0.burst) }, dailyRecipients: dailyRecipients,
                                           recipients: recipients, nowMilliseconds: DeliveryScheduler.nowMilliseconds()), completion: completion)
    }
}

func budgetText(rate: RateLimit?, daily: Int?) -> String {
    [rate.map { "rate=\($0)" }, daily.map { "daily_recipients=\($0)" }].compactMap { $0 }.joined(separator: ", ")
}

extension RelayPool {
    var budgetDescription: String { budget.map { "\($0)" } ?? "none" }
}
