/// SMTPSession: one outbound SMTP connection driven by the reactor — the only file that
/// knows sockets and TLS on the SMTP side (OpenSMTPD `mta_session.c`). It resolves the relay
/// (inside the loop, through `Resolver`), connects without blocking (each address in turn,
/// with a deadline), does implicit TLS or STARTTLS through the memory-BIO `TLSEngine`
/// (SNI, certificate and host name verified unless the mailbox says `verify_peer=false`), and
/// performs what `SessionMachine` asks: bytes to send, TLS now, ready, outcome, close.
///
/// Timeouts: the machine's per-state RFC 5321 §4.5.3.2 value, capped by
/// `--smtp-timeout-seconds`; connecting gets `connectTimeout` (also capped).
/// STARTTLS hygiene (STYLE 12): plaintext that arrived after the relay's 220 and before our
/// handshake is an injection attempt — the session is dropped.
/// Never logs credentials: AUTH lines are logged as "AUTH …".
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Reactor
import Resolver
import SMTPProtocol
import TLS

/// Where and how to connect: one per mailbox relay.
public struct RelayEndpoint: Sendable {
    public var host: String
    public var port: UInt16
    public var policy: SessionMachine.Policy
    /// Seconds to wait for every reply, the one to the end of data included
    /// (`--smtp-timeout-seconds`); nil: RFC 5321 §4.5.3.2's value for each state.
    public var timeoutSeconds: Int?

    public init(host: String, port: UInt16, policy: SessionMachine.Policy, timeoutSeconds: Int?) {
        self.host = host
        self.port = port
        self.policy = policy
        self.timeoutSeconds = timeoutSeconds
    }

    var needsTLS: Bool { policy.security != .plain }
}

/// A message handed to a session, with the caller's identifier.
public struct DeliveryJob: Sendable {
    public let id: Int64
    public let envelope: Envelope
    public init(id: Int64, envelope: Envelope) {
        self.id = id
        self.envelope = envelope
    }
}

protocol SessionOwner: AnyObject {
    /// `first`: the session's first `ready` (it is established from now on).
    func sessionReady(_ s: SMTPSession, first: Bool)
    /// The session can pipeline one more message behind the one in flight: the next job, or nil.
    func nextPipelinedJob(for s: SMTPSession) -> DeliveryJob?
    func session(_ s: SMTPSession, finished job: DeliveryJob, _ outcome: DeliveryOutcome, recipients: [SMTPReply]?)
    func sessionClosed(_ s: SMTPSession, failure: SMTPReply?)
}

final class SMTPSession: IOHandler, DeadlineHandler, ResolutionHandler {
    /// Connecting to one address (a TCP SYN unanswered is the common failure).
    static let connectTimeoutSeconds = 30
    /// After QUIT we wait this long for 221 before closing anyway.
    static let quitTimeoutSeconds = 5

    enum Phase { case resolving, connecting, implicitTLS, smtp, closed }

    let endpoint: RelayEndpoint
    let reactor: Reactor
    let resolver: Resolver
    let tlsContext: TLSClientContext?
    var logger: Logger
    /// The mailbox-wide session slot this session holds (RelayPool.slots), if any.
    var slot: Int?
    weak var owner: SessionOwner?

    var phase = Phase.resolving
    var machine: SessionMachine
    var addresses: [String] = []
    var addressIndex = 0
    var lastConnectProblem = ""
    var registration: Registration?
    var timer: TimerHandle?
    var tls: TLSEngine?
    var parser = ReplyParser()
    var output: [UInt8] = []
    var outputOffset = 0
    var inbuf = [UInt8](repeating: 0, count: 16384)
    var plainbuf = [UInt8](repeating: 0, count: 16384)

    /// Messages handed to this session and not finished, oldest first (the machine reports
    /// outcomes in this order): one, or two while one is pipelined behind the other.
    var jobs: [DeliveryJob] = []
    /// Reached `ready` at least once (the relay talks to us).
    private(set) var established = false
    var isIdle: Bool { if case .ready = machine.state { return jobs.isEmpty } else { return false } }
    /// Inside `perform`: sends are gathered and written once at the end (a message's data and
    /// the next message's commands go in one write).
    var performing = 0
    /// A `.sent` outcome was reported and is not committed yet: output waits (the owner calls
    /// `releaseOutput` after the commit). Otherwise the next message's data could reach the
    /// relay before the previous one is recorded as sent, and a crash then would duplicate
    /// two messages on this session instead of one (SessionMachine `.data`).
    var holdingOutput = false
    var messagesSent = 0
    /// The session should quit when next idle (shutdown, reuse limit).
    var quitWhenIdle = false

    init(endpoint: RelayEndpoint, reactor: Reactor, resolver: Resolver, tlsContext: TLSClientContext?, logger: Logger, owner: SessionOwner) {
        self.endpoint = endpoint
        self.reactor = reactor
        self.resolver = resolver
        self.tlsContext = tlsContext
        self.logger = logger
        self.owner = owner
        machine = SessionMachine(policy: endpoint.policy)
    }

    var peer: String {
        addressIndex < addresses.count ? "\(endpoint.host)[\(addresses[addressIndex])]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)"
    }

    // MARK: Start: resolve, connect

    func start() {
        timer = reactor.makeTimer(self)
        if let r = resolver.resolve(endpoint.host, for: self) { resolved(endpoint.host, r) }
    }

    func resolved(_ name: String, _ result: Result<[String], ResolveError>) {
        guard phase == .resolving else { return }
        switch result {
        case .success(let list):
            addresses = list
            addressIndex = 0
            connect()
        case .failure(let e):
            end(failure: .local(421, "4.4.3", "cannot resolve the relay: \(e)"))
        }
    }

    func connect() {
        phase = .connecting
        while addressIndex < addresses.count {
            guard let address = SocketAddress(ip: addresses[addressIndex], port: endpoint.port) else {
                addressIndex += 1
                continue
            }
            do {
                let (fd, state) = try Socket.connectTCP(address)
                // Priority: its replies are read between the HTTP requests of a long batch (Reactor+Priority).
                registration = try reactor.register(fd: fd, interest: .writable, handler: self, priority: true)
                if case .done = state { return connected() }
                arm(seconds: connectTimeout, replyWait: false)
                return
            } catch {
                lastConnectProblem = "\(peer): \(error)"
                addressIndex += 1
            }
        }
        end(failure: .local(421, "4.4.1", "cannot connect to the relay: \(lastConnectProblem.isEmpty ? "no address" : lastConnectProblem)"))
    }

    func connectFailed(_ problem: String) {
        lastConnectProblem = problem
        closeSocket()
        addressIndex += 1
        connect()
    }

    func connected() {
        guard let reg = registration else { return }
        logger.debug("smtp \(peer): connected")
        reactor.setInterest(reg, .readable)
        if endpoint.policy.security == .implicitTLS {
            guard startTLSEngine() else { return }
            phase = .implicitTLS
            driveHandshake()
        } else {
            phase = .smtp
            armForState()
        }
    }

    func startTLSEngine() -> Bool {
        guard let ctx = tlsContext else {
            machineEvent(.lost("no TLS context"))
            return false
        }
        do {
            tls = try TLSEngine(client: ctx, serverName: endpoint.host)
            return true
        } catch {
            machineEvent(.lost("TLS setup failed: \(error)"))
            return false
        }
    }

    // MARK: Work

    /// Hands a message to an idle session.
    func submit(_ j: DeliveryJob) {
        precondition(isIdle, "submit to a busy session")
        jobs.append(j)
        perform(machine.receive(.submit(j.envelope)))
    }

    func quit() {
        guard phase != .closed else { return }
        if phase == .smtp, case .ready = machine.state {
            perform(machine.receive(.quit))
            arm(seconds: min(SMTPSession.quitTimeoutSeconds, endpoint.timeoutSeconds ?? .max), replyWait: false)
        } else if jobs.isEmpty {
            end(failure: nil)
        } else {
            machineEvent(.quit)
        }
    }

    // MARK: Machine

    func machineEvent(_ e: SessionMachine.Event) {
        perform(machine.receive(e))
    }

    func perform(_ actions: [SessionMachine.Action]) {
        // State names only for the trace log (building them is not free).
        let before = logger.logLevel <= .trace ? machine.stateName : nil
        performing += 1
        defer {
            performing -= 1
            if performing == 0 && phase != .closed { tls == nil ? flush() : flushTLS() }
        }
        for a in actions {
            guard phase != .closed else { return }
            switch a {
            case .send(let bytes):
                logSent(bytes)
                send(bytes)
            case .startTLS:
                beginSTARTTLS()
            case .ready:
                let first = !established
                established = true
                arm(seconds: nil)
                owner?.sessionReady(self, first: first)
            case .pipelineNext:
                pipelineNext()
            case .outcome(let o, let recipients):
                guard !jobs.isEmpty else { preconditionFailure("outcome without a job") }
                let j = jobs.removeFirst()
                if case .sent = o { messagesSent += 1 }
                owner?.session(self, finished: j, o, recipients: recipients)
            case .close(let failure):
                end(failure: failure)
            }
        }
        if let before, phase == .smtp, machine.stateName != before { logger.trace("smtp \(peer): \(before) -> \(machine.stateName)") }
        if phase == .smtp, machine.state.timeoutSeconds != nil, !machine.isQuitting { armForState() }
    }

    /// The data of the message in flight went out (or waits in `output` for a commit): begin
    /// the next waiting one behind it. One the relay cannot take (SIZE, SMTPUTF8) is reported
    /// at once and the next one tried.
    func pipelineNext() {
        while phase != .closed, jobs.count == 1, machine.canPipelineNext, let j = owner?.nextPipelinedJob(for: self) {
            if let refusal = machine.preflight(j.envelope) {
                owner?.session(self, finished: j, refusal, recipients: nil)
                continue
            }
            jobs.append(j)
            perform(machine.receive(.submit(j.envelope)))
        }
    }

    func logSent(_ bytes: [UInt8]) {
        guard logger.logLevel <= .trace else { return }
        if bytes.count > 512 {
            logger.trace("smtp \(peer) <- [\(bytes.count) octets of message data]")
        } else {
            let text = String(decoding: bytes, as: UTF8.self)
            let safe = text.hasPrefix("AUTH") || (machine.state.activity == "authenticating") ? "AUTH …" : text.trimmingCRLF
            logger.trace("smtp \(peer) <- \(safe)")
        }
    }

    func armForState() {
        arm(seconds: machine.state.timeoutSeconds)
    }

    /// Connecting: 30 s, or `--smtp-timeout-seconds` when shorter.
    var connectTimeout: Int { min(SMTPSession.connectTimeoutSeconds, endpoint.timeoutSeconds ?? .max) }

    /// `replyWait`: waiting for a reply, whose RFC 5321 value `--smtp-timeout-seconds` replaces.
    func arm(seconds: Int?, replyWait: Bool = true) {
        guard let t = timer else { return }
        if let s = seconds {
            reactor.arm(t, after: .seconds(replyWait ? endpoint.timeoutSeconds ?? s : s))
        } else {
            reactor.cancel(t)
        }
    }

    /// Idle sessions are closed by the owner through `quit()`; this arms that wait.
    func armIdle(seconds: Int) {
        guard let t = timer else { return }
        reactor.arm(t, after: .seconds(seconds))
    }

    func onDeadline() {
        switch phase {
        case .resolving:
            end(failure: .local(421, "4.4.3", "timeout resolving the relay"))
        case .connecting:
            connectFailed("\(peer): connect timeout after \(connectTimeout)s")
        case .implicitTLS:
            machineEvent(.timeout)
        case .smtp:
            if isIdle { return quit() }
            if machine.isQuitting { return end(failure: nil) }
            machineEvent(.timeout)
        case .closed:
            break
        }
    }

    // MARK: TLS

    func beginSTARTTLS() {
        // Anything already buffered after "220 Ready to start TLS" was sent in clear before our
        // handshake: refuse it (CVE-2011-0411 class). A whole reply behind the 220 reaches the
        // machine next, which refuses it in its handshake state; a partial one is caught here.
        if parser.isMidReply {
            machineEvent(.lost("plaintext after the relay agreed to STARTTLS"))
            return
        }
        guard startTLSEngine() else { return }
        driveHandshake()
    }

    func driveHandshake() {
        guard let tls else { return }
        switch tls.handshake() {
        case .progress:
            flushTLS()
            logger.debug("smtp \(peer): TLS \(tls.protocolVersion) \(tls.cipherName)")
            if phase == .implicitTLS {
                phase = .smtp
                armForState()
            } else {
                machineEvent(.tlsEstablished)
            }
            // Data may already have arrived behind the Finished message.
            readTLSPlaintext()
        case .wantRead, .wantWrite:
            flushTLS()
            if phase == .implicitTLS { arm(seconds: machine.state.timeoutSeconds) }
        case .closed:
            machineEvent(.lost("TLS handshake: the relay closed the connection"))
        case .failed(let e):
            machineEvent(.lost("TLS handshake failed (\(e))"))
        }
    }

    var handshaking: Bool {
        if let tls { return !tls.isHandshakeComplete }
        return false
    }

    // MARK: Output

    /// Queues bytes (encrypted when TLS is on); `perform` writes them when its actions are done.
    func send(_ bytes: [UInt8]) {
        if let tls {
            switch bytes.withUnsafeBytes({ tls.write($0) }) {   // every byte, or a failure
            case .progress: break
            case .failed(let e): return machineEvent(.lost("TLS write failed (\(e))"))
            case .wantRead, .wantWrite, .closed: return machineEvent(.lost("TLS write failed"))
            }
        } else {
            output += bytes
        }
    }

    func flushTLS() {
        guard let tls else { return }
        tls.drainCiphertext(into: &output)
        flush()
    }

    func releaseOutput() {
        holdingOutput = false
        if phase != .closed { flush() }
    }

    func flush() {
        guard let reg = registration else { return }
        if holdingOutput {
            // Not writing until the commit: do not ask to hear about writability meanwhile.
            if phase != .connecting { reactor.setInterest(reg, .readable) }
            return
        }
        while outputOffset < output.count {
            let r: IOResult<Int>
            do {
                r = try output.withUnsafeBytes { (raw) throws(SystemError) in
                    try Syscall.send(reg.fd, UnsafeRawBufferPointer(rebasing: raw[outputOffset...]))
                }
            } catch {
                return machineEvent(.lost("write failed (\(error))"))
            }
            switch r {
            case .done(let n): outputOffset += n
            case .wouldBlock:
                reactor.setInterest(reg, [.readable, .writable])
                return
            }
        }
        output.removeAll(keepingCapacity: true)
        outputOffset = 0
        if phase != .connecting { reactor.setInterest(reg, .readable) }
    }

    // MARK: Input

    func onWritable() {
        if phase == .connecting {
            guard let reg = registration else { return }
            if let e = Socket.pendingError(reg.fd) { return connectFailed("\(peer): \(e)") }
            return connected()
        }
        flush()
    }

    func onReadable() {
        guard let reg = registration, phase != .connecting else {
            if phase == .connecting, let reg = registration, let e = Socket.pendingError(reg.fd) { connectFailed("\(peer): \(e)") }
            return
        }
        // Bounded: a relay cannot keep us in this loop forever.
        for _ in 0..<16 {
            guard registration == reg, phase != .closed else { return }
            let r: IOResult<Int>
            do {
                r = try inbuf.withUnsafeMutableBytes { (raw) throws(SystemError) in try Syscall.read(reg.fd, into: raw) }
            } catch {
                return machineEvent(.lost("read failed (\(error))"))
            }
            guard case .done(let n) = r else { return }
            if n == 0 { return machineEvent(.lost("the relay closed the connection")) }
            if let tls {
                inbuf.withUnsafeBytes { tls.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if !tls.isHandshakeComplete {
                    driveHandshake()
                } else {
                    readTLSPlaintext()
                }
            } else {
                received(inbuf, count: n)
            }
            if n < inbuf.count { return }
        }
    }

    func readTLSPlaintext() {
        guard let tls, tls.isHandshakeComplete else { return }
        while phase != .closed {
            let r = plainbuf.withUnsafeMutableBytes { tls.read(into: $0) }
            switch r {
            case .progress(let n):
                if n == 0 { return }
                received(plainbuf, count: n)
            case .wantRead, .wantWrite:
                flushTLS()
                return
            case .closed:
                return machineEvent(.lost("the relay closed the TLS session"))
            case .failed(let e):
                return machineEvent(.lost("TLS read failed (\(e))"))
            }
        }
    }

    /// The first `count` bytes of `buffer` arrived (plaintext): parse, then act on each reply.
    func received(_ buffer: [UInt8], count: Int) {
        var replies: [SMTPReply] = []
        var failure: SMTPProtocolError?
        buffer.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Void in
            do throws(SMTPProtocolError) {
                try parser.feed(UnsafeRawBufferPointer(rebasing: raw[0..<count]), into: &replies)
            } catch {
                failure = error
            }
        }
        if let failure { return machineEvent(.lost("protocol error (\(failure))")) }
        for r in replies {
            guard phase != .closed else { return }
            logger.trace("smtp \(peer) -> \(r)")
            perform(machine.receive(.reply(r)))
        }
    }

    // MARK: End

    func closeSocket() {
        if let reg = registration {
            reactor.close(reg)
            registration = nil
        }
        tls = nil
        parser = ReplyParser()
        output.removeAll()
        outputOffset = 0
    }

    /// Closes the session once; a job still assigned gets `deferred` with the failure.
    func end(failure: SMTPReply?) {
        guard phase != .closed else { return }
        let left = jobs
        jobs.removeAll()
        for j in left {
            owner?.session(self, finished: j, .deferred(failure ?? .local(421, "4.4.2", "session closed")), recipients: nil)
        }
        phase = .closed   // before the last flush: a write error there must not end us twice
        if let tls, failure == nil, tls.isHandshakeComplete {
            _ = tls.shutdown()
            flushTLS()
        }
        closeSocket()
        if let t = timer {
            reactor.free(t)
            timer = nil
        }
        if let failure {
            // Debug: each message it held says the reply in its own outcome line.
            logger.debug("smtp \(peer): session ended: \(failure)")
        } else {
            logger.debug("smtp \(peer): session closed after \(messagesSent) message(s)")
        }
        owner?.sessionClosed(self, failure: failure)
    }
}

extension String {
    var trimmingCRLF: String {
        var s = Substring(self)
        while s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s).replacingCRLFWithSlash
    }

    var replacingCRLFWithSlash: String { split(separator: "\r\n").joined(separator: " | ") }
}
