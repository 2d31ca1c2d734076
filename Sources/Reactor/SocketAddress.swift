/// SocketAddress: IPv4/IPv6 socket addresses parsed from and printed as `HOST:PORT`
/// (`[v6]:PORT` for IPv6). Numeric hosts only, plus `localhost` — names are the resolver's
/// business, and a listening address that needs DNS is a configuration error.
#if canImport(Glibc)
import Glibc
#endif
import CShims

public enum SocketAddress: Sendable, Equatable, CustomStringConvertible {
    case v4(sockaddr_in)
    case v6(sockaddr_in6)

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let input: String
        public let reason: String
        public var description: String { "invalid address \"\(input)\": \(reason)" }
    }

    /// Parses `HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback). HOST is an IP literal or `localhost`.
    public init(parsing text: String) throws(ParseError) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ParseError(input: text, reason: "missing ]") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ParseError(input: text, reason: "expected :PORT after ]") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ParseError(input: text, reason: "expected HOST:PORT") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw ParseError(input: text, reason: "IPv6 addresses need brackets: [::1]:PORT") }
        }
        guard let port = UInt16(portText) else { throw ParseError(input: text, reason: "port must be 0–65535") }
        if host.isEmpty || host == "localhost" { host = "127.0.0.1" }
        guard let address = SocketAddress(ip: String(host), port: port) else {
            throw ParseError(input: text, reason: "\"\(host)\" is not an IP address")
        }
        self = address
    }

    /// An IP literal and a port; nil when `ip` is not a literal.
    public init?(ip: String, port: UInt16) {
        var a4 = sockaddr_in()
        if inet_pton(AF_INET, ip, &a4.sin_addr) == 1 {
            a4.sin_family = sa_family_t(AF_INET)
            a4.sin_port = port.bigEndian
            self = .v4(a4)
            return
        }
        var a6 = sockaddr_in6()
        if inet_pton(AF_INET6, ip, &a6.sin6_addr) == 1 {
            a6.sin6_family = sa_family_t(AF_INET6)
            a6.sin6_port = port.bigEndian
            self = .v6(a6)
            return
        }
        return nil
    }

    /// The address of the other end of connected socket `fd` (getpeername), or nil.
    public static func peer(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        return rc == 0 ? SocketAddress(storage: storage) : nil
    }

    /// Reads a `sockaddr_storage` filled by the kernel.
    init?(storage: sockaddr_storage) {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            self = withUnsafeBytes(of: &s) { .v4($0.load(as: sockaddr_in.self)) }
        case AF_INET6:
            self = withUnsafeBytes(of: &s) { .v6($0.load(as: sockaddr_in6.self)) }
        default:
            return nil
        }
    }

    public var family: Int32 {
        switch self {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        }
    }

    public var port: UInt16 {
        switch self {
        case .v4(let a): return UInt16(bigEndian: a.sin_port)
        case .v6(let a): return UInt16(bigEndian: a.sin6_port)
        }
    }

    /// The same address with another port.
    public func withPort(_ port: UInt16) -> SocketAddress {
        switch self {
        case .v4(var a): a.sin_port = port.bigEndian; return .v4(a)
        case .v6(var a): a.sin6_port = port.bigEndian; return .v6(a)
        }
    }

    /// The IP as text.
    public var host: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch self {
        case .v4(var a):
            _ = inet_ntop(AF_INET, &a.sin_addr, &buf, socklen_t(buf.count))
        case .v6(var a):
            _ = inet_ntop(AF_INET6, &a.sin6_addr, &buf, socklen_t(buf.count))
        }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    public var description: String {
        switch self {
        case .v4: return "\(host):\(port)"
        case .v6: return "[\(host)]:\(port)"
        }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.description == b.description }

    /// Calls `body` with a `sockaddr` pointer and its length.
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        switch self {
        case .v4(var a):
            return try withUnsafePointer(to: &a) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(var a):
            return try withUnsafePointer(to: &a) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }
}
