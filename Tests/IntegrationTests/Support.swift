/// Test support for the integration suite: an in-process server on its own thread (its own
/// reactor, real loopback sockets, real TLS), the `tickiti-mail` binary as a child process,
/// a blocking OpenSSL client, and a small HTTP/1.1 response reader.
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import Foundation
import HTTP1
import HTTPServer
import Logging
import Reactor
import TLS
@testable import App
import PostgresStore
import Store

// MARK: The store under test

/// `TICKITI_TEST_STORE=postgres` runs the integration suite on PostgreSQL (Tests/run does,
/// after the SQLite run, against the private server it started: `TICKITI_TEST_PG` is its URI
/// without a database name). Each fixture gets a database of its own.
enum TestStore {
    case sqlite, postgres

    static let current: TestStore = getenv("TICKITI_TEST_STORE").map { String(cString: $0) } == "postgres" ? .postgres : .sqlite
    static var isSQLite: Bool { current == .sqlite }

    /// A fresh store for a fixture whose files live in `dir`.
    static func freshLocation(dir: String) -> String {
        switch current {
        case .sqlite:
            return dir + "/data/tickiti.db"
        case .postgres:
            let base = getenv("TICKITI_TEST_PG").map { String(cString: $0) } ?? "postgresql://tickiti@127.0.0.1:25432/"
            let name = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let (rc, out) = (try? run(["psql", base + "postgres", "-qAtc", "CREATE DATABASE \(name)"])) ?? (1, "psql did not run")
            precondition(rc == 0, "cannot create a test database on \(base): \(out)")
            return base + name
        }
    }
}

/// The store at `location`, as the admin commands open it.
func adminStore(_ location: String) throws -> AdminStore {
    switch StoreLocation(location) {
    case .sqlite(let path): return try Database(path: path)
    case .postgres(let uri): return try PostgresAdminStore(uri: uri)
    }
}

// MARK: Temp dirs and certificates

func makeTempDir() -> String {
    var template = Array("/tmp/tickiti-test-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(p != nil, "mkdtemp failed")
    return String(cString: p!)
}

struct TestCertificate {
    let dir: String
    var cert: String { dir + "/cert.pem" }
    var key: String { dir + "/key.pem" }

    static func make(commonName: String = "localhost") throws -> TestCertificate {
        let c = TestCertificate(dir: makeTempDir())
        try DevelopmentCertificate.generate(certificatePath: c.cert, privateKeyPath: c.key, commonName: commonName)
        return c
    }
}

// MARK: In-process server

/// Echoes what it received, so tests can check bodies arrived whole:
/// `{"method":M,"path":P,"bytes":N,"fnv":H}`. `/defer?ms=N` answers after N ms (deferred
/// responder); `/__stop` stops the loop.
final class EchoHandler: HTTPHandler {
    let router = Router()
    weak var reactor: Reactor?
    var deferredTimers: [DeferredReply] = []

    final class DeferredReply: DeadlineHandler {
        let responder: Responder
        let body: [UInt8]
        init(responder: Responder, body: [UInt8]) { self.responder = responder; self.body = body }
        func onDeadline() {
            responder.respond(HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]), body: body))
        }
    }

    init() {
        CoreRoutes.install(on: router)
    }

    func handle(_ request: HTTPRequest, responder: Responder) -> HandlerResult {
        switch request.head.path {
        case "/__stop":
            reactor?.stop()
            return .respond(HTTPResponse(status: 200))
        case "/echo":
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in request.body { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            let json = "{\"method\":\"\(request.head.method)\",\"path\":\"\(request.head.path)\",\"bytes\":\(request.body.count),\"fnv\":\"\(String(h, radix: 16))\"}"
            return .respond(HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json")]), body: Array(json.utf8)))
        case "/blob":
            // N bytes of a repeating pattern, so a client can check every byte it receives.
            let n = Int(request.head.query?.split(separator: "=").last ?? "0") ?? 0
            return .respond(HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/octet-stream")]),
                                         body: blobPattern(n)))
        case "/defer":
            let ms = Int(request.head.query?.split(separator: "=").last ?? "10") ?? 10
            let reply = DeferredReply(responder: responder, body: Array("{\"deferred\":\(ms)}".utf8))
            let t = reactor!.makeTimer(reply)
            reactor!.arm(t, after: .milliseconds(Int64(ms)))
            deferredTimers.append(reply)
            return .deferred
        default:
            return router.handle(request, responder: responder)
        }
    }

    func errorResponse(for error: ParseError) -> HTTPResponse { router.errorResponse(for: error) }
}

/// The body `/blob?bytes=N` answers: byte i is i mod 251 (a prime, so records never line up).
func blobPattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8($0 % 251) } }

final class InProcessServer: @unchecked Sendable {
    let port: UInt16
    let tls: Bool
    let certificate: TestCertificate?
    private let done = DispatchSemaphore(value: 0)

    /// Starts a server on 127.0.0.1:0 in a new thread; returns once it accepts.
    init(tls: Bool = true, configure: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in }) throws {
        self.tls = tls
        let cert = tls ? try TestCertificate.make() : nil
        certificate = cert
        let ready = DispatchSemaphore(value: 0)
        final class PortBox: @unchecked Sendable { var port: UInt16 = 0; var error: String? }
        let box = PortBox()
        let done = self.done
        let thread = Thread {
            do {
                let reactor = try Reactor()
                var config = ServerConfiguration(listen: SocketAddress(ip: "127.0.0.1", port: 0)!)
                configure(&config)
                let ctx = try cert.map { try TLSServerContext(certificateChainPath: $0.cert, privateKeyPath: $0.key) }
                let handler = EchoHandler()
                handler.reactor = reactor
                var logger = Logger(label: "test-server")
                logger.logLevel = .info   // peer faults are logged at info: shown when a test fails
                let server = HTTPServer(reactor: reactor, configuration: config, tlsContext: ctx, handler: handler, logger: logger)
                box.port = try server.start().port
                ready.signal()
                try reactor.run()
                withExtendedLifetime(server) {}
            } catch {
                box.error = "\(error)"
                ready.signal()
            }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        ready.wait()
        if let e = box.error { throw StartupError(e) }
        port = box.port
    }

    /// Stops the loop (through a request, so no cross-thread access to the reactor).
    func stop() throws {
        let c = try connect()
        try c.send("GET /__stop HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        _ = try? c.readResponse()
        c.close()
        done.wait()
    }

    func connect() throws -> TestClient {
        try TestClient(port: port, caFile: certificate?.cert)
    }
}

// MARK: A blocking client (plain or TLS through OpenSSL)

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

final class TestClient {
    private(set) var fd: Int32
    var ssl: OpaquePointer?
    var ctx: OpaquePointer?
    var buffered: [UInt8] = []

    /// Connects to 127.0.0.1:port; with `caFile`, does a TLS handshake verifying the server
    /// certificate against it (host name 127.0.0.1 / localhost).
    init(port: UInt16, caFile: String?, serverName: String = "localhost", handshake: Bool = true,
         receiveTimeoutSeconds: Int = 20) throws {
        signal(SIGPIPE, SIG_IGN)   // SSL_write to a connection the server closed: EPIPE, not death
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        var tv = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)   // a bound, not a synchronisation
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let address = SocketAddress(ip: "127.0.0.1", port: port)!
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        guard rc == 0 else { Glibc.close(fd); throw TestFailure("connect: \(errno)") }
        if let caFile {
            ctx = SSL_CTX_new(TLS_client_method())
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            // A server that closes without close_notify (timeouts, aborts) reads as EOF.
            _ = SSL_CTX_set_options(ctx, COSSL_OP_IGNORE_UNEXPECTED_EOF)
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else { throw TestFailure("load CA") }
            ssl = SSL_new(ctx)
            SSL_set_fd(ssl, fd)
            SSL_set_connect_state(ssl)
            _ = serverName.withCString { SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
            SSL_set1_host(ssl, serverName)
            if handshake {
                ERR_clear_error()
                let rc = SSL_connect(ssl)
                guard rc == 1 else {
                    let err = errno
                    throw TestFailure("TLS handshake failed: SSL_get_error \(SSL_get_error(ssl, rc)), errno \(err) (\(String(cString: strerror(err)))) \(opensslErrors())")
                }
            }
        }
    }

    deinit { close() }

    func close() {
        if let ssl { SSL_free(ssl); self.ssl = nil }
        if let ctx { SSL_CTX_free(ctx); self.ctx = nil }
        // Once: a second close (deinit after an explicit close) would close whatever another
        // test thread opened under this number meanwhile — the cause of rare EBADF, "epoll_ctl:
        // Bad file descriptor" and "bad record mac" failures in tests running beside it.
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    var peerSubject: String? {
        guard let ssl, let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard let line = X509_NAME_oneline(X509_get_subject_name(cert), nil, 0) else { return nil }
        defer { CRYPTO_free(line, #file, #line) }
        return String(cString: line)
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n: Int = bytes.withUnsafeBytes { raw in
                let p = raw.baseAddress! + off
                if let ssl {
                    var written = 0
                    ERR_clear_error()
                    return SSL_write_ex(ssl, p, raw.count - off, &written) == 1 ? written : -1
                }
                return Glibc.send(fd, p, raw.count - off, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw TestFailure("write failed (errno \(errno)) \(opensslErrors())") }
            off += n
        }
    }

    /// Reads more bytes; returns false on EOF.
    func fill() throws -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n: Int = buf.withUnsafeMutableBytes { raw in
            if let ssl {
                var got = 0
                ERR_clear_error()
                let rc = SSL_read_ex(ssl, raw.baseAddress, raw.count, &got)
                if rc == 1 { return got }
                let e = SSL_get_error(ssl, 0)
                if e == SSL_ERROR_ZERO_RETURN { return 0 }
                if e == SSL_ERROR_SYSCALL && errno == 0 { return 0 }
                if e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK) { return -2 }
                if e == SSL_ERROR_SYSCALL && errno == ECONNRESET { return 0 }
                return -1
            }
            let r = Glibc.read(fd, raw.baseAddress, raw.count)
            if r < 0 && errno == ECONNRESET { return 0 }
            if r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return -2 }
            return r
        }
        if n == -2 { throw TestFailure("read timed out") }
        if n < 0 { throw TestFailure("read failed: errno \(errno) \(opensslErrors())") }
        if n == 0 { return false }
        buffered.append(contentsOf: buf[0..<n])
        return true
    }

    /// True when the server closed the connection (EOF) with nothing more to read.
    func readsEOF() throws -> Bool {
        if !buffered.isEmpty { return false }
        return try !fill()
    }

    func readLine() throws -> String {
        while true {
            if let i = findCRLF() {
                let line = String(decoding: buffered[0..<i], as: UTF8.self)
                buffered.removeFirst(i + 2)
                return line
            }
            guard try fill() else { throw TestFailure("EOF while reading a line") }
        }
    }

    func findCRLF() -> Int? {
        guard buffered.count >= 2 else { return nil }
        for i in 0..<(buffered.count - 1) where buffered[i] == 13 && buffered[i + 1] == 10 { return i }
        return nil
    }

    func readResponse(headRequest: Bool = false) throws -> TestResponse {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw TestFailure("bad status line: \(statusLine)")
        }
        var headers: [(String, String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw TestFailure("bad header: \(line)") }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = TestResponse(status: status, headers: headers, body: [])
        if status == 100 || headRequest { return response }
        let length = Int(response.header("Content-Length") ?? "") ?? 0
        while buffered.count < length {
            guard try fill() else { throw TestFailure("EOF in body") }
        }
        response.body = Array(buffered[0..<length])
        buffered.removeFirst(length)
        return response
    }
}

struct TestResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    var text: String { String(decoding: body, as: UTF8.self) }
}

func opensslErrors() -> String {
    var out: [String] = []
    while true {
        let e = ERR_get_error()
        if e == 0 { break }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(e, &buf, buf.count)
        out.append(buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }
    return out.joined(separator: "; ")
}

// MARK: The binary as a child process

/// Where SwiftPM put the `tickiti-mail` executable (next to the test bundle).
func binaryPath() -> String {
    let me = CommandLine.arguments[0]
    var dir = (me as NSString).deletingLastPathComponent
    if dir.hasSuffix(".xctest/Contents/MacOS") { dir = ((dir as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent }
    return dir + "/tickiti-mail"
}

/// `tickiti-mail` run as a child; stderr is collected line by line on a reader thread and
/// tests wait for a given line (an event), never for a fixed time.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSCondition()
    private var lines: [String] = []
    private var eof = false
    let workingDirectory: String

    init(arguments: [String], workingDirectory: String? = nil, executable: String = binaryPath()) throws {
        self.workingDirectory = workingDirectory ?? makeTempDir()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: self.workingDirectory)
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe   // the demo banner is on stdout, the logs on stderr: one stream for the waits
        try process.run()
        let handle = pipe.fileHandleForReading
        let thread = Thread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...nl)
                    lock.lock(); lines.append(line); lock.broadcast(); lock.unlock()
                }
            }
            lock.lock(); eof = true; lock.broadcast(); lock.unlock()
        }
        thread.start()
    }

    /// Waits (bounded) for a stderr line containing `text`; returns it.
    func waitForLine(containing text: String, timeoutSeconds: Double = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        lock.lock()
        defer { lock.unlock() }
        var seen = 0
        while true {
            while seen < lines.count {
                if lines[seen].contains(text) { return lines[seen] }
                seen += 1
            }
            if eof { throw TestFailure("server exited before printing \"\(text)\"; stderr:\n\(lines.joined(separator: "\n"))") }
            if !lock.wait(until: deadline) { throw TestFailure("no \"\(text)\" within \(timeoutSeconds)s; stderr:\n\(lines.joined(separator: "\n"))") }
        }
    }

    /// Waits (bounded) until more than `n` stderr lines contain `text`.
    func waitForCount(of text: String, above n: Int, timeoutSeconds: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        lock.lock()
        defer { lock.unlock() }
        while lines.filter({ $0.contains(text) }).count <= n {
            if eof { throw TestFailure("server exited before printing \"\(text)\" again; stderr:\n\(lines.joined(separator: "\n"))") }
            if !lock.wait(until: deadline) { throw TestFailure("no new \"\(text)\" within \(timeoutSeconds)s; stderr:\n\(lines.joined(separator: "\n"))") }
        }
    }

    var stderrLines: [String] { lock.lock(); defer { lock.unlock() }; return lines }

    /// The port from "listening on https://127.0.0.1:PORT".
    func waitForPort() throws -> UInt16 {
        let line = try waitForLine(containing: "listening on ")
        guard let p = line.split(separator: ":").last, let port = UInt16(p) else { throw TestFailure("no port in \(line)") }
        return port
    }

    func signal(_ s: Int32) { kill(process.processIdentifier, s) }

    var pid: pid_t { process.processIdentifier }

    /// How many stderr lines so far contain `text`.
    func count(_ text: String) -> Int { stderrLines.filter { $0.contains(text) }.count }

    /// Waits (bounded) for exit; returns the status.
    func waitForExit(timeoutSeconds: Double = 30) throws -> Int32 {
        lock.lock()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while !eof {
            if !lock.wait(until: deadline) { lock.unlock(); process.terminate(); throw TestFailure("did not exit within \(timeoutSeconds)s") }
        }
        lock.unlock()
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Runs a command, returns (status, stdout+stderr). Bounded by `timeout` (TERM, then KILL 10 s
/// later). Output goes to a file, not a pipe: a grandchild that outlives the command (a browser,
/// a daemon it started) would hold a pipe open and a read to EOF would never return.
func run(_ argv: [String], timeoutSeconds: Int = 60) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    p.arguments = ["--kill-after=10", "\(timeoutSeconds)"] + argv
    let outPath = makeTempDir() + "/output"
    guard FileManager.default.createFile(atPath: outPath, contents: nil), let out = FileHandle(forWritingAtPath: outPath) else {
        throw TestFailure("cannot create \(outPath)")
    }
    defer { try? out.close() }
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let status = waitForExit(p)
    let data = (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data()
    return (status, String(decoding: data, as: UTF8.self))
}

/// `Process.waitUntilExit()`, except that it cannot hang: Foundation's monitor once missed a
/// child's exit (a zombie `timeout` for minutes, the test spinning in `waitUntilExit` until CI
/// killed the run). A child that has been a zombie for a second is reaped here.
func waitForExit(_ p: Process) -> Int32 {
    let pid = p.processIdentifier
    var zombieSince: Date?
    while p.isRunning {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let state = stat.split(separator: ")").last?.split(separator: " ").first
        if state == "Z" {
            if zombieSince == nil { zombieSince = Date() }
            if Date().timeIntervalSince(zombieSince!) > 1 {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                }
            }
        }
        usleep(10_000)
    }
    return p.terminationStatus
}

struct WaitTimeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls `condition` (every 20 ms, at most `seconds`) for state that only the server's own
/// progress changes (a row's status, a file) — there is no event to wait on from outside.
func waitUntil(_ what: String, seconds: Double = 20, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        if try condition() { return }
        if Date() > deadline { throw WaitTimeout(what: what) }
        usleep(20_000)
    }
}

/// A socket of `type` bound to 127.0.0.1 on a port the kernel picked (not listening).
func boundLoopbackSocket(_ type: __socket_type) -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (fd, UInt16(bigEndian: addr.sin_port))
}

/// A plain (no TLS) blocking TCP connection to 127.0.0.1:`port`.
func connectPlain(port: UInt16) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { close(fd); throw TestFailure("connect to \(port): errno \(errno)") }
    return (fd, port)
}
