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

    /// What a failed inbound handshake most likely means, in plain words for the log (nil when
    /// OpenSSL's reason is not one we know).
    public var plainReason: String? {
        let m = message.lowercased()
        let table: [(String, String)] = [
            ("unsupported protocol", "the client offers only TLS versions older than 1.2, which this server refuses"),
            ("wrong version number", "the client did not speak TLS (or an old SSL version)"),
            ("no shared cipher", "the client and this server share no cipher suite"),
            ("no suitable signature algorithm", "the client accepts no signature algorithm this server's certificate can make"),
            ("alert certificate unknown", "the client does not trust this server's certificate (it answered \"certificate unknown\")"),
            ("alert unknown ca", "the client does not trust the authority that signed this server's certificate"),
            ("alert bad certificate", "the client rejected this server's certificate"),
            ("alert certificate expired", "the client says this server's certificate has expired"),
            ("alert handshake failure", "the client gave up the handshake (no common parameters)"),
            ("alert protocol version", "the client refused the TLS version this server offered"),
            ("unexpected eof", "the client closed the connection in the middle of the handshake"),
            ("http request", "the client sent plain HTTP to the HTTPS port"),
            ("packet length too long", "the client sent something that is not TLS"),
        ]
        return table.first { m.contains($0.0) }?.1
    }

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
