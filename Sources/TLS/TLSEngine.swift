/// TLSEngine: one TLS connection as bytes in, bytes out. (h2o `socket.c`, STYLE habit 11)
///
/// Ciphertext goes in through `feed` and comes out through `drainCiphertext`: the engine
/// never touches a socket (two engines can be wired together in a test). Each call clears
/// OpenSSL's error queue first and maps its result through `result(_:_:)` — the only place
/// `SSL_get_error` is called — to `TLSResult`. With memory BIOs `wantWrite` cannot occur
/// (the write BIO grows) and the read BIO reports "retry", never EOF, when empty
/// (`BIO_set_mem_eof_return(-1)`), so an empty input is `wantRead`.
/// After a fatal error no close_notify is sent (nginx: `SSL_set_quiet_shutdown` after errors;
/// RFC 8446 §6.2: the connection is already dead). The memory BIOs cost one copy per record;
/// kept unless the TLS benchmarks show it matters.
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

public final class TLSEngine {
    let ssl: OpaquePointer
    var rbio: OpaquePointer
    var wbio: OpaquePointer
    var failed = false
    /// Keeps the context object alive as long as the engine (OpenSSL also holds a reference).
    let owner: AnyObject

    public init(server context: TLSServerContext) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { throw TLSError.drain("creating a server connection") }
        (self.rbio, self.wbio) = try TLSEngine.attachMemoryBIOs(ssl)
        self.ssl = ssl
        owner = context
        SSL_set_accept_state(ssl)
    }

    public init(client context: TLSClientContext, serverName: String?) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.ctx) else { throw TLSError.drain("creating a client connection") }
        (self.rbio, self.wbio) = try TLSEngine.attachMemoryBIOs(ssl)
        self.ssl = ssl
        owner = context
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

    deinit { SSL_free(ssl) }   // frees both BIOs too

    static func attachMemoryBIOs(_ ssl: OpaquePointer) throws(TLSError) -> (OpaquePointer, OpaquePointer) {
        guard let r = BIO_new(BIO_s_mem()), let w = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.drain("allocating memory BIOs")
        }
        _ = cossl_BIO_set_mem_eof_return(r, -1)
        _ = cossl_BIO_set_mem_eof_return(w, -1)
        SSL_set_bio(ssl, r, w)
        return (r, w)
    }

    static func isIPLiteral(_ s: String) -> Bool {
        var a4 = in_addr()
        var a6 = in6_addr()
        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1
    }

    /// A memory BIO keeps the capacity of the largest flight it ever carried (the handshake's,
    /// ~1–2 KiB a side). On an idle connection with nothing pending, one that holds more than
    /// `threshold` is swapped for a fresh, empty one (`SSL_set0_*bio` frees the old): idle
    /// connections keep no spare ciphertext capacity. After the first swap the BIOs only grow
    /// to a request's size, so this happens about once per connection.
    public func releaseBuffers(above threshold: Int = 1024) {
        guard !failed, pendingCiphertext == 0, cossl_BIO_ctrl_pending(rbio) == 0 else { return }
        if cossl_BIO_mem_capacity(rbio) > threshold, let r = BIO_new(BIO_s_mem()) {
            _ = cossl_BIO_set_mem_eof_return(r, -1)
            SSL_set0_rbio(ssl, r)
            rbio = r
        }
        if cossl_BIO_mem_capacity(wbio) > threshold, let w = BIO_new(BIO_s_mem()) {
            _ = cossl_BIO_set_mem_eof_return(w, -1)
            SSL_set0_wbio(ssl, w)
            wbio = w
        }
    }

    // MARK: Ciphertext

    public func feed(_ ciphertext: UnsafeRawBufferPointer) {
        guard ciphertext.count > 0 else { return }
        let n = BIO_write(rbio, ciphertext.baseAddress, Int32(ciphertext.count))
        precondition(n == Int32(ciphertext.count), "memory BIO write cannot be short")
    }

    public func feed(_ ciphertext: [UInt8]) {
        ciphertext.withUnsafeBytes { feed($0) }
    }

    /// Ciphertext waiting to be sent.
    public var pendingCiphertext: Int { Int(cossl_BIO_ctrl_pending(wbio)) }

    /// Appends every pending ciphertext byte to `out`.
    public func drainCiphertext(into out: inout [UInt8]) {
        let pending = pendingCiphertext
        guard pending > 0 else { return }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: pending))
        let n = out.withUnsafeMutableBytes { raw in
            BIO_read(wbio, raw.baseAddress! + start, Int32(pending))
        }
        precondition(n == Int32(pending), "memory BIO read returned \(n) of \(pending)")
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

    public func write(_ plaintext: UnsafeRawBufferPointer) -> TLSResult {
        if failed { return .failed(TLSError(operation: "write", message: "connection already failed")) }
        guard plaintext.count > 0 else { return .progress(0) }
        ERR_clear_error()
        var n = 0
        let rc = SSL_write_ex(ssl, plaintext.baseAddress, plaintext.count, &n)
        if rc == 1 { return .progress(n) }
        return result(rc, "write")
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
