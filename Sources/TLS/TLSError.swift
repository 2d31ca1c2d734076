/// TLSError: what went wrong in OpenSSL, as text drained from its per-thread error queue,
/// with what we were doing. The queue is cleared before every call (nginx habit), so the
/// text belongs to the call that failed and never to an earlier one.
import COpenSSL

public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What we were doing: "handshake", "read", "loading certificate /path", …
    public var operation: String
    /// OpenSSL's error queue, joined with "; ".
    public var message: String

    public init(operation: String, message: String) {
        self.operation = operation
        self.message = message
    }

    public var description: String { "\(operation): \(message)" }

    /// Drains OpenSSL's error queue into a TLSError.
    static func drain(_ operation: String, fallback: String = "unknown OpenSSL error") -> TLSError {
        TLSError(operation: operation, message: drainQueue() ?? fallback)
    }

    static func drainQueue() -> String? {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            parts.append(buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}

/// The outcome of one non-blocking engine call.
public enum TLSResult: Sendable, Equatable {
    /// Bytes read or written (`handshake()`: 0 once the handshake is complete).
    case progress(Int)
    /// Feed more ciphertext, then call again.
    case wantRead
    /// Send the pending ciphertext, then call again (cannot happen: the engine's output always takes the bytes).
    case wantWrite
    /// The peer sent close_notify (or the stream ended).
    case closed
    case failed(TLSError)
}
