/// HTTPServer: the inbound side — a listening socket, the accept loop, the set of open
/// connections and the loop-tail work they share (drain, flush, reap).
///
/// Owns: accepting (until EAGAIN; stop at `--max-connections` and let the kernel backlog
/// hold the rest; rest for a moment on EMFILE/ENFILE instead of spinning), the current TLS
/// server context (swapped by `reloadTLS`; open connections keep the one they started
/// with), the cached `Date:` value, shared read buffers, graceful shutdown.
/// Refuses to know: routes, JSON, the database — that is the `HTTPHandler`'s.
#if canImport(Glibc)
import Glibc
#endif
import HTTP1
import Logging
import Reactor
import TLS

public final class HTTPServer {
    public let configuration: ServerConfiguration
    let reactor: Reactor
    let handler: HTTPHandler
    var logger: Logger
    public private(set) var tlsContext: TLSServerContext?

    var listenerFD: Int32 = -1
    var listener: Registration?
    var listenerHandler: ListenerHandler?
    var acceptPaused = false
    var exhaustionLogged = false
    var acceptResumeTimer: TimerHandle?
    public private(set) var boundAddress: SocketAddress?

    /// Open connections by descriptor.
    var connections: [Int32: Connection] = [:]
    public var connectionCount: Int { connections.count }

    // Tail work lists (a connection is in each at most once: see its flags).
    var flushList: [Connection] = []
    var drainList: [Connection] = []
    var reapList: [Connection] = []

    /// Shared per-loop scratch: every socket read lands here first, every TLS read here second.
    let readBuffer: UnsafeMutableRawBufferPointer
    let plainBuffer: UnsafeMutableRawBufferPointer

    // Date header cache (RFC 9110 §6.6.1), recomputed once per second.
    var dateSecond = -1
    var dateValue = ""

    public private(set) var isShuttingDown = false
    var shutdownTimer: TimerHandle?
    /// Called once when, after `beginShutdown`, the last connection is gone.
    public var onDrained: (() -> Void)?

    /// Counters for tests and logs.
    public private(set) var acceptedTotal = 0
    public internal(set) var handshakeFailures = 0
    /// Request bodies all connections hold while they arrive (against `maxBodyBytesInFlight`).
    public internal(set) var bodyBytesInFlight = 0
    var roomLogged = false
    /// Connections closed by `makeRoom` and not yet reaped (their slots are as good as free).
    var evicting = 0
    var limitLogged = false
    public internal(set) var handshakes = 0
    /// Sees every response as it is produced (metrics). Unset, the request path pays nothing.
    public weak var observer: HTTPServerObserver?
    /// Each answered request, when set (`--no-access-log` leaves it nil).
    public weak var accessLog: AccessLogSink?

    public init(reactor: Reactor, configuration: ServerConfiguration, tlsContext: TLSServerContext?,
                handler: HTTPHandler, logger: Logger) {
        self.reactor = reactor
        self.configuration = configuration
        self.tlsContext = tlsContext
        self.handler = handler
        self.logger = logger
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        plainBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        readBuffer.deallocate()
        plainBuffer.deallocate()
    }

    public var scheme: String { tlsContext == nil ? "http" : "https" }

    /// Binds, listens and starts accepting. Returns the bound address (port 0 → the real port).
    @discardableResult
    public func start() throws(SystemError) -> SocketAddress {
        let (fd, bound) = try Socket.listenTCP(configuration.listen, reusePort: configuration.reusePort)
        listenerFD = fd
        boundAddress = bound
        let lh = ListenerHandler(server: self)
        listenerHandler = lh
        listener = try reactor.register(fd: fd, interest: .readable, handler: lh)
        acceptResumeTimer = reactor.makeTimer(lh)
        reactor.addTailHandler(TailAdapter(server: self), phase: .drain)
        reactor.addTailHandler(TailAdapter(server: self), phase: .flush)
        reactor.addTailHandler(TailAdapter(server: self), phase: .reap)
        return bound
    }

    /// New connections get `context`; open ones keep theirs (SSL_new holds a reference).
    public func reloadTLS(_ context: TLSServerContext) {
        tlsContext = context
    }

    // MARK: Accept

    func acceptReady() {
        guard let listener, !isShuttingDown else { return }
        // The listener was readable: at least one client waits. Only then may a connection be
        // closed to make room for it (after one accept, whether more wait is not known: the
        // next readiness says, level-triggered).
        var knownWaiting = true
        while true {
            if connections.count - evicting >= configuration.maxConnections {
                guard knownWaiting else { return }
                // At the limit with a client waiting: make room as nginx reuses idle
                // connections — close one that never sent a request, else the longest-idle
                // keep-alive one. Its slot is free once reaped in this iteration's tail.
                if !makeRoom() {
                    // Nothing to close: stop listening for readiness; reap resumes when a
                    // connection closes, and busy ones may turn idle: look again shortly
                    // (4 times a second, only while at the limit with clients waiting).
                    if !limitLogged {   // once per episode
                        limitLogged = true
                        logger.notice("max connections (\(configuration.maxConnections)) reached and every connection busy; new connections wait in the backlog")
                    }
                    pauseAccepting()
                    if let t = acceptResumeTimer { reactor.arm(t, after: .milliseconds(250)) }
                    return
                }
            }
            knownWaiting = false
            let result: IOResult<Int32>
            do {
                result = try Syscall.accept(listenerFD)
            } catch let error {
                if error.isResourceExhaustion {
                    if !exhaustionLogged {   // once per episode, not every 100 ms
                        exhaustionLogged = true
                        logger.warning("accept: \(error); pausing accepts for \(configuration.acceptPauseOnExhaustion) at a time until descriptors are free")
                    }
                    pauseAccepting()
                    if let t = acceptResumeTimer { reactor.arm(t, after: configuration.acceptPauseOnExhaustion) }
                    return
                }
                // ECONNABORTED, EPROTO, EPERM (firewall): that connection is gone; keep going.
                logger.debug("accept: \(error)")
                continue
            }
            switch result {
            case .wouldBlock:
                return
            case .done(let fd):
                if exhaustionLogged {
                    exhaustionLogged = false
                    logger.notice("accepting again")
                }
                open(fd)
            }
        }
        _ = listener
    }

    /// Closes one connection that holds a slot without using it, never one with a request in
    /// flight: the oldest of those that sent no request yet, else the longest-idle keep-alive
    /// one (one pass, no allocation). Returns whether it closed one.
    func makeRoom() -> Bool {
        var silent: Connection?
        var idle: Connection?
        for (_, c) in connections {
            switch c.roomClass {
            case .neverRequested: if silent.map({ c.openedAt < $0.openedAt }) ?? true { silent = c }
            case .idleKeepAlive: if idle.map({ c.idleSince < $0.idleSince }) ?? true { idle = c }
            case .busy: break
            }
        }
        guard let chosen = silent ?? idle else { return false }
        chosen.evict()
        evicting += 1
        if !roomLogged {   // once per episode
            roomLogged = true
            logger.notice("max connections (\(configuration.maxConnections)) reached: closing connections without a request and idle keep-alive ones to admit new clients")
        }
        return true
    }

    func pauseAccepting() {
        guard let listener else { return }
        acceptPaused = true
        reactor.setInterest(listener, [])
    }

    /// `atLimit`: listen again even with every slot taken (the pause timer: a waiting client
    /// makes the listener readable, and `acceptReady` makes room or pauses again).
    func resumeAcceptingIfPossible(atLimit: Bool = false) {
        guard acceptPaused, let listener, !isShuttingDown,
              atLimit || connections.count < configuration.maxConnections,
              let t = acceptResumeTimer, !reactor.isArmed(t) else { return }
        acceptPaused = false
        reactor.setInterest(listener, .readable)
        if connections.count < configuration.maxConnections / 2 {   // the episode is over
            limitLogged = false
            roomLogged = false
        }
    }

    func open(_ fd: Int32) {
        Socket.setNoDelay(fd)
        var engine: TLSEngine?
        if let ctx = tlsContext {
            do {
                engine = try TLSEngine(server: ctx)
            } catch {
                logger.error("TLS engine: \(error)")
                Syscall.close(fd)
                return
            }
        }
        let conn = Connection(server: self, fd: fd, tls: engine)
        do {
            conn.registration = try reactor.register(fd: fd, interest: .readable, handler: conn)
        } catch {
            logger.error("register fd \(fd): \(error)")
            Syscall.close(fd)
            return
        }
        conn.timer = reactor.makeTimer(conn)
        connections[fd] = conn
        acceptedTotal += 1
        conn.opened()
    }

    // MARK: Shared helpers for connections

    /// Peer faults (failed handshakes, timeouts, TLS errors) of one kind are logged at most
    /// once per `peerFaultLogWindow`; the next line logged says how many were left out. 8 000
    /// garbage handshakes wrote 8 000 lines (1.4 MB) before.
    var peerFaultLog: [String: (nextAllowed: Instant, suppressed: Int)] = [:]
    static let peerFaultLogWindow: Duration = .seconds(10)

    func logPeerFault(_ kind: String, _ message: @autoclosure () -> String) {
        let now = reactor.now
        var entry = peerFaultLog[kind] ?? (nextAllowed: Instant(nanoseconds: 0), suppressed: 0)
        if now < entry.nextAllowed {
            entry.suppressed += 1
            peerFaultLog[kind] = entry
            return
        }
        let more = entry.suppressed > 0 ? " (and \(entry.suppressed) more like it in the last \(HTTPServer.peerFaultLogWindow), not logged)" : ""
        logger.info("\(message())\(more)")
        peerFaultLog[kind] = (nextAllowed: now + HTTPServer.peerFaultLogWindow, suppressed: 0)
    }

    var httpDate: String {
        let s = wallClockSeconds()
        if s != dateSecond {
            dateSecond = s
            dateValue = IMFDate.format(epochSeconds: s)
        }
        return dateValue
    }

    func scheduleFlush(_ c: Connection) {
        if !c.inFlushList {
            c.inFlushList = true
            flushList.append(c)
        }
    }

    func scheduleDrain(_ c: Connection) {
        if !c.inDrainList {
            c.inDrainList = true
            drainList.append(c)
        }
    }

    func scheduleReap(_ c: Connection) {
        if !c.inReapList {
            c.inReapList = true
            reapList.append(c)
        }
    }

    // MARK: Tail

    /// Every phase reports whether work is still queued for any phase, not only its own: a
    /// flush may resume a paused reader (drain work for the next iteration) and a drain may
    /// queue a flush. Reporting only the phase's own list let the loop sleep in `epoll_wait`
    /// with work queued that no event would announce.
    func runTail(_ phase: TailPhase) -> Bool {
        switch phase {
        case .drain:
            guard !drainList.isEmpty else { break }
            let list = drainList
            drainList.removeAll(keepingCapacity: true)
            for c in list {
                c.inDrainList = false
                c.drain()
            }
        case .commit:
            break
        case .flush:
            guard !flushList.isEmpty else { break }
            let list = flushList
            flushList.removeAll(keepingCapacity: true)
            for c in list {
                c.inFlushList = false
                c.flush()
            }
        case .reap:
            guard !reapList.isEmpty else { break }
            let list = reapList
            reapList.removeAll(keepingCapacity: true)
            for c in list {
                c.inReapList = false
                if c.evicted { evicting -= 1 }
                c.finalClose()
                connections[c.fd] = nil
            }
            resumeAcceptingIfPossible()
            if isShuttingDown && connections.isEmpty { drained() }
        }
        return hasQueuedTailWork
    }

    /// Work queued for a tail phase that no descriptor event will announce.
    var hasQueuedTailWork: Bool { !drainList.isEmpty || !flushList.isEmpty || !reapList.isEmpty }

    // MARK: Shutdown

    /// Stops accepting, closes idle keep-alive connections, lets requests in flight finish
    /// (their responses carry `Connection: close`), and closes whatever is left after
    /// `shutdownGrace`. `onDrained` runs when no connection remains.
    public func beginShutdown() {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        if let listener {
            reactor.close(listener)
            self.listener = nil
        }
        if let t = acceptResumeTimer { reactor.free(t); acceptResumeTimer = nil }
        for c in connections.values { c.shutdownRequested() }
        if connections.isEmpty {
            drained()
        } else if let lh = listenerHandler {
            let t = reactor.makeTimer(ShutdownDeadline(server: self, listener: lh))
            shutdownTimer = t
            reactor.arm(t, after: configuration.shutdownGrace)
        }
    }

    func shutdownDeadlinePassed() {
        logger.notice("shutdown grace (\(configuration.shutdownGrace)) over; closing \(connections.count) connection(s)")
        for c in connections.values { c.abort(reason: "server shutting down") }
    }

    func drained() {
        if let t = shutdownTimer { reactor.free(t); shutdownTimer = nil }
        let callback = onDrained
        onDrained = nil
        callback?()
    }
}

/// The listening socket's handler (and the accept-pause timer's).
final class ListenerHandler: IOHandler, DeadlineHandler {
    unowned let server: HTTPServer
    init(server: HTTPServer) { self.server = server }
    func onReadable() { server.acceptReady() }
    func onWritable() {}
    func onDeadline() {
        server.resumeAcceptingIfPossible(atLimit: true)
    }
}

final class ShutdownDeadline: DeadlineHandler {
    unowned let server: HTTPServer
    let listener: ListenerHandler
    init(server: HTTPServer, listener: ListenerHandler) { self.server = server; self.listener = listener }
    func onDeadline() { server.shutdownDeadlinePassed() }
}

final class TailAdapter: TailHandler {
    unowned let server: HTTPServer
    init(server: HTTPServer) { self.server = server }
    func runTail(_ phase: TailPhase) -> Bool { server.runTail(phase) }
}
