/// ReplyClassifier: real relay replies, case by case (SPEC §6). Each case names where its reply
/// comes from; the counter-examples are replies that look like a sending limit and are not.
import Testing
@testable import Relay

struct ReplyCase: Sendable, CustomTestStringConvertible {
    let code: Int
    let enhanced: String?
    let text: String
    let stage: ReplyStage
    let expected: ReplyVerdict
    /// Where the reply comes from.
    let source: String

    init(_ code: Int, _ enhanced: String?, _ text: String, _ stage: ReplyStage, _ expected: ReplyVerdict, source: String) {
        self.code = code
        self.enhanced = enhanced
        self.text = text
        self.stage = stage
        self.expected = expected
        self.source = source
    }

    var testDescription: String { "\(code) \(enhanced ?? "-") \"\(text.prefix(48))\" at \(stage) → \(expected)" }
}

let gmail = "Gmail SMTP errors and codes, support.google.com/a/answer/3726730"
let ses = "Amazon SES sending-quota errors, docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html"
let postfix = "Postfix src/smtpd/smtpd.c"

/// Throttling and concurrency: pause new sessions of the mailbox, requeue without an attempt.
let throttleCases: [ReplyCase] = [
    ReplyCase(432, "4.3.2", "4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information. [Hostname=DM4PR18MB4126.namprd18.prod.outlook.com]",
              .mail, .throttle, source: "Microsoft 365, aka.ms/concurrent_sending; SPEC §6"),
    ReplyCase(432, "4.3.2", "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
              .endOfData, .throttle, source: "Microsoft 365 SMTP AUTH submission (3 concurrent connections)"),
    ReplyCase(421, "4.7.0", "4.7.0 Try again later, closing connection. (EHLO) - gsmtp",
              .session, .throttle, source: gmail),
    ReplyCase(421, "4.7.0", "4.7.0 mail.example.org Error: too many connections from 192.0.2.7",
              .session, .throttle, source: "\(postfix), smtpd_client_connection_count_limit"),
    ReplyCase(450, "4.2.1", "4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later time.",
              .rcpt, .throttle, source: gmail),
    ReplyCase(450, "4.2.1", "4.2.1 Peak SMTP relay limit exceeded for this customer. This is a temporary error.",
              .mail, .throttle, source: gmail),
    ReplyCase(451, "4.7.652", "4.7.652 The mail server [192.0.2.7] has exceeded the maximum number of connections. (S3115) [BN3PEPF0000B06D.namprd21.prod.outlook.com]",
              .session, .throttle, source: "Microsoft 365; SPEC §6"),
    ReplyCase(454, "4.7.0", "4.7.0 Throttling failure: Maximum sending rate exceeded.",
              .mail, .throttle, source: "SPEC §6 (454 4.7.0 Throttling failure)"),
    ReplyCase(454, nil, "Throttling failure: Maximum sending rate exceeded.",
              .endOfData, .throttle, source: ses),
    ReplyCase(421, "4.7.28", "4.7.28 Gmail has detected an unusual rate of unsolicited mail. To protect our users from spam, mail has been temporarily rate limited.",
              .endOfData, .throttle, source: gmail),
    ReplyCase(450, "4.7.1", "4.7.1 Error: too much mail from 192.0.2.7",
              .mail, .throttle, source: "\(postfix), smtpd_client_message_rate_limit"),
    ReplyCase(421, nil, "mail.example.org Error: too much mail from 192.0.2.7",
              .mail, .throttle, source: "\(postfix) before 2.3 (no enhanced code)"),
    ReplyCase(450, "4.7.1", "4.7.1 Error: too many recipients from 192.0.2.7",
              .rcpt, .throttle, source: "\(postfix), smtpd_client_recipient_rate_limit"),
    ReplyCase(421, nil, "mail.example.org Error: too many recipients from 192.0.2.7",
              .rcpt, .throttle, source: "\(postfix) before 2.3"),
    ReplyCase(421, nil, "mxcmd09.ad.aruba.it bizsmtp aeDm1w01G0T9uPK01 Too many connections, try later.",
              .session, .throttle, source: "Aruba relay, a bounce quoted on pastebin.com/muHQMW6i"),
    ReplyCase(450, nil, "too many connections from your IP (rate controlled)",
              .rcpt, .throttle, source: "a rate-controlled relay, gist.github.com/pbruna/4595838"),
    ReplyCase(450, "4.7.1", "4.7.1 <app@example.org>: Sender address rejected: Deferring: Too many messages from sender in last 60",
              .rcpt, .throttle, source: "policy daemon quotas in front of Postfix (Zimbra), pastebin.com/V80548k6"),
    ReplyCase(421, nil, "mail.example.org Error: too many messages from 192.0.2.7",
              .mail, .throttle, source: "issue text (Postfix anvil \"too many messages\")"),
    ReplyCase(421, "4.4.2", "4.4.2 Message submission rate for this client has exceeded the configured limit",
              .endOfData, .throttle, source: "Exchange MessageRateLimit (Microsoft 365: 30 messages a minute)"),
    ReplyCase(452, "4.4.5", "4.4.5 Messages per second limit exceeded",
              .mail, .throttle, source: "Emailit SMTP relay docs, emailit.com/docs/kb/429-rate-limit-exceeded"),
]

/// Sending quotas, even with a 5xx: pause the mailbox until the window can have reset.
let quotaCases: [ReplyCase] = [
    ReplyCase(454, nil, "Throttling failure: Daily message quota exceeded.",
              .mail, .quota, source: ses),
    ReplyCase(454, "4.7.0", "4.7.0 Throttling failure: Daily message quota exceeded.",
              .endOfData, .quota, source: "\(ses); SPEC §6"),
    ReplyCase(454, nil, "THROTTLING FAILURE: DAILY MESSAGE QUOTA EXCEEDED",
              .mail, .quota, source: "\(ses) (text fragments are case-insensitive)"),
    ReplyCase(550, "5.4.5", "5.4.5 Daily SMTP relay limit exceeded for user. For more information on SMTP relay sending limits please contact your administrator.",
              .mail, .quota, source: "\(gmail); SPEC §6"),
    ReplyCase(550, "5.4.5", "5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852 - gsmtp",
              .endOfData, .quota, source: gmail),
    ReplyCase(550, "5.4.5", "5.4.5 <someone@example.net>: Recipient address rejected: Domain Sending Quota Exceeded",
              .rcpt, .quota, source: "a Postfix-based provider's sender quota at RCPT, pastebin.com/v3bkLPK5 (a quota, not a recipient failure)"),
    ReplyCase(554, "5.2.0", "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message Cannot submit message.",
              .endOfData, .quota, source: "Microsoft 365 (10 000 recipients a day); SPEC §6"),
    ReplyCase(452, "4.5.3", "4.5.3 Daily message limit exceeded",
              .mail, .quota, source: "Emailit SMTP relay docs, emailit.com/docs/kb/429-rate-limit-exceeded"),
]

/// Replies that look like a limit and are not: they must neither throttle nor quota-pause.
let counterExampleCases: [ReplyCase] = [
    ReplyCase(452, "4.2.2", "4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
              .rcpt, .deferMessage, source: "\(gmail): the RECIPIENT's mailbox is full"),
    ReplyCase(452, "4.2.2", "4.2.2 The email account that you tried to reach is over quota.",
              .endOfData, .deferMessage, source: gmail),
    ReplyCase(552, "5.2.2", "5.2.2 The email account that you tried to reach is over quota.",
              .rcpt, .failRecipient, source: "RFC 3463 §3.3 X.2.2 mailbox full, permanent"),
    ReplyCase(552, "5.2.2", "5.2.2 The email account that you tried to reach is over quota.",
              .endOfData, .failMessage, source: "RFC 3463 §3.3 X.2.2"),
    ReplyCase(552, "5.2.2", "5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
              .endOfData, .failMessage, source: "Exchange recipient mailbox full (says QuotaExceeded, is not our quota)"),
    ReplyCase(554, "5.2.0", "5.2.0 STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message",
              .endOfData, .failMessage, source: "Exchange store delivery to the recipient's mailbox (Deliver, not Submission)"),
    ReplyCase(554, "5.2.0", "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message",
              .endOfData, .failMessage, source: "Microsoft 365: the mailbox may not send as that sender"),
    ReplyCase(550, "5.1.1", "5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
              .rcpt, .failRecipient, source: "Postfix smtpd_check.c; RFC 3463 X.1.1"),
    ReplyCase(452, "4.5.3", "4.5.3 Your message has too many recipients. For more information regarding Google's sending limits, visit https://support.google.com/mail/answer/6592",
              .rcpt, .deferMessage, source: "\(gmail); RFC 5321 §4.5.3.1.10"),
    ReplyCase(452, "4.5.3", "4.5.3 Error: too many recipients",
              .rcpt, .deferMessage, source: "\(postfix), smtpd_recipient_limit (per message, not a rate)"),
    ReplyCase(454, "4.7.0", "4.7.0 Temporary authentication failure",
              .session, .deferMessage, source: "issue text (Gmail AUTH), RFC 4954 §6"),
    ReplyCase(454, "4.7.0", "4.7.0 Cannot authenticate due to temporary system problem. Try again later.",
              .session, .deferMessage, source: gmail),
    ReplyCase(554, "5.7.1", "5.7.1 <wedge@example.net>: Relay access denied",
              .rcpt, .failMessage, source: "Postfix smtpd_check.c (about us, not the recipient), pastebin.com/cuaSEAAq"),
    ReplyCase(535, "5.7.8", "5.7.8 Username and Password not accepted. For more information, go to https://support.google.com/mail/?p=BadCredentials - gsmtp",
              .session, .failMessage, source: "\(gmail); RFC 4954 §6"),
    ReplyCase(535, "5.7.8", "5.7.8 Error: authentication failed: authentication failure",
              .session, .failMessage, source: "Postfix smtpd_sasl_glue.c"),
    ReplyCase(451, "4.3.0", "4.3.0 Error: queue file write error",
              .endOfData, .deferMessage, source: "Postfix cleanup; RFC 3463 X.3.0"),
    ReplyCase(421, "4.3.2", "4.3.2 Service shutting down, closing transmission channel",
              .mail, .deferMessage, source: "issue text (Postfix shutting down); RFC 3463 X.3.2 (not Microsoft's 432 4.3.2)"),
    ReplyCase(554, nil, "Message rejected: Email address is not verified. The following identities failed the check in region US-EAST-1: app@example.org",
              .endOfData, .failMessage, source: "Amazon SES, repost.aws/knowledge-center/ses-554-400-message-rejected-error"),
    ReplyCase(550, "5.7.708", "5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
              .rcpt, .failMessage, source: "Microsoft 365 NDR 5.7.708 (issue text)"),
    ReplyCase(550, "5.7.750", "5.7.750 Service unavailable. Client blocked from sending from unregistered domains.",
              .rcpt, .failMessage, source: "Microsoft 365 NDR 5.7.750 (issue text)"),
    ReplyCase(421, "4.4.2", "4.4.2 timeout while waiting for the reply to RCPT TO",
              .rcpt, .deferMessage, source: "our own synthetic timeout reply (STYLE 9)"),
    ReplyCase(421, "4.4.2", "4.4.2 mail.example.org Error: timeout exceeded",
              .data, .deferMessage, source: "Postfix smtpd timeout"),
    ReplyCase(432, "4.7.12", "4.7.12 A password transition is needed",
              .session, .deferMessage, source: "RFC 4954 §6 (432 is not always Microsoft's concurrency limit)"),
    ReplyCase(550, "5.7.1", "5.7.1 [192.0.2.7] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked.",
              .endOfData, .failMessage, source: "Gmail, permanent form of 4.7.28 (pastebin.com/SWVXknth)"),
    ReplyCase(451, "4.5.1", "4.5.1 The recipient <someone@example.ru> has exceeded their message rate limit. Try again later.",
              .endOfData, .deferMessage, source: "Yandex: the recipient's rate, not ours (pastebin.com/pEBS5hy4)"),
    ReplyCase(452, "4.3.1", "4.3.1 Insufficient system storage",
              .mail, .deferMessage, source: "Postfix smtpd queue_minfree; RFC 3463 X.3.1"),
    ReplyCase(552, nil, "<jdoe@example.com>... Mail quota exceeded",
              .rcpt, .failRecipient, source: "a recipient's full mailbox without an enhanced code (chilipepperweb.net/email-support/mail-quota-exceeded.html)"),
]

/// No row: the first digit decides (RFC 5321 §4.2.1).
let fallbackCases: [ReplyCase] = [
    ReplyCase(550, nil, "no such user", .rcpt, .failRecipient, source: "RFC 5321 §4.2.1"),
    ReplyCase(553, "5.1.3", "5.1.3 bad recipient address syntax", .rcpt, .failRecipient, source: "RFC 5321 §4.2.1"),
    ReplyCase(550, nil, "sender rejected", .mail, .failMessage, source: "RFC 5321 §4.2.1"),
    ReplyCase(554, nil, "Transaction failed", .endOfData, .failMessage, source: "RFC 5321 §4.2.1"),
    ReplyCase(503, "5.5.1", "5.5.1 Error: need RCPT command", .data, .failMessage, source: "RFC 5321 §4.2.1"),
    ReplyCase(554, nil, "mx.example.org ESMTP not accepting messages", .session, .failMessage, source: "RFC 5321 §3.1"),
    ReplyCase(450, nil, "mailbox busy", .rcpt, .deferMessage, source: "RFC 5321 §4.2.1"),
    ReplyCase(421, nil, "mx.example.org Service not available, closing transmission channel", .session, .deferMessage, source: "RFC 5321 §4.2.1"),
    ReplyCase(451, nil, "Requested action aborted: local error in processing", .endOfData, .deferMessage, source: "RFC 5321 §4.2.1"),
    ReplyCase(334, nil, "VXNlcm5hbWU6", .endOfData, .deferMessage, source: "an unexpected 3xx is not accepted"),
    ReplyCase(354, nil, "End data with <CR><LF>.<CR><LF>", .endOfData, .deferMessage, source: "an unexpected 3xx is not accepted"),
    ReplyCase(0, nil, "", .session, .deferMessage, source: "out of range"),
    ReplyCase(199, nil, "", .mail, .deferMessage, source: "out of range"),
    ReplyCase(600, nil, "Throttling failure: Daily message quota exceeded", .mail, .deferMessage, source: "out of range: no row has code 600"),
]

/// 2xx is accepted whatever the text says; no row ever matches it.
let acceptedCases: [ReplyCase] = [
    ReplyCase(250, "2.0.0", "2.0.0 OK 1700000000 a1si123 - gsmtp", .endOfData, .accepted, source: gmail),
    ReplyCase(250, nil, "Ok: queued as 4Xyz; Throttling failure: Daily message quota exceeded", .endOfData, .accepted, source: "2xx wins"),
    ReplyCase(250, "2.1.5", "2.1.5 Ok, too many connections from you but fine", .rcpt, .accepted, source: "2xx wins"),
    ReplyCase(220, nil, "mx.example.org ESMTP too much mail from 192.0.2.7", .session, .accepted, source: "2xx wins"),
    ReplyCase(235, "2.7.0", "2.7.0 Authentication successful", .session, .accepted, source: "RFC 4954 §6"),
    ReplyCase(251, nil, "User not local; will forward", .rcpt, .accepted, source: "RFC 5321 §4.2.2"),
    ReplyCase(299, "4.2.1", "4.2.1", .mail, .accepted, source: "2xx wins even with a 4.x enhanced code"),
]

let allCases = throttleCases + quotaCases + counterExampleCases + fallbackCases + acceptedCases

@Suite struct ReplyClassifierTests {
    @Test(arguments: throttleCases)
    func throttling(_ c: ReplyCase) { check(c) }

    @Test(arguments: quotaCases)
    func quotas(_ c: ReplyCase) { check(c) }

    @Test(arguments: counterExampleCases)
    func counterExamples(_ c: ReplyCase) {
        check(c)
        let v = ReplyClassifier.classify(code: c.code, enhanced: c.enhanced, text: c.text, stage: c.stage).verdict
        #expect(v != .throttle && v != .quota)
    }

    @Test(arguments: fallbackCases)
    func fallbacks(_ c: ReplyCase) {
        check(c)
        #expect(ReplyClassifier.matchingRuleIndex(code: c.code, enhanced: c.enhanced, text: c.text, stage: c.stage) == nil,
                "no row should decide this reply")
    }

    @Test(arguments: acceptedCases)
    func twoHundredsAreAccepted(_ c: ReplyCase) {
        check(c)
        #expect(ReplyClassifier.matchingRuleIndex(code: c.code, enhanced: c.enhanced, text: c.text, stage: c.stage) == nil)
    }

    func check(_ c: ReplyCase, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!c.source.isEmpty, sourceLocation: sourceLocation)
        let got = ReplyClassifier.classify(code: c.code, enhanced: c.enhanced, text: c.text, stage: c.stage)
        #expect(got.verdict == c.expected, "\(c.testDescription) (\(c.source)): \(got.reason)", sourceLocation: sourceLocation)
        #expect(!got.reason.isEmpty, sourceLocation: sourceLocation)
        if let i = ReplyClassifier.matchingRuleIndex(code: c.code, enhanced: c.enhanced, text: c.text, stage: c.stage) {
            #expect(got.reason == ReplyClassifier.rules[i].reason, sourceLocation: sourceLocation)
        }
    }

    /// Every row of the table is exercised by at least one reply above.
    @Test func everyRowHasACase() {
        var hit = Set<Int>()
        for c in allCases {
            if let i = ReplyClassifier.matchingRuleIndex(code: c.code, enhanced: c.enhanced, text: c.text, stage: c.stage) { hit.insert(i) }
        }
        for (i, rule) in ReplyClassifier.rules.enumerated() {
            #expect(hit.contains(i), "row \(i) (\(rule.code.map(String.init) ?? "any") \(rule.enhanced ?? "-") \(rule.text ?? "-")) has no test case")
        }
    }

    @Test func everyRowNamesItsSourceAndReasonAndNeverA2xx() {
        for rule in ReplyClassifier.rules {
            #expect(!rule.source.isEmpty)
            #expect(!rule.reason.isEmpty)
            #expect(rule.verdict != .accepted)
            #expect(rule.code.map { !(200...299).contains($0) } ?? true)
            #expect(rule.code != nil || rule.enhanced != nil, "a row on text alone would catch 5xx and 4xx alike")
        }
    }

    @Test(arguments: [
        // (row's prefix, reply's code, matches)
        ("4.7", "4.7.652", true),
        ("4.7.652", "4.7.652", true),
        ("4.7.6", "4.7.652", false),
        ("4.7.0", "4.7.00", false),
        ("4.7.0", "4.7.0", true),
        ("5.4.5", "5.4.50", false),
        ("4.3.2", "4.3", false),
    ])
    func enhancedCodesMatchByWholeComponents(prefix: String, reply: String, matches: Bool) {
        let rule = ReplyClassifier.Rule(enhanced: prefix, verdict: .throttle, reason: "r", source: "s")
        let parts = reply.split(separator: ".", omittingEmptySubsequences: false)
        #expect(rule.matches(code: 451, enhancedParts: parts, loweredText: "", stage: .mail) == matches)
    }

    @Test func aRowWithAnEnhancedCodeNeedsOne() {
        let rule = ReplyClassifier.Rule(code: 421, enhanced: "4.7.0", verdict: .throttle, reason: "r", source: "s")
        #expect(!rule.matches(code: 421, enhancedParts: nil, loweredText: "try again later", stage: .session))
        // So a bare "421 Service not available" is a plain deferral.
        #expect(ReplyClassifier.classify(code: 421, enhanced: nil, text: "Try again later", stage: .session).verdict == .deferMessage)
    }

    @Test func stagesRestrictARow() {
        // 5.2.2 fails the recipient at RCPT and the message after DATA.
        for (stage, verdict) in [(ReplyStage.rcpt, ReplyVerdict.failRecipient), (.mail, .failMessage), (.data, .failMessage), (.endOfData, .failMessage)] {
            #expect(ReplyClassifier.classify(code: 552, enhanced: "5.2.2", text: "5.2.2 mailbox full", stage: stage).verdict == verdict)
        }
    }

    @Test func throttleRowsMatchAtEveryStage() {
        for stage in [ReplyStage.session, .mail, .rcpt, .data, .endOfData] {
            #expect(ReplyClassifier.classify(code: 432, enhanced: "4.3.2", text: "4.3.2 Concurrent connections limit exceeded", stage: stage).verdict == .throttle)
            #expect(ReplyClassifier.classify(code: 550, enhanced: "5.4.5", text: "5.4.5 Daily user sending limit exceeded", stage: stage).verdict == .quota)
        }
    }
}
