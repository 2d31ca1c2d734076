/// Connection: one inbound HTTP/1.1 connection (over TLS or plain TCP) as a state machine
/// driven by the reactor.
///
/// Bytes flow socket → (TLS engine) → `input` → `RequestParser` → handler, and back
/// handler → ordered response slots → `out` → (TLS engine) → `cipherOut` → socket.
/// Owns: the TLS handshake, reading with a budget, the parser, request ordering
/// (pipelining), `Expect: 100-continue`, back-pressure, the one timer (head / idle / write /
/// linger) and the close sequence (close_notify, SHUT_WR, lingering read, close).
///
/// Timer rules (SPEC §5): from accept until a request's head is complete — the TLS handshake
/// included — `--head-timeout-seconds`; while a body arrives, each read re-arms it; while
/// the handler works, none; while a response cannot be written, `--idle-timeout-seconds` per
/// write without progress; with nothing in flight, `--idle-timeout-seconds`.
///
/// Handlers never close directly (we may be deep in a callback): `requestClose` queues the
/// connection for the reap phase of the loop tail.
#if canImport(Glibc)
import Glibc
#endif
import HTTP1
import Reactor
import TLS

final class Connection: IOHandler, DeadlineHandler {
    enum State: Equatable {
        /// TLS handshake in progress (plain connections start in `.open`).
        case handshaking
        /// Reading requests and writing responses.
        case open
        /// All responses queued; flushing them, then close_notify + SHUT_WR.
        case closing
        /// Write side shut; reading and discarding until EOF or the linger timeout.
        case lingering
        /// Waiting for the reap phase.
        case closed
    }

    enum TimerKind { case none, head, idle, write, linger }

    /// A response slot, in request order. `bytes == nil` while the handler is still working.
    struct Slot {
        var sequence: UInt64
        var bytes: [UInt8]?
        var keepAlive: Bool
        /// For the observer: the handler's route index (-1: no route) and when the request's
        /// head was complete (zero for a parse error's answer: it is timed from now).
        var route = -1
        var receivedAt = Instant(nanoseconds: 0)
        /// For the access log.
        var method = "-"
        var target = "-"
        var user: String?
    }

    /// The client's address, read once (for the access log).
    lazy var peerDescription: String = SocketAddress.peer(of: fd)?.description ?? "-"

    unowned let server: HTTPServer
    let fd: Int32
    let tls: TLSEngine?
    var registration: Registration!
    var timer: TimerHandle!
    var timerKind: TimerKind = .none

    var state: State
    var parser: RequestParser
    /// Plaintext received and not yet consumed by the parser.
    var input: [UInt8] = []
    var currentHead: RequestHead?
    var currentBody: [UInt8] = []
    var headCompletedAt = Instant(nanoseconds: 0)
    /// Bytes of the server-wide body budget this connection holds (`reserveBody`).
    var bodyReservation = 0
    /// The handler's approval of the current head (`HTTPHandler.checkBeforeBody`).
    var currentApproval: RequestApproval?
    /// Body bytes received since the head timer was last armed; the timer is re-armed only
    /// when a window brought `minBodyBytesPerWindow` (a body must keep moving).
    var bodyWindowBytes = 0
    var bodyTimerDue = false
    /// Request heads completed on this connection: until the first, the head timer armed at
    /// accept runs on (a client that finished the handshake and sent nothing is not idle).
    var requestsStarted = 0
    /// For `HTTPServer.makeRoom`: when accepted, and when it last became idle.
    var openedAt = Instant(nanoseconds: 0)
    var idleSince = Instant(nanoseconds: 0)
    var evicted = false

    var slots: [Slot] = []
    var nextSequence: UInt64 = 0
    /// Serialized responses ready to send (plaintext), from `outOffset`.
    var out: [UInt8] = []
    var outOffset = 0
    /// TLS records ready to send, from `cipherOffset`.
    var cipherOut: [UInt8] = []
    /// The first byte read on a TLS connection was seen; it was that of a plain HTTP request.
    var sawFirstByte = false
    var plainHTTPOnTLSPort = false
    var cipherOffset = 0

    /// The last queued response says `Connection: close`: parse nothing more.
    var closeAfterResponses = false
    var peerClosed = false
    var readPaused = false
    var fatalTLSError = false
    var closeReason = ""

    // Tail-list membership flags (HTTPServer)
    var inFlushList = false
    var inDrainList = false
    var inReapList = false

    init(server: HTTPServer, fd: Int32, tls: TLSEngine?) {
        self.server = server
        self.fd = fd
        self.tls = tls
        self.state = tls == nil ? .open : .handshaking
        self.parser = RequestParser(limits: server.configuration.limits)
    }

    var reactor: Reactor { server.reactor }

    func opened() {
        openedAt = reactor.now
        arm(.head, after: server.configuration.headTimeout)
    }

    enum RoomClass { case neverRequested, idleKeepAlive, busy }

    /// Whether `makeRoom` may close this connection to admit a new client.
    var roomClass: RoomClass {
        // A connection accepted a moment ago is about to send its request: not "silent" yet.
        let silent = reactor.now - openedAt >= server.configuration.silentAfter
        switch state {
        case .handshaking:
            return silent ? .neverRequested : .busy
        case .open:
            if requestsStarted == 0 { return silent ? .neverRequested : .busy }
            if slots.isEmpty && currentHead == nil && input.isEmpty && !hasUnsentBytes && timerKind == .idle {
                return .idleKeepAlive
            }
            return .busy
        case .closing, .lingering, .closed:
            return .busy
        }
    }

    /// Closed to make room: close_notify if the handshake is done (one attempt to send it),
    /// FIN, and the slot is free in this iteration's reap (no lingering: nothing is in flight).
    func evict() {
        if let tls, tls.isHandshakeComplete && !fatalTLSError {
            _ = tls.shutdown()
            if tls.pendingCiphertext > 0 {
                var bytes: [UInt8] = []
                tls.drainCiphertext(into: &bytes)
                _ = bytes.withUnsafeBytes { try? Syscall.send(fd, $0) }
            }
        }
        Syscall.shutdownWrite(fd)
        fatalTLSError = true
        evicted = true   // counted in HTTPServer.evicting until reaped
        requestClose(reason: "closed to admit a new client (max connections)")
    }

    // MARK: Reactor callbacks

    func onReadable() {
        switch state {
        case .closed:
            return
        case .lingering:
            discardInput()
            return
        case .handshaking, .open, .closing:
            break
        }
        guard readSocket() else { return }
        process()
    }

    func onWritable() {
        // Writing happens in the tail's flush phase only: bytes queued during this iteration
        // may depend on a commit that has not happened yet.
        server.scheduleFlush(self)
    }

    func onDeadline() {
        let kind = timerKind
        timerKind = .none
        switch kind {
        case .none:
            return
        case .head:
            server.logPeerFault("head timeout", "closing connection fd \(fd): head timeout (\(server.configuration.headTimeout)) \(state == .handshaking ? "during TLS handshake" : currentHead != nil ? "reading the body" : "reading request")")
            abort(reason: "head timeout")
        case .idle:
            server.logger.debug("closing idle connection fd \(fd)")
            beginClose(reason: "idle timeout")
        case .write:
            server.logPeerFault("write timeout", "closing connection fd \(fd): peer stopped reading for \(server.configuration.idleTimeout)")
            abort(reason: "write timeout")
        case .linger:
            requestClose(reason: closeReason.isEmpty ? "linger timeout" : closeReason)
        }
    }

    // MARK: Reading

    /// Reads what the socket has (bounded), feeding the TLS engine or `input`.
    /// Returns false when the connection was closed.
    func readSocket() -> Bool {
        let buffer = server.readBuffer
        var total = 0
        // Budget: fairness between connections; level-triggered epoll brings us back.
        while total < 256 * 1024 {
            let r: IOResult<Int>
            do {
                r = try Syscall.read(fd, into: buffer)
            } catch {
                if error.isPeerFault {
                    server.logger.debug("fd \(fd): \(error)")
                } else {
                    server.logPeerFault("read error", "fd \(fd): \(error)")
                }
                abort(reason: "\(error)")
                return false
            }
            switch r {
            case .wouldBlock:
                return true
            case .done(0):
                peerClosed = true
                return true
            case .done(let n):
                total += n
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                if let tls {
                    // A TLS record starts with its type (22 for the ClientHello); "GET …" or
                    // "POST …" is plain HTTP sent to the TLS port: said so in plain HTTP (as
                    // nginx does) instead of a TLS alert the client cannot read.
                    if !sawFirstByte {
                        sawFirstByte = true
                        if let b = bytes.first, b >= 0x41 && b <= 0x5A { plainHTTPOnTLSPort = true }
                    }
                    if plainHTTPOnTLSPort { return true }
                    tls.feed(bytes)
                } else {
                    input.append(contentsOf: bytes)
                }
                if n < buffer.count { return true }
            }
        }
        return true
    }

    /// Runs everything the bytes we have allow: handshake, decrypt, parse, dispatch.
    func process() {
        if state == .handshaking && plainHTTPOnTLSPort {
            let body = "This port speaks HTTPS, and this request was sent as plain HTTP: use an https:// URL.\n"
            cipherOut.append(contentsOf: Array(("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body).utf8))
            fatalTLSError = true   // no close_notify: there is no TLS session
            server.handshakeFailures += 1
            server.logPeerFault("handshake", "plain HTTP on the TLS port (fd \(fd)): answered 400 in plain HTTP")
            beginClose(reason: "plain HTTP on the TLS port")
            return
        }
        if state == .handshaking {
            guard let tls else { preconditionFailure("handshaking without TLS") }
            switch tls.handshake() {
            case .progress:
                state = .open
                server.handshakes += 1
            case .wantRead, .wantWrite:
                queueCiphertext()
                if peerClosed { requestClose(reason: "peer closed during handshake") }
                return
            case .closed:
                requestClose(reason: "peer closed during handshake")
                return
            case .failed(let error):
                // Peer's fault (wrong version, bad certificate alert, garbage): info, not error.
                server.handshakeFailures += 1
                server.logPeerFault("handshake", "TLS handshake with \(peerDescription) failed: \(error.plainReason.map { "\($0) (\(error.message))" } ?? "\(error)")")
                fatalTLSError = true
                queueCiphertext()   // the alert, if OpenSSL produced one
                beginClose(reason: "handshake failed")
                return
            }
        }
        if state == .open || state == .closing {
            decrypt()
            parseAvailable()
            if closeAfterResponses && currentHead == nil && !input.isEmpty {
                input = []   // nothing after the last answered request is read (nor kept)
            }
        }
        if peerClosed && state != .closed && state != .lingering {
            // The client half-closed. Finish what it asked for, then close.
            if slots.isEmpty && currentHead == nil {
                if out.count == outOffset && cipherOut.count == cipherOffset {
                    requestClose(reason: "peer closed")
                } else {
                    closeAfterResponses = true
                    if state == .open { state = .closing }
                }
            } else {
                closeAfterResponses = true
            }
            reactor.setInterest(registration, reactor.interest(of: registration).subtracting(.readable))
        }
        updateTimer()
        queueCiphertext()
    }

    /// Pulls every decrypted byte out of the engine (it may hold more than the kernel will
    /// ever announce again).
    func decrypt() {
        guard let tls, !readPaused else { return }
        let buf = server.plainBuffer
        while true {
            switch tls.read(into: buf) {
            case .progress(let n):
                input.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            case .wantRead, .wantWrite:
                return
            case .closed:
                peerClosed = true
                return
            case .failed(let error):
                server.logPeerFault("tls read", "TLS read failed on fd \(fd): \(error)")
                fatalTLSError = true
                abort(reason: "TLS error")
                return
            }
        }
    }

    func parseAvailable() {
        var consumedTotal = 0
        defer {
            if consumedTotal > 0 { input.removeFirst(consumedTotal) }
        }
        while state == .open && !closeAfterResponses && !readPaused {
            let (consumed, event) = input.withUnsafeBytes { raw in
                parser.parse(UnsafeRawBufferPointer(rebasing: raw[consumedTotal...]))
            }
            let base = consumedTotal
            consumedTotal += consumed
            switch event {
            case .needMore:
                return
            case .head(let head):
                currentHead = head
                currentBody = []
                headCompletedAt = reactor.now
                requestsStarted += 1
                if head.hasBody {
                    // Decide before 100 Continue and before keeping any of the body.
                    switch server.handler.checkBeforeBody(head) {
                    case .refuse(let refusal):
                        refuseBody(refusal)
                        return
                    case .proceed(let approval):
                        currentApproval = approval
                    }
                    if case .contentLength(let n) = head.framing {
                        if !reserveBody(n) {
                            refuseBody(busyResponse())
                            return
                        }
                        // The whole body in one buffer of its final size (within --max-body-bytes,
                        // checked above): growing it by doubling copied a large body ~2×.
                        currentBody.reserveCapacity(n)
                    }
                    bodyWindowBytes = 0
                    bodyTimerDue = true
                }
                if head.expectsContinue && head.hasBody {
                    // RFC 9110 §10.1.1: tell the client to send the body. Ordered after any
                    // earlier pipelined responses, as an already-complete slot.
                    slots.append(Slot(sequence: nextSequence, bytes: continueResponse, keepAlive: true))
                    nextSequence += 1
                    moveReadySlots()
                }
            case .body(let range):
                if currentHead?.framing == .chunked && !reserveBody(range.count) {
                    refuseBody(busyResponse())
                    return
                }
                currentBody.append(contentsOf: input[(base + range.lowerBound)..<(base + range.upperBound)])
                bodyWindowBytes += range.count
                if bodyWindowBytes >= server.configuration.minBodyBytesPerWindow {
                    bodyWindowBytes = 0
                    bodyTimerDue = true
                }
            case .end:
                guard let head = currentHead else { preconditionFailure("parser ended a request without a head") }
                currentHead = nil
                let body = currentBody
                currentBody = []
                releaseBody()
                let approval = currentApproval
                currentApproval = nil
                dispatch(HTTPRequest(head: head, body: body, receivedAt: headCompletedAt, approval: approval))
                if slots.count >= server.configuration.maxPipelinedRequests
                    || out.count - outOffset >= server.configuration.maxPendingOutputBytes {
                    pauseReading()
                }
            case .error(let error):
                currentHead = nil
                currentBody = []
                server.logger.debug("fd \(fd): bad request: \(error.status) \(error.reason)")
                var response = server.handler.errorResponse(for: error)
                response.status = error.status
                enqueue(response: response, keepAlive: false, isHead: false)
                return
            }
        }
    }

    func dispatch(_ request: HTTPRequest) {
        let sequence = nextSequence
        nextSequence += 1
        let keepAlive = request.head.keepAlive && !server.isShuttingDown
        var slot = Slot(sequence: sequence, bytes: nil, keepAlive: keepAlive)
        if server.observer != nil {
            slot.route = server.handler.routeIndex(for: request.head)
        }
        if server.observer != nil || server.accessLog != nil { slot.receivedAt = request.receivedAt }
        if server.accessLog != nil {
            slot.method = request.head.method
            slot.target = request.head.target
            slot.user = request.approval?.logName
        }
        slots.append(slot)
        if !keepAlive { closeAfterResponses = true }
        let isHead = request.head.method == "HEAD"
        // Before the handler runs: a deferred answer may come before `handle` returns.
        if isHead { headSequences.insert(sequence) }
        switch server.handler.handle(request, responder: Responder(connection: self, sequence: sequence)) {
        case .respond(let response):
            if isHead { headSequences.remove(sequence) }
            fill(sequence: sequence, response: response, isHead: isHead)
        case .deferred:
            break
        }
    }

    var headSequences: Set<UInt64> = []

    // MARK: Bodies: refused before reading, and the server-wide budget

    /// Answers `response` to the request whose head just arrived and closes the connection
    /// without reading its body (the lingering close discards whatever the client still sends).
    func refuseBody(_ response: HTTPResponse) {
        let head = currentHead
        currentHead = nil
        currentApproval = nil
        currentBody = []
        releaseBody()
        enqueue(response: response, keepAlive: false, isHead: false, for: head)
    }

    /// Takes `n` bytes of the server-wide budget for the body being received.
    func reserveBody(_ n: Int) -> Bool {
        guard server.bodyBytesInFlight + n <= server.configuration.maxBodyBytesInFlight else { return false }
        server.bodyBytesInFlight += n
        bodyReservation += n
        return true
    }

    func releaseBody() {
        server.bodyBytesInFlight -= bodyReservation
        bodyReservation = 0
    }

    func busyResponse() -> HTTPResponse {
        var r = server.handler.errorResponse(for: ParseError(status: 503, reason: "The server is receiving too many request bodies at once; retry shortly."))
        r.status = 503   // as for parse errors: the status is the driver's, whatever the handler's body
        r.headers.add(name: "Retry-After", value: "1")
        return r
    }

    /// A deferred response arrives.
    func complete(sequence: UInt64, response: HTTPResponse) {
        guard state != .closed && state != .lingering else { return }
        let isHead = headSequences.remove(sequence) != nil
        fill(sequence: sequence, response: response, isHead: isHead)
        updateTimer()
        queueCiphertext()
    }

    /// Queues a response that is not tied to a dispatched request (parse errors).
    func enqueue(response: HTTPResponse, keepAlive: Bool, isHead: Bool, for head: RequestHead? = nil) {
        let sequence = nextSequence
        nextSequence += 1
        var slot = Slot(sequence: sequence, bytes: nil, keepAlive: keepAlive)
        if let head, server.observer != nil {   // answered on its head: counted on its route
            slot.route = server.handler.routeIndex(for: head)
            slot.receivedAt = headCompletedAt
        }
        if let head, server.accessLog != nil {
            slot.method = head.method
            slot.target = head.target
            slot.receivedAt = headCompletedAt
        }
        slots.append(slot)
        if !keepAlive { closeAfterResponses = true }
        fill(sequence: sequence, response: response, isHead: isHead)
    }

    func fill(sequence: UInt64, response: HTTPResponse, isHead: Bool) {
        guard let i = slots.firstIndex(where: { $0.sequence == sequence }) else { return }
        let keepAlive = slots[i].keepAlive && !server.isShuttingDown
        slots[i].keepAlive = keepAlive
        if let observer = server.observer {
            observer.responded(route: slots[i].route, status: response.status,
                               receivedAt: slots[i].receivedAt.nanoseconds != 0 ? slots[i].receivedAt : reactor.now)
        }
        if let log = server.accessLog {
            let s = slots[i]
            // A fresh clock: the loop's is read once an iteration, and most answers come in the same one.
            let seconds = s.receivedAt.nanoseconds != 0 ? Double(Instant.now().nanoseconds - s.receivedAt.nanoseconds) / 1e9 : 0
            log.record(AccessRecord(method: s.method, target: s.target, status: response.status, bytes: response.body.count,
                                    seconds: seconds, peer: peerDescription, user: s.user))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + response.body.count)
        response.serialize(into: &bytes, date: server.httpDate, keepAlive: keepAlive)
        if isHead { bytes.removeLast(response.body.count) }
        slots[i].bytes = bytes
        moveReadySlots()
    }

    /// Moves complete responses from the front of the slot queue to `out`, in order.
    func moveReadySlots() {
        var moved = 0
        while moved < slots.count, let bytes = slots[moved].bytes {
            if out.isEmpty { out = bytes } else { out.append(contentsOf: bytes) }
            if !slots[moved].keepAlive {
                // Nothing after a `Connection: close` response is answered.
                closeAfterResponses = true
                moved = slots.count
                headSequences.removeAll()
                if state == .open { state = .closing }
                break
            }
            moved += 1
        }
        if moved > 0 { slots.removeFirst(moved) }
        if out.count > outOffset { server.scheduleFlush(self) }
        resumeReadingIfRoom()
    }

    /// Back-pressure released: fewer than half the pipelined slots in use and less than half
    /// the output limit unsent. Checked when slots complete and when output is written (a
    /// connection paused by one large response resumes once it is on the wire).
    func resumeReadingIfRoom() {
        if readPaused && slots.count < server.configuration.maxPipelinedRequests / 2
            && out.count - outOffset < server.configuration.maxPendingOutputBytes / 2 {
            resumeReading()
        }
    }

    func pauseReading() {
        guard !readPaused else { return }
        readPaused = true
        reactor.setInterest(registration, reactor.interest(of: registration).subtracting(.readable))
    }

    func resumeReading() {
        guard readPaused else { return }
        readPaused = false
        if !peerClosed && (state == .open || state == .closing) {
            reactor.setInterest(registration, reactor.interest(of: registration).union(.readable))
        }
        // Bytes already received (in `input` or inside the TLS engine) will not be announced.
        server.scheduleDrain(self)
    }

    /// Tail `drain` phase: input held back by back-pressure.
    func drain() {
        guard state == .open || state == .closing else { return }
        decrypt()
        parseAvailable()
        updateTimer()
        queueCiphertext()
    }

    // MARK: Writing

    /// Makes sure the flush phase will look at us when there is anything to send.
    func queueCiphertext() {
        if let tls, tls.pendingCiphertext > 0 { server.scheduleFlush(self) }
        if out.count > outOffset || cipherOut.count > cipherOffset { server.scheduleFlush(self) }
        if state == .closing && slots.isEmpty { server.scheduleFlush(self) }
    }

    /// Tail `flush` phase: encrypt and write everything we may write now.
    ///
    /// Under TLS the plaintext is encrypted a window at a time (with
    /// `SSL_MODE_ENABLE_PARTIAL_WRITE` each `SSL_write_ex` takes about one record) and the
    /// ciphertext sent; this repeats until everything is written or the socket would block —
    /// then EPOLLOUT (`onWritable`) brings us back. Nothing is left for "some later flush":
    /// a flush that stopped with bytes queued and no writable interest would sleep until an
    /// unrelated event woke the loop.
    func flush() {
        guard state != .closed else { return }
        if let tls {
            while true {
                // Encrypt more only once the previous ciphertext is on the wire: at most one
                // window of ciphertext is held per connection.
                if cipherOffset == cipherOut.count && out.count > outOffset && tls.isHandshakeComplete && !fatalTLSError {
                    let end = min(out.count, outOffset + Connection.encryptWindow)
                    guard case .progress = out.withUnsafeBytes({ tls.write(UnsafeRawBufferPointer(rebasing: $0[outOffset..<end])) }) else {
                        fatalTLSError = true
                        abort(reason: "TLS write failed")
                        return
                    }
                    outOffset = end
                    if outOffset == out.count { out.removeAll(keepingCapacity: out.count <= 16 * 1024); outOffset = 0 }
                }
                if tls.pendingCiphertext > 0 {
                    if cipherOffset == cipherOut.count { cipherOut.removeAll(keepingCapacity: true); cipherOffset = 0 }
                    tls.drainCiphertext(into: &cipherOut)
                }
                guard writeBuffered(&cipherOut, &cipherOffset) else { return }
                if cipherOut.count > cipherOffset { resumeReadingIfRoom(); return }   // would block: EPOLLOUT resumes
                if !(out.count > outOffset && tls.isHandshakeComplete && !fatalTLSError) { break }
            }
        } else {
            guard writeBuffered(&out, &outOffset) else { return }
            if out.count > outOffset { resumeReadingIfRoom(); return }   // would block: EPOLLOUT resumes
        }
        // Everything written.
        resumeReadingIfRoom()
        if state == .closing && slots.isEmpty {
            finishClosing()
        } else {
            updateTimer()
        }
    }

    /// Plaintext encrypted ahead of the socket per connection (16 records).
    static let encryptWindow = 256 * 1024

    /// Writes `buffer[offset...]`; returns false when the connection was aborted.
    func writeBuffered(_ buffer: inout [UInt8], _ offset: inout Int) -> Bool {
        var progressed = false
        while offset < buffer.count {
            let r: IOResult<Int>
            do {
                r = try buffer.withUnsafeBytes { raw in
                    try Syscall.send(fd, UnsafeRawBufferPointer(rebasing: raw[offset...]))
                }
            } catch {
                server.logger.debug("fd \(fd): write: \(error)")
                abort(reason: "\(error)")
                return false
            }
            switch r {
            case .done(let n):
                offset += n
                progressed = true
            case .wouldBlock:
                reactor.setInterest(registration, reactor.interest(of: registration).union(.writable))
                if progressed || timerKind != .write { arm(.write, after: server.configuration.idleTimeout) }
                return true
            }
        }
        if buffer.count > 64 * 1024 {
            buffer = []   // don't keep a large buffer per idle connection
        } else {
            buffer.removeAll(keepingCapacity: true)
        }
        offset = 0
        if reactor.interest(of: registration).contains(.writable) {
            reactor.setInterest(registration, reactor.interest(of: registration).subtracting(.writable))
        }
        return true
    }

    var hasUnsentBytes: Bool {
        out.count > outOffset || cipherOut.count > cipherOffset || (tls?.pendingCiphertext ?? 0) > 0
    }

    // MARK: Timers

    func arm(_ kind: TimerKind, after delay: Duration) {
        timerKind = kind
        reactor.arm(timer, after: delay)
    }

    func disarm() {
        timerKind = .none
        reactor.cancel(timer)
    }

    /// Picks the timer for the current state (see the file header).
    func updateTimer() {
        switch state {
        case .closed, .lingering:
            return
        case .handshaking:
            return   // the head timer armed at accept covers the handshake
        case .open, .closing:
            break
        }
        if hasUnsentBytes && reactor.interest(of: registration).contains(.writable) {
            return   // the write timer is armed by writeBuffered
        }
        if !slots.isEmpty {
            if timerKind != .none { disarm() }   // the handler is working
            return
        }
        if currentHead != nil {
            // Body in progress: it must keep moving — the timer is re-armed only when the
            // last window brought enough bytes (see `minBodyBytesPerWindow`).
            if bodyTimerDue || timerKind != .head {
                bodyTimerDue = false
                arm(.head, after: server.configuration.headTimeout)
            }
            return
        }
        if requestsStarted == 0 && timerKind == .head && reactor.isArmed(timer) {
            return   // no request yet: the head timer armed at accept still runs
        }
        if !input.isEmpty {
            // A new head has started: it must be complete within the head timeout, counted
            // from its first byte (not re-armed by later bytes — that is what stops slowloris).
            if timerKind != .head { arm(.head, after: server.configuration.headTimeout) }
            return
        }
        // Idle keep-alive: give the buffers back (as OpenSSL's RELEASE_BUFFERS does for its own
        // records): 10 000 idle connections should cost sockets, not spare capacity.
        if !hasUnsentBytes {
            if input.capacity > 0 { input = [] }
            if out.capacity > 0 { out = []; outOffset = 0 }
            if cipherOut.capacity > 0 { cipherOut = []; cipherOffset = 0 }
            tls?.releaseBuffers()
        }
        if timerKind != .idle || !reactor.isArmed(timer) {
            idleSince = reactor.now
            arm(.idle, after: server.configuration.idleTimeout)
        } else {
            reactor.arm(timer, after: server.configuration.idleTimeout)   // extend (cheap: no heap push)
        }
    }

    // MARK: Closing

    /// Server shutdown: idle connections close now, busy ones after their last response.
    func shutdownRequested() {
        switch state {
        case .closed, .lingering, .closing:
            return
        case .handshaking:
            abort(reason: "server shutting down")
        case .open:
            if slots.isEmpty && currentHead == nil && input.isEmpty && !hasUnsentBytes {
                beginClose(reason: "server shutting down")
            } else {
                // Busy: the request being received or handled is finished and answered with
                // `Connection: close` (`dispatch` and `fill` see `isShuttingDown`); nothing
                // after it is read.
                for i in slots.indices { slots[i].keepAlive = false }
            }
        }
    }

    /// Graceful close: finish writing, send close_notify, shut the write side, linger.
    func beginClose(reason: String) {
        guard state != .closed && state != .lingering else { return }
        closeReason = reason
        closeAfterResponses = true
        slots.removeAll()
        state = .closing
        server.scheduleFlush(self)
    }

    /// Everything is written: close_notify (unless TLS failed), SHUT_WR, then linger.
    func finishClosing() {
        if let tls, tls.isHandshakeComplete && !fatalTLSError {
            _ = tls.shutdown()
            if tls.pendingCiphertext > 0 {
                tls.drainCiphertext(into: &cipherOut)
                guard writeBuffered(&cipherOut, &cipherOffset) else { return }
                if cipherOut.count > cipherOffset { return }   // flush again when writable
            }
        }
        Syscall.shutdownWrite(fd)
        if peerClosed {
            requestClose(reason: closeReason.isEmpty ? "closed" : closeReason)
            return
        }
        state = .lingering
        input = []
        reactor.setInterest(registration, .readable)
        arm(.linger, after: server.configuration.lingerTimeout)
    }

    /// Lingering: read and drop until EOF so our last response is not reset away.
    func discardInput() {
        let buffer = server.readBuffer
        for _ in 0..<16 {
            switch try? Syscall.read(fd, into: buffer) {
            case .done(let n)? where n > 0:
                continue
            case .wouldBlock?:
                return
            case .done?, nil:
                requestClose(reason: closeReason.isEmpty ? "closed" : closeReason)
                return
            }
        }
    }

    /// Immediate close: no close_notify, nothing more written.
    func abort(reason: String) {
        fatalTLSError = true
        requestClose(reason: reason)
    }

    func requestClose(reason: String) {
        guard state != .closed else { return }
        closeReason = reason
        state = .closed
        server.scheduleReap(self)
    }

    /// Reap phase: the descriptor goes away.
    func finalClose() {
        releaseBody()
        reactor.free(timer)
        reactor.close(registration)
        slots.removeAll()
        headSequences.removeAll()
        input = []
        out = []
        cipherOut = []
    }
}
