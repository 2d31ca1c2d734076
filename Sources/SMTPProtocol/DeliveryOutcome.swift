/// DeliveryOutcome and RetryPolicy: every way a delivery attempt can end, classified once in
/// SMTP's vocabulary (STYLE 9). Local failures (timeout, refused connection, TLS failure,
/// missing STARTTLS) arrive here as synthetic replies with enhanced codes, so one function
/// decides retry versus fail.
public enum DeliveryOutcome: Sendable, Equatable, CustomStringConvertible {
    /// The relay took responsibility (final 250 after end of data).
    case sent(SMTPReply)
    /// Try again later (4xx, or a local temporary failure).
    case deferred(SMTPReply)
    /// Give up now (5xx).
    case failed(SMTPReply)
    /// The end of data went out and its reply never came (a timeout or a lost connection):
    /// the relay may have the message (RFC 5321 §4.5.3.2.6, RFC 1047). Retried a bounded
    /// number of times (`--uncertain-retries`), never in an endless loop of copies.
    case uncertain(SMTPReply)

    /// 2xx → sent, 5xx → failed, everything else (4xx, an unexpected 3xx) → deferred.
    public static func classify(_ reply: SMTPReply) -> DeliveryOutcome {
        if reply.isPositive { return .sent(reply) }
        if reply.isPermanent { return .failed(reply) }
        return .deferred(reply)
    }

    public var reply: SMTPReply {
        switch self {
        case .sent(let r), .deferred(let r), .failed(let r), .uncertain(let r): return r
        }
    }

    public var description: String {
        switch self {
        case .sent(let r): return "sent: \(r)"
        case .deferred(let r): return "deferred: \(r)"
        case .failed(let r): return "failed: \(r)"
        case .uncertain(let r): return "uncertain: \(r)"
        }
    }
}

/// Exponential backoff: `--retry-base-seconds` doubling each attempt up to
/// `--retry-max-seconds`; a message older than `--max-queue-age-seconds` is failed instead.
public struct RetryPolicy: Sendable, Equatable {
    public var baseSeconds: Int
    public var maxSeconds: Int
    public var maxQueueAgeSeconds: Int

    public init(baseSeconds: Int, maxSeconds: Int, maxQueueAgeSeconds: Int) {
        self.baseSeconds = max(0, baseSeconds)
        self.maxSeconds = max(self.baseSeconds, maxSeconds)
        self.maxQueueAgeSeconds = max(0, maxQueueAgeSeconds)
    }

    /// The delay after the `attempts`-th failed attempt (1-based): base · 2^(attempts−1), capped.
    public func delaySeconds(afterAttempt attempts: Int) -> Int {
        let shift = min(max(attempts - 1, 0), 40)
        let (d, overflow) = baseSeconds.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? maxSeconds : min(d, maxSeconds)
    }

    public enum Decision: Sendable, Equatable {
        case retry(atMilliseconds: Int64)
        case giveUp
    }

    /// What to do after a deferred attempt of a message accepted at `acceptedAt`.
    public func afterDeferral(attempts: Int, acceptedAtMilliseconds acceptedAt: Int64, nowMilliseconds now: Int64) -> Decision {
        let next = now + Int64(delaySeconds(afterAttempt: attempts)) * 1000
        let deadline = acceptedAt + Int64(maxQueueAgeSeconds) * 1000
        if now >= deadline { return .giveUp }
        // The last retry happens no later than the deadline.
        return .retry(atMilliseconds: min(next, deadline))
    }
}
