/// Delivery under load, against Postfix's `smtp-sink` (the binary only; `Tests/run` installs
/// it): 10 000 messages accepted over HTTPS all counted at the sink over few, reused sessions;
/// and a crash test — `kill -9` at random points during a 5 000-message load, restart each
/// time — after which every accepted message reached the sink, and duplicates are bounded by
/// the documented end-of-data window (at most one per session in flight per kill).
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Store
import Testing

final class SMTPSink {
    let dir = makeTempDir()
    let process: ServerProcess
    let port: UInt16
    var countersFile: String { dir + "/counters" }
    var dumpDirectory: String { dir + "/dump" }

    init(dump: Bool = false) throws {
        let sink = "/usr/sbin/smtp-sink"
        guard access(sink, X_OK) == 0 else { throw WaitTimeout(what: "\(sink) (Tests/run installs postfix for it)") }
        port = try freeTCPPort()
        let dumps = dir + "/dump"
        mkdir(dumps, 0o777)
        chmod(dumps, 0o777)   // smtp-sink drops to nobody
        chmod(dir, 0o777)
        let dumpArg = dump ? "-d '\(dumps)/%M.' " : ""
        process = try ServerProcess(arguments: ["-c", "exec \(sink) -u nobody -c -m 256 -t 30 \(dumpArg)127.0.0.1:\(port) 256 > \(dir)/counters"],
                                    executable: "/bin/sh")
        try waitUntil("smtp-sink listening", seconds: 10) { canConnect(port: port) }
    }

    /// The last "sess=N quit=N mesg=N" record smtp-sink -c wrote.
    func counters() -> (sessions: Int, messages: Int) {
        let text = (try? String(contentsOfFile: countersFile, encoding: .utf8)) ?? ""
        guard let last = text.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).last(where: { $0.contains("mesg=") }) else { return (0, 0) }
        var values: [String: Int] = [:]
        for field in last.split(separator: " ") {
            let kv = field.split(separator: "=")
            if kv.count == 2, let v = Int(kv[1]) { values[String(kv[0])] = v }
        }
        return (values["sess"] ?? 0, values["mesg"] ?? 0)
    }

    /// Message-IDs of every dumped message, one entry per delivery.
    func dumpedMessageIDs() throws -> [String] {
        var out: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: dumpDirectory) {
            let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: dumpDirectory + "/" + name)), as: UTF8.self)
            for line in text.split(whereSeparator: { $0 == "\r" || $0 == "\n" }) where line.hasPrefix("Message-ID: ") {
                out.append(String(line.dropFirst("Message-ID: ".count)))
            }
        }
        return out
    }

    deinit { process.signal(SIGKILL) }
}

func freeTCPPort() throws -> UInt16 {
    let (fd, port) = boundLoopbackSocket(SOCK_STREAM)
    close(fd)
    return port
}

func canConnect(port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
}

extension SendFixture {
    /// Posts `keys.count` messages pipelined on one connection; returns the statuses.
    func postPipelined(keys: [String], on c: TestClient) throws -> [Int] {
        var wire = ""
        for k in keys { wire += request(directBody, token: sendToken, key: k) }
        try c.send(wire)
        return try keys.map { _ in try c.readResponse().status }
    }

    func statusCounts() throws -> [String: Int] { try adminStore(db).statusCounts() }
}

@Suite(.serialized) struct DeliveryLoadTests {
    @Test func tenThousandMessagesReachTheSinkOverReusedSessions() throws {
        let sink = try SMTPSink()
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(sink.port)?starttls=off&max_connections=4")
        let c = try f.connect()
        let total = 10_000
        var ok = 0
        for batch in 0..<(total / 100) {
            let statuses = try f.postPipelined(keys: (0..<100).map { "load-\(batch)-\($0)" }, on: c)
            ok += statuses.filter { $0 == 200 }.count
        }
        #expect(ok == total)
        try waitUntil("\(total) messages at the sink", seconds: 120) { sink.counters().messages >= total }
        try waitUntil("\(total) rows sent", seconds: 20) { try f.statusCounts()["sent"] == total }
        // A graceful stop QUITs the idle sessions; smtp-sink counts sessions as they end.
        f.server.signal(SIGTERM)
        #expect(try f.server.waitForExit() == 0)
        try waitUntil("the sink to count the ended sessions", seconds: 10) { sink.counters().sessions >= 1 }
        let (sessions, messages) = sink.counters()
        #expect(messages == total)
        #expect(sessions >= 1 && sessions <= 40, "sessions are reused: \(sessions) sessions for \(messages) messages")
        print("load: \(messages) messages over \(sessions) SMTP sessions")
    }

    @Test func kill9DuringLoadLosesNothing() throws {
        let sink = try SMTPSink(dump: true)
        let f = try SendFixture(relayDSN: "smtp://127.0.0.1:\(sink.port)?starttls=off&max_connections=4")
        var c = try f.connect()
        let batches = 100, perBatch = 50
        var rng = SystemRandomNumberGenerator()
        let killAfter = Set((0..<3).map { _ in Int.random(in: 5..<(batches - 5), using: &rng) })
        var accepted = Set<String>()
        var batch = 0
        while batch < batches {
            let keys = (0..<perBatch).map { "crash-\(batch)-\($0)" }
            let statuses = try f.postPipelined(keys: keys, on: c)
            for (k, s) in zip(keys, statuses) where s == 200 { accepted.insert(k) }
            if killAfter.contains(batch) {
                f.server.signal(SIGKILL)
                _ = try f.server.waitForExit()
                try f.start()
                c = try f.connect()
            }
            batch += 1
        }
        #expect(accepted.count == batches * perBatch, "every request was answered 200 (replays included)")
        let total = batches * perBatch
        try waitUntil("\(total) rows sent", seconds: 120) { try f.statusCounts()["sent"] == total }
        let db = try adminStore(f.db)
        let ids = Set(try db.auditEntries(limit: total + 10).map(\.messageID))
        #expect(ids.count == total, "one message per key, even across restarts")
        let dumped = try sink.dumpedMessageIDs()
        let delivered = Set(dumped)
        #expect(ids.isSubset(of: delivered), "every accepted message reached the sink")
        let duplicates = dumped.count - delivered.count
        #expect(duplicates <= killAfter.count * 4, "duplicates only from the end-of-data window: \(duplicates)")
        print("crash: \(total) messages, \(killAfter.count) kill -9, \(dumped.count) deliveries, \(duplicates) duplicate(s)")
    }
}
