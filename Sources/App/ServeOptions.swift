/// ServeOptions: everything `tickiti-mail serve` was told, as plain values (the CLI parses,
/// App composes). Defaults are SPEC §5's.
import HTTP1
import Reactor
import Store

public struct ServeOptions: Sendable {
    public var listen: SocketAddress
    /// `--metrics-listen`: plain-HTTP `GET /metrics` here; nil = off.
    public var metricsListen: SocketAddress?
    /// Both or neither; neither and not `plainHTTP` → the development certificate.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    public var plainHTTP = false
    /// TLS session resumption (tickets + server cache); off only for benchmarking full handshakes.
    public var tlsResumption = true
    /// Where the development certificate lives (`certs/` of the working directory).
    public var developmentCertificateDirectory = "certs"
    public var databasePath = "./data/tickiti.db"
    public var mailFromAddress: String?
    public var limits = HTTPLimits()
    public var headTimeout: Duration = .seconds(10)
    public var idleTimeout: Duration = .seconds(60)
    public var maxConnections = 10_000
    public var maxBodyBytesInFlight = 256 << 20
    public var shutdownGrace: Duration = .seconds(5)
    /// `--idempotency-retention-seconds`
    public var idempotencyRetentionSeconds = 86_400
    /// `--max-attachment-bytes`
    public var maxAttachmentBytes = 10 << 20
    /// An access log line per request on stderr (`--no-access-log`: none).
    public var accessLog = true
    /// `--log-format json`: the access log as JSON lines too.
    public var jsonLogs = false
    /// SQLite durability (see Store/Database.swift); FULL unless asked otherwise.
    public var synchronous: Database.Synchronous = .full
    /// The command of the WAL checkpoint helper (`--sqlite-checkpoints helper`, Store's
    /// CheckpointHandOff); nil: checkpoints run inline, as SQLite's autocheckpoint does.
    public var sqliteCheckpointer: [String]?
    /// Delivery (SPEC §5): `--retry-base-seconds`, `--retry-max-seconds`, `--max-queue-age-seconds`,
    /// `--smtp-timeout-seconds`.
    /// This process is worker `workerIndex` of `serve --workers N`: it listens with SO_REUSEPORT,
    /// labels its metrics `worker="i"`, logs with `worker=i`, and leaves the embedded demo to
    /// the parent.
    public var workerIndex: Int?
    /// `--lease-seconds` (PostgreSQL): a claimed message's lease, renewed every third of it.
    public var leaseSeconds = 60
    public var retryBaseSeconds = 60
    public var retryMaxSeconds = 3600
    public var maxQueueAgeSeconds = 86_400
    /// nil: RFC 5321 §4.5.3.2's value for each reply (10 minutes for the end of data).
    public var smtpTimeoutSeconds: Int?
    /// `--uncertain-retries`: how often a message whose end-of-data reply never came is sent again.
    public var uncertainRetries = 1
    /// EHLO name; nil = gethostname().
    public var smtpHeloName: String?
    public var smtpMessagesPerSession = 0
    /// The stub resolver's files and name-server port.
    public var resolvConfPath = "/etc/resolv.conf"
    public var hostsPath = "/etc/hosts"
    public var dnsPort: UInt16 = 53

    public init(listen: SocketAddress) {
        self.listen = listen
    }
}
