/// AccessLog: a line per answered request on stderr, as nginx writes its access log — method,
/// target, status, body bytes, duration, client address and the token's name (never its
/// secret). Lines are gathered during a loop iteration and written with one write(2) in its
/// flush phase, so the log costs a formatted line per request and a system call per iteration.
///
///     2026-12-04T20:55:01.123Z access 127.0.0.1:43210 "POST /api/send_email" 200 71 3.2ms token=shop
///
/// `--log-format json`: one object per line with the same fields (`"type":"access"`).
///
/// Failed authentications (401, 403) are also a `warning` on the server's log with the client's
/// address, lines or not (`--no-access-log`): at most one per client address every 10 s, the
/// next one saying how many were left out — a client guessing tokens cannot flood the log.
#if canImport(Glibc)
import Glibc
#endif
import AuditAPI
import HTTP1
import HTTPServer
import Logging
import Reactor
import SendAPI

public final class AccessLog: AccessLogSink, TailHandler {
    let json: Bool
    let fd: Int32
    let lines: Bool
    let logger: Logger?
    let reactor: Reactor?
    var pending: [UInt8] = []
    /// Per client address (without the port): when the next auth warning may be logged, and how
    /// many were left out meanwhile.
    var authWarnings: [String: (next: Instant, suppressed: Int)] = [:]
    static let authWarningWindow: Duration = .seconds(10)

    public init(json: Bool, fd: Int32 = 2, lines: Bool = true, logger: Logger? = nil, reactor: Reactor? = nil) {
        self.json = json
        self.fd = fd
        self.lines = lines
        self.logger = logger
        self.reactor = reactor
        pending.reserveCapacity(1 << 14)
    }

    public func record(_ r: AccessRecord) {
        if r.status == 401 || r.status == 403 { authFailed(r) }
        guard lines else { return }
        line(r)
    }

    func authFailed(_ r: AccessRecord) {
        guard let logger, let reactor else { return }
        let host = AccessLog.host(of: r.peer)
        let now = reactor.now
        if authWarnings.count > 10_000 { authWarnings = authWarnings.filter { $0.value.next > now } }
        if let w = authWarnings[host], now < w.next {
            authWarnings[host] = (w.next, w.suppressed + 1)
            return
        }
        let more = authWarnings[host].map { $0.suppressed > 0 ? " (and \($0.suppressed) more from this address in the last 10 s, not logged)" : "" } ?? ""
        authWarnings[host] = (now + AccessLog.authWarningWindow, 0)
        let what = r.status == 401 ? "authentication failed (a missing, malformed, unknown or revoked token)"
            : "token \(r.user.map(AccessLog.quoted) ?? "-") lacks the ability this route needs"
        logger.warning("\(what): \(AccessLog.quoted(r.method)) \(AccessLog.quoted(r.target)) from \(r.peer), answered \(r.status)\(more)")
    }

    /// "127.0.0.1:43210" → "127.0.0.1", "[::1]:443" → "[::1]".
    static func host(of peer: String) -> String {
        guard let colon = peer.lastIndex(of: ":"), !peer.hasSuffix("]") else { return peer }
        return String(peer[..<colon])
    }

    /// The last timestamp formatted, and its millisecond: an iteration's lines mostly share it.
    var stampMilliseconds: Int64 = .min
    var stamp: [UInt8] = []

    func line(_ r: AccessRecord) {
        let now = SendEmailService.nowMilliseconds()
        if now != stampMilliseconds {
            stampMilliseconds = now
            stamp = Array(RFC3339.format(milliseconds: now).utf8)
        }
        // Tenths of a millisecond, written as Double's description of tenths would be ("3.2",
        // "12.0"): integer digits, no floating-point formatting per line.
        let tenths = Int((r.seconds * 10_000).rounded())
        guard !json else { return jsonLine(r, milliseconds: Double(tenths) / 10) }
        // The plain line, appended byte by byte (no String built per request): on the
        // keep-alive path the interpolated line was ~1.5 µs of the ~13 a request costs.
        pending.append(contentsOf: stamp)
        appendLiteral(" access ")
        append(r.peer)
        appendLiteral(" \"")
        appendQuoted(r.method)
        pending.append(0x20)
        appendQuoted(r.target)
        appendLiteral("\" ")
        appendDecimal(r.status, &pending)
        pending.append(0x20)
        appendDecimal(r.bytes, &pending)
        pending.append(0x20)
        appendDecimal(tenths / 10, &pending)
        pending.append(0x2E)
        appendDecimal(tenths % 10, &pending)
        appendLiteral("ms token=")
        if let u = r.user { appendQuoted(u) } else { pending.append(0x2D) }
        pending.append(0x0A)
        if pending.count >= 1 << 16 { flush() }
    }

    /// A literal: its bytes, with no String in between.
    func appendLiteral(_ s: StaticString) {
        pending.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    func append(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ pending.append(contentsOf: $0) }) == nil {
            pending.append(contentsOf: s.utf8)
        }
    }

    /// One pass over a clean string's bytes (the usual case): checked and appended together;
    /// anything else goes through `quoted`.
    func appendQuoted(_ s: String) {
        let appended = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for b in bytes where AccessLog.needsEscape(b) { return false }
            pending.append(contentsOf: bytes)
            return true
        }
        if appended != true { append(AccessLog.quoted(s)) }
    }

    func jsonLine(_ r: AccessRecord, milliseconds ms: Double) {
        let ts = String(decoding: stamp, as: UTF8.self)
        var line = "{\"ts\":\"\(ts)\",\"type\":\"access\",\"client\":"
        JSONText.appendString(r.peer, to: &line)
        line += ",\"method\":"
        JSONText.appendString(r.method, to: &line)
        line += ",\"target\":"
        JSONText.appendString(r.target, to: &line)
        line += ",\"status\":\(r.status),\"bytes\":\(r.bytes),\"ms\":\(ms),\"token\":"
        if let u = r.user { JSONText.appendString(u, to: &line) } else { line += "null" }
        line += "}\n"
        pending.append(contentsOf: line.utf8)
        if pending.count >= 1 << 16 { flush() }
    }

    /// Control characters, quotes and backslashes: what `quoted` escapes.
    @inline(__always) static func needsEscape(_ b: UInt8) -> Bool { b < 0x20 || b == 0x22 || b == 0x5C || b == 0x7F }

    /// Quotes and backslashes escaped, control characters as \xHH: one line, unambiguous.
    static func quoted(_ s: String) -> String {
        guard s.utf8.contains(where: needsEscape) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            if u == "\"" || u == "\\" { out += "\\" + String(u) } else if u.value < 0x20 || u.value == 0x7F {
                out += "\\x" + String(u.value, radix: 16, uppercase: false).leftPadded(2)
            } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    func flush() {
        guard !pending.isEmpty else { return }
        pending.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n > 0 { off += n } else if n < 0 && errno == EINTR { continue } else { break }   // stderr gone: drop
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    public func runTail(_ phase: TailPhase) -> Bool {
        flush()
        return false
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
