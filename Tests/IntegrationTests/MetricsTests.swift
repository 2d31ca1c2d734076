/// `--metrics-listen`: after a known load over HTTPS, `GET /metrics` scraped with a plain
/// HTTP client (curl) parses with Python's prometheus_client and every counter says what
/// happened: requests by route and status, latency counts, TLS handshakes and failures,
/// delivery attempts, queue depth, commits. Without the flag there is no metrics listener.
import Foundation
import Testing

extension SendFixture {
    var metricsURL: String {
        get throws {
            let line = try server.waitForLine(containing: "metrics on http://")
            guard let r = line.range(of: "http://") else { throw TestFailure("no URL in \(line)") }
            return String(line[r.lowerBound...]).split(separator: " ").first.map { String($0) }!
        }
    }

    /// Scrapes and parses: samples keyed `name{label=value,…}` (labels sorted).
    func scrape() throws -> (samples: [String: Double], types: [String: String]) {
        let (rc, text) = try run(["curl", "-sS", "--fail", try metricsURL])
        guard rc == 0 else { throw TestFailure("curl: \(text)") }
        let file = dir + "/metrics.txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let (prc, json) = try run(["sh", "-c", "python3 '\(scriptsDirectory)/parse_metrics.py' < '\(file)'"])
        guard prc == 0 else { throw TestFailure("prometheus_client could not parse the exposition: \(json)\n\(text)") }
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return (try #require(obj["samples"] as? [String: Double]), try #require(obj["types"] as? [String: String]))
    }
}

@Suite(.serialized) struct MetricsTests {
    @Test func countersMatchAKnownLoad() throws {
        let f = try SendFixture(extraArgs: ["--metrics-listen", "127.0.0.1:0"])
        for _ in 0..<5 { #expect(try f.post(directBody).status == 200) }
        for _ in 0..<2 { #expect(try f.post(#"{"to_address":"nope","subject":"s","content":"c"}"#).status == 422) }
        #expect(try f.post(directBody, token: nil).status == 401)
        #expect(try f.get("/nope", token: nil).status == 404)
        #expect(try f.get("/healthz", token: nil).status == 200)
        #expect(try f.get("/api/audit?limit=2", token: f.auditToken).status == 200)
        #expect(try f.get("/api/audit/1", token: f.auditToken).status == 200)
        // A client that does not speak TLS: one handshake failure.
        let (fd, _) = try connectPlain(port: f.port)
        _ = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".withCString { write(fd, $0, 27) }
        var buf = [UInt8](repeating: 0, count: 512)
        _ = read(fd, &buf, buf.count)   // the server's alert, then EOF
        close(fd)
        for id in 1...5 { try f.waitFor(Int64(id), status: "sent") }

        var m = try f.scrape()
        try waitUntil("connections closed and counted") {
            m = try f.scrape()
            return m.samples["tickiti_http_open_connections"] == 0 && m.samples["tickiti_tls_handshake_failures_total"] == 1
        }
        let s = m.samples
        #expect(s["tickiti_http_requests_total{route=/api/send_email,status=200}"] == 5)
        #expect(s["tickiti_http_requests_total{route=/api/send_email,status=422}"] == 2)
        #expect(s["tickiti_http_requests_total{route=/api/send_email,status=401}"] == 1)
        #expect(s["tickiti_http_requests_total{route=unmatched,status=404}"] == 1)
        #expect(s["tickiti_http_requests_total{route=/healthz,status=200}"] == 1)
        #expect(s["tickiti_http_requests_total{route=/api/audit,status=200}"] == 1)
        #expect(s["tickiti_http_requests_total{route=/api/audit/{id},status=200}"] == 1)
        #expect(s["tickiti_http_request_duration_seconds_count{route=/api/send_email}"] == 8)
        #expect(s["tickiti_http_request_duration_seconds_bucket{le=+Inf,route=/api/send_email}"] == 8)
        #expect((s["tickiti_http_request_duration_seconds_sum{route=/api/send_email}"] ?? 0) > 0)
        #expect(s["tickiti_tls_handshakes_total"] == 12, "one per HTTPS connection")
        #expect(s["tickiti_tls_handshake_failures_total"] == 1)
        #expect(s["tickiti_delivery_attempts_total{outcome=sent}"] == 5)
        #expect(s["tickiti_delivery_attempts_total{outcome=deferred}"] == 0)
        #expect(s["tickiti_delivery_attempts_total{outcome=failed}"] == 0)
        #expect(s["tickiti_queue_messages{status=queued}"] == 0 && s["tickiti_queue_messages{status=deferred}"] == 0)
        #expect(s["tickiti_smtp_sessions"] == 0)
        let commits = s["tickiti_sqlite_commit_duration_seconds_count"] ?? 0
        #expect(commits >= 5 && commits <= 20, "5 acceptances and their status writes: \(commits)")
        #expect(m.types["tickiti_http_requests"] == "counter" && m.types["tickiti_http_request_duration_seconds"] == "histogram")
        #expect(m.types["tickiti_queue_messages"] == "gauge")

        // Counters only go up: a second scrape after more load adds exactly that load.
        #expect(try f.post(directBody).status == 200)
        try f.waitFor(6, status: "sent")
        let again = try f.scrape().samples
        #expect(again["tickiti_http_requests_total{route=/api/send_email,status=200}"] == 6)
        #expect(again["tickiti_delivery_attempts_total{outcome=sent}"] == 6)
    }

    @Test func theDeferredBacklogShowsAsQueueDepth() throws {
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:9", extraArgs: ["--metrics-listen", "127.0.0.1:0"])
        for _ in 0..<3 { #expect(try f.post(directBody).status == 200) }
        for id in 1...3 { try f.waitFor(Int64(id), status: "deferred") }
        let s = try f.scrape().samples
        #expect(s["tickiti_queue_messages{status=deferred}"] == 3)
        #expect(s["tickiti_delivery_attempts_total{outcome=deferred}"] == 3)
    }

    @Test func noListenerWithoutTheFlag() throws {
        let f = try SendFixture()
        #expect(try f.get("/healthz", token: nil).status == 200)
        #expect(!f.server.stderrLines.contains { $0.contains("metrics on") })
        #expect(try f.get("/metrics", token: nil).status == 404, "the API listener does not serve metrics")
    }
}
