/// Syscall: the single wrapper around every system call the reactor and its drivers make.
///
/// Contract: retry `EINTR`; map `EAGAIN`/`EWOULDBLOCK` (and `EINPROGRESS` for connect) to
/// `.wouldBlock`; `preconditionFailure` on `EBADF`/`EFAULT` (a descriptor we do not own is a
/// bug, not a condition to recover from); throw `SystemError(code:call:)` for the rest.
/// Knows nothing of protocols. (SwiftNIO `syscall(blocking:)`)
#if canImport(Glibc)
import Glibc
#endif
import CShims

public enum Syscall {
    @inline(__always)
    static func check(_ call: StaticString, _ body: () -> Int) throws(SystemError) -> IOResult<Int> {
        while true {
            let rc = body()
            if rc >= 0 { return .done(rc) }
            let err = errno
            switch err {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock
            case EBADF, EFAULT:
                preconditionFailure("\(call) failed with \(err): a descriptor or buffer we do not own")
            default:
                throw SystemError(code: err, call: "\(call)")
            }
        }
    }

    /// read(2). `.done(0)` is end of stream.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try check("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// write(2). Partial writes are normal; SIGPIPE is ignored process-wide (see `Reactor.ignoreSIGPIPE`).
    public static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try check("write") { Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    /// send(2) with MSG_NOSIGNAL, for sockets.
    public static func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try check("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
    }

    /// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: every accepted descriptor is non-blocking
    /// and close-on-exec from its first instant.
    public static func accept(_ fd: Int32) throws(SystemError) -> IOResult<Int32> {
        let flags = Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
        switch try check("accept4", { Int(cshim_accept4(fd, nil, nil, flags)) }) {
        case .done(let newFD): return .done(Int32(newFD))
        case .wouldBlock: return .wouldBlock
        }
    }

    /// close(2). Errors from close are not actionable (the descriptor is gone either way,
    /// and EINTR must NOT be retried on Linux), so they are ignored.
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// shutdown(2); ENOTCONN (peer already gone) is not an error worth reporting.
    public static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }
}
