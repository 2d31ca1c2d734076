/// `tickiti-mail serve`: the server (SPEC §3, §5).
#if canImport(Glibc)
import Glibc
#endif
import App
import ArgumentParser
import HTTP1
import Logging
import Reactor
import Store
import Workers
import CShims

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTPS server.",
        discussion: """
            With no TLS flags, a development certificate for localhost/127.0.0.1 is made under \
            certs/ on first start. SIGTERM/SIGINT stop gracefully; SIGHUP reloads the certificate.
            """)

    @Option(help: databaseHelp)
    var db = defaultDatabase

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free port).")
    var listen = "127.0.0.1:8443"

    @Option(name: .customLong("metrics-listen"), help: "Serve Prometheus GET /metrics over plain HTTP on HOST:PORT (off by default).")
    var metricsListen: String?

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain (with --tls-key).")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key (with --tls-cert).")
    var tlsKey: String?

    @Flag(name: .customLong("plain-http"), help: "Serve plain HTTP (behind a TLS-terminating proxy).")
    var plainHTTP = false

    @Flag(name: .customLong("no-tls-resumption"), help: "Turn off TLS session tickets and the session cache (every connection a full handshake).")
    var noTLSResumption = false

    @Option(name: .customLong("mail-from-address"), help: "Default sender address (else $MAIL_FROM_ADDRESS).")
    var mailFromAddress: String?

    @Option(name: .customLong("max-head-bytes"), help: "Request line + headers limit; beyond: 431.")
    var maxHeadBytes = 16384

    @Option(name: .customLong("max-body-bytes"), help: "Request body limit; beyond: 413, answered before the body is read. Base64 makes attachments a third larger: keep it above --max-attachment-bytes × 4/3.")
    var maxBodyBytes = 20_971_520

    @Option(name: .customLong("max-attachment-bytes"), help: "The attachments of one message together, once decoded; beyond: 422 naming the limit.")
    var maxAttachmentBytes = 10_485_760

    @Option(name: .customLong("max-body-bytes-in-flight"),
            help: "Memory all request bodies being received may hold together; a body that does not fit gets 503 with Retry-After before it is read.")
    var maxBodyBytesInFlight = 268_435_456

    @Option(name: .customLong("head-timeout-seconds"), help: "Time for the TLS handshake + whole head; a body must keep this pace.")
    var headTimeoutSeconds = 10.0

    @Option(name: .customLong("idle-timeout-seconds"), help: "Idle keep-alive connections are closed after this.")
    var idleTimeoutSeconds = 60.0

    @Option(name: .customLong("max-connections"), help: "Inbound connections held at once; beyond, new ones wait in the backlog.")
    var maxConnections = 10_000

    @Option(name: .customLong("shutdown-grace-seconds"), help: "On SIGTERM, how long requests in flight may take.")
    var shutdownGraceSeconds = 5.0

    @Option(name: .customLong("idempotency-retention-seconds"), help: "How long an Idempotency-Key's record is kept.")
    var idempotencyRetentionSeconds = 86_400

    @Option(name: .customLong("sqlite-synchronous"), help: "FULL (durable across power loss) or NORMAL (across crashes only).")
    var sqliteSynchronous = "FULL"

    @Option(name: .customLong("sqlite-checkpoints"), help: "helper (the default: WAL checkpoints in a helper process, off the event loop, started with the first checkpoint due) or inline (in the loop, as SQLite does by default).")
    var sqliteCheckpoints = "helper"

    @Option(help: ArgumentHelp("Worker processes (PostgreSQL only): each has its own event loop, TLS context and database connection, and listens on the same port (SO_REUSEPORT). A crashed worker is restarted; signals are passed on to all."))
    var workers = 1

    @Option(name: .customLong("worker-index"), help: .hidden)
    var workerIndex: Int?

    @Option(name: .customLong("lease-seconds"),
            help: "PostgreSQL: how long a message this process is sending stays its own without renewal; a process that dies loses its messages to the others after this.")
    var leaseSeconds = 60

    @Option(name: .customLong("retry-base-seconds"), help: "First retry delay after a temporary delivery failure; doubles each attempt.")
    var retryBaseSeconds = 60

    @Option(name: .customLong("retry-max-seconds"), help: "Cap of the retry delay.")
    var retryMaxSeconds = 3600

    @Option(name: .customLong("max-queue-age-seconds"), help: "A message still not delivered after this is failed.")
    var maxQueueAgeSeconds = 86_400

    @Option(name: .customLong("smtp-timeout-seconds"),
            help: "How long to wait for each SMTP reply, the one to the end of data included (default: RFC 5321's values, 5 minutes per command and 10 minutes for the end of data).")
    var smtpTimeoutSeconds: Int?

    @Option(name: .customLong("uncertain-retries"),
            help: "How often a message is sent again when the reply to its end of data never came (the relay may have it: each retry may be a duplicate, with the same Message-ID); then it ends 'uncertain'.")
    var uncertainRetries = 1

    @Option(name: .customLong("smtp-helo-name"), help: "Name sent with EHLO (default: this host's name).")
    var smtpHeloName: String?

    @Option(name: .customLong("smtp-messages-per-session"), help: "Messages per SMTP session before it is closed (0: no limit).")
    var smtpMessagesPerSession = 0

    @Option(name: .customLong("resolv-conf"), help: "Name servers for relay host names (resolv.conf format).")
    var resolvConf = "/etc/resolv.conf"

    @Option(name: .customLong("hosts-file"), help: "Hosts file consulted before DNS.")
    var hostsFile = "/etc/hosts"

    @Option(name: .customLong("dns-port"), help: "UDP port of the name servers of --resolv-conf (53 unless they listen elsewhere).")
    var dnsPort: UInt16 = 53

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: LogLevelOption = .info

    @Option(name: .customLong("log-format"), help: "plain (one readable line each) or json (one object per line, for log shippers), for the logs and the access log.")
    var logFormat: LogFormatOption = .plain

    @Flag(name: .customLong("no-access-log"), help: "No access log line per request (method, target, status, bytes, duration, client, token name).")
    var noAccessLog = false

    func validate() throws {
        if plainHTTP && (tlsCert != nil || tlsKey != nil) {
            throw usageError("--plain-http and --tls-cert/--tls-key exclude each other")
        }
        if (tlsCert == nil) != (tlsKey == nil) {
            throw usageError("--tls-cert and --tls-key go together")
        }
        if maxHeadBytes < 256 || maxHeadBytes > 1 << 20 { throw usageError("--max-head-bytes must be 256…1048576") }
        if maxBodyBytes < 0 { throw usageError("--max-body-bytes must be ≥ 0") }
        if maxAttachmentBytes < 0 { throw usageError("--max-attachment-bytes must be ≥ 0") }
        if maxBodyBytesInFlight < maxBodyBytes {
            throw usageError("--max-body-bytes-in-flight must be at least --max-body-bytes (\(maxBodyBytes)), or no body of the largest size could ever be received")
        }
        if !(headTimeoutSeconds > 0) || !(idleTimeoutSeconds > 0) || !(shutdownGraceSeconds >= 0) {
            throw usageError("timeouts must be positive numbers of seconds")
        }
        if maxConnections < 1 { throw usageError("--max-connections must be ≥ 1") }
        if idempotencyRetentionSeconds < 1 { throw usageError("--idempotency-retention-seconds must be ≥ 1") }
        if !["FULL", "NORMAL"].contains(sqliteSynchronous.uppercased()) { throw usageError("--sqlite-synchronous must be FULL or NORMAL") }
        if !["helper", "inline"].contains(sqliteCheckpoints) { throw usageError("--sqlite-checkpoints must be helper or inline") }
        if retryBaseSeconds < 1 || retryMaxSeconds < retryBaseSeconds { throw usageError("--retry-base-seconds must be ≥ 1 and ≤ --retry-max-seconds") }
        if maxQueueAgeSeconds < 0 { throw usageError("--max-queue-age-seconds must be ≥ 0") }
        if let t = smtpTimeoutSeconds, t < 1 { throw usageError("--smtp-timeout-seconds must be ≥ 1") }
        if uncertainRetries < 0 || uncertainRetries > 10 { throw usageError("--uncertain-retries must be 0…10") }
        if smtpMessagesPerSession < 0 { throw usageError("--smtp-messages-per-session must be ≥ 0") }
        if dnsPort == 0 { throw usageError("--dns-port must be 1…65535") }
        if let h = smtpHeloName, h.isEmpty || h.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) {
            throw usageError("--smtp-helo-name must be a host name")
        }
    }

    func run() throws {
        var logger = bootstrapLogging(logLevel, json: logFormat == .json)
        let address: SocketAddress
        do {
            address = try SocketAddress(parsing: listen)
        } catch {
            printError("tickiti-mail: error: --listen: \(error)")
            throw ExitCode(64)
        }
        if workers != 1 { try superviseWorkers(address, logger: logger) }
        var options = ServeOptions(listen: address)
        options.workerIndex = workerIndex
        if let workerIndex {
            logger[metadataKey: "worker"] = "\(workerIndex)"
            // A worker stops (gracefully) when its supervisor is gone, however it went.
            _ = cshim_set_parent_death_signal(SIGTERM)
            if getppid() == 1 { throw ExitCode(1) }
        }
        if let metricsListen {
            do {
                options.metricsListen = try SocketAddress(parsing: metricsListen)
            } catch {
                printError("tickiti-mail: error: --metrics-listen: \(error)")
                throw ExitCode(64)
            }
        }
        options.tlsCertificatePath = tlsCert
        options.tlsKeyPath = tlsKey
        options.plainHTTP = plainHTTP
        options.tlsResumption = !noTLSResumption
        options.databasePath = db
        options.mailFromAddress = mailFromAddress ?? getenv("MAIL_FROM_ADDRESS").map { String(cString: $0) }
        options.limits = HTTPLimits(maxHeadBytes: maxHeadBytes, maxBodyBytes: maxBodyBytes)
        options.headTimeout = .milliseconds(Int64(headTimeoutSeconds * 1000))
        options.idleTimeout = .milliseconds(Int64(idleTimeoutSeconds * 1000))
        options.shutdownGrace = .milliseconds(Int64(shutdownGraceSeconds * 1000))
        options.maxConnections = maxConnections
        options.maxBodyBytesInFlight = maxBodyBytesInFlight
        options.idempotencyRetentionSeconds = idempotencyRetentionSeconds
        options.maxAttachmentBytes = maxAttachmentBytes
        options.accessLog = !noAccessLog
        options.jsonLogs = logFormat == .json
        options.synchronous = sqliteSynchronous.uppercased() == "NORMAL" ? .normal : .full
        if sqliteCheckpoints == "helper", case .sqlite(let path) = StoreLocation(db) {
            options.sqliteCheckpointer = [Supervisor.ownExecutable(), "store", "checkpointer", "--db", path,
                                          "--sqlite-synchronous", options.synchronous.rawValue]
        }
        guard leaseSeconds >= 1 else {
            printError("tickiti-mail: error: --lease-seconds must be at least 1")
            throw ExitCode(64)
        }
        options.leaseSeconds = leaseSeconds
        options.retryBaseSeconds = retryBaseSeconds
        options.retryMaxSeconds = retryMaxSeconds
        options.maxQueueAgeSeconds = maxQueueAgeSeconds
        options.smtpTimeoutSeconds = smtpTimeoutSeconds
        options.uncertainRetries = uncertainRetries
        options.smtpHeloName = smtpHeloName
        options.smtpMessagesPerSession = smtpMessagesPerSession
        options.resolvConfPath = resolvConf
        options.hostsPath = hostsFile
        options.dnsPort = dnsPort
        do {
            let app = try Application(options: options, logger: logger)
            app.onListening = { url in printError("listening on \(url)") }
            app.onMetricsListening = { url in printError("metrics on \(url)/metrics") }
            app.onStopped = { line in printError(line) }
            // The demo token on stdout (what a newcomer copies), every log line on stderr.
            app.onDemo = { lines in
                for l in lines { print(l) }
                fflush(nil)   // every stream (stdout is a shared global Swift 6 will not name)
            }
            try app.run()
        } catch let error as StartupError {
            printError("tickiti-mail: error: \(error)")
            throw ExitCode(1)
        }
    }
}

extension Serve {
    /// `--workers N` (N > 1): this process becomes the supervisor (Workers/Supervisor) and never
    /// returns. The port is reserved here (port 0 becomes a real one, the same for all); each
    /// worker runs this same command line without `--workers`, with that port, `--worker-index i`
    /// and, with `--metrics-listen HOST:PORT`, a metrics port of its own: PORT + i (each worker is
    /// a Prometheus target of its own, its samples labelled `worker="i"`).
    func superviseWorkers(_ address: SocketAddress, logger: Logger) throws -> Never {
        guard workers >= 1, workers <= 64 else {
            printError("tickiti-mail: error: --workers must be between 1 and 64")
            throw ExitCode(64)
        }
        guard case .postgres = StoreLocation(db) else {
            printError("tickiti-mail: error: --workers \(workers) needs a PostgreSQL store (--db postgresql://…): a SQLite database belongs to one process")
            throw ExitCode(64)
        }
        let reserved: (fd: Int32, bound: SocketAddress)
        do {
            reserved = try Socket.reserveTCP(address)
        } catch {
            printError("tickiti-mail: error: cannot listen on \(address): \(error)")
            throw ExitCode(1)
        }
        var metrics: SocketAddress?
        if let metricsListen {
            do {
                metrics = try SocketAddress(parsing: metricsListen)
            } catch {
                printError("tickiti-mail: error: --metrics-listen: \(error)")
                throw ExitCode(64)
            }
        }
        let base = Serve.argumentsWithout(["--workers", "--listen", "--metrics-listen", "--worker-index"],
                                          in: Array(CommandLine.arguments.dropFirst()))
        let listenArgument = reserved.bound.description
        let supervisor = Supervisor(count: workers, logger: logger) { i in
            var args = base + ["--listen", listenArgument, "--worker-index", "\(i)"]
            if let metrics {
                let port = metrics.port == 0 ? 0 : Int(metrics.port) + i
                args += ["--metrics-listen", metrics.withPort(UInt16(clamping: port)).description]
            }
            return args
        }
        let status = supervisor.run()
        close(reserved.fd)
        throw ExitCode(status)
    }

    /// `args` without the named options and their values (`--name value` and `--name=value`).
    static func argumentsWithout(_ names: Set<String>, in args: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if names.contains(a) {
                i += 2
                continue
            }
            if let eq = a.firstIndex(of: "="), names.contains(String(a[..<eq])) {
                i += 1
                continue
            }
            out.append(a)
            i += 1
        }
        return out
    }
}

/// `tickiti-mail dev-cert`: (re)makes the development certificate in-process.
struct DevCert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-cert",
        abstract: "Make a self-signed development certificate (ECDSA P-256, localhost + 127.0.0.1).")

    @Option(help: "Folder for localhost.pem and localhost-key.pem.")
    var dir = "certs"

    func run() throws {
        do {
            try makeDevelopmentCertificate(directory: dir)
            printError("wrote \(dir)/localhost.pem and \(dir)/localhost-key.pem (mode 0600); trust it with: curl --cacert \(dir)/localhost.pem …")
        } catch {
            printError("tickiti-mail: error: \(error)")
            throw ExitCode(1)
        }
    }
}
