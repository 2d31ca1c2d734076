/// SystemError and IOResult: the one vocabulary in which system calls report back.
///
/// Owns: turning `errno` into values. Every call goes through `Syscall` (Syscall.swift):
/// `EINTR` is retried there, `EAGAIN`/`EWOULDBLOCK` become `.wouldBlock`, `EBADF`/`EFAULT`
/// are our bugs and stop the process, everything else is thrown as `SystemError`.
/// No code above `Reactor` looks at `errno`. (SwiftNIO `System.swift`)
#if canImport(Glibc)
import Glibc
#endif

public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The errno value.
    public let code: Int32
    /// The call that failed, e.g. "accept4" or "connect".
    public let call: String

    public init(code: Int32, call: String) {
        self.code = code
        self.call = call
    }

    public var description: String {
        "\(call): \(String(cString: strerror(code))) (errno \(code))"
    }

    /// The process or system ran out of descriptors (EMFILE/ENFILE) or socket memory
    /// (ENOBUFS/ENOMEM): the accept loop pauses instead of spinning.
    public var isResourceExhaustion: Bool {
        code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
    }

    /// The peer went away (reset, broken pipe, timed out): logged at info, never at error.
    public var isPeerFault: Bool {
        code == ECONNRESET || code == EPIPE || code == ETIMEDOUT || code == ECONNABORTED
            || code == EHOSTUNREACH || code == ENETUNREACH || code == ECONNREFUSED
    }
}

/// The outcome of a non-blocking call that may have to wait for readiness.
public enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

extension IOResult: Equatable where Value: Equatable {}
extension IOResult: Sendable where Value: Sendable {}
