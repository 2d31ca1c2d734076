/// ServerConfiguration: the inbound side's limits, named after their `serve` flags
/// (SPEC §5). Defaults are the flags' defaults.
import HTTP1
import Reactor

public struct ServerConfiguration: Sendable {
    /// `--listen`
    public var listen: SocketAddress
    /// SO_REUSEPORT on the listener (`serve --workers N`: every worker listens on the port).
    public var reusePort = false
    /// `--max-head-bytes` and `--max-body-bytes`
    public var limits: HTTPLimits
    /// `--head-timeout-seconds`: the TLS handshake plus the whole head must arrive in this
    /// time; a body must keep moving at the same pace (each read re-arms it).
    public var headTimeout: Duration
    /// `--idle-timeout-seconds`: a keep-alive connection with nothing in flight is closed after
    /// this; also the longest a blocked write may go without progress.
    public var idleTimeout: Duration
    /// `--max-connections`: beyond this the listener stops accepting; the kernel backlog holds
    /// new connections until one closes.
    public var maxConnections: Int
    /// How long a closing connection keeps reading (and discarding) so its last response is
    /// not destroyed by a TCP RST (nginx `lingering_timeout`).
    public var lingerTimeout: Duration = .seconds(2)
    /// After EMFILE/ENFILE the listener rests this long instead of spinning (nginx pauses accept
    /// events for 500 ms in the same case).
    public var acceptPauseOnExhaustion: Duration = .milliseconds(100)
    /// Requests a client may have in flight (pipelined, unanswered) before we stop reading it.
    public var maxPipelinedRequests: Int = 64
    /// Unsent response bytes per connection before we stop reading it (back-pressure).
    public var maxPendingOutputBytes: Int = 1 << 20
    /// `--max-body-bytes-in-flight`: request bodies all connections together may hold in
    /// memory while they arrive (declared Content-Lengths are reserved at the head, chunked
    /// bodies as they arrive). A body that does not fit is answered 503 with `Retry-After`
    /// before it is read, and its connection closed.
    public var maxBodyBytesInFlight: Int = 256 << 20
    /// A body must keep moving: each head-timeout window must bring at least this many bytes
    /// (or the rest of the body), else the connection is closed (a 1-byte-per-5-s trickle
    /// would otherwise hold its slot forever).
    public var minBodyBytesPerWindow: Int = 16 * 1024
    /// At `maxConnections`, a connection that sent no request for this long since accept may
    /// be closed to admit a new client (sooner, it is likely about to send one).
    public var silentAfter: Duration = .seconds(1)
    /// On SIGTERM: how long requests in flight may take before connections are closed anyway.
    public var shutdownGrace: Duration = .seconds(5)

    public init(listen: SocketAddress,
                limits: HTTPLimits = HTTPLimits(),
                headTimeout: Duration = .seconds(10),
                idleTimeout: Duration = .seconds(60),
                maxConnections: Int = 10_000) {
        self.listen = listen
        self.limits = limits
        self.headTimeout = headTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }
}
