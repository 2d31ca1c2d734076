/// SessionMachine: one outbound SMTP session as a pure state machine (STYLE 6). Inputs are
/// events — a reply, the TLS handshake done, a message to send, quit, a timeout or a lost
/// connection — and each returns the actions the driver performs: bytes to send, "start TLS
/// now", "ready for a message", the outcome of the current message, close. No I/O, no clock.
///
/// Sequence (RFC 5321 §3, §4.1): greeting → EHLO → [STARTTLS (RFC 3207) → EHLO again] →
/// [AUTH PLAIN or LOGIN (RFC 4954)] → { MAIL FROM → RCPT TO → DATA → message → "." } … → QUIT.
/// With PIPELINING (RFC 2920) MAIL, RCPT and DATA go in one write and every reply is still
/// checked in order; a 354 to DATA after every recipient was refused (a server that "lies")
/// is answered with a lone "." and the transaction counts as refused. The next message's
/// MAIL, RCPT and DATA may follow a message's end of data in the same write (§3.1: message
/// content may open a group): after sending the data the machine says `.pipelineNext`, and a
/// message submitted then is begun at once — one round trip per message instead of two. Its
/// replies follow the end-of-data reply in order; if the session breaks, both are deferred. After a refused
/// transaction RSET restores a clean state; after a completed one none is needed (the end of
/// data resets it, §4.1.1.4). Capabilities from before STARTTLS are forgotten (§4.2 of 3207).
///
/// Security: `starttls=required` never downgrades — a relay that does not offer STARTTLS, or
/// refuses it, gets no MAIL FROM; credentials are never sent without TLS unless the mailbox
/// says `starttls=off` explicitly.
///
/// Per-state timeouts are RFC 5321 §4.5.3.2's (the driver caps them with
/// `--smtp-timeout-seconds`); every failure names what we were doing.
import MIME   // Encodings.base64 for AUTH

public struct SessionMachine: Sendable {
    public enum Security: Sendable, Equatable {
        /// smtps:// — TLS from the first byte (the driver handshakes before the greeting).
        case implicitTLS
        /// smtp:// — STARTTLS; `required: false` is `starttls=opportunistic`.
        case startTLS(required: Bool)
        /// smtp://…?starttls=off — plain text, by explicit choice.
        case plain
    }

    public struct Credentials: Sendable, Equatable {
        public var user: String
        public var password: String
        public init(user: String, password: String) {
            self.user = user
            self.password = password
        }
    }

    public struct Policy: Sendable {
        public var security: Security
        public var credentials: Credentials?
        /// The EHLO argument (our host name or an address literal).
        public var clientName: String
        public init(security: Security, credentials: Credentials?, clientName: String) {
            self.security = security
            self.credentials = credentials
            self.clientName = clientName
        }
    }

    public enum Event: Sendable {
        case reply(SMTPReply)
        /// The STARTTLS handshake finished (after `.startTLS`).
        case tlsEstablished
        /// A message to send; valid after `.ready`, and right after `.pipelineNext` for a message
        /// `preflight` has nothing against.
        case submit(Envelope)
        case quit
        /// The state's timeout passed.
        case timeout
        /// The connection broke (reset, EOF, TLS failure, garbage from the server): `reason` says how.
        case lost(String)
    }

    public enum Action: Sendable, Equatable {
        case send([UInt8])
        /// Start the TLS handshake on this socket now; report `.tlsEstablished` (or `.lost`).
        case startTLS
        /// Idle and ready: submit a message or quit.
        case ready
        /// A message's data went out and the relay pipelines: a message submitted now goes
        /// right behind it (optional — without one the machine becomes `.ready` as usual).
        case pipelineNext
        /// The outcome of the oldest message submitted and not yet reported (at most two are
        /// outstanding: one awaiting its end-of-data reply, one pipelined behind it). On `.sent`
        /// commit it before anything else.
        /// `recipients`: each envelope recipient's RCPT reply, in order, once all came (nil
        /// when the transaction ended before — a refused MAIL, a lost connection).
        case outcome(DeliveryOutcome, recipients: [SMTPReply]?)
        /// Close the connection. `failure` is set when the session ended by a failure.
        case close(failure: SMTPReply?)
    }

    enum Step: Sendable { case mail, rcpt, data }

    public struct Transaction: Sendable {
        var envelope: Envelope
        var pending: [Step]
        /// The first refusal (MAIL, DATA, or every RCPT); decides the outcome.
        var refusal: SMTPReply?
        /// The RCPT replies so far, in envelope order.
        var rcptReplies: [SMTPReply] = []
        var recipientReplies: [SMTPReply]? { rcptReplies.count == envelope.recipients.count ? rcptReplies : nil }
        var pipelined: Bool
        /// A 354 arrived although the transaction was refused: we sent a lone ".".
        var abandoned = false
    }

    public enum State: Sendable {
        case greeting
        case ehlo(afterTLS: Bool)
        case helo
        case startTLS
        case tlsHandshake
        /// Waiting for 235 (after AUTH PLAIN with its initial response, or the LOGIN password).
        case authResult
        /// AUTH LOGIN sent: waiting for the 334 that asks for the user name.
        case authLoginUser
        /// User name sent: waiting for the 334 that asks for the password.
        case authLoginPassword
        case ready
        case transaction(Transaction)
        /// End of data sent; waiting for the final reply. RFC 5321 §4.5.3.2.6: if the
        /// connection breaks now, the relay may already have accepted the message — the retry
        /// that follows can deliver it twice (with the same Message-ID). This is the one
        /// duplicate window; on the final 250 the outcome is reported (and committed) first.
        /// `next`: the message pipelined behind it (its MAIL, RCPT and DATA already sent).
        case data(Transaction, next: Transaction?)
        case rset
        case quit
        case closed

        /// What we were doing, for every error message (STYLE 7).
        public var activity: String {
            switch self {
            case .greeting: return "waiting for the greeting"
            case .ehlo: return "sending EHLO"
            case .helo: return "sending HELO"
            case .startTLS: return "sending STARTTLS"
            case .tlsHandshake: return "in the TLS handshake"
            case .authResult, .authLoginUser, .authLoginPassword: return "authenticating"
            case .ready: return "idle"
            case .transaction(let t):
                switch t.pending.first {
                case .mail?: return "sending MAIL FROM"
                case .rcpt?: return "sending RCPT TO"
                case .data?, nil: return "sending DATA"
                }
            case .data: return "waiting for the reply to the end of data"
            case .rset: return "sending RSET"
            case .quit: return "sending QUIT"
            case .closed: return "closed"
            }
        }

        /// RFC 5321 §4.5.3.2 timeouts in seconds; nil when not waiting for the server.
        public var timeoutSeconds: Int? {
            switch self {
            case .greeting: return 300            // §4.5.3.2.1 initial 220: 5 minutes
            case .ehlo, .helo, .startTLS, .tlsHandshake, .authResult, .authLoginUser, .authLoginPassword, .rset, .quit:
                return 300                        // §4.5.3.2.7 (server timeout) as the bound for other commands
            case .transaction(let t):
                switch t.pending.first {
                case .mail?, .rcpt?: return 300  // §4.5.3.2.2 MAIL, §4.5.3.2.3 RCPT: 5 minutes
                case .data?, nil: return 120      // §4.5.3.2.4 DATA initiation: 2 minutes
                }
            case .data: return 600                // §4.5.3.2.6 DATA termination: 10 minutes
            case .ready, .closed: return nil
            }
        }

        var name: String {
            switch self {
            case .transaction: return "transaction"
            case .data: return "data"
            default: return "\(self)"
            }
        }
    }

    public private(set) var state: State = .greeting
    public private(set) var capabilities = Capabilities()
    /// TLS is in place (implicit from the start, or after STARTTLS).
    public private(set) var isSecure: Bool
    /// AUTH succeeded.
    public private(set) var isAuthenticated = false
    public let policy: Policy

    public init(policy: Policy) {
        self.policy = policy
        isSecure = policy.security == .implicitTLS
    }

    /// A short state name for `old -> new` logs.
    public var stateName: String { state.name }

    // MARK: Events

    public mutating func receive(_ event: Event) -> [Action] {
        switch event {
        case .reply(let r): return handle(r)
        case .tlsEstablished:
            guard case .tlsHandshake = state else { preconditionFailure("tlsEstablished in state \(state.name)") }
            isSecure = true
            capabilities = Capabilities()   // RFC 3207 §4.2: forget what was said in clear
            return sendEHLO(afterTLS: true)
        case .submit(let envelope):
            switch state {
            case .ready:
                return begin(envelope)
            case .data(let t, nil) where canPipelineNext:
                precondition(preflight(envelope) == nil, "pipelined submit of a message preflight refuses")
                let (next, actions) = startTransaction(envelope)
                state = .data(t, next: next)
                return actions
            default:
                preconditionFailure("submit in state \(state.name)")
            }
        case .quit:
            switch state {
            case .closed, .quit: return []
            case .ready:
                state = .quit
                return [.send(Array("QUIT\r\n".utf8))]
            default:
                return fail(.local(421, "4.4.2", "session abandoned while \(state.activity)"))
            }
        case .timeout:
            return fail(.local(421, "4.4.2", "timeout while \(state.activity)"), replyMissing: true)
        case .lost(let reason):
            if case .quit = state {
                state = .closed
                return [.close(failure: nil)]
            }
            return fail(.local(421, "4.4.2", "\(reason) while \(state.activity)"), replyMissing: true)
        }
    }

    /// A session-level failure: the current message (if any) is deferred, the session closed.
    /// `replyMissing` (a timeout, a lost connection): a message whose end of data went out is
    /// `uncertain` — the relay may have taken it (§4.5.3.2.6); a message pipelined behind it
    /// never had its data sent and is deferred. A reply (a 421) is an answer: deferred.
    mutating func fail(_ reply: SMTPReply, replyMissing: Bool = false) -> [Action] {
        var actions: [Action] = []
        switch state {
        case .transaction(let t):
            actions.append(.outcome(.deferred(reply), recipients: t.recipientReplies))
        case .data(let t, let next):
            let uncertain = replyMissing && !t.abandoned
            actions.append(.outcome(uncertain ? .uncertain(reply) : .deferred(reply), recipients: t.recipientReplies))
            if let next { actions.append(.outcome(.deferred(reply), recipients: next.recipientReplies)) }
        case .closed:
            return []
        default:
            break
        }
        state = .closed
        actions.append(.close(failure: reply))
        return actions
    }

    // MARK: Replies

    mutating func handle(_ r: SMTPReply) -> [Action] {
        // 421: the server is closing the channel, in any state (RFC 5321 §3.8).
        if r.code == 421, !isQuitting {
            return fail(r)
        }
        switch state {
        case .greeting:
            guard r.code == 220 else { return fail(r) }
            return sendEHLO(afterTLS: false)

        case .ehlo(let afterTLS):
            guard r.code == 250 else {
                // RFC 5321 §3.2: fall back to HELO — only when nothing EHLO-only is needed.
                if r.isPermanent, !afterTLS, policy.credentials == nil, policy.security != .startTLS(required: true), !isSecure {
                    state = .helo
                    return [.send(Array("HELO \(policy.clientName)\r\n".utf8))]
                }
                return fail(r)
            }
            capabilities = Capabilities(ehlo: r)
            if !isSecure, case .startTLS(let required) = policy.security {
                if capabilities.startTLS {
                    state = .startTLS
                    return [.send(Array("STARTTLS\r\n".utf8))]
                }
                if required {
                    return fail(.local(421, "4.7.0", "the relay does not offer STARTTLS (starttls=required)"))
                }
            }
            return authenticateOrReady()

        case .helo:
            guard r.code == 250 else { return fail(r) }
            capabilities = Capabilities()
            return becomeReady()

        case .startTLS:
            guard r.code == 220 else {
                if policy.security == .startTLS(required: false) && policy.credentials == nil {
                    return becomeReady()   // opportunistic: carry on in clear
                }
                return fail(.local(421, "4.7.0", "the relay refused STARTTLS: \(r)"))
            }
            state = .tlsHandshake
            return [.startTLS]

        case .tlsHandshake:
            // Plaintext after "220 go ahead" and before the handshake: command injection
            // (CVE-2011-0411 class); drop the session.
            return fail(.local(421, "4.7.0", "the relay sent plaintext after agreeing to STARTTLS"))

        case .authResult:
            guard r.code == 235 else { return fail(authFailure(r)) }
            isAuthenticated = true
            return becomeReady()

        case .authLoginUser:
            guard r.code == 334, let c = policy.credentials else { return fail(authFailure(r)) }
            state = .authLoginPassword
            return [.send(Array((Encodings.base64(Array(c.user.utf8)) + "\r\n").utf8))]

        case .authLoginPassword:
            guard r.code == 334, let c = policy.credentials else { return fail(authFailure(r)) }
            state = .authResult
            return [.send(Array((Encodings.base64(Array(c.password.utf8)) + "\r\n").utf8))]

        case .ready:
            // Unsolicited reply while idle (other than 421, handled above): protocol error.
            return fail(.local(421, "4.5.0", "unexpected reply while idle: \(r)"))

        case .transaction(var t):
            return transactionReply(r, &t)

        case .data(let t, let next):
            if t.abandoned {
                // The reply to our lone "."; the outcome is the refusal already seen.
                let refusal = t.refusal ?? r
                state = .rset
                return [.outcome(DeliveryOutcome.classify(refusal).asFailure, recipients: t.recipientReplies), .send(Array("RSET\r\n".utf8))]
            }
            let outcome = DeliveryOutcome.classify(r)
            if let next {
                // Whatever this reply was, the relay is in a clean state and reads the next
                // transaction's commands, already sent.
                state = .transaction(next)
                return [.outcome(outcome, recipients: t.recipientReplies)]
            }
            return becomeReady(after: [.outcome(outcome, recipients: t.recipientReplies)])

        case .rset:
            guard r.code == 250 else { return fail(r) }
            return becomeReady()

        case .quit:
            state = .closed
            return [.close(failure: nil)]

        case .closed:
            return []
        }
    }

    /// Waiting for the reply to a message's end of data, with nothing pipelined behind it, on a
    /// relay that pipelines: `.submit` now begins the next message in the same write group.
    public var canPipelineNext: Bool {
        if case .data(let t, nil) = state { return capabilities.pipelining && !t.abandoned }
        return false
    }

    /// QUIT sent; waiting for 221.
    public var isQuitting: Bool {
        if case .quit = state { return true }
        return false
    }

    func authFailure(_ r: SMTPReply) -> SMTPReply {
        // An authentication failure is deferred (a wrong password is fixed by the operator,
        // the queue keeps the messages meanwhile) — Postfix does the same.
        let text = r.lines.joined(separator: " / ")
        return .local(454, "4.7.8", "authentication failed: \(r.code) \(text)")
    }

    mutating func sendEHLO(afterTLS: Bool) -> [Action] {
        state = .ehlo(afterTLS: afterTLS)
        return [.send(Array("EHLO \(policy.clientName)\r\n".utf8))]
    }

    mutating func authenticateOrReady() -> [Action] {
        guard let c = policy.credentials else { return becomeReady() }
        if !isSecure && policy.security != .plain {
            return fail(.local(421, "4.7.0", "refusing to send credentials without TLS (the relay offered no STARTTLS)"))
        }
        if capabilities.authMechanisms.contains("PLAIN") {
            state = .authResult
            var blob: [UInt8] = [0]
            blob += Array(c.user.utf8)
            blob.append(0)
            blob += Array(c.password.utf8)
            return [.send(Array(("AUTH PLAIN " + Encodings.base64(blob) + "\r\n").utf8))]
        }
        if capabilities.authMechanisms.contains("LOGIN") {
            state = .authLoginUser
            return [.send(Array("AUTH LOGIN\r\n".utf8))]
        }
        return fail(.local(421, "4.7.0", "the relay offers neither AUTH PLAIN nor AUTH LOGIN (offered: \(capabilities.authMechanisms.sorted().joined(separator: " ")))"))
    }

    mutating func becomeReady(after actions: [Action] = []) -> [Action] {
        state = .ready
        return actions + [.ready]
    }

    // MARK: Transaction

    /// Why this relay cannot take the message, decided before a byte is sent (nil: go ahead).
    public func preflight(_ e: Envelope) -> DeliveryOutcome? {
        // Defence in depth against command injection: addresses were checked at acceptance.
        if SessionMachine.unsafeInCommand(e.from) || e.recipients.contains(where: SessionMachine.unsafeInCommand) {
            return .failed(.local(553, "5.1.3", "address not allowed in an SMTP command"))
        }
        if e.needsSMTPUTF8 && !capabilities.smtpUTF8 {
            // RFC 6531 §3.2: without the extension the message cannot be carried.
            return .failed(.local(553, "5.6.7", "the relay does not support SMTPUTF8, which this address needs"))
        }
        if let limit = capabilities.size, limit > 0, e.message.count > limit {
            return .failed(.local(552, "5.3.4", "message of \(e.message.count) octets exceeds the relay's SIZE \(limit)"))
        }
        return nil
    }

    mutating func begin(_ e: Envelope) -> [Action] {
        if let refusal = preflight(e) { return becomeReady(after: [.outcome(refusal, recipients: nil)]) }
        let (t, actions) = startTransaction(e)
        state = .transaction(t)
        return actions
    }

    /// The transaction of a message `preflight` passed, and its first write: MAIL — with
    /// PIPELINING, MAIL, RCPT and DATA together.
    func startTransaction(_ e: Envelope) -> (Transaction, [Action]) {
        // Written as bytes (string concatenation cost ~5 000 instructions a message).
        var command: [UInt8] = []
        command.reserveCapacity(e.from.utf8.count + e.recipients.reduce(0) { $0 + $1.utf8.count + 12 } + 80)
        command.append(utf8: "MAIL FROM:<"); command.append(utf8: e.from); command.append(utf8: ">")
        if capabilities.size != nil { command.append(utf8: " SIZE="); command.append(utf8: String(e.message.count)) }
        if e.has8BitContent && capabilities.eightBitMIME { command.append(utf8: " BODY=8BITMIME") }
        if e.needsSMTPUTF8 { command.append(utf8: " SMTPUTF8") }
        command.append(utf8: "\r\n")
        if capabilities.pipelining {
            for to in e.recipients { command.append(utf8: "RCPT TO:<"); command.append(utf8: to); command.append(utf8: ">\r\n") }
            command.append(utf8: "DATA\r\n")
            let pending = [Step.mail] + Array(repeating: Step.rcpt, count: e.recipients.count) + [.data]
            return (Transaction(envelope: e, pending: pending, refusal: nil, pipelined: true), [.send(command)])
        }
        return (Transaction(envelope: e, pending: [.mail], refusal: nil, pipelined: false), [.send(command)])
    }

    mutating func transactionReply(_ r: SMTPReply, _ t: inout Transaction) -> [Action] {
        guard let step = t.pending.first else { preconditionFailure("transaction with nothing pending") }
        t.pending.removeFirst()
        switch step {
        case .mail:
            if r.code != 250 && t.refusal == nil { t.refusal = r.isIntermediate ? .local(451, "4.5.0", "unexpected reply \(r)") : r }
            if t.pipelined {
                state = .transaction(t)
                return []
            }
            if t.refusal != nil { return refuse(t) }
            t.pending = [.rcpt]
            state = .transaction(t)
            return [.send(Array(SessionMachine.rcpt(t.envelope.recipients[0]).utf8))]
        case .rcpt:
            // Each recipient's reply is its own (a refused one does not stop the others, RFC
            // 5321 §3.3); only when the relay took none is the transaction refused.
            let accepted = r.code == 250 || r.code == 251
            t.rcptReplies.append(accepted || !r.isIntermediate ? r : .local(451, "4.5.0", "unexpected reply \(r)"))
            let last = t.rcptReplies.count == t.envelope.recipients.count
            if last && t.refusal == nil && !t.rcptReplies.contains(where: { $0.code == 250 || $0.code == 251 }) {
                t.refusal = t.rcptReplies[0]
            }
            if t.pipelined {
                state = .transaction(t)
                return []
            }
            if !last {
                t.pending = [.rcpt]
                state = .transaction(t)
                return [.send(Array(SessionMachine.rcpt(t.envelope.recipients[t.rcptReplies.count]).utf8))]
            }
            if t.refusal != nil { return refuse(t) }
            t.pending = [.data]
            state = .transaction(t)
            return [.send(Array("DATA\r\n".utf8))]
        case .data:
            if r.code == 354 {
                if t.refusal != nil {
                    // The server accepted DATA although it refused the sender or every
                    // recipient (RFC 2920 §3.1): end the empty transaction with a lone ".".
                    t.abandoned = true
                    state = .data(t, next: nil)
                    return [.send(Array(".\r\n".utf8))]
                }
                state = .data(t, next: nil)
                let content = Action.send(DataEncoding.dotStuffed(t.envelope.message))
                return capabilities.pipelining ? [content, .pipelineNext] : [content]
            }
            if t.refusal == nil { t.refusal = r.isPositive ? .local(451, "4.5.0", "unexpected reply to DATA: \(r)") : r }
            return refuse(t)
        }
    }

    /// The transaction was refused before the message went: report, then RSET.
    mutating func refuse(_ t: Transaction) -> [Action] {
        state = .rset
        return [.outcome(DeliveryOutcome.classify(t.refusal!).asFailure, recipients: t.recipientReplies), .send(Array("RSET\r\n".utf8))]
    }

    // MARK: Encoding

    static func rcpt(_ to: String) -> String { "RCPT TO:<\(to)>\r\n" }

    static func unsafeInCommand(_ address: String) -> Bool {
        address.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0x3C || $0 == 0x3E }) || address.utf8.isEmpty
    }
}

extension DeliveryOutcome {
    /// A refusal is never "sent", whatever code it carried.
    var asFailure: DeliveryOutcome {
        if case .sent(let r) = self { return .deferred(.local(451, "4.5.0", "unexpected positive reply \(r)")) }
        return self
    }
}
