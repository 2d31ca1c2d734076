/// RelayDSN: a table of valid and invalid mailbox DSNs.
import Testing
@testable import Relay

@Suite struct RelayDSNTests {
    @Test func smtpDefaults() throws {
        let d = try RelayDSN(parsing: "smtp://relay.example.org")
        #expect(d.transport == .smtp(host: "relay.example.org", port: 587))
        #expect(d.startTLS == .required)
        #expect(d.verifyPeer)
        #expect(d.maxConnections == 4)
        #expect(d.user == nil)
    }

    @Test func credentialsAreDecodedAndParametersRead() throws {
        let d = try RelayDSN(parsing: "smtp://us%40er:p%3Ass%2Fw@127.0.0.1:2525?starttls=opportunistic&ca_file=/etc/ca.pem&verify_peer=false&max_connections=16")
        #expect(d.transport == .smtp(host: "127.0.0.1", port: 2525))
        #expect(d.user == "us@er")
        #expect(d.password == "p:ss/w")
        #expect(d.startTLS == .opportunistic)
        #expect(d.caFile == "/etc/ca.pem")
        #expect(!d.verifyPeer)
        #expect(d.maxConnections == 16)
    }

    @Test(arguments: [
        ("smtps://mx.example.org", RelayDSN.Transport.smtps(host: "mx.example.org", port: 465)),
        ("smtps://MX.Example.org:10465/", .smtps(host: "mx.example.org", port: 10465)),
        ("smtp://[::1]:2525", .smtp(host: "::1", port: 2525)),
        ("file:///var/spool/out", .file(directory: "/var/spool/out")),
        ("file://outbox", .file(directory: "outbox")),
    ])
    func transports(dsn: String, transport: RelayDSN.Transport) throws {
        #expect(try RelayDSN(parsing: dsn).transport == transport)
    }

    @Test(arguments: [
        "relay.example.org", "http://x", "smtp://", "smtp://host:0", "smtp://host:70000", "smtp://host:abc",
        "smtp://host/path", "smtp://ho st", "smtp://host?starttls=maybe", "smtps://host?starttls=off",
        "smtp://host?max_connections=0", "smtp://host?max_connections=1000", "smtp://host?verify_peer=no",
        "smtp://host?unknown=1", "smtp://host?ca_file=", "smtp://%zz:pw@host", "file://", "file://u:p@dir",
        "smtp://host\r\nRCPT", "smtp://[::1", "smtp://host?starttls",
        // An unencoded @ in the user name or password (it would be user "us@r" of host "ss@host").
        "smtp://us@r:p@ss@host", "smtp://user@example.com:pw@host",
    ])
    func invalidDSNsAreRejected(dsn: String) {
        #expect(throws: RelayDSN.ParseError.self) { try RelayDSN(parsing: dsn) }
    }
}
