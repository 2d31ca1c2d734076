/// ResolverConfiguration: what the stub resolver reads — the hosts file (hosts(5)) and
/// resolv.conf (resolv.conf(5): `nameserver`, `options timeout:N attempts:N`). Parsing is
/// pure (text in); `load` reads the two files once, at start-up.
#if canImport(Glibc)
import Glibc
#endif

public struct ResolverConfiguration: Sendable, Equatable {
    /// Name servers as IP literals, in order (resolv.conf allows three; we keep what is given).
    public var nameServers: [String]
    public var port: UInt16
    /// Seconds to wait for one server's answer (resolv.conf `timeout:`, default 5, max 30).
    public var timeoutSeconds: Int
    /// Rounds over the server list (resolv.conf `attempts:`, default 2, max 5).
    public var attempts: Int
    /// Lower-cased host name → addresses, from the hosts file.
    public var hosts: [String: [String]]

    public init(nameServers: [String], port: UInt16 = 53, timeoutSeconds: Int = 5, attempts: Int = 2, hosts: [String: [String]] = [:]) {
        self.nameServers = nameServers
        self.port = port
        self.timeoutSeconds = timeoutSeconds
        self.attempts = attempts
        self.hosts = hosts
    }

    /// hosts(5): "address name [aliases…]", "#" comments.
    public static func parseHosts(_ text: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { continue }
            let address = String(fields[0])
            guard address.contains(".") || address.contains(":") else { continue }
            for name in fields.dropFirst() {
                let key = name.lowercased()
                if !(out[key]?.contains(address) ?? false) { out[key, default: []].append(address) }
            }
        }
        return out
    }

    /// resolv.conf(5): `nameserver ADDR` lines (an optional `ADDR#PORT` or `[ADDR]:PORT` is
    /// not standard and not accepted; the port is a separate setting for tests) and options.
    public static func parseResolvConf(_ text: String) -> (servers: [String], timeout: Int, attempts: Int) {
        var servers: [String] = []
        var timeout = 5
        var attempts = 2
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let fields = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let key = fields.first, !key.hasPrefix("#"), !key.hasPrefix(";") else { continue }
            if key == "nameserver", fields.count >= 2 {
                servers.append(String(fields[1]))
            } else if key == "options" {
                for o in fields.dropFirst() {
                    if o.hasPrefix("timeout:"), let n = Int(o.dropFirst(8)) { timeout = min(max(n, 1), 30) }
                    if o.hasPrefix("attempts:"), let n = Int(o.dropFirst(9)) { attempts = min(max(n, 1), 5) }
                }
            }
        }
        return (servers, timeout, attempts)
    }

    /// Reads the files (missing ones count as empty; no name server means 127.0.0.1, as glibc).
    public static func load(resolvConfPath: String = "/etc/resolv.conf", hostsPath: String = "/etc/hosts", port: UInt16 = 53) -> ResolverConfiguration {
        let conf = parseResolvConf(readFile(resolvConfPath) ?? "")
        return ResolverConfiguration(nameServers: conf.servers.isEmpty ? ["127.0.0.1"] : conf.servers, port: port,
                                     timeoutSeconds: conf.timeout, attempts: conf.attempts, hosts: parseHosts(readFile(hostsPath) ?? ""))
    }

    static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
            if out.count > 1 << 20 { break }   // a hosts file is not a megabyte
        }
        return String(decoding: out, as: UTF8.self)
    }
}
