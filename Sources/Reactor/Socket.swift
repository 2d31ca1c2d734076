/// Socket: non-blocking socket set-up for the reactor's users — TCP listeners, outbound TCP
/// connects, UDP sockets — every descriptor created SOCK_NONBLOCK | SOCK_CLOEXEC in the same
/// call (no window in which a fork/exec could inherit it). Reads and writes go through
/// `Syscall`. Knows addresses and descriptors, never protocols.
#if canImport(Glibc)
import Glibc
#endif
import CShims

public enum Socket {
    static let nonBlockingCloexec = Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)

    /// A listening TCP socket bound to `address` (port 0 picks a free port: see the returned
    /// address). SO_REUSEADDR so a restart does not wait out TIME_WAIT.
    /// `reusePort`: SO_REUSEPORT, for the workers of `serve --workers N`, which listen on one
    /// port each with a socket of its own (the kernel spreads new connections over them).
    public static func listenTCP(_ address: SocketAddress, backlog: Int32 = 4096, reusePort: Bool = false) throws(SystemError) -> (fd: Int32, bound: SocketAddress) {
        let fd = try boundTCP(address, reusePort: reusePort)
        if Glibc.listen(fd, backlog) != 0 {
            let err = errno
            Syscall.close(fd)
            throw SystemError(code: err, call: "listen \(address)")
        }
        return (fd, try localAddress(fd))
    }

    /// A TCP socket bound to `address` with SO_REUSEPORT and never listening: it holds the port
    /// (port 0 → the one picked) for workers that bind it with SO_REUSEPORT and listen; it
    /// receives no connections itself.
    public static func reserveTCP(_ address: SocketAddress) throws(SystemError) -> (fd: Int32, bound: SocketAddress) {
        let fd = try boundTCP(address, reusePort: true)
        return (fd, try localAddress(fd))
    }

    /// socket + SO_REUSEADDR (+ SO_REUSEPORT) + IPV6_V6ONLY for v6 + bind.
    static func boundTCP(_ address: SocketAddress, reusePort: Bool) throws(SystemError) -> Int32 {
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | nonBlockingCloexec, 0)
        if fd < 0 { throw SystemError(code: errno, call: "socket") }
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { _ = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, socklen_t(MemoryLayout<Int32>.size)) }
        if address.family == AF_INET6 {
            _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        let rc = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        if rc != 0 {
            let err = errno
            Syscall.close(fd)
            throw SystemError(code: err, call: "bind \(address)")
        }
        return fd
    }

    /// The address a socket is bound to.
    public static func localAddress(_ fd: Int32) throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        if rc != 0 { throw SystemError(code: errno, call: "getsockname") }
        guard let a = SocketAddress(storage: storage) else { throw SystemError(code: EAFNOSUPPORT, call: "getsockname") }
        return a
    }

    /// Starts a non-blocking TCP connect. `.wouldBlock` = in progress: wait for writable, then
    /// check `pendingError`.
    public static func connectTCP(_ address: SocketAddress) throws(SystemError) -> (fd: Int32, state: IOResult<Void>) {
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | nonBlockingCloexec, 0)
        if fd < 0 { throw SystemError(code: errno, call: "socket") }
        setNoDelay(fd)
        while true {
            let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
            if rc == 0 { return (fd, .done(())) }
            let err = errno
            if err == EINTR { continue }
            if err == EINPROGRESS { return (fd, .wouldBlock) }
            Syscall.close(fd)
            throw SystemError(code: err, call: "connect \(address)")
        }
    }

    /// SO_ERROR: the outcome of a non-blocking connect (nil = connected).
    public static func pendingError(_ fd: Int32) -> SystemError? {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return SystemError(code: errno, call: "getsockopt(SO_ERROR)") }
        return err == 0 ? nil : SystemError(code: err, call: "connect")
    }

    /// Nagle off: responses and SMTP commands are written whole, and waiting for an ACK
    /// before the next small write would add 40 ms to pipelined exchanges.
    public static func setNoDelay(_ fd: Int32) {
        var on: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A non-blocking UDP socket (for the DNS stub), optionally connected to `peer` so only
    /// its datagrams are received (source address check done by the kernel).
    public static func udp(family: Int32, connectedTo peer: SocketAddress? = nil) throws(SystemError) -> Int32 {
        let fd = Glibc.socket(family, Int32(SOCK_DGRAM.rawValue) | nonBlockingCloexec, 0)
        if fd < 0 { throw SystemError(code: errno, call: "socket(udp)") }
        if let peer {
            let rc = peer.withSockaddr { Glibc.connect(fd, $0, $1) }
            if rc != 0 {
                let err = errno
                Syscall.close(fd)
                throw SystemError(code: err, call: "connect(udp) \(peer)")
            }
        }
        return fd
    }

    /// Binds a socket (UDP servers in tests; explicit source ports).
    public static func bind(_ fd: Int32, to address: SocketAddress) throws(SystemError) {
        let rc = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        if rc != 0 { throw SystemError(code: errno, call: "bind \(address)") }
    }

    /// sendto(2) for unconnected datagram sockets.
    public static func sendTo(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, to address: SocketAddress) throws(SystemError) -> IOResult<Int> {
        try Syscall.check("sendto") {
            address.withSockaddr { Glibc.sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, $1) }
        }
    }

    /// recvfrom(2): one datagram and its source.
    public static func receiveFrom(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<(Int, SocketAddress?)> {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = try Syscall.check("recvfrom") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &len)
                }
            }
        }
        switch r {
        case .done(let n): return .done((n, SocketAddress(storage: storage)))
        case .wouldBlock: return .wouldBlock
        }
    }
}
