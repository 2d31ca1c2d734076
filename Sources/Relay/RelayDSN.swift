/// RelayDSN: a mailbox's delivery target as SPEC §3 writes it, parsed and validated at
/// `mailbox add` time so a typo is one clear error then, not a failed delivery later.
///
///   smtp://[user:pass@]host[:port]   submission, default port 587, STARTTLS required
///   smtps://[user:pass@]host[:port]  implicit TLS, default port 465
///   file:///abs/dir or file://rel/dir  development transport (.eml files)
/// Query parameters:
///   starttls=required|opportunistic|off   smtp:// only (smtps:// is always TLS)
///   ca_file=PATH, verify_peer=false       the relay's certificate
///   max_connections=N                     1…100, default 4: sessions open at once
///   rate=N/s|N/m|N/h                      smtp:// and smtps:// only, N 1…1000000: messages per
///                                         window, a token bucket (RateLimit, TokenBucket); none by default
///   daily_recipients=N                    smtp:// and smtps:// only, N 1…100000000: recipients in
///                                         any rolling 24 hours (RollingDailyCount); none by default
/// The limits hold for the mailbox as a whole (SPEC §6). User and password are percent-decoded; credentials
/// with starttls=off must be asked for explicitly (they would cross the network in clear).
/// Pure: no I/O (the CA file's existence is checked by the caller).
public struct RelayDSN: Sendable, Equatable {
    public enum Transport: Sendable, Equatable {
        case smtp(host: String, port: UInt16)
        case smtps(host: String, port: UInt16)
        case file(directory: String)
    }

    public enum StartTLS: String, Sendable, Equatable {
        case required, opportunistic, off
    }

    public var transport: Transport
    public var user: String?
    public var password: String?
    public var startTLS: StartTLS
    public var caFile: String?
    public var verifyPeer: Bool
    public var maxConnections: Int
    /// `rate=`: messages per second, minute or hour; nil = unlimited.
    public var rate: RateLimit?
    /// `daily_recipients=`: recipients in any rolling 24 hours; nil = unlimited.
    public var dailyRecipients: Int?

    /// The largest `daily_recipients=`: far above any relay's daily limit (Microsoft 365: 10 000).
    public static let maxDailyRecipients = 100_000_000

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let reason: String
        public var description: String { "invalid mailbox DSN: \(reason)" }
    }

    public init(parsing dsn: String) throws(ParseError) {
        func fail(_ r: String) -> ParseError { ParseError(reason: r) }
        guard let colon = dsn.firstIndex(of: ":"), dsn[colon...].hasPrefix("://") else {
            throw fail("expected smtp://, smtps:// or file://")
        }
        let scheme = dsn[..<colon].lowercased()
        var rest = dsn[dsn.index(colon, offsetBy: 3)...]
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        guard !dsn.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || $0 == " " }) else {
            throw fail("control characters or spaces are not allowed")
        }
        user = nil
        password = nil
        startTLS = .required
        caFile = nil
        verifyPeer = true
        maxConnections = 4
        rate = nil
        dailyRecipients = nil

        switch scheme {
        case "file":
            guard !rest.isEmpty else { throw fail("file:// needs a folder, e.g. file:///var/mail/out or file://outbox") }
            // "file://user:pw@dir" is a mistake, not a folder name.
            guard !rest.contains("@") else { throw fail("file:// takes no credentials (no @ in the folder)") }
            transport = .file(directory: String(rest))
        case "smtp", "smtps":
            var hostPort = rest
            if let at = rest.lastIndex(of: "@") {
                let userInfo = rest[..<at]
                hostPort = rest[rest.index(after: at)...]
                // "smtp://us@r:p@ss@host" would silently be user "us@r": an @ in the user name or
                // password must be written %40.
                guard !userInfo.contains("@") else {
                    throw fail("the user name or password contains \"@\": write it as %40 (smtp://user%40example.com:secret@host)")
                }
                let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                guard let u = RelayDSN.percentDecode(parts[0]), !u.isEmpty else { throw fail("bad user name encoding") }
                user = u
                if parts.count == 2 {
                    guard let p = RelayDSN.percentDecode(parts[1]) else { throw fail("bad password encoding") }
                    password = p
                }
            }
            if hostPort.hasSuffix("/") { hostPort = hostPort.dropLast() }
            guard !hostPort.contains("/") else { throw fail("smtp DSNs take no path") }
            var host: Substring
            var port: UInt16 = scheme == "smtp" ? 587 : 465
            if hostPort.hasPrefix("[") {
                guard let close = hostPort.firstIndex(of: "]") else { throw fail("missing ] in IPv6 host") }
                host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
                let after = hostPort[hostPort.index(after: close)...]
                if !after.isEmpty {
                    guard after.hasPrefix(":"), let p = UInt16(after.dropFirst()), p > 0 else { throw fail("bad port") }
                    port = p
                }
            } else if let colon = hostPort.lastIndex(of: ":") {
                host = hostPort[..<colon]
                guard let p = UInt16(hostPort[hostPort.index(after: colon)...]), p > 0 else { throw fail("bad port") }
                port = p
            } else {
                host = hostPort
            }
            guard !host.isEmpty else { throw fail("missing host") }
            guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" || $0 == "_" }) else {
                throw fail("bad host name \"\(host)\"")
            }
            transport = scheme == "smtp" ? .smtp(host: host.lowercased(), port: port) : .smtps(host: host.lowercased(), port: port)
        default:
            throw fail("unknown scheme \"\(scheme)\"; use smtp, smtps or file")
        }

        var sawStartTLS = false
        let isFile: Bool
        if case .file = transport { isFile = true } else { isFile = false }
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(kv[0])
            guard kv.count == 2, let value = RelayDSN.percentDecode(kv[1]) else { throw fail("parameter \(key) needs a value") }
            switch key {
            case "starttls":
                guard case .smtp = transport else { throw fail("starttls= applies to smtp:// only") }
                guard let v = StartTLS(rawValue: value) else { throw fail("starttls must be required, opportunistic or off") }
                startTLS = v
                sawStartTLS = true
            case "ca_file":
                guard !value.isEmpty else { throw fail("ca_file needs a path") }
                caFile = value
            case "verify_peer":
                guard value == "true" || value == "false" else { throw fail("verify_peer must be true or false") }
                verifyPeer = value == "true"
            case "max_connections":
                guard let n = Int(value), (1...100).contains(n) else { throw fail("max_connections must be 1…100") }
                maxConnections = n
            case "rate":
                guard !isFile else { throw fail("rate= applies to smtp:// and smtps:// only") }
                guard let r = RateLimit(parsing: value) else {
                    throw fail("rate must be N/s, N/m or N/h with N from 1 to \(RateLimit.maxCount) (e.g. rate=30/m)")
                }
                rate = r
            case "daily_recipients":
                guard !isFile else { throw fail("daily_recipients= applies to smtp:// and smtps:// only") }
                guard let n = RateLimit.wholeNumber(value[...], in: 1...RelayDSN.maxDailyRecipients) else {
                    throw fail("daily_recipients must be a whole number from 1 to \(RelayDSN.maxDailyRecipients)")
                }
                dailyRecipients = n
            default:
                throw fail("unknown parameter \"\(key)\"")
            }
        }
        if case .smtps = transport { startTLS = .required }
        _ = sawStartTLS
    }

    /// True for relays we talk to over TLS at some point (always, unless starttls=off or
    /// opportunistic without the relay offering it).
    public var sendsCredentialsInClearAllowed: Bool { startTLS == .off }

    static func percentDecode(_ s: Substring) -> String? {
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == 37 {   // %
                guard it.count >= 2, let h = hex(it.popFirst()!), let l = hex(it.popFirst()!) else { return nil }
                out.append(h << 4 | l)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 48...57: return b - 48
        case 65...70: return b - 55
        case 97...102: return b - 87
        default: return nil
        }
    }
}
