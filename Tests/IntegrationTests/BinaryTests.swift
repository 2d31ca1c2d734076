/// The `tickiti-mail` binary as a user runs it: start-up line, development certificate,
/// start-up errors, SIGHUP certificate reload, SIGTERM with a request in flight.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@Suite(.serialized) struct BinaryTests {
    @Test func defaultServeMakesADevelopmentCertificateAndServes() throws {
        let p = try ServerProcess(arguments: ["serve", "--listen", "127.0.0.1:0"])
        let port = try p.waitForPort()
        let certPath = p.workingDirectory + "/certs/localhost.pem"
        let keyPath = p.workingDirectory + "/certs/localhost-key.pem"
        var st = stat()
        #expect(stat(keyPath, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(p.stderrLines.contains { $0.contains("curl --cacert") })
        let (rc, out) = try run(["curl", "-sS", "--cacert", certPath, "https://127.0.0.1:\(port)/healthz"])
        #expect(rc == 0 && out == "{\"ok\":true}", "\(out)")
        let (rcName, _) = try run(["curl", "-sS", "--cacert", certPath, "--resolve", "localhost:\(port):127.0.0.1", "https://localhost:\(port)/healthz"])
        #expect(rcName == 0)
        p.signal(SIGTERM)
        #expect(try p.waitForExit() == 0)
    }

    @Test func aBadCertificateIsOneClearLineAndANonZeroExit() throws {
        let dir = makeTempDir()
        try "not a certificate".write(toFile: dir + "/bad.pem", atomically: true, encoding: .utf8)
        let p = try ServerProcess(arguments: ["serve", "--listen", "127.0.0.1:0", "--tls-cert", dir + "/bad.pem", "--tls-key", dir + "/bad.pem"])
        let status = try p.waitForExit()
        #expect(status != 0)
        let lines = p.stderrLines.filter { !$0.isEmpty }
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.hasPrefix("tickiti-mail: error: bad TLS certificate or key") == true, "\(lines)")
        #expect(lines.first?.contains("bad.pem") == true)
    }

    @Test func badFlagsAreOneLineAndNonZero() throws {
        let (rc, out) = try run([binaryPath(), "serve", "--listen", "nowhere"])
        #expect(rc != 0)
        #expect(out.contains("--listen"))
        let (rc2, _) = try run([binaryPath(), "serve", "--tls-cert", "/x"])
        #expect(rc2 != 0)
    }

    @Test func sighupReloadsTheCertificateForNewConnections() throws {
        let first = try TestCertificate.make(commonName: "first.localhost")
        let dir = makeTempDir()
        let cert = dir + "/cert.pem"
        let key = dir + "/key.pem"
        try FileManager.default.copyItem(atPath: first.cert, toPath: cert)
        try FileManager.default.copyItem(atPath: first.key, toPath: key)
        let p = try ServerProcess(arguments: ["serve", "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key])
        let port = try p.waitForPort()
        let old = try TestClient(port: port, caFile: first.cert, serverName: "localhost")
        #expect(old.peerSubject?.contains("first.localhost") == true)

        // A broken file on reload: logged, old certificate kept.
        try "garbage".write(toFile: cert, atomically: true, encoding: .utf8)
        p.signal(SIGHUP)
        _ = try p.waitForLine(containing: "keeping the old certificate")
        let still = try TestClient(port: port, caFile: first.cert)
        #expect(still.peerSubject?.contains("first.localhost") == true)

        let second = try TestCertificate.make(commonName: "second.localhost")
        try? FileManager.default.removeItem(atPath: cert)
        try? FileManager.default.removeItem(atPath: key)
        try FileManager.default.copyItem(atPath: second.cert, toPath: cert)
        try FileManager.default.copyItem(atPath: second.key, toPath: key)
        p.signal(SIGHUP)
        _ = try p.waitForLine(containing: "reloaded certificate")
        let fresh = try TestClient(port: port, caFile: second.cert)
        #expect(fresh.peerSubject?.contains("second.localhost") == true)
        // The connection opened before the reload is untouched.
        try old.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(try old.readResponse().status == 200)
        p.signal(SIGTERM)
        #expect(try p.waitForExit() == 0)
    }

    @Test func sigtermFinishesTheRequestInFlightAndExitsZero() throws {
        let c = try TestCertificate.make()
        let p = try ServerProcess(arguments: ["serve", "--listen", "127.0.0.1:0", "--tls-cert", c.cert, "--tls-key", c.key])
        let port = try p.waitForPort()
        let idle = try TestClient(port: port, caFile: c.cert)
        try idle.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(try idle.readResponse().status == 200)
        let busy = try TestClient(port: port, caFile: c.cert)
        // Half a request: head sent, body still owed.
        try busy.send("POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345")
        try busy.send("")   // nothing; make sure the head went out
        p.signal(SIGTERM)
        _ = try p.waitForLine(containing: "stopping")
        // The idle keep-alive connection is closed at once.
        #expect(try idle.readsEOF())
        // The busy one still gets its answer, marked Connection: close.
        try busy.send("67890")
        let r = try busy.readResponse()
        #expect(r.status == 405)
        #expect(r.header("Connection") == "close")
        #expect(try p.waitForExit() == 0)
    }

    @Test func descriptorExhaustionPausesAcceptingAndRecovers() throws {
        // 48 descriptors: ~40 connections, then accept4 fails with EMFILE.
        let p = try ServerProcess(arguments: ["-c", "ulimit -n 48 && exec \(binaryPath()) serve --plain-http --listen 127.0.0.1:0"],
                                  executable: "/bin/sh")
        let port = try p.waitForPort()
        var clients: [TestClient] = []
        for _ in 0..<80 { clients.append(try TestClient(port: port, caFile: nil)) }
        _ = try p.waitForLine(containing: "pausing accepts")
        // The connections it did accept are still served.
        try clients[0].send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try clients[0].readResponse().status == 200)
        for c in clients { c.close() }
        clients.removeAll()
        // Once descriptors are free again, new connections are accepted and served.
        let fresh = try TestClient(port: port, caFile: nil)
        try fresh.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try fresh.readResponse().status == 200)
        p.signal(SIGTERM)
        #expect(try p.waitForExit() == 0)
    }
}
