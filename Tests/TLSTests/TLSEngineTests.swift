/// TLS engine tests without sockets: a client engine and a server engine wired together in
/// memory (ciphertext pumped from one's output into the other's input until both settle).
/// Certificates are made in-process (ECDSA P-256 and RSA-2048).
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import Testing
@testable import TLS

func tempDir() -> String {
    var template = Array("/tmp/tickiti-tls-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!)
}

struct Certs {
    let cert: String
    let key: String
    static func make(_ cn: String = "localhost", _ type: DevelopmentCertificate.KeyType = .ecdsaP256) throws -> Certs {
        let d = tempDir()
        let c = Certs(cert: d + "/cert.pem", key: d + "/key.pem")
        try DevelopmentCertificate.generate(certificatePath: c.cert, privateKeyPath: c.key, commonName: cn, keyType: type)
        return c
    }
}

/// Moves ciphertext both ways and steps both handshakes until neither makes progress.
/// Returns the last results.
@discardableResult
func pumpHandshake(_ client: TLSEngine, _ server: TLSEngine, rounds: Int = 10) -> (TLSResult, TLSResult) {
    var c = client.handshake()
    var s = server.handshake()
    for _ in 0..<rounds {
        var buf: [UInt8] = []
        client.drainCiphertext(into: &buf)
        server.feed(buf)
        s = server.handshake()
        buf = []
        server.drainCiphertext(into: &buf)
        client.feed(buf)
        c = client.handshake()
        if case .failed = c { break }
        if case .failed = s { break }
        if c == .progress(0) && s == .progress(0) && client.pendingCiphertext == 0 && server.pendingCiphertext == 0 { break }
    }
    return (c, s)
}

/// A client and a server engine (ECDSA development certificate for localhost) with the
/// handshake done.
func handshakenPair() throws -> (client: TLSEngine, server: TLSEngine) {
    let certs = try Certs.make()
    let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
    let client = try TLSEngine(client: TLSClientContext(caFile: certs.cert), serverName: "localhost")
    pumpHandshake(client, server)
    return (client, server)
}

func transfer(_ bytes: [UInt8], from a: TLSEngine, to b: TLSEngine) -> [UInt8] {
    var off = 0
    var received: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 16384)
    while off < bytes.count || a.pendingCiphertext > 0 {
        if off < bytes.count {
            let r = bytes.withUnsafeBytes { a.write(UnsafeRawBufferPointer(rebasing: $0[off...])) }
            if case .progress(let n) = r { off += n }
        }
        var cipher: [UInt8] = []
        a.drainCiphertext(into: &cipher)
        b.feed(cipher)
        while case .progress(let n) = buf.withUnsafeMutableBytes({ b.read(into: $0) }) {
            received += buf[0..<n]
        }
    }
    return received
}

@Suite struct TLSEngineTests {
    @Test(arguments: [DevelopmentCertificate.KeyType.ecdsaP256, .rsa2048])
    func handshakeCompletesWithTLS13(_ type: DevelopmentCertificate.KeyType) throws {
        let certs = try Certs.make("localhost", type)
        let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        let client = try TLSEngine(client: TLSClientContext(caFile: certs.cert), serverName: "localhost")
        let (c, s) = pumpHandshake(client, server)
        #expect(c == .progress(0))
        #expect(s == .progress(0))
        #expect(client.protocolVersion == "TLSv1.3")
        #expect(server.isHandshakeComplete)
        #expect(client.verifyResult == Int(X509_V_OK))
        #expect(client.peerCertificateSubject?.contains("CN=localhost") == true)
    }

    /// One `write` takes every byte, however many records it needs (partial writes are on:
    /// a caller that wrote once truncated messages at 16 KiB), and the peer reads them all.
    @Test(arguments: [16_383, 16_384, 16_385, 65_536, 1 << 20])
    func oneWriteTakesEveryByte(size: Int) throws {
        let (client, server) = try handshakenPair()
        let bytes = (0..<size).map { UInt8($0 % 251) }
        guard case .progress(let n) = bytes.withUnsafeBytes({ client.write($0) }) else { Issue.record("write failed"); return }
        #expect(n == size)
        #expect(transfer([], from: client, to: server) == bytes)
    }

    @Test func tls12Works() throws {
        let certs = try Certs.make()
        let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        let client = try TLSEngine(client: TLSClientContext(caFile: certs.cert), serverName: "localhost")
        client.setProtocolRange(min: TLS1_2_VERSION, max: TLS1_2_VERSION)
        let (c, _) = pumpHandshake(client, server)
        #expect(c == .progress(0))
        #expect(server.protocolVersion == "TLSv1.2")
    }

    @Test func tls11IsRefused() throws {
        let certs = try Certs.make()
        let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        let client = try TLSEngine(client: TLSClientContext(caFile: certs.cert), serverName: "localhost")
        // The client context says min 1.2; lower it for this connection only.
        client.setProtocolRange(min: TLS1_1_VERSION, max: TLS1_1_VERSION)
        let (c, s) = pumpHandshake(client, server)
        let failed = { (r: TLSResult) -> Bool in if case .failed = r { return true }; return false }
        #expect(failed(c) || failed(s))
        #expect(!server.isHandshakeComplete)
    }

    @Test func applicationDataBothWaysIncludingOneMebibyte() throws {
        let (client, server) = try handshakenPair()
        #expect(transfer(Array("ping".utf8), from: client, to: server) == Array("ping".utf8))
        #expect(transfer(Array("pong".utf8), from: server, to: client) == Array("pong".utf8))
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(transfer(big, from: server, to: client) == big)
    }

    /// Idle connections give back every buffer (the handshake flight's, a request's), never
    /// ciphertext still waiting, and keep working.
    @Test func releaseBuffersDropsIdleCapacityAndKeepsTheSession() throws {
        let (client, server) = try handshakenPair()
        #expect(transfer(Array("ping".utf8), from: client, to: server) == Array("ping".utf8))
        #expect(server.bufferCapacity > 0, "the client's flights passed through the server's input")
        // Pending ciphertext is never dropped: nothing is released while bytes wait.
        let r = Array("pending".utf8).withUnsafeBytes { server.write($0) }
        if case .failed = r { Issue.record("write failed") }
        let pending = server.pendingCiphertext
        server.releaseBuffers()
        #expect(pending > 0 && server.pendingCiphertext == pending)
        // Half a record fed to the client stays buffered through a release, and completes.
        var out: [UInt8] = []
        server.drainCiphertext(into: &out)
        #expect(server.pendingCiphertext == 0 && out.count == pending)
        client.feed(Array(out[0..<(out.count / 2)]))
        var buf = [UInt8](repeating: 0, count: 64)
        var got = buf.withUnsafeMutableBytes { client.read(into: $0) }
        if case .wantRead = got {} else { Issue.record("half a record: \(got)") }
        client.releaseBuffers()
        client.feed(Array(out[(out.count / 2)...]))
        got = buf.withUnsafeMutableBytes { client.read(into: $0) }
        if case .progress(let n) = got { #expect(Array(buf[0..<n]) == Array("pending".utf8)) } else { Issue.record("\(got)") }
        // Idle now: neither side holds any buffer.
        server.releaseBuffers()
        client.releaseBuffers()
        #expect(server.bufferCapacity == 0 && client.bufferCapacity == 0)
        #expect(transfer(Array("after".utf8), from: client, to: server) == Array("after".utf8))
        #expect(transfer(Array("both ways".utf8), from: server, to: client) == Array("both ways".utf8))
    }

    /// Draining into a buffer that already holds bytes appends; into an empty one, moves.
    @Test func drainCiphertextAppendsAfterWhatIsThere() throws {
        let (client, server) = try handshakenPair()
        _ = Array("one".utf8).withUnsafeBytes { server.write($0) }
        var out: [UInt8] = [1, 2, 3]
        let n1 = server.pendingCiphertext
        server.drainCiphertext(into: &out)
        #expect(out.count == 3 + n1 && Array(out[0..<3]) == [1, 2, 3])
        _ = Array("two".utf8).withUnsafeBytes { server.write($0) }
        server.drainCiphertext(into: &out)
        client.feed(Array(out[3...]))
        var buf = [UInt8](repeating: 0, count: 64)
        var text: [UInt8] = []
        while case .progress(let n) = buf.withUnsafeMutableBytes({ client.read(into: $0) }) { text += buf[0..<n] }
        #expect(text == Array("onetwo".utf8))
    }

    @Test func wrongHostNameFailsVerification() throws {
        let certs = try Certs.make()
        let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        let client = try TLSEngine(client: TLSClientContext(caFile: certs.cert), serverName: "mail.example.org")
        let (c, _) = pumpHandshake(client, server)
        guard case .failed(let e) = c else { Issue.record("expected failure, got \(c)"); return }
        #expect(e.description.contains("verif"), "\(e)")
    }

    @Test func ipLiteralIsVerifiedAgainstTheSAN() throws {
        let certs = try Certs.make()
        let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        let client = try TLSEngine(client: TLSClientContext(caFile: certs.cert), serverName: "127.0.0.1")
        #expect(pumpHandshake(client, server).0 == .progress(0))
        let server2 = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        let client2 = try TLSEngine(client: TLSClientContext(caFile: certs.cert), serverName: "127.0.0.2")
        if case .failed = pumpHandshake(client2, server2).0 {} else { Issue.record("127.0.0.2 must not verify") }
    }

    @Test func selfSignedFailsAgainstTheSystemStoreUnlessVerificationIsOff() throws {
        let certs = try Certs.make()
        let ctx = try TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key)
        let strict = try TLSEngine(client: TLSClientContext(), serverName: "localhost")
        if case .failed = pumpHandshake(strict, try TLSEngine(server: ctx)).0 {} else { Issue.record("system store must not trust it") }
        let lax = try TLSEngine(client: TLSClientContext(verifyPeer: false), serverName: "localhost")
        #expect(pumpHandshake(lax, try TLSEngine(server: ctx)).0 == .progress(0))
    }

    @Test func sessionsAreResumed() throws {
        let certs = try Certs.make()
        let sctx = try TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key)
        let cctx = try TLSClientContext(caFile: certs.cert)
        let c1 = try TLSEngine(client: cctx, serverName: "localhost")
        let s1 = try TLSEngine(server: sctx)
        pumpHandshake(c1, s1)
        // TLS 1.3 tickets follow the handshake: let the client read what the server sent.
        _ = transfer(Array("x".utf8), from: s1, to: c1)
        let session = try #require(c1.session())
        let c2 = try TLSEngine(client: cctx, serverName: "localhost")
        c2.setSession(session)
        let s2 = try TLSEngine(server: sctx)
        #expect(pumpHandshake(c2, s2).0 == .progress(0))
        #expect(c2.sessionReused)
        #expect(s2.sessionReused)
    }

    @Test func resumptionCanBeTurnedOff() throws {
        let certs = try Certs.make()
        let sctx = try TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key, resumption: false)
        let cctx = try TLSClientContext(caFile: certs.cert)
        let c1 = try TLSEngine(client: cctx, serverName: "localhost")
        let s1 = try TLSEngine(server: sctx)
        pumpHandshake(c1, s1)
        _ = transfer(Array("x".utf8), from: s1, to: c1)
        let c2 = try TLSEngine(client: cctx, serverName: "localhost")
        if let session = c1.session() { c2.setSession(session) }
        let s2 = try TLSEngine(server: sctx)
        #expect(pumpHandshake(c2, s2).0 == .progress(0))
        #expect(!s2.sessionReused)
    }

    @Test func reloadedContextServesNewSubjectWhileOldEnginesKeepWorking() throws {
        let a = try Certs.make("first.localhost")
        let b = try Certs.make("second.localhost")
        var current: TLSServerContext? = try TLSServerContext(certificateChainPath: a.cert, privateKeyPath: a.key)
        let oldServer = try TLSEngine(server: current!)
        let oldClient = try TLSEngine(client: TLSClientContext(verifyPeer: false), serverName: "localhost")
        pumpHandshake(oldClient, oldServer)
        #expect(oldClient.peerCertificateSubject?.contains("first.localhost") == true)
        current = try TLSServerContext(certificateChainPath: b.cert, privateKeyPath: b.key)   // old context released
        let newClient = try TLSEngine(client: TLSClientContext(verifyPeer: false), serverName: "localhost")
        pumpHandshake(newClient, try TLSEngine(server: current!))
        #expect(newClient.peerCertificateSubject?.contains("second.localhost") == true)
        #expect(current!.certificateSubject.contains("second.localhost"))
        #expect(transfer(Array("still".utf8), from: oldClient, to: oldServer) == Array("still".utf8))
    }

    @Test func garbageCiphertextFailsCleanly() throws {
        let certs = try Certs.make()
        let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        server.feed(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        guard case .failed(let e) = server.handshake() else { Issue.record("expected failure"); return }
        #expect(!e.message.isEmpty)
        // After a fatal error: nothing more, no close_notify.
        if case .failed = server.shutdown() {} else { Issue.record("shutdown after failure must fail") }
    }

    @Test func closeNotifyIsSeenAsClosed() throws {
        let (client, server) = try handshakenPair()
        #expect(server.shutdown() == .progress(0))
        var buf: [UInt8] = []
        server.drainCiphertext(into: &buf)
        client.feed(buf)
        var plain = [UInt8](repeating: 0, count: 64)
        #expect(plain.withUnsafeMutableBytes { client.read(into: $0) } == .closed)
    }

    @Test func emptyInputWantsRead() throws {
        let certs = try Certs.make()
        let server = try TLSEngine(server: TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: certs.key))
        #expect(server.handshake() == .wantRead)
    }

    @Test func keyFileIsPrivate() throws {
        let certs = try Certs.make()
        var st = stat()
        #expect(stat(certs.key, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test func loadingErrorsNameThePath() throws {
        let certs = try Certs.make()
        do {
            _ = try TLSServerContext(certificateChainPath: "/nonexistent/cert.pem", privateKeyPath: certs.key)
            Issue.record("missing cert must throw")
        } catch {
            #expect(error.operation.contains("/nonexistent/cert.pem"))
        }
        let other = try Certs.make()
        do {
            _ = try TLSServerContext(certificateChainPath: certs.cert, privateKeyPath: other.key)
            Issue.record("mismatched key must throw")
        } catch {
            // OpenSSL checks the pair while loading the key ("key values mismatch").
            #expect(error.operation.contains(other.key))
            #expect(error.message.contains("mismatch"), "\(error)")
        }
        let d = tempDir()
        let junk = d + "/junk.pem"
        let f = fopen(junk, "w")!
        fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", f)
        fclose(f)
        do {
            _ = try TLSServerContext(certificateChainPath: junk, privateKeyPath: certs.key)
            Issue.record("corrupt cert must throw")
        } catch {
            #expect(error.operation.contains("junk.pem"))
        }
    }
}
