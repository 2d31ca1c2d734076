/// ReplyClassifier: what a relay's reply means for the mailbox and for the message, decided once
/// by a table (SPEC §6, STYLE 9). The SMTP client reports replies; the delivery policy acts on
/// the verdict: pause new sessions of the mailbox (throttle), pause it until a sending quota can
/// have reset (quota), or fail / defer the message or one recipient.
///
/// The table reads three things of a reply — the code, the RFC 3463 enhanced status code and a
/// few words of text — because relays reuse codes: `421 4.4.2` is a timeout from one server and a
/// message-rate limit from Exchange; `452 4.2.2` "over quota" is the *recipient's* full mailbox,
/// not our sending quota; `432` is Microsoft 365's concurrency limit with `4.3.2` but a password
/// transition (RFC 4954 §6) with `4.7.12`. So rows are specific, recipient-side replies are listed
/// before any sending-limit row could catch them, and every row names where its reply comes from.
///
/// Rules are checked in order; the first match wins; then the fallback (RFC 5321 §4.2.1):
/// 2xx accepted; 5xx at RCPT fails that recipient; other 5xx fail the message; 4xx and anything
/// else (an unexpected 1xx/3xx, a code out of range) defer it. A 2xx never matches a rule.
///
/// Pure: no I/O, no clock. It reads only what relays say; replies we make up for local failures
/// (`SMTPReply.isLocal`, e.g. `421 4.4.2` timeouts) are the caller's to keep out or to pass —
/// they classify as what they claim to be, which for those is a temporary failure.

/// Where in the session a reply came.
public enum ReplyStage: Sendable, Equatable {
    /// Opening a session: the greeting, EHLO, STARTTLS, AUTH.
    case session
    case mail
    case rcpt
    /// The reply to the DATA command itself (before any content).
    case data
    /// The reply to the final "." (RFC 5321 §4.5.3.2.6: the message may be with the relay).
    case endOfData
}

public enum ReplyVerdict: Sendable, Equatable {
    /// 2xx.
    case accepted
    /// Pause NEW sessions of the mailbox with backoff; the message is requeued without counting
    /// an attempt against it.
    case throttle
    /// A sending quota of the mailbox is used up (even when the code is 5xx): pause the mailbox
    /// until the quota window can have reset; defer the message without counting an attempt.
    case quota
    /// Permanent: fail the message.
    case failMessage
    /// Permanent for this recipient only (a RCPT refusal).
    case failRecipient
    /// Temporary: defer the message and count the attempt.
    case deferMessage
}

public struct ReplyClassification: Sendable, Equatable {
    public var verdict: ReplyVerdict
    /// A short reason in plain words, for logs and the audit.
    public var reason: String

    public init(verdict: ReplyVerdict, reason: String) {
        self.verdict = verdict
        self.reason = reason
    }
}

public enum ReplyClassifier {
    /// One row of the table. Every condition that is not nil must hold.
    public struct Rule: Sendable {
        /// The reply code, exactly; nil = any.
        public let code: Int?
        /// An enhanced status code prefix by whole components: "4.7" matches "4.7.652",
        /// "4.7.0" matches only "4.7.0" (not "4.7.028"); nil = any, even a reply without one.
        public let enhanced: String?
        /// A fragment of the reply text, case-insensitive; nil = any.
        public let text: String?
        /// The stages the row holds at; nil = any.
        public let stages: [ReplyStage]?
        public let verdict: ReplyVerdict
        public let reason: String
        /// Where the reply comes from: a vendor's documentation, an RFC section, Postfix source.
        public let source: String
        let loweredText: String?
        let enhancedParts: [Substring]?

        public init(code: Int? = nil, enhanced: String? = nil, text: String? = nil, stages: [ReplyStage]? = nil,
                    verdict: ReplyVerdict, reason: String, source: String) {
            self.code = code
            self.enhanced = enhanced
            self.text = text
            self.stages = stages
            self.verdict = verdict
            self.reason = reason
            self.source = source
            loweredText = text?.lowercased()
            enhancedParts = enhanced?.split(separator: ".", omittingEmptySubsequences: false)
        }

        /// `loweredText` is the reply's text already lowercased (once per reply, not per row).
        func matches(code c: Int, enhancedParts reply: [Substring]?, loweredText t: String, stage: ReplyStage) -> Bool {
            if let code, code != c { return false }
            if let stages, !stages.contains(stage) { return false }
            if let want = enhancedParts {
                guard let reply, reply.count >= want.count, zip(want, reply).allSatisfy({ $0 == $1 }) else { return false }
            }
            if let loweredText, !t.contains(loweredText) { return false }
            return true
        }
    }

    // Sources, named once.
    static let gmail = "Gmail SMTP errors and codes, https://support.google.com/a/answer/3726730"
    static let ses = "Amazon SES, Errors related to the sending quotas, https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html"
    static let m365Limits = "Exchange Online limits (30 messages a minute, 10 000 recipients a day), https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits; SPEC §6"
    static let m365NDR7xx = "Exchange Online NDR 5.7.700–5.7.750, https://learn.microsoft.com/exchange/mail-flow-best-practices/non-delivery-reports-in-exchange-online/fix-error-code-5-7-700-through-5-7-750 (code and meaning from the issue text; not confirmed from the page here)"
    static let postfixSmtpd = "Postfix src/smtpd/smtpd.c (anvil limits: smtpd_client_connection_count_limit / _connection_rate_limit → \"421 4.7.0 <host> Error: too many connections from <addr>\", smtpd_client_message_rate_limit → \"450 4.7.1 Error: too much mail from <addr>\", smtpd_client_recipient_rate_limit → \"450 4.7.1 Error: too many recipients from <addr>\"; before Postfix 2.3 the same texts came as 421 without an enhanced code)"

    /// Checked in order, first match wins; then the fallback (see the file header).
    public static let rules: [Rule] = [
        // ── Recipient-side replies first: a full mailbox or a recipient's own rate is about that
        //    recipient, never our sending quota, whatever words ("over quota", "QuotaExceeded",
        //    "rate limit") it uses.
        Rule(enhanced: "4.2.2", verdict: .deferMessage,
             reason: "the recipient's mailbox is full (over quota); that is the recipient's limit, not ours",
             source: "\(gmail) (452 4.2.2 \"The email account that you tried to reach is over quota\"); RFC 3463 §3.3 X.2.2 mailbox full"),
        Rule(enhanced: "5.2.2", stages: [.rcpt], verdict: .failRecipient,
             reason: "the recipient's mailbox is full",
             source: "RFC 3463 §3.3 X.2.2 mailbox full (permanent as 5.2.2); Exchange's \"552 5.2.2 …QuotaExceededException\" is this case"),
        Rule(enhanced: "5.2.2", verdict: .failMessage,
             reason: "the recipient's mailbox is full",
             source: "RFC 3463 §3.3 X.2.2 mailbox full (permanent as 5.2.2)"),
        Rule(enhanced: "5.2.0", text: "STOREDRV.Deliver", verdict: .failMessage,
             reason: "the recipient's mailbox store refused the delivery (Microsoft 365)",
             source: "Exchange store driver: STOREDRV.Deliver.* is delivery into the recipient's mailbox, STOREDRV.Submission.* is the sender's submission; \(m365Limits)"),

        // ── Sending quotas (even with a 5xx): pause the mailbox until the window can reset.
        Rule(code: 454, text: "Daily message quota exceeded", verdict: .quota,
             reason: "the relay's daily sending quota is used up (Amazon SES)",
             source: "\(ses) (\"454 Throttling failure: Daily message quota exceeded\")"),
        Rule(enhanced: "5.4.5", verdict: .quota,
             reason: "the relay's daily sending limit is used up (Gmail)",
             source: "\(gmail) (550 5.4.5 \"Daily SMTP relay limit exceeded for user\", \"Daily user sending limit exceeded\"); SPEC §6"),
        Rule(code: 554, enhanced: "5.2.0", text: "QuotaExceeded", verdict: .quota,
             reason: "the mailbox's sending quota is used up (Microsoft 365)",
             source: "Microsoft 365 \"554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException\" (10 000 recipients a day); \(m365Limits)"),
        Rule(code: 452, text: "Daily message limit exceeded", verdict: .quota,
             reason: "the relay's daily message limit is used up",
             source: "Emailit SMTP relay, \"452 4.5.3 Daily message limit exceeded\" at MAIL FROM, https://emailit.com/docs/kb/429-rate-limit-exceeded/"),

        // ── Throttling and concurrency: pause new sessions of the mailbox with backoff.
        Rule(code: 432, enhanced: "4.3.2", verdict: .throttle,
             reason: "the relay limits concurrent connections (Microsoft 365)",
             source: "Microsoft 365 \"432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending\" (3 connections a mailbox); SPEC §6"),
        Rule(code: 451, enhanced: "4.7.652", verdict: .throttle,
             reason: "the relay says we exceeded the maximum number of connections (Microsoft 365)",
             source: "Microsoft 365 \"451 4.7.652 The mail server [IP] has exceeded the maximum number of connections. (S3115)\"; SPEC §6"),
        Rule(code: 421, enhanced: "4.7.28", verdict: .throttle,
             reason: "the relay rate-limits us for an unusual rate of mail (Gmail)",
             source: "\(gmail) (421 4.7.28 \"Gmail has detected an unusual rate of unsolicited mail … temporarily rate limited\")"),
        Rule(code: 421, enhanced: "4.7.0", verdict: .throttle,
             reason: "the relay asks us to try again later and closes the connection",
             source: "\(gmail) (421 4.7.0 \"Try again later, closing connection\"); \(postfixSmtpd); SPEC §6"),
        Rule(code: 450, enhanced: "4.2.1", verdict: .throttle,
             reason: "the relay receives mail from us too fast (Gmail)",
             source: "\(gmail) (450 4.2.1 \"… receiving mail at a rate that prevents additional messages from being delivered\", \"Peak SMTP relay limit exceeded for this customer\"); SPEC §6"),
        Rule(code: 454, text: "Throttling failure", verdict: .throttle,
             reason: "the relay's maximum sending rate is exceeded (Amazon SES)",
             source: "\(ses) (\"454 Throttling failure: Maximum sending rate exceeded\"); SPEC §6 (454 4.7.0 Throttling failure)"),
        Rule(code: 421, text: "Message submission rate", verdict: .throttle,
             reason: "the relay limits messages a minute (Exchange MessageRateLimit)",
             source: "Exchange receive connector / throttling policy MessageRateLimit: \"421 4.4.2 Message submission rate for this client has exceeded the configured limit\"; \(m365Limits)"),
        Rule(code: 452, text: "per second limit exceeded", verdict: .throttle,
             reason: "the relay limits messages a second",
             source: "Emailit SMTP relay, \"452 4.4.5 Messages per second limit exceeded\" at MAIL FROM, https://emailit.com/docs/kb/429-rate-limit-exceeded/"),
        Rule(code: 450, text: "too much mail from", verdict: .throttle,
             reason: "the relay limits messages per client and time unit (Postfix anvil)",
             source: postfixSmtpd),
        Rule(code: 421, text: "too much mail from", verdict: .throttle,
             reason: "the relay limits messages per client and time unit (Postfix anvil)",
             source: postfixSmtpd),
        Rule(code: 450, text: "too many recipients from", verdict: .throttle,
             reason: "the relay limits recipients per client and time unit (Postfix anvil)",
             source: postfixSmtpd),
        Rule(code: 421, text: "too many recipients from", verdict: .throttle,
             reason: "the relay limits recipients per client and time unit (Postfix anvil)",
             source: postfixSmtpd),
        Rule(code: 421, text: "too many connections", verdict: .throttle,
             reason: "the relay limits connections from us",
             source: "\(postfixSmtpd); also \"421 Too many concurrent SMTP connections from this IP address\" from other servers"),
        Rule(code: 450, text: "too many connections", verdict: .throttle,
             reason: "the relay limits connections from us",
             source: "\"450 too many connections from your IP (rate controlled)\" (issue text; seen from rate-controlled relays)"),
        Rule(code: 450, text: "too many messages", verdict: .throttle,
             reason: "the relay limits messages per sender and time unit",
             source: "policy-daemon quotas in front of Postfix (Zimbra/cluebringer): \"450 4.7.1 <sender>: Sender address rejected: Deferring: Too many messages from sender in last 60\"; issue text"),
        Rule(code: 421, text: "too many messages", verdict: .throttle,
             reason: "the relay limits messages per client and time unit",
             source: "issue text (Postfix anvil-style \"too many messages\" replies)"),

        // ── Permanent refusals that are about us, not the recipient, even when they come at RCPT.
        Rule(enhanced: "5.7.1", text: "Relay access denied", verdict: .failMessage,
             reason: "the relay refuses to relay for us (check the mailbox's credentials and sender)",
             source: "Postfix src/smtpd/smtpd_check.c: \"554 5.7.1 <rcpt>: Relay access denied\" at RCPT (relay_domains / permit_sasl_authenticated)"),
        Rule(code: 554, text: "Email address is not verified", verdict: .failMessage,
             reason: "the relay has not verified this sender identity (Amazon SES)",
             source: "Amazon SES \"554 Message rejected: Email address is not verified. The following identities failed the check in region …\" (after end of data), https://repost.aws/knowledge-center/ses-554-400-message-rejected-error"),
        Rule(enhanced: "5.7.708", verdict: .failMessage,
             reason: "the relay does not accept traffic from this IP (Microsoft 365)",
             source: "\(m365NDR7xx): 550 5.7.708 \"Access denied, traffic not accepted from this IP\""),
        Rule(enhanced: "5.7.750", verdict: .failMessage,
             reason: "the relay blocks sending from unregistered domains (Microsoft 365)",
             source: "\(m365NDR7xx): 550 5.7.750 \"Client blocked from sending from unregistered domains\""),
        Rule(code: 535, verdict: .failMessage,
             reason: "the relay refused our credentials",
             source: "RFC 4954 §6 (535 5.7.8 Authentication credentials invalid)"),

        // ── Named temporary failures that must not pause the mailbox.
        Rule(code: 452, enhanced: "4.5.3", verdict: .deferMessage,
             reason: "the relay takes no more recipients in this transaction",
             source: "RFC 5321 §4.5.3.1.10 (452 too many recipients: the rest are to be sent later); \(gmail) (452 4.5.3 \"Your message has too many recipients\")"),
    ]

    /// Classify one reply. `text` is the reply's text (its lines joined); `enhanced` its RFC 3463
    /// code if it had one.
    public static func classify(code: Int, enhanced: String?, text: String, stage: ReplyStage) -> ReplyClassification {
        if (200...299).contains(code) { return ReplyClassification(verdict: .accepted, reason: "accepted") }
        if let i = matchingRuleIndex(code: code, enhanced: enhanced, text: text, stage: stage) {
            return ReplyClassification(verdict: rules[i].verdict, reason: rules[i].reason)
        }
        return fallback(code: code, stage: stage)
    }

    /// The index of the row that decides this reply, nil for the fallback (and for every 2xx).
    static func matchingRuleIndex(code: Int, enhanced: String?, text: String, stage: ReplyStage) -> Int? {
        if (200...299).contains(code) { return nil }
        let lowered = text.lowercased()
        let parts = enhanced?.split(separator: ".", omittingEmptySubsequences: false)
        return rules.firstIndex { $0.matches(code: code, enhancedParts: parts, loweredText: lowered, stage: stage) }
    }

    /// RFC 5321 §4.2.1: the first digit says permanent (5), temporary (4) or done (2).
    static func fallback(code: Int, stage: ReplyStage) -> ReplyClassification {
        switch code {
        case 200...299:
            return ReplyClassification(verdict: .accepted, reason: "accepted")
        case 500...599 where stage == .rcpt:
            return ReplyClassification(verdict: .failRecipient, reason: "the relay refused this recipient permanently")
        case 500...599:
            return ReplyClassification(verdict: .failMessage, reason: "the relay refused the message permanently")
        case 400...499:
            return ReplyClassification(verdict: .deferMessage, reason: "the relay reported a temporary failure")
        default:
            return ReplyClassification(verdict: .deferMessage, reason: "the relay gave an unexpected reply (\(code))")
        }
    }
}
