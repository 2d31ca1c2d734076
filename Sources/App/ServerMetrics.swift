/// ServerMetrics: what `--metrics-listen` exposes at `GET /metrics` (SPEC §4 "Other
/// endpoints") in the Prometheus text format 0.0.4, through swift-prometheus's registry.
///
/// Hot-path updates are counter increments and histogram records on objects made once (a
/// request's counter is found in a dictionary keyed by route and status, made on first sight):
/// no allocation per request. Values the server already counts — TLS handshakes, open
/// connections, SMTP sessions, delivery outcomes, queue depth — are read when scraped, so
/// they cost the request path nothing at all. Queue depth counts `queued`, `sending` and
/// `deferred` through the status index (the backlog, not the whole audit).
import HTTPServer
import Prometheus
import Reactor
import SMTPClient
import Store

public final class ServerMetrics: HTTPServerObserver {
    let registry: PrometheusCollectorRegistry
    let routeLabels: [String]
    var requestCounters: [Int: Counter] = [:]
    let latency: [DurationHistogram]
    let commitLatency: DurationHistogram

    let handshakes: Counter
    let handshakeFailures: Counter
    let openConnections: Gauge
    let queueDepth: [(String, Gauge)]
    let endedForOperators: [(String, Gauge)]
    let attempts: [(String, Counter)]
    let smtpSessions: Gauge
    let smtpSessionsOpened: Counter
    let leaseTakeovers: Counter
    var seenTakeovers = 0

    // What was last folded into the monotonic counters above.
    var seenHandshakes = 0
    var seenHandshakeFailures = 0
    var seenAttempts = [0, 0, 0, 0, 0]
    var pauseGauges: [String: Gauge] = [:]
    var seenSessionsOpened = 0

    static let requestBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .microseconds(2_500_000), .seconds(5),
    ]
    static let commitBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
    ]

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "tickiti", metricName: metric, unitName: unit, helpText: help)
    }

    /// Labels every sample carries: `worker="i"` under `serve --workers N` (each worker serves
    /// its own metrics port; the label tells the series apart once Prometheus aggregates).
    let base: [(String, String)]

    /// `routes`: the router's labels, by route index; `worker`: this process's index under
    /// `serve --workers N`.
    public init(routes: [String], worker: Int? = nil) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        routeLabels = routes
        let base: [(String, String)] = worker.map { [("worker", String($0))] } ?? []
        self.base = base
        latency = (routes + ["unmatched"]).map {
            registry.makeDurationHistogram(descriptor: ServerMetrics.name("http_request_duration", "seconds",
                                                                          "Time from a request's complete head to its response."),
                                           labels: base + [("route", $0)], buckets: ServerMetrics.requestBuckets)
        }
        commitLatency = registry.makeDurationHistogram(
            descriptor: ServerMetrics.name("sqlite_commit_duration", "seconds", "Duration of each group commit (one per loop iteration with writes)."),
            labels: base, buckets: ServerMetrics.commitBuckets)
        handshakes = registry.makeCounter(descriptor: ServerMetrics.name("tls_handshakes", "total", "Completed inbound TLS handshakes."), labels: base)
        handshakeFailures = registry.makeCounter(descriptor: ServerMetrics.name("tls_handshake_failures", "total", "Inbound TLS handshakes that failed."), labels: base)
        openConnections = registry.makeGauge(descriptor: ServerMetrics.name("http_open_connections", "", "Inbound connections open now."), labels: base)
        queueDepth = ["queued", "sending", "deferred"].map {
            ($0, registry.makeGauge(descriptor: ServerMetrics.name("queue_messages", "", "Messages waiting for delivery, by status."),
                                    labels: base + [("status", $0)]))
        }
        endedForOperators = ["uncertain", "cancelled"].map {
            ($0, registry.makeGauge(descriptor: ServerMetrics.name("messages_for_operators", "",
                                                                   "Messages that ended uncertain (the relay may have them) or were cancelled, by status."),
                                    labels: base + [("status", $0)]))
        }
        attempts = ["sent", "deferred", "failed", "uncertain", "throttled"].map {
            ($0, registry.makeCounter(descriptor: ServerMetrics.name("delivery_attempts", "total", "Finished delivery attempts, by outcome."),
                                      labels: base + [("outcome", $0)]))
        }
        smtpSessions = registry.makeGauge(descriptor: ServerMetrics.name("smtp_sessions", "", "Outbound SMTP sessions open now."), labels: base)
        leaseTakeovers = registry.makeCounter(descriptor: ServerMetrics.name("lease_takeovers", "total",
            "Messages this process claimed after another process's lease on them ran out (PostgreSQL)."), labels: base)
        smtpSessionsOpened = registry.makeCounter(descriptor: ServerMetrics.name("smtp_sessions_opened", "total", "Outbound SMTP sessions opened."), labels: base)
    }

    // MARK: Hot path

    public func responded(route: Int, status: Int, receivedAt: Instant) {
        let r = route >= 0 && route < routeLabels.count ? route : routeLabels.count
        let key = r << 16 | status
        let counter: Counter
        if let c = requestCounters[key] {
            counter = c
        } else {
            counter = registry.makeCounter(descriptor: ServerMetrics.name("http_requests", "total", "Responses by route and status."),
                                           labels: base + [("route", r < routeLabels.count ? routeLabels[r] : "unmatched"), ("status", String(status))])
            requestCounters[key] = counter
        }
        counter.increment()
        let now = Instant.now()
        latency[r].record(.nanoseconds(now.nanoseconds >= receivedAt.nanoseconds ? now.nanoseconds - receivedAt.nanoseconds : 0))
    }

    func committed(after start: Instant) {
        let now = Instant.now()
        commitLatency.record(.nanoseconds(now.nanoseconds - start.nanoseconds))
    }

    // MARK: Scrape

    /// Folds the server's own counts and the store's queue depth (asked now: PostgreSQL answers
    /// in a later iteration) into the registry and renders it.
    func render(server: HTTPServer?, scheduler: DeliveryScheduler?, store: ServerStore?, completion: @escaping ([UInt8]) -> Void) {
        guard let store else { return completion(render(server: server, scheduler: scheduler, counts: nil)) }
        if store.leaseTakeovers > seenTakeovers {
            leaseTakeovers.increment(by: Int64(store.leaseTakeovers - seenTakeovers))
            seenTakeovers = store.leaseTakeovers
        }
        store.queueCounts { [self] counts in completion(render(server: server, scheduler: scheduler, counts: counts)) }
    }

    func render(server: HTTPServer?, scheduler: DeliveryScheduler?, counts: [String: Int]?) -> [UInt8] {
        if let server {
            handshakes.increment(by: Int64(server.handshakes - seenHandshakes))
            seenHandshakes = server.handshakes
            handshakeFailures.increment(by: Int64(server.handshakeFailures - seenHandshakeFailures))
            seenHandshakeFailures = server.handshakeFailures
            openConnections.set(Int64(server.connectionCount))
        }
        if let scheduler {
            let counts = [scheduler.sentCount, scheduler.deferredCount, scheduler.failedCount, scheduler.uncertainCount, scheduler.throttledCount]
            for i in counts.indices {
                attempts[i].1.increment(by: Int64(counts[i] - seenAttempts[i]))
                seenAttempts[i] = counts[i]
            }
            let pools = scheduler.pools
            // Paused mailboxes (SPEC §6): 1 while a pause is on, with the seconds left.
            let now = DeliveryScheduler.nowMilliseconds()
            for (name, pause) in scheduler.pauses {
                let g = pauseGauges[name] ?? registry.makeGauge(
                    descriptor: ServerMetrics.name("mailbox_paused_seconds", "", "Seconds until a mailbox its relay throttled or stopped (a quota) may open sessions again; 0 when it may now."),
                    labels: base + [("mailbox", name)])
                pauseGauges[name] = g
                g.set(Int64(max(pause.until - now, 0) / 1000))
            }
            for (name, g) in pauseGauges where scheduler.pauses[name] == nil { g.set(Int64(0)) }
            smtpSessions.set(Int64(pools.reduce(0) { $0 + $1.sessionCount }))
            let opened = pools.reduce(0) { $0 + $1.sessionsOpened }
            // A pool dropped with its mailbox takes its count along: never go backwards.
            if opened > seenSessionsOpened { smtpSessionsOpened.increment(by: Int64(opened - seenSessionsOpened)) }
            seenSessionsOpened = max(seenSessionsOpened, opened)
        }
        if let counts {
            for (status, gauge) in queueDepth { gauge.set(Int64(counts[status] ?? 0)) }
            for (status, gauge) in endedForOperators { gauge.set(Int64(counts[status] ?? 0)) }
        }
        var out: [UInt8] = []
        out.reserveCapacity(8192)
        registry.emit(into: &out)
        return out
    }
}
