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
        #expect(d.rate == nil)
        #expect(d.dailyRecipients == nil)
    }

    @Test(arguments: [
        ("smtp://relay.example.org?rate=30/m", "30/m", nil),
        ("smtps://relay.example.org?rate=5/s&daily_recipients=10000", "5/s", 10_000),
        ("smtp://relay.example.org?daily_recipients=2000", nil, 2_000),
        ("smtp://relay.example.org?rate=30%2Fm", "30/m", nil),              // percent-encoded /
        ("smtp://relay.example.org?rate=1000000/h&daily_recipients=1", "1000000/h", 1),
        ("smtps://relay.example.org?daily_recipients=100000000&rate=1/s", "1/s", 100_000_000),
        ("smtp://relay.example.org?rate=1/s&rate=30/m", "30/m", nil),       // the last one wins, as for every parameter
    ] as [(String, String?, Int?)])
    func mailboxLimits(dsn: String, rate: String?, daily: Int?) throws {
        let d = try RelayDSN(parsing: dsn)
        #expect(d.rate == rate.flatMap { RateLimit(parsing: $0) })
        #expect(d.rate?.description == rate)
        #expect(d.dailyRecipients == daily)
    }

    static let rateError = "rate must be N/s, N/m or N/h with N from 1 to 1000000 (e.g. rate=30/m)"
    static let dailyError = "daily_recipients must be a whole number from 1 to 100000000"

    @Test(arguments: [
        ("smtp://h?rate=30/min", rateError),
        ("smtp://h?rate=30", rateError),
        ("smtp://h?rate=", rateError),
        ("smtp://h?rate=0/m", rateError),
        ("smtp://h?rate=1000001/s", rateError),
        ("smtp://h?rate=-1/s", rateError),
        ("smtp://h?rate=30/d", rateError),
        ("smtp://h?rate=30%20/m", rateError),
        ("smtp://h?rate=30/M", rateError),
        ("smtps://h?rate=1.5/s", rateError),
        ("smtp://h?daily_recipients=0", dailyError),
        ("smtp://h?daily_recipients=100000001", dailyError),
        ("smtp://h?daily_recipients=", dailyError),
        ("smtp://h?daily_recipients=1e4", dailyError),
        ("smtp://h?daily_recipients=-5", dailyError),
        ("smtp://h?daily_recipients=+5", dailyError),
        ("smtp://h?daily_recipients=010", dailyError),
        ("smtp://h?daily_recipients=10%20000", dailyError),
        ("smtps://h?daily_recipients=99999999999999999999", dailyError),
        ("smtp://h?rate", "parameter rate needs a value"),
        ("smtp://h?daily_recipients", "parameter daily_recipients needs a value"),
        ("file:///var/spool/out?rate=30/m", "rate= applies to smtp:// and smtps:// only"),
        ("file://outbox?daily_recipients=100", "daily_recipients= applies to smtp:// and smtps:// only"),
        ("smtp://h?Rate=30/m", "unknown parameter \"Rate\""),
        ("smtp://h?daily-recipients=5", "unknown parameter \"daily-recipients\""),
    ])
    func badMailboxLimits(dsn: String, reason: String) {
        #expect(throws: RelayDSN.ParseError(reason: reason)) { try RelayDSN(parsing: dsn) }
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
