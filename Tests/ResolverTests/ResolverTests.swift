#if canImport(Glibc)
import Glibc
#endif
import Reactor
import Testing
@testable import Resolver

/// A DNS server in the test's own reactor, on a loopback address: it answers, stays silent,
/// answers with a wrong ID, or says NXDOMAIN.
final class FakeDNSServer: IOHandler {
    enum Mode { case answer, silent, wrongID, nxdomain }
    let fd: Int32
    let mode: Mode
    var received = 0
    var registration: Registration?

    init(reactor: Reactor, ip: String, port: UInt16, mode: Mode) throws {
        self.mode = mode
        fd = try Socket.udp(family: AF_INET)
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        try Socket.bind(fd, to: SocketAddress(ip: ip, port: port)!)
        registration = try reactor.register(fd: fd, interest: .readable, handler: self)
    }

    func onWritable() {}

    func onReadable() {
        var buf = [UInt8](repeating: 0, count: 512)
        while true {
            guard let r = try? buf.withUnsafeMutableBytes({ (raw) throws(SystemError) in try Socket.receiveFrom(fd, into: raw) }),
                  case .done(let (n, from)) = r, let from else { return }
            received += 1
            let q = Array(buf[0..<n])
            guard n > 16 else { continue }
            var end = 12
            while end < n && q[end] != 0 { end += Int(q[end]) + 1 }
            let qtype = UInt16(q[end + 1]) << 8 | UInt16(q[end + 2])
            var reply = Array(q[0..<(end + 5)])
            reply[2] = 0x81
            reply[3] = 0x80
            switch mode {
            case .silent: continue
            case .wrongID: reply[0] ^= 0x5A
            case .nxdomain: reply[3] = 0x83
            case .answer:
                reply[7] = 1
                reply += [0xC0, 12, 0, UInt8(qtype), 0, 1, 0, 0, 0, 60]
                reply += qtype == 1 ? [0, 4, 127, 0, 0, 1] : [0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
            }
            _ = try? reply.withUnsafeBytes { (raw) throws(SystemError) in try Socket.sendTo(fd, raw, to: from) }
        }
    }
}

final class Collector: ResolutionHandler {
    var results: [Result<[String], ResolveError>] = []
    func resolved(_ name: String, _ result: Result<[String], ResolveError>) { results.append(result) }
}

@Suite(.serialized) struct ResolverTests {
    /// A free UDP port on loopback.
    static func freePort() throws -> UInt16 {
        let fd = try Socket.udp(family: AF_INET)
        defer { close(fd) }
        try Socket.bind(fd, to: SocketAddress(ip: "127.0.0.1", port: 0)!)
        return try Socket.localAddress(fd).port
    }

    /// Runs the loop until `collector` has `count` results (bounded: 200 iterations of ≤ 100 ms).
    func run(_ reactor: Reactor, until collector: Collector, count: Int = 1) throws {
        for _ in 0..<200 where collector.results.count < count { try reactor.runOnce(maxWait: .milliseconds(100)) }
    }

    @Test func answersThenServesFromTheCache() throws {
        let reactor = try Reactor()
        let port = try Self.freePort()
        let server = try FakeDNSServer(reactor: reactor, ip: "127.0.0.1", port: port, mode: .answer)
        let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration(nameServers: ["127.0.0.1"], port: port, timeoutSeconds: 1, attempts: 1))
        let c = Collector()
        #expect(resolver.resolve("Relay.Test", for: c) == nil)
        #expect(resolver.resolve("relay.test.", for: c) == nil)   // joins the same lookup
        try run(reactor, until: c, count: 2)
        #expect(c.results.count == 2)
        #expect(try c.results[0].get() == ["127.0.0.1", "::1"])
        #expect(resolver.queriesSent == 2 && server.received == 2)
        #expect(try resolver.resolve("relay.test", for: c)?.get() == ["127.0.0.1", "::1"])   // cached
        #expect(resolver.queriesSent == 2)
    }

    @Test func literalsAndHostsFileNeverQuery() throws {
        let reactor = try Reactor()
        var conf = ResolverConfiguration(nameServers: ["127.0.0.1"], port: 9, timeoutSeconds: 1, attempts: 1)
        conf.hosts = ["relay.local": ["10.1.2.3"]]
        let resolver = Resolver(reactor: reactor, configuration: conf)
        let c = Collector()
        #expect(try resolver.resolve("192.0.2.7", for: c)?.get() == ["192.0.2.7"])
        #expect(try resolver.resolve("::1", for: c)?.get() == ["::1"])
        #expect(try resolver.resolve("RELAY.local", for: c)?.get() == ["10.1.2.3"])
        if case .failure(let e)? = resolver.resolve("bad name!", for: c) { #expect(e.message.contains("not a valid host name")) } else { Issue.record("bad name resolved") }
        #expect(resolver.queriesSent == 0)
    }

    @Test func aSilentServerAndAWrongIDAreSkippedForTheNextServer() throws {
        let reactor = try Reactor()
        let port = try Self.freePort()
        let silent = try FakeDNSServer(reactor: reactor, ip: "127.0.0.2", port: port, mode: .silent)
        let liar = try FakeDNSServer(reactor: reactor, ip: "127.0.0.3", port: port, mode: .wrongID)
        let good = try FakeDNSServer(reactor: reactor, ip: "127.0.0.4", port: port, mode: .answer)
        let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration(
            nameServers: ["127.0.0.2", "127.0.0.3", "127.0.0.4"], port: port, timeoutSeconds: 1, attempts: 1))
        let c = Collector()
        #expect(resolver.resolve("relay.test", for: c) == nil)
        try run(reactor, until: c)
        #expect(try c.results.first?.get() == ["127.0.0.1", "::1"])
        #expect(silent.received == 2 && liar.received == 2 && good.received == 2)
        #expect(resolver.ignoredAnswers == 2, "the wrong-ID answers were ignored")
    }

    @Test func noAnswerAtAllFailsAfterEveryRound() throws {
        let reactor = try Reactor()
        let port = try Self.freePort()
        let silent = try FakeDNSServer(reactor: reactor, ip: "127.0.0.2", port: port, mode: .silent)
        let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration(nameServers: ["127.0.0.2"], port: port, timeoutSeconds: 1, attempts: 2))
        let c = Collector()
        _ = resolver.resolve("relay.test", for: c)
        try run(reactor, until: c)
        guard case .failure(let e)? = c.results.first else { Issue.record("resolved"); return }
        #expect(e.message.contains("timeout"), "\(e)")
        #expect(silent.received == 4, "2 rounds × (A + AAAA)")
        // Negative answers are cached.
        #expect(resolver.resolve("relay.test", for: c).map { (try? $0.get()) == nil } == true)
    }

    @Test func nxdomainIsAnAnswerNotARetry() throws {
        let reactor = try Reactor()
        let port = try Self.freePort()
        let server = try FakeDNSServer(reactor: reactor, ip: "127.0.0.1", port: port, mode: .nxdomain)
        let resolver = Resolver(reactor: reactor, configuration: ResolverConfiguration(nameServers: ["127.0.0.1"], port: port, timeoutSeconds: 1, attempts: 3))
        let c = Collector()
        _ = resolver.resolve("nowhere.test", for: c)
        try run(reactor, until: c)
        guard case .failure(let e)? = c.results.first else { Issue.record("resolved"); return }
        #expect(e.message.contains("NXDOMAIN"))
        #expect(server.received <= 2)
    }
}
