/// AccessLog: a line per answered request on stderr, as nginx writes its access log — method,
/// target, status, body bytes, duration, client address and the token's name (never its
/// secret). Lines are gathered during a loop iteration and written with one write(2) in its
/// flush phase, so the log costs a formatted line per request and a system call per iteration.
///
///     2026-12-04T20:55:01.123Z access 127.0.0.1:43210 "POST /api/send_email" 200 71 3.2ms token=shop
///
/// `--log-format json`: one object per line with the same fields (`"type":"access"`).
#if canImport(Glibc)
import Glibc
#endif
import AuditAPI
import HTTPServer
import Reactor
import SendAPI

public final class AccessLog: AccessLogSink, TailHandler {
    let json: Bool
    let fd: Int32
    var pending: [UInt8] = []

    public init(json: Bool, fd: Int32 = 2) {
        self.json = json
        self.fd = fd
        pending.reserveCapacity(1 << 14)
    }

    public func record(_ r: AccessRecord) {
        let ts = RFC3339.format(milliseconds: SendEmailService.nowMilliseconds())
        let ms = (r.seconds * 10_000).rounded() / 10
        var line: String
        if json {
            line = "{\"ts\":\"\(ts)\",\"type\":\"access\",\"client\":"
            JSONText.appendString(r.peer, to: &line)
            line += ",\"method\":"
            JSONText.appendString(r.method, to: &line)
            line += ",\"target\":"
            JSONText.appendString(r.target, to: &line)
            line += ",\"status\":\(r.status),\"bytes\":\(r.bytes),\"ms\":\(ms),\"token\":"
            if let u = r.user { JSONText.appendString(u, to: &line) } else { line += "null" }
            line += "}\n"
        } else {
            line = "\(ts) access \(r.peer) \"\(AccessLog.quoted(r.method)) \(AccessLog.quoted(r.target))\" \(r.status) \(r.bytes) \(ms)ms token=\(r.user.map(AccessLog.quoted) ?? "-")\n"
        }
        pending.append(contentsOf: line.utf8)
        if pending.count >= 1 << 16 { flush() }
    }

    /// Quotes and backslashes escaped, control characters as \xHH: one line, unambiguous.
    static func quoted(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F }) else { return s }
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
