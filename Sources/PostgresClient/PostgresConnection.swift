/// PostgresConnection: one libpq connection driven by the reactor, never blocking it.
///
/// Connecting: the URI is parsed by `PQconninfoParse` (no I/O); a host *name* is resolved by
/// the product's own `Resolver` and handed to libpq as `hostaddr` (libpq would resolve it
/// synchronously), `host` kept for TLS verification; `sslmode` and the rest pass through;
/// `statement_timeout` is added to `options` (a query the server runs too long is ended by
/// the server: `PQcancel` blocks in libpq 15). `PQconnectStartParams` + `PQconnectPoll`, the
/// descriptor re-registered after every poll (libpq may close it and open another, even under
/// the same number, when it tries the next address), our own connect timer.
///
/// Ready: non-blocking, pipeline mode, a notice receiver that logs. Each `send` is one
/// pipeline segment — its queries then `PQpipelineSync` — which PostgreSQL runs as one
/// implicit transaction committed at the sync. Statements are prepared on first use in a
/// segment of their own (so an error in a later segment can never leave one unprepared).
/// Writing follows libpq's `PQflush` protocol: EPOLLOUT is wanted only while it returns 1,
/// and input is consumed meanwhile (a server blocked on its own output must not deadlock us).
/// Reading: `PQconsumeInput`, then `PQgetResult` while `PQisBusy` is 0. libpq 15 returns,
/// per query, its result then NULL; per sync, one `PGRES_PIPELINE_SYNC` (not followed by a
/// NULL); after an error, `PGRES_PIPELINE_ABORTED` for every query up to the sync. The state
/// machine below only relies on "a query's results end with NULL" and "a sync is one result",
/// so a stray NULL is harmless.
///
/// Failure (read/write error, `CONNECTION_BAD`, the connect timer, the query timer of the
/// oldest segment): `PQfinish`, every pending segment fails with `connectionLost`, the
/// delegate hears of it once, and a new connection is tried after a backoff that doubles up to
/// `maxBackoff` (reset by a successful connection).
#if canImport(Glibc)
import Glibc
#endif
import CLibPQ
import Logging
import Reactor
import Resolver

public protocol PostgresConnectionDelegate: AnyObject {
    /// Ready: `send` works.
    func postgresConnected(_ c: PostgresConnection)
    /// A connection failed or was lost (every pending segment has had its failure already).
    func postgresDisconnected(_ c: PostgresConnection, _ error: PGError)
    func postgresNotification(_ c: PostgresConnection, channel: String, payload: String)
}

public final class PostgresConnection: IOHandler, ResolutionHandler {
    public struct Options: Sendable {
        public var connectTimeout: Duration = .seconds(5)
        public var queryTimeout: Duration = .seconds(10)
        public var statementTimeoutMilliseconds = 5000
        public var minBackoff: Duration = .milliseconds(100)
        public var maxBackoff: Duration = .seconds(5)
        public init() {}
    }

    enum State {
        case idle
        case resolving
        case connecting
        case ready
        case waiting   // backoff before the next attempt
        case stopped
    }

    /// What each result libpq returns belongs to, in order.
    enum Expected {
        case prepare(String)
        case query(segment: Int, index: Int)
        case sync(segment: Int?)
    }

    final class Segment {
        let id: Int
        let sentAt: Instant
        let timeout: Duration
        var outcomes: [PGOutcome?]
        let completion: (Result<[PGOutcome], PGError>) -> Void
        init(id: Int, sentAt: Instant, timeout: Duration, count: Int, completion: @escaping (Result<[PGOutcome], PGError>) -> Void) {
            self.id = id
            self.sentAt = sentAt
            self.timeout = timeout
            outcomes = Array(repeating: nil, count: count)
            self.completion = completion
        }
    }

    let reactor: Reactor
    let resolver: Resolver
    var logger: Logger
    public let options: Options
    public weak var delegate: PostgresConnectionDelegate?

    /// The URI's keywords and values, with ours added (hostaddr comes per attempt).
    let parameters: [(String, String)]
    let hostName: String?

    var state: State = .idle
    var conn: OpaquePointer?
    var registration: Registration?
    var wantsWrite = false
    var prepared: Set<String> = []
    /// When the last segment was answered (the next one's wait counts from then).
    var lastAnswerAt = Instant.now()
    var expected: [Expected] = []
    var expectedHead = 0
    var headHasResult = false
    var segments: [Int: Segment] = [:]
    var segmentOrder: [Int] = []
    var segmentOrderHead = 0
    var nextSegment = 0
    var backoff: Duration
    var connectTimer: TimerHandle?
    var queryTimer: TimerHandle?
    var backoffTimer: TimerHandle?
    var announcedDown = false

    public init(uri: String, reactor: Reactor, resolver: Resolver, logger: Logger, options: Options = .init()) throws(PGError) {
        self.reactor = reactor
        self.resolver = resolver
        self.logger = logger
        self.options = options
        backoff = options.minBackoff
        var err: UnsafeMutablePointer<CChar>?
        guard let parsed = PQconninfoParse(uri, &err) else {
            let m = err.map { String(cString: $0) } ?? "malformed connection URI"
            if let err { PQfreemem(err) }
            throw PGError(sqlState: nil, message: m.trimmingCharacters(), connectionLost: false)
        }
        defer { PQconninfoFree(parsed) }
        var kv: [(String, String)] = []
        var i = 0
        while let k = parsed[i].keyword {
            if let v = parsed[i].val { kv.append((String(cString: k), String(cString: v))) }
            i += 1
        }
        var host = kv.first { $0.0 == "host" }?.1
        if host?.contains(",") == true {
            throw PGError(sqlState: nil, message: "one host per URI, please (got \(host!))", connectionLost: false)
        }
        if kv.contains(where: { $0.0 == "hostaddr" }) || host.map({ $0.hasPrefix("/") || $0.isEmpty }) ?? true {
            host = nil   // an address given, a socket path, or libpq's default: nothing to resolve
        }
        if !kv.contains(where: { $0.0 == "application_name" }) { kv.append(("application_name", "tickiti-mail")) }
        // plan_cache_mode: every execution is planned for its own arguments and the table's
        // current size. A generic plan is chosen once and kept: chosen while the queue was
        // empty, it hashed a sequential scan of `messages` for every batched status write,
        // whatever the table grew to. Our statements run once per batch, so planning is a few
        // microseconds per message at most.
        let timeout = "-c statement_timeout=\(options.statementTimeoutMilliseconds) -c plan_cache_mode=force_custom_plan"
        if let o = kv.firstIndex(where: { $0.0 == "options" }) {
            kv[o].1 += " " + timeout
        } else {
            kv.append(("options", timeout))
        }
        parameters = kv
        hostName = host
    }

    deinit {
        if let c = conn { PQfinish(c) }
    }

    public var isReady: Bool { state == .ready }
    public var segmentsInFlight: Int { segments.count }

    // MARK: Connecting

    public func start() {
        guard state == .idle || state == .waiting else { return }
        if connectTimer == nil { connectTimer = reactor.makeTimer(TimerCall { [weak self] in self?.connectTimedOut() }) }
        if queryTimer == nil { queryTimer = reactor.makeTimer(TimerCall { [weak self] in self?.queryTimedOut() }) }
        if backoffTimer == nil { backoffTimer = reactor.makeTimer(TimerCall { [weak self] in self?.start() }) }
        if let name = hostName {
            state = .resolving
            if let r = resolver.resolve(name, for: self) { resolved(name, r) }
        } else {
            connect(hostaddr: nil)
        }
    }

    public func resolved(_ name: String, _ result: Result<[String], ResolveError>) {
        guard state == .resolving else { return }
        switch result {
        case .success(let addresses) where !addresses.isEmpty:
            connect(hostaddr: addresses.joined(separator: ","))
        case .success:
            fail(PGError(sqlState: nil, message: "\(name) has no address", connectionLost: true))
        case .failure(let e):
            fail(PGError(sqlState: nil, message: "cannot resolve \(name): \(e)", connectionLost: true))
        }
    }

    func connect(hostaddr: String?) {
        var kv = parameters
        if let hostaddr {
            // One hostaddr per host entry: libpq pairs them; the host is repeated for each.
            let count = hostaddr.split(separator: ",").count
            if let h = kv.firstIndex(where: { $0.0 == "host" }), count > 1 {
                kv[h].1 = Array(repeating: kv[h].1, count: count).joined(separator: ",")
            }
            kv.append(("hostaddr", hostaddr))
        }
        let c: OpaquePointer? = withCStrings(kv.map(\.0)) { keys in
            withCStrings(kv.map(\.1)) { values in PQconnectStartParams(keys, values, 0) }
        }
        guard let c else {
            fail(PGError(sqlState: nil, message: "out of memory", connectionLost: true))
            return
        }
        conn = c
        guard PQstatus(c) != CONNECTION_BAD else {
            fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
            return
        }
        PQsetnonblocking(c, 1)
        state = .connecting
        if let t = connectTimer { reactor.arm(t, after: options.connectTimeout) }
        // Before the first poll, libpq waits for the socket to be writable (connect(2) done).
        register(interest: .writable)
    }

    /// (Re-)registers libpq's current socket: it may have changed since the last poll.
    func register(interest: Interest) {
        if let r = registration { reactor.unregister(r) }
        registration = nil
        guard let c = conn else { return }
        let fd = PQsocket(c)
        guard fd >= 0 else {
            fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
            return
        }
        do {
            registration = try reactor.register(fd: fd, interest: interest, handler: self)
        } catch {
            fail(PGError(sqlState: nil, message: "cannot watch the PostgreSQL socket: \(error)", connectionLost: true))
        }
    }

    func poll() {
        guard let c = conn else { return }
        switch PQconnectPoll(c) {
        case PGRES_POLLING_READING: register(interest: .readable)
        case PGRES_POLLING_WRITING: register(interest: .writable)
        case PGRES_POLLING_OK: connected()
        default: fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
        }
    }

    func connected() {
        guard let c = conn else { return }
        if let t = connectTimer { reactor.cancel(t) }
        PQsetnonblocking(c, 1)
        guard PQenterPipelineMode(c) == 1 else {
            fail(PGError(sqlState: nil, message: "cannot enter pipeline mode: \(errorMessage())", connectionLost: true))
            return
        }
        PQsetNoticeReceiver(c, { context, result in
            guard let context, let result else { return }
            let me = Unmanaged<PostgresConnection>.fromOpaque(context).takeUnretainedValue()
            var m = PQresultErrorMessage(result).map { String(cString: $0) } ?? ""
            while m.last == "\n" { m.removeLast() }
            me.logger.notice("PostgreSQL: \(m)")
        }, Unmanaged.passUnretained(self).toOpaque())
        state = .ready
        backoff = options.minBackoff
        announcedDown = false
        prepared.removeAll()
        register(interest: .readable)
        delegate?.postgresConnected(self)
    }

    func connectTimedOut() {
        guard state == .connecting else { return }
        fail(PGError(sqlState: nil, message: "no connection within \(options.connectTimeout)", connectionLost: true))
    }

    // MARK: Sending

    /// `timeout`: how long this segment may wait for its answer (default `queryTimeout`; a
    /// migration's may be long), counted from when it is the oldest one waiting.
    @discardableResult
    public func send(_ queries: [PGQuery], timeout: Duration? = nil, completion: @escaping (Result<[PGOutcome], PGError>) -> Void) -> Bool {
        guard state == .ready, let c = conn else { return false }
        // Statements new to this connection: prepared in a segment of their own first.
        var preparing = false
        for q in queries where !prepared.contains(q.statement.name) {
            prepared.insert(q.statement.name)
            guard PQsendPrepare(c, q.statement.name, q.statement.sql, Int32(q.parameters.count), nil) == 1 else {
                fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
                return false
            }
            expected.append(.prepare(q.statement.name))
            preparing = true
        }
        if preparing {
            guard PQpipelineSync(c) == 1 else {
                fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
                return false
            }
            expected.append(.sync(segment: nil))
        }
        let id = nextSegment
        nextSegment += 1
        let segment = Segment(id: id, sentAt: reactor.now, timeout: timeout ?? options.queryTimeout, count: queries.count, completion: completion)
        segments[id] = segment
        segmentOrder.append(id)
        for (i, q) in queries.enumerated() {
            let ok = PGParameters.withC(q.parameters) { n, _, values, lengths, formats in
                PQsendQueryPrepared(c, q.statement.name, n, values, lengths, formats, 0)
            }
            guard ok == 1 else {
                fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
                return true
            }
            expected.append(.query(segment: id, index: i))
        }
        guard PQpipelineSync(c) == 1 else {
            fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
            return true
        }
        expected.append(.sync(segment: id))
        if let t = queryTimer, !reactor.isArmed(t) { reactor.arm(t, after: segment.timeout) }
        flush()
        return true
    }

    /// libpq's documented protocol: 1 = more to write (wait for EPOLLOUT), 0 = all sent.
    func flush() {
        guard let c = conn, state == .ready else { return }
        switch PQflush(c) {
        case 0: setWantsWrite(false)
        case 1: setWantsWrite(true)
        default: fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
        }
    }

    func setWantsWrite(_ w: Bool) {
        guard w != wantsWrite, let r = registration else { return }
        wantsWrite = w
        reactor.setInterest(r, w ? [.readable, .writable] : .readable)
    }

    // MARK: Events

    public func onReadable() {
        switch state {
        case .connecting: poll()
        case .ready: read()
        default: break
        }
    }

    public func onWritable() {
        switch state {
        case .connecting: poll()
        case .ready:
            flush()
            if state == .ready { read() }   // errors and hang-ups arrive as both
        default: break
        }
    }

    func read() {
        guard let c = conn else { return }
        guard PQconsumeInput(c) == 1 else {
            fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
            return
        }
        while state == .ready {
            if PQisBusy(c) != 0 { break }
            guard let r = PQgetResult(c) else {
                // The end of the current query's results.
                if expectedHead < expected.count, headHasResult, !isSync(expected[expectedHead]) {
                    advance()
                    continue
                }
                break
            }
            take(r)
        }
        drainNotifications()
        if state == .ready {
            if PQstatus(c) == CONNECTION_BAD {
                fail(PGError(sqlState: nil, message: errorMessage(), connectionLost: true))
                return
            }
            if wantsWrite { flush() }
        }
    }

    func isSync(_ e: Expected) -> Bool {
        if case .sync = e { return true }
        return false
    }

    func advance() {
        expectedHead += 1
        headHasResult = false
        if expectedHead > 256 && expectedHead * 2 > expected.count {
            expected.removeFirst(expectedHead)
            expectedHead = 0
        }
    }

    /// One result for the head of `expected`.
    func take(_ r: OpaquePointer) {
        guard expectedHead < expected.count else {
            PQclear(r)
            return
        }
        let status = PQresultStatus(r)
        switch expected[expectedHead] {
        case .sync(let id):
            PQclear(r)
            guard status == PGRES_PIPELINE_SYNC else { return }
            advance()
            if let id { finishSegment(id) }
        case .prepare(let name):
            if status != PGRES_COMMAND_OK {
                prepared.remove(name)
                if status != PGRES_PIPELINE_ABORTED { logger.error("PostgreSQL refused to prepare \(name): \(PGError(result: r))") }
            }
            PQclear(r)
            headHasResult = true
        case .query(let id, let index):
            headHasResult = true
            guard let segment = segments[id], segment.outcomes[index] == nil else {
                PQclear(r)
                return
            }
            switch status {
            case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
                segment.outcomes[index] = .ok(PGResult(taking: r))
            case PGRES_PIPELINE_ABORTED:
                PQclear(r)
                segment.outcomes[index] = .skipped
            default:
                segment.outcomes[index] = .failed(PGError(result: r))
                PQclear(r)
            }
        }
    }

    func finishSegment(_ id: Int) {
        guard let s = segments.removeValue(forKey: id) else { return }
        lastAnswerAt = reactor.now
        if segmentOrderHead < segmentOrder.count && segmentOrder[segmentOrderHead] == id { segmentOrderHead += 1 }
        if segmentOrderHead > 64 && segmentOrderHead * 2 > segmentOrder.count {
            segmentOrder.removeFirst(segmentOrderHead)
            segmentOrderHead = 0
        }
        rearmQueryTimer()
        s.completion(.success(s.outcomes.map { $0 ?? .skipped }))
    }

    /// The timer follows the oldest segment still waiting.
    func rearmQueryTimer() {
        guard let t = queryTimer else { return }
        while segmentOrderHead < segmentOrder.count && segments[segmentOrder[segmentOrderHead]] == nil { segmentOrderHead += 1 }
        if segmentOrderHead < segmentOrder.count, let oldest = segments[segmentOrder[segmentOrderHead]] {
            // A segment that waited behind a longer one gets its own time from then on.
            reactor.arm(t, at: max(oldest.sentAt, lastAnswerAt) + oldest.timeout)
        } else {
            reactor.cancel(t)
        }
    }

    func queryTimedOut() {
        guard state == .ready, !segments.isEmpty else { return }
        let waited = segmentOrderHead < segmentOrder.count ? segments[segmentOrder[segmentOrderHead]]?.timeout ?? options.queryTimeout : options.queryTimeout
        fail(PGError(sqlState: nil, message: "no answer from PostgreSQL within \(waited)", connectionLost: true))
    }

    func drainNotifications() {
        guard let c = conn else { return }
        while let n = PQnotifies(c) {
            let channel = String(cString: n.pointee.relname)
            let payload = n.pointee.extra.map { String(cString: $0) } ?? ""
            PQfreemem(n)
            delegate?.postgresNotification(self, channel: channel, payload: payload)
        }
    }

    // MARK: Failure

    func errorMessage() -> String {
        guard let c = conn, let p = PQerrorMessage(c) else { return "connection failed" }
        let m = String(cString: p).trimmingCharacters()
        return m.isEmpty ? "connection failed" : m
    }

    /// Tear down, fail what is pending, tell the delegate, try again after the backoff.
    func fail(_ error: PGError) {
        guard state != .stopped else { return }
        teardown()
        let pending = segmentOrder[segmentOrderHead...].compactMap { segments[$0] }
        segments.removeAll()
        segmentOrder.removeAll()
        segmentOrderHead = 0
        for s in pending { s.completion(.failure(error)) }
        if !announcedDown {
            logger.warning("PostgreSQL: \(error.message); reconnecting (backoff from \(backoff))")
        }
        announcedDown = true
        state = .waiting
        if let t = backoffTimer { reactor.arm(t, after: backoff) }
        backoff = min(backoff * 2, options.maxBackoff)
        delegate?.postgresDisconnected(self, error)
    }

    func teardown() {
        if let r = registration { reactor.unregister(r) }
        registration = nil
        wantsWrite = false
        if let c = conn { PQfinish(c) }   // non-blocking socket: the Terminate message is best effort
        conn = nil
        expected.removeAll()
        expectedHead = 0
        headHasResult = false
        prepared.removeAll()
        if let t = connectTimer { reactor.cancel(t) }
        if let t = queryTimer { reactor.cancel(t) }
    }

    public func stop() {
        guard state != .stopped else { return }
        teardown()
        if let t = backoffTimer { reactor.cancel(t) }
        let pending = segmentOrder[segmentOrderHead...].compactMap { segments[$0] }
        segments.removeAll()
        segmentOrder.removeAll()
        state = .stopped
        for s in pending { s.completion(.failure(PGError(sqlState: nil, message: "the connection was closed", connectionLost: true))) }
    }
}

public enum PGOutcome {
    case ok(PGResult)
    case failed(PGError)
    /// An earlier statement of the segment failed: this one did not run.
    case skipped
}

/// A timer calling a closure (the connection has three).
final class TimerCall: DeadlineHandler {
    let call: () -> Void
    init(_ call: @escaping () -> Void) { self.call = call }
    func onDeadline() { call() }
}

func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let owned: [UnsafeMutablePointer<CChar>] = strings.map { strdup($0)! }
    defer { for p in owned { free(p) } }
    var pointers: [UnsafePointer<CChar>?] = owned.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let l = s.last, l == "\n" || l == " " { s.removeLast() }
        return String(s)
    }
}
