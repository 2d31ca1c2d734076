/// Resolver: host names to addresses inside the reactor, without a thread — `getaddrinfo`
/// blocks and `getaddrinfo_a` hides a thread pool, so neither fits a one-thread loop.
///
/// Order: IP literals answer themselves; then the hosts file; then a cache (positive answers
/// for their TTL, at most `maxPositiveTTL`; negative ones for `negativeTTL`); then a UDP stub:
/// A and AAAA queries to each resolv.conf name server in turn, `attempts` rounds, `timeout`
/// per server. Each query has a random ID and goes out on its own connected UDP socket (a
/// kernel-chosen random source port, and the kernel drops datagrams from other peers); an
/// answer with another ID or to another question is ignored (RFC 5452 §9.1). Concurrent
/// lookups of one name share the queries. IPv4 addresses are listed before IPv6 ones.
#if canImport(Glibc)
import Glibc
#endif
import Reactor

public struct ResolveError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public protocol ResolutionHandler: AnyObject {
    func resolved(_ name: String, _ result: Result<[String], ResolveError>)
}

public final class Resolver {
    /// Cap on how long a positive answer is reused (relays move; 5 minutes like nscd's default).
    public static let maxPositiveTTL = 300
    /// How long "no such name" is remembered (RFC 2308 suggests the SOA minimum; 30 s is short
    /// enough that a fixed DNS record is seen quickly).
    public static let negativeTTL = 30

    let reactor: Reactor
    public var configuration: ResolverConfiguration
    var cache: [String: (result: Result<[String], ResolveError>, expires: Instant)] = [:]
    var lookups: [String: Lookup] = [:]
    var rng = SystemRandomNumberGenerator()

    /// Counters for tests and metrics.
    public internal(set) var queriesSent = 0
    public internal(set) var ignoredAnswers = 0

    public init(reactor: Reactor, configuration: ResolverConfiguration) {
        self.reactor = reactor
        self.configuration = configuration
    }

    /// Answers at once (literal, hosts file, cache) by returning the result, or returns nil and
    /// calls `handler.resolved` later from the loop.
    public func resolve(_ name: String, for handler: ResolutionHandler) -> Result<[String], ResolveError>? {
        var key = name.lowercased()
        if key.hasSuffix(".") { key.removeLast() }
        if SocketAddress(ip: key, port: 0) != nil { return .success([key]) }
        if let h = configuration.hosts[key] { return .success(h) }
        if let c = cache[key] {
            if reactor.now < c.expires { return c.result }
            cache[key] = nil
        }
        guard DNSMessage.isQueryableName(key) else { return .failure(ResolveError("\"\(name)\" is not a valid host name")) }
        if let l = lookups[key] {
            l.waiters.append(handler)
            return nil
        }
        let l = Lookup(resolver: self, name: key)
        l.waiters.append(handler)
        lookups[key] = l
        l.start()
        return nil
    }

    func finish(_ l: Lookup, _ result: Result<[String], ResolveError>, ttl: Int) {
        lookups[l.name] = nil
        let keep: Int
        switch result {
        case .success: keep = min(ttl, Resolver.maxPositiveTTL)
        case .failure: keep = Resolver.negativeTTL
        }
        if keep > 0 { cache[l.name] = (result, reactor.now + .seconds(keep)) }
        for w in l.waiters { w.resolved(l.name, result) }
    }

    func randomID() -> UInt16 { UInt16.random(in: 0...UInt16.max, using: &rng) }
}

/// One name being looked up: both queries, the current server, the timer.
final class Lookup: IOHandler, DeadlineHandler {
    unowned let resolver: Resolver
    let name: String
    var waiters: [ResolutionHandler] = []
    var serverIndex = 0
    var round = 0
    var registration: Registration?
    var timer: TimerHandle?
    var idA: UInt16 = 0
    var idAAAA: UInt16 = 0
    var a: DNSAnswer?
    var aaaa: DNSAnswer?
    var lastProblem = "no name server answered"

    init(resolver: Resolver, name: String) {
        self.resolver = resolver
        self.name = name
    }

    var config: ResolverConfiguration { resolver.configuration }

    func start() {
        guard !config.nameServers.isEmpty else { return done(.failure(ResolveError("no name server is configured")), ttl: 0) }
        timer = resolver.reactor.makeTimer(self)
        ask()
    }

    /// Sends both queries to the current server on a fresh socket.
    func ask() {
        closeSocket()
        a = nil
        aaaa = nil
        let server = config.nameServers[serverIndex]
        guard let address = SocketAddress(ip: server, port: config.port) else {
            lastProblem = "name server \(server) is not an IP address"
            return next()
        }
        do {
            let fd = try Socket.udp(family: address.family, connectedTo: address)
            registration = try resolver.reactor.register(fd: fd, interest: .readable, handler: self)
            idA = resolver.randomID()
            repeat { idAAAA = resolver.randomID() } while idAAAA == idA
            for (id, type) in [(idA, DNSRecordType.a), (idAAAA, .aaaa)] {
                let q = DNSMessage.query(id: id, name: name, type: type)
                _ = try q.withUnsafeBytes { (raw) throws(SystemError) in try Syscall.send(fd, raw) }
                resolver.queriesSent += 1
            }
        } catch {
            lastProblem = "\(server): \(error)"
            return next()
        }
        resolver.reactor.arm(timer!, after: .seconds(config.timeoutSeconds))
    }

    /// The next server, or the next round, or give up.
    func next() {
        serverIndex += 1
        if serverIndex >= config.nameServers.count {
            serverIndex = 0
            round += 1
            if round >= config.attempts {
                return done(.failure(ResolveError("cannot resolve \(name): \(lastProblem)")), ttl: 0)
            }
        }
        ask()
    }

    func onDeadline() {
        lastProblem = "timeout after \(config.timeoutSeconds)s from \(config.nameServers[serverIndex])"
        next()
    }

    func onWritable() {}

    func onReadable() {
        guard let reg = registration else { return }
        var buf = [UInt8](repeating: 0, count: 1500)
        while registration == reg {
            let r: IOResult<Int>
            do {
                r = try buf.withUnsafeMutableBytes { (raw) throws(SystemError) in try Syscall.read(reg.fd, into: raw) }
            } catch {
                // ECONNREFUSED from an ICMP port unreachable: this server is not there.
                lastProblem = "\(config.nameServers[serverIndex]): \(error)"
                return next()
            }
            guard case .done(let n) = r else { return }
            handle(Array(buf[0..<n]))
        }
    }

    func handle(_ m: [UInt8]) {
        let id = DNSMessage.id(of: m)
        let type: DNSRecordType
        if id == idA && a == nil { type = .a } else if id == idAAAA && aaaa == nil { type = .aaaa } else {
            resolver.ignoredAnswers += 1
            return
        }
        let response: DNSResponse
        do {
            response = try DNSMessage.parseResponse(m, id: id, name: name, type: type)
        } catch {
            resolver.ignoredAnswers += 1
            return
        }
        switch response {
        case .nameError:
            return done(.failure(ResolveError("\(name): no such host (NXDOMAIN)")), ttl: Resolver.negativeTTL)
        case .serverFailure(let rcode):
            lastProblem = "\(config.nameServers[serverIndex]) answered rcode \(rcode)"
            return next()
        case .answer(let answer):
            if type == .a { a = answer } else { aaaa = answer }
        }
        guard let a, let aaaa else { return }
        let all = a.addresses + aaaa.addresses
        if all.isEmpty { return done(.failure(ResolveError("\(name) has no A or AAAA record")), ttl: Resolver.negativeTTL) }
        let ttls = [a, aaaa].filter { !$0.addresses.isEmpty }.map(\.ttl)
        done(.success(all), ttl: Int(ttls.min() ?? 0))
    }

    func closeSocket() {
        if let reg = registration {
            resolver.reactor.close(reg)
            registration = nil
        }
    }

    func done(_ result: Result<[String], ResolveError>, ttl: Int) {
        closeSocket()
        if let t = timer {
            resolver.reactor.free(t)
            timer = nil
        }
        resolver.finish(self, result, ttl: ttl)
    }
}
