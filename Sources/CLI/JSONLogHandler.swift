/// `--log-format json`: every log line as one JSON object on stderr — `ts` (RFC 3339, ms),
/// `level`, `label`, `source`, `message` and the metadata — for log shippers.
#if canImport(Glibc)
import Glibc
#endif
import AuditAPI
import Logging
import SendAPI

struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var line = "{\"ts\":\"\(RFC3339.format(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000))\",\"level\":\"\(event.level)\",\"label\":"
        JSONText.appendString(label, to: &line)
        line += ",\"source\":"
        JSONText.appendString(event.source, to: &line)
        line += ",\"message\":"
        JSONText.appendString(event.message.description, to: &line)
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (k, v) in all.sorted(by: { $0.key < $1.key }) where !["ts", "level", "label", "source", "message"].contains(k) {
            line += ","
            JSONText.appendString(k, to: &line)
            line += ":"
            JSONText.appendString("\(v)", to: &line)
        }
        line += "}\n"
        var bytes = Array(line.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + off, $0.count - off) }
            if n > 0 { off += n } else if n < 0 && errno == EINTR { continue } else { break }
        }
    }
}
