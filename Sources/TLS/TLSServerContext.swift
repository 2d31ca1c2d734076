/// TLSServerContext: one OpenSSL `SSL_CTX` for accepting — TLS 1.2 and 1.3 only, ECDSA or
/// RSA certificate chains, session resumption (TLS 1.3 tickets, TLS 1.2 tickets + server
/// cache) unless turned off. Immutable once built: a SIGHUP reload builds a new one and
/// swaps it in; connections already open keep the one they started with (`SSL_new`
/// takes a reference on the `SSL_CTX`, so it lives until its last connection is freed).
import COpenSSL

public final class TLSServerContext {
    let ctx: OpaquePointer
    public let certificateSubject: String

    /// - Parameter resumption: tickets and the session cache; off only to measure full handshakes.
    public init(certificateChainPath: String, privateKeyPath: String, resumption: Bool = true) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError.drain("creating the server context") }
        self.ctx = ctx
        // RFC 8996: TLS 1.0 and 1.1 are deprecated; SPEC §4 says 1.2+ only.
        _ = cossl_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        _ = cossl_SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)
        // Compression: CRIME. Renegotiation: a client-driven CPU sink (CVE-2011-1473), refused.
        _ = SSL_CTX_set_options(ctx, COSSL_OP_NO_COMPRESSION | COSSL_OP_NO_RENEGOTIATION | COSSL_OP_CIPHER_SERVER_PREFERENCE)
        // Partial writes + moving buffer: our write buffer is a Swift array that may move.
        // RELEASE_BUFFERS: idle connections drop their 2×16 KiB record buffers (10k idle = 320 MiB otherwise).
        _ = cossl_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        if resumption {
            _ = cossl_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_SERVER))
            _ = cossl_SSL_CTX_sess_set_cache_size(ctx, 20_000)
            let sid = Array("tickiti-mail".utf8)
            _ = SSL_CTX_set_session_id_context(ctx, sid, UInt32(sid.count))
            // One TLS 1.3 ticket per handshake (OpenSSL sends 2 by default; a client reuses one).
            _ = cossl_SSL_CTX_set_num_tickets(ctx, 1)
        } else {
            _ = SSL_CTX_set_options(ctx, COSSL_OP_NO_TICKET)
            _ = cossl_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
            _ = cossl_SSL_CTX_set_num_tickets(ctx, 0)
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificateChainPath) == 1 else {
            let e = TLSError.drain("loading certificate \(certificateChainPath)")
            SSL_CTX_free(ctx)
            throw e
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, privateKeyPath, SSL_FILETYPE_PEM) == 1 else {
            let e = TLSError.drain("loading private key \(privateKeyPath)")
            SSL_CTX_free(ctx)
            throw e
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            let e = TLSError.drain("private key \(privateKeyPath) does not match certificate \(certificateChainPath)")
            SSL_CTX_free(ctx)
            throw e
        }
        certificateSubject = subjectLine(SSL_CTX_get0_certificate(ctx)) ?? "?"
    }

    deinit { SSL_CTX_free(ctx) }
}

/// `/CN=localhost` style one-line subject of a certificate.
func subjectLine(_ cert: OpaquePointer?) -> String? {
    guard let cert, let name = X509_get_subject_name(cert),
          let line = X509_NAME_oneline(name, nil, 0) else { return nil }
    defer { CRYPTO_free(line, #fileID, #line) }
    return String(cString: line)
}
