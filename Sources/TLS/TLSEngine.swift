/// TLSEngine: one TLS connection as bytes in, bytes out. (h2o `socket.c`, STYLE habit 11)
///
/// Ciphertext goes in through `feed` and comes out through `drainCiphertext`: the engine
/// never touches a socket (two engines can be wired together in a test). Each call clears
/// OpenSSL's error queue first and maps its result through `result(_:_:)` — the only place
/// `SSL_get_error` is called — to `TLSResult`.
///
/// OpenSSL reads and writes through one BIO of our own (`ArrayBIO`): its read pulls from
/// `input`, its write appends to `output`, both Swift arrays the engine owns. An empty `input`
/// reports "retry", never EOF, so it is `wantRead`; writes always succeed, so `wantWrite`
/// cannot occur. Unlike a pair of memory BIOs (two `BIO`s and two `BUF_MEM`s per connection,
/// each keeping the capacity of the largest flight it carried), an idle engine holds no
/// buffer at all after `releaseBuffers()` — the same as nginx's socket BIO — and a drained
/// `output` moves into the caller's buffer without a copy.
/// After a fatal error no close_notify is sent (nginx: `SSL_set_quiet_shutdown` after errors;
/// RFC 8446 §6.2: the connection is already dead).
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

public final class TLSEngine {
    let ssl: OpaquePointer
    /// Ciphertext received and not yet read by OpenSSL, from `inputOffset`.
    var input: [UInt8] = []
    var inputOffset = 0
    /// Ciphertext OpenSSL produced, waiting for `drainCiphertext`.
    var output: [UInt8] = []
    var failed = false
    /// Keeps the context object alive as long as the engine (OpenSSL also holds a reference).
    let owner: AnyObject

    public init(server context: TLSServerContext) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { throw TLSError.drain("creating a server connection") }
        self.ssl = ssl
        owner = context
        try attachBIO()
        SSL_set_accept_state(ssl)
    }

    public init(client context: TLSClientContext, serverName: String?) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { throw TLSError.drain("creating a client connection") }
        self.ssl = ssl
        owner = context
        try attachBIO()
        SSL_set_connect_state(ssl)
        if let name = serverName, !name.isEmpty {
            if TLSEngine.isIPLiteral(name) {
                // RFC 6066 §3: no SNI for IP literals; verify the address against the SAN IPs.
                if context.verifyPeer, X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1 {
                    throw TLSError.drain("setting the expected IP \(name)")
                }
            } else {
                _ = cossl_SSL_set_tlsext_host_name(ssl, name)
                if context.verifyPeer, SSL_set1_host(ssl, name) != 1 {
                    throw TLSError.drain("setting the expected host name \(name)")
                }
            }
        }
    }

    deinit { SSL_free(ssl) }   // frees the BIO too

    /// One BIO for both directions (`SSL_set_bio` takes one reference when they are the same).
    /// It points at this engine unretained: the engine owns the `SSL`, which owns the BIO.
    private func attachBIO() throws(TLSError) {
        guard let method = ArrayBIO.method, let bio = BIO_new(method) else {
            throw TLSError.drain("allocating the connection's BIO")
        }
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)
    }

    static func isIPLiteral(_ s: String) -> Bool {
        var a4 = in_addr()
        var a6 = in6_addr()
        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1
    }

    /// Idle: give back the capacity of both buffers (a handshake flight, a request) when
    /// nothing waits in them. Ciphertext waiting either way is never dropped.
    public func releaseBuffers() {
        if inputOffset == input.count, input.capacity > 0 { input = []; inputOffset = 0 }
        if output.isEmpty, output.capacity > 0 { output = [] }
    }

    /// Bytes of buffer capacity the engine holds (tests: what an idle connection costs us).
    package var bufferCapacity: Int { input.capacity + output.capacity }

    // MARK: Ciphertext

    public func feed(_ ciphertext: UnsafeRawBufferPointer) {
        guard ciphertext.count > 0 else { return }
        if inputOffset > 0, inputOffset == input.count { input.removeAll(keepingCapacity: true); inputOffset = 0 }
        input.append(contentsOf: ciphertext)
    }

    public func feed(_ ciphertext: [UInt8]) {
        ciphertext.withUnsafeBytes { feed($0) }
    }

    /// Ciphertext waiting to be sent.
    public var pendingCiphertext: Int { output.count }

    /// Appends every pending ciphertext byte to `out` (an empty `out` takes the buffer whole).
    public func drainCiphertext(into out: inout [UInt8]) {
        guard !output.isEmpty else { return }
        if out.isEmpty {
            swap(&out, &output)
            output.removeAll(keepingCapacity: true)
        } else {
            out.append(contentsOf: output)
            output.removeAll(keepingCapacity: true)
        }
    }

    // BIO callbacks (ArrayBIO)

    fileprivate func bioRead(_ destination: UnsafeMutableRawPointer, _ capacity: Int) -> Int {
        let available = input.count - inputOffset
        guard available > 0 else { return 0 }
        let n = min(capacity, available)
        input.withUnsafeBytes { src in destination.copyMemory(from: src.baseAddress! + inputOffset, byteCount: n) }
        inputOffset += n
        return n
    }

    fileprivate func bioWrite(_ source: UnsafeRawBufferPointer) {
        output.append(contentsOf: source)
    }

    // MARK: TLS operations

    public func handshake() -> TLSResult {
        if failed { return .failed(TLSError(operation: "handshake", message: "connection already failed")) }
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return .progress(0) }
        return result(rc, "handshake")
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSResult {
        if failed { return .failed(TLSError(operation: "read", message: "connection already failed")) }
        ERR_clear_error()
        var n = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        if rc == 1 { return .progress(n) }
        return result(rc, "read")
    }

    /// Encrypts all of `plaintext` (`.progress(plaintext.count)`) or fails. With
    /// `SSL_MODE_ENABLE_PARTIAL_WRITE` one `SSL_write_ex` takes about one record (16 KiB); the
    /// engine's output takes every byte, so it is called until the whole buffer is taken —
    /// a caller that wrote once and dropped the rest truncated every message over 16 KiB.
    public func write(_ plaintext: UnsafeRawBufferPointer) -> TLSResult {
        if failed { return .failed(TLSError(operation: "write", message: "connection already failed")) }
        var offset = 0
        while offset < plaintext.count {
            ERR_clear_error()
            var n = 0
            let rc = SSL_write_ex(ssl, plaintext.baseAddress! + offset, plaintext.count - offset, &n)
            guard rc == 1 else { return result(rc, "write") }
            offset += n
        }
        return .progress(offset)
    }

    /// Sends close_notify (once). We never wait for the peer's: `.progress(0)` once ours is queued.
    public func shutdown() -> TLSResult {
        if failed { return .failed(TLSError(operation: "shutdown", message: "no close_notify after a fatal error")) }
        ERR_clear_error()
        let rc = SSL_shutdown(ssl)
        if rc >= 0 { return .progress(0) }   // 0: ours sent, theirs not yet; 1: both
        return result(rc, "shutdown")
    }

    /// The one place results are classified.
    func result(_ rc: Int32, _ operation: String) -> TLSResult {
        let code = SSL_get_error(ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ:
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        case SSL_ERROR_SYSCALL where ERR_peek_error() == 0:
            // Unexpected EOF without close_notify (only if the BIO reported EOF).
            return .closed
        default:
            failed = true
            // No close_notify after a fatal error.
            SSL_set_quiet_shutdown(ssl, 1)
            var error = TLSError.drain(operation, fallback: "SSL error \(code)")
            let verify = SSL_get_verify_result(ssl)
            if verify != Int(X509_V_OK) {
                error.message += " (certificate verification: \(String(cString: X509_verify_cert_error_string(verify))))"
            }
            return .failed(error)
        }
    }

    // MARK: Facts

    public var isHandshakeComplete: Bool { SSL_is_init_finished(ssl) == 1 }
    /// Decrypted bytes waiting inside OpenSSL (the kernel will never announce them).
    public var hasBufferedPlaintext: Bool { SSL_pending(ssl) > 0 }
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }
    public var cipherName: String {
        guard let c = SSL_get_current_cipher(ssl) else { return "" }
        return String(cString: SSL_CIPHER_get_name(c))
    }
    public var sessionReused: Bool { SSL_session_reused(ssl) == 1 }
    public var verifyResult: Int { SSL_get_verify_result(ssl) }
    public var peerCertificateSubject: String? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        return subjectLine(cert)
    }

    /// Client side: the session to resume with (TLS 1.3 tickets arrive after the handshake,
    /// so read at least once first).
    public func session() -> TLSSession? {
        guard let s = SSL_get1_session(ssl) else { return nil }
        return TLSSession(s)
    }

    public func setSession(_ s: TLSSession) {
        _ = SSL_set_session(ssl, s.session)
    }

    /// Tests: cap the protocol version of this connection (e.g. force TLS 1.2).
    package func setProtocolRange(min: Int32, max: Int32) {
        _ = cossl_SSL_set_min_proto_version(ssl, min)
        _ = cossl_SSL_set_max_proto_version(ssl, max)
    }
}

/// The BIO_METHOD behind every engine: OpenSSL's record layer reads `TLSEngine.input` and
/// writes `TLSEngine.output` through it. Reads with nothing buffered ask for a retry (the
/// engine answers `wantRead`); `BIO_flush` succeeds (the engine's caller sends); every other
/// control is unsupported (0), as for a memory BIO.
enum ArrayBIO {
    nonisolated(unsafe) static let method: OpaquePointer? = {
        guard let m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tickiti-mail engine") else { return nil }
        _ = BIO_meth_set_read_ex(m) { bio, data, capacity, read in
            guard let bio, let data, let engine = ArrayBIO.engine(bio) else { return 0 }
            cossl_BIO_clear_retry_flags(bio)
            let n = engine.bioRead(UnsafeMutableRawPointer(data), capacity)
            read?.pointee = n
            if n == 0 { cossl_BIO_set_retry_read(bio); return 0 }
            return 1
        }
        _ = BIO_meth_set_write_ex(m) { bio, data, count, written in
            guard let bio, let engine = ArrayBIO.engine(bio) else { return 0 }
            cossl_BIO_clear_retry_flags(bio)
            if count > 0, let data { engine.bioWrite(UnsafeRawBufferPointer(start: data, count: count)) }
            written?.pointee = count
            return 1
        }
        _ = BIO_meth_set_ctrl(m) { bio, command, _, _ in
            switch command {
            case BIO_CTRL_FLUSH:
                return 1
            case BIO_CTRL_PENDING:
                guard let bio, let engine = ArrayBIO.engine(bio) else { return 0 }
                return engine.input.count - engine.inputOffset
            case BIO_CTRL_WPENDING:
                guard let bio, let engine = ArrayBIO.engine(bio) else { return 0 }
                return engine.output.count
            default:
                return 0
            }
        }
        return m
    }()

    @inline(__always)
    static func engine(_ bio: OpaquePointer) -> TLSEngine? {
        guard let p = BIO_get_data(bio) else { return nil }
        return Unmanaged<TLSEngine>.fromOpaque(p).takeUnretainedValue()
    }
}
