/// Application: composes the server from its parts and runs the loop — the reactor, the
/// TLS context (given, or the development certificate made on first start), the HTTP
/// server with its routes, and the signals (SIGTERM/SIGINT: graceful stop; SIGHUP: reload
/// the certificate and key from disk; a bad file is logged and the old ones kept).
#if canImport(Glibc)
import Glibc
#endif
import Auth
import CShims
import HTTP1
import HTTPServer
import JSON
import Logging
import Reactor
import Resolver
import SMTPProtocol
import SendAPI
import PostgresStore
import Store
import TLS

/// A start-up failure: one clear line for stderr, then a non-zero exit.
public struct StartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public final class Application: SignalHandler, DeadlineHandler {
    public let options: ServeOptions
    var logger: Logger
    let reactor: Reactor
    public let router = Router()
    var server: HTTPServer!
    var metricsServer: HTTPServer?
    var metrics: ServerMetrics?
    var certificatePaths: (cert: String, key: String)?
    var stopping = false

    /// Called with the bound address once the server accepts connections.
    public var onListening: ((String) -> Void)?
    /// Called with the metrics listener's URL (`--metrics-listen`).
    public var onMetricsListening: ((String) -> Void)?
    /// Called once, after `onListening`, when the embedded demo was created: lines to show.
    public var onDemo: (([String]) -> Void)?
    /// After a clean stop: one line saying what this run accepted (messages, group commits).
    public var onStopped: ((String) -> Void)?
    public private(set) var store: ServerStore?
    public private(set) var sendService: SendEmailService?
    public private(set) var scheduler: DeliveryScheduler?
    var auditService: AuditService?
    var accessLog: AccessLog?
    var demoToken: String?
    /// Once the listener is bound (a start that cannot bind makes nothing, so the next start
    /// still shows the demo token): the embedded demo if the store is empty, then the
    /// `--mail-from-address` check. Under `--workers N` only worker 0 (one token, one banner).
    var seedsDemo: Bool { (options.workerIndex ?? 0) == 0 }
    /// Set when the start-up cannot go on (the demo could not be written): `run` throws it.
    var startupFailure: StartupError?

    public init(options: ServeOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        do {
            reactor = try Reactor()
        } catch {
            throw StartupError("cannot create the event loop: \(error)")
        }
        CoreRoutes.install(on: router)
    }

    /// Makes the TLS context from the options (or the development certificate).
    func makeTLSContext() throws -> TLSServerContext? {
        if options.plainHTTP { return nil }
        let cert: String
        let key: String
        switch (options.tlsCertificatePath, options.tlsKeyPath) {
        case (let c?, let k?):
            cert = c
            key = k
        case (nil, nil):
            let dir = options.developmentCertificateDirectory
            cert = dir + "/localhost.pem"
            key = dir + "/localhost-key.pem"
            if access(cert, F_OK) != 0 || access(key, F_OK) != 0 {
                if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                    throw StartupError("cannot create \(dir)/: \(String(cString: strerror(errno)))")
                }
                do {
                    try DevelopmentCertificate.generate(certificatePath: cert, privateKeyPath: key)
                } catch {
                    throw StartupError("cannot make the development certificate: \(error)")
                }
                logger.notice("made a development certificate \(cert) (key \(key), mode 0600) for localhost and 127.0.0.1; trust it with: curl --cacert \(cert) …")
            } else {
                logger.info("using the development certificate \(cert); trust it with: curl --cacert \(cert) …")
            }
        default:
            throw StartupError("--tls-cert and --tls-key go together")
        }
        certificatePaths = (cert, key)
        do {
            return try TLSServerContext(certificateChainPath: cert, privateKeyPath: key, resumption: options.tlsResumption)
        } catch {
            throw StartupError("bad TLS certificate or key: \(error)")
        }
    }

    /// Runs until SIGTERM/SIGINT and the graceful shutdown that follows.
    public func run() throws {
        Reactor.ignoreSIGPIPE()
        // Bodies, messages and attachments up to 32 MiB (glibc's maximum) are reused from
        // malloc's heap instead of being mapped and zero-filled per request (page faults were a
        // tenth of the CPU of a send with a 100 KiB attachment); memory goes back to the
        // system past 256 MiB free.
        if cshim_malloc_keep_large_buffers(32 << 20, 256 << 20) == 0 { logger.debug("mallopt refused the buffer thresholds") }
        let fdLimit = Reactor.raiseDescriptorLimit()
        do {
            try reactor.watchSignals([SIGTERM, SIGINT, SIGHUP], handler: self)
        } catch {
            throw StartupError("cannot watch signals: \(error)")
        }
        let tls = try makeTLSContext()
        let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration.load(
            resolvConfPath: options.resolvConfPath, hostsPath: options.hostsPath, port: options.dnsPort))
        let store = try openStore(resolver: resolver)
        self.store = store
        // A store that connects in the loop (PostgreSQL): give it a moment before accepting,
        // so the first requests are not 503s. Bounded: past it, it is served 503 until ready.
        let readyBy = Instant.now() + .seconds(10)
        while store.unavailableReason != nil && store.startupFailure == nil && Instant.now() < readyBy {
            do { try reactor.runOnce(maxWait: .milliseconds(20)) } catch { break }
        }
        if let failure = store.startupFailure { throw StartupError("cannot use the database: \(failure)") }
        if let reason = store.unavailableReason { logger.warning("starting without the store (\(reason)): answering 503 until it is back") }
        let directory = Directory(store: store, reactor: reactor, logger: logger)
        let service = SendEmailService(store: store, reactor: reactor, directory: directory, logger: logger, mailFromAddress: options.mailFromAddress,
                                       retentionSeconds: options.idempotencyRetentionSeconds)
        service.maxAttachmentBytes = options.maxAttachmentBytes
        sendService = service
        var deliveryOptions = DeliveryScheduler.Options(
            retry: RetryPolicy(baseSeconds: options.retryBaseSeconds, maxSeconds: options.retryMaxSeconds,
                               maxQueueAgeSeconds: options.maxQueueAgeSeconds),
            smtpTimeoutSeconds: options.smtpTimeoutSeconds, clientName: options.smtpHeloName ?? Application.hostName())
        deliveryOptions.maxMessagesPerSession = options.smtpMessagesPerSession
        deliveryOptions.uncertainRetries = options.uncertainRetries
        let scheduler = DeliveryScheduler(store: store, reactor: reactor, resolver: resolver, logger: logger, options: deliveryOptions)
        scheduler.directoryVersion = { [directory] in directory.currentVersion() }
        self.scheduler = scheduler
        service.participants.append(scheduler)
        service.participants.append(directory)
        service.scheduler = scheduler
        reactor.afterPriorityEvents = { [unowned service] in service.commitDeliveryOutcomes() }
        // Readiness (liveness is /healthz): 503 while the store cannot take a commit.
        router.add("GET", "/readyz") { _, _ in
            if let reason = store.unavailableReason {
                var body = "{\"ok\":false,\"error\":{\"code\":\"store_unavailable\",\"message\":"
                JSONText.appendString(reason, to: &body)
                body += "}}"
                return .respond(HTTPResponse(status: 503, headers: HTTPHeaders([(name: "Content-Type", value: "application/json"),
                                                                                (name: "Retry-After", value: "1")]), body: Array(body.utf8)))
            }
            return .respond(HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]),
                                         body: Array("{\"ok\":true}".utf8)))
        }
        router.add("POST", "/api/idempotency_key") { request, _ in .respond(IdempotencyKeyService.handle(request)) }
        router.add("POST", "/api/send_email", headCheck: { head in service.checkHead(head) }) { request, responder in
            service.handle(request, responder: responder)
        }
        router.add("POST", "/api/send_email/batch", headCheck: { head in service.checkHead(head) }) { request, responder in
            service.handle(request, responder: responder, endpoint: .batch)
        }
        router.add("POST", "/api/render_template", headCheck: { head in service.checkHead(head) }) { request, responder in
            service.handle(request, responder: responder, endpoint: .renderTemplate)
        }
        let audit = AuditService(store: store, directory: directory, logger: logger, reactor: reactor)
        audit.install(on: router)
        auditService = audit
        var config = ServerConfiguration(listen: options.listen, limits: options.limits,
                                         headTimeout: options.headTimeout, idleTimeout: options.idleTimeout,
                                         maxConnections: options.maxConnections)
        config.shutdownGrace = options.shutdownGrace
        config.maxBodyBytesInFlight = options.maxBodyBytesInFlight
        config.reusePort = options.workerIndex != nil
        if fdLimit > 0 && config.maxConnections + 64 > fdLimit {
            logger.warning("--max-connections \(config.maxConnections) is above what the descriptor limit (\(fdLimit)) allows; accepts will pause on EMFILE")
        }
        server = HTTPServer(reactor: reactor, configuration: config, tlsContext: tls, handler: router, logger: logger)
        // Always watching answers: failed authentications are warnings whether or not the
        // access log's lines are on.
        let log = AccessLog(json: options.jsonLogs, lines: options.accessLog, logger: logger, reactor: reactor)
        accessLog = log
        server.accessLog = log
        reactor.addTailHandler(log, phase: .flush)
        let bound: SocketAddress
        do {
            bound = try server.start()
        } catch {
            throw StartupError("cannot listen on \(options.listen): \(error)")
        }
        if let address = options.metricsListen {
            try startMetrics(address, service: service, scheduler: scheduler, store: store)
        }
        scheduler.start()
        let url = "\(server.scheme)://\(bound)"
        onListening?(url)
        if seedsDemo { seedDemo(store: store, url: url) }
        do {
            try reactor.run()
        } catch {
            throw StartupError("event loop failed: \(error)")
        }
        if let startupFailure { throw startupFailure }
        accessLog?.flush()
        // Status writes made by the last iteration's outcomes, made durable.
        store.finish()
        service.commitRemaining()
        store.finish()
        logger.info("stopped")
        let n = service.accepted, c = service.groupCommits
        onStopped?("stopped: accepted \(n) message(s) in \(c) group commit(s)" + (c > 0 ? " (\(n * 10 / c / 10).\(n * 10 / c % 10) per commit)" : ""))
    }

    /// `--metrics-listen`: a second, plain-HTTP server in the same loop with one route.
    func startMetrics(_ address: SocketAddress, service: SendEmailService, scheduler: DeliveryScheduler, store: ServerStore) throws {
        let m = ServerMetrics(routes: router.labels, worker: options.workerIndex)
        metrics = m
        server.observer = m
        service.metrics = m
        let metricsRouter = Router()
        metricsRouter.add("GET", "/metrics") { [unowned self] _, responder in
            m.render(server: self.server, scheduler: scheduler, store: store) { body in
                responder.respond(HTTPResponse(status: 200, headers: HTTPHeaders([
                    (name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8"), (name: "Cache-Control", value: "no-store"),
                ]), body: body))
            }
            return .deferred
        }
        var config = ServerConfiguration(listen: address, limits: options.limits, headTimeout: options.headTimeout,
                                         idleTimeout: options.idleTimeout, maxConnections: 64)
        config.shutdownGrace = options.shutdownGrace
        let s = HTTPServer(reactor: reactor, configuration: config, tlsContext: nil, handler: metricsRouter, logger: logger)
        let bound: SocketAddress
        do {
            bound = try s.start()
        } catch {
            throw StartupError("cannot listen on \(address) (--metrics-listen): \(error)")
        }
        metricsServer = s
        logger.info("metrics on http://\(bound)/metrics")
        onMetricsListening?("http://\(bound)")
    }

    var shutdownTimer: TimerHandle?

    /// The embedded demo on an empty store (a completion: PostgreSQL's comes from the loop),
    /// its banner, then the `--mail-from-address` check against the mailboxes as they are now.
    func seedDemo(store: ServerStore, url: String) {
        let (seed, secret) = EmbeddedDefault.seed()
        store.seedIfEmpty(seed) { [self] result in
            switch result {
            case .success(let id?):
                logger.notice("empty database: created the demo mailbox \(seed.mailboxName) (\(seed.mailboxDSN)), template \(seed.templateIdentifier) and a send-email token")
                demoToken = "\(id)|\(secret)"
                onDemo?(EmbeddedDefault.banner(token: "\(id)|\(secret)", url: url, caFile: certificatePaths?.cert))
                warnIfMailFromIsNoMailbox([(seed.mailboxName, seed.mailboxAddress)])
            case .success(nil):
                let enabled = ((try? store.mailboxes()) ?? []).filter(\.enabled).map { ($0.name, $0.address) }
                warnIfMailFromIsNoMailbox(enabled)
            case .failure(let e as StoreNotReady):
                logger.warning("the embedded demo is not created (\(store.unavailableReason ?? e.description)): an empty database gets it on the next start")
            case .failure(let e):
                startupFailure = StartupError("cannot create the embedded demo: \(e)")
                reactor.stop()
            }
        }
    }

    /// The store `--db` names (migrated: SQLite now, PostgreSQL in the loop once connected).
    func openStore(resolver: Resolver) throws -> ServerStore {
        switch StoreLocation(options.databasePath) {
        case .sqlite(let path):
            let db: Database
            do {
                // A small busy timeout for reads; the group commit's BEGIN does not wait at all
                // (another process's write lock is retried on a timer: SQLiteServerStore).
                db = try Database(path: path, synchronous: options.synchronous, busyTimeoutMilliseconds: 10)
            } catch {
                throw StartupError("cannot open the database \(path): \(error)")
            }
            let store = SQLiteServerStore(db: db, reactor: reactor, logger: logger)
            if let command = options.sqliteCheckpointer {
                store.checkpoints = CheckpointHandOff(db: db, command: command, logger: logger)
            }
            return store
        case .postgres(let uri):
            // libpq only in the loop, never blocking it: connecting (with our own resolver),
            // the migrations under their advisory lock, the directory (PostgresServerStore).
            do {
                return try PostgresServerStore(uri: uri, reactor: reactor, resolver: resolver, logger: logger,
                                               leaseSeconds: options.leaseSeconds)
            } catch {
                throw StartupError("bad PostgreSQL URI: \(error)")
            }
        }
    }

    /// `--mail-from-address` picks the default mailbox by its address: one that names none is a
    /// mistake worth saying once, at start (it would otherwise be ignored silently).
    func warnIfMailFromIsNoMailbox(_ enabled: [(name: String, address: String)]) {
        guard let from = options.mailFromAddress else { return }
        guard !enabled.contains(where: { $0.address.lowercased() == from.lowercased() }) else { return }
        let fallback = enabled.first.map { "the first enabled mailbox (\($0.name) <\($0.address)>)" } ?? "no mailbox (none is enabled)"
        logger.warning("--mail-from-address \(from) is the address of no enabled mailbox: requests without \"mailbox\" use \(fallback); add one with: tickiti-mail mailbox add --name NAME --address \(from) --dsn …")
    }

    /// The shutdown grace passed with SMTP sessions still busy.
    public func onDeadline() {
        logger.notice("shutdown deadline: closing SMTP sessions still in flight (their messages are retried after restart)")
        scheduler?.abandon()
        reactor.stop()
    }

    static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "localhost" }
        let name = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return DNSMessage.isQueryableName(name) ? name : "localhost"
    }

    public func onSignal(_ signal: Int32) {
        switch signal {
        case SIGHUP:
            reloadCertificate()
        case SIGTERM, SIGINT:
            if stopping {
                logger.notice("second signal: stopping now")
                reactor.stop()
                return
            }
            stopping = true
            logger.notice("signal \(signal): stopping (finishing requests in flight, up to \(options.shutdownGrace))")
            // Stop when the HTTP side has drained and no SMTP transaction is in flight — or at
            // the grace deadline, abandoning what is left (retried after the restart).
            var pending = 2
            let done = { [reactor] in
                pending -= 1
                if pending == 0 { reactor.stop() }
            }
            server.onDrained = done
            scheduler?.onIdle = done
            server.beginShutdown()
            metricsServer?.beginShutdown()
            scheduler?.beginShutdown()
            if scheduler == nil { done() }
            shutdownTimer = reactor.makeTimer(self)
            reactor.arm(shutdownTimer!, after: options.shutdownGrace + .seconds(1))
        default:
            break
        }
    }

    func reloadCertificate() {
        guard let paths = certificatePaths else {
            logger.notice("SIGHUP: plain HTTP, no certificate to reload")
            return
        }
        do {
            let ctx = try TLSServerContext(certificateChainPath: paths.cert, privateKeyPath: paths.key,
                                           resumption: options.tlsResumption)
            server.reloadTLS(ctx)
            logger.notice("SIGHUP: reloaded certificate \(paths.cert) (\(ctx.certificateSubject)); new connections use it")
        } catch {
            logger.error("SIGHUP: keeping the old certificate: \(error)")
        }
    }
}
