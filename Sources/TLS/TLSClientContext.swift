/// TLSClientContext: one OpenSSL `SSL_CTX` for connecting (SMTP STARTTLS / implicit TLS,
/// tests) — TLS 1.2+, peer verification on by default against the system trust store or
/// a given CA bundle. Host names are checked per connection (`TLSEngine(client:serverName:)`).
import COpenSSL

public final class TLSClientContext {
    let ctx: OpaquePointer
    public let verifyPeer: Bool

    public init(caFile: String? = nil, verifyPeer: Bool = true) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError.drain("creating the client context") }
        self.ctx = ctx
        self.verifyPeer = verifyPeer
        _ = cossl_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        _ = SSL_CTX_set_options(ctx, COSSL_OP_NO_COMPRESSION | COSSL_OP_NO_RENEGOTIATION)
        _ = cossl_SSL_CTX_set_mode(ctx, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        if verifyPeer {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            let loaded: Int32
            if let caFile {
                loaded = SSL_CTX_load_verify_locations(ctx, caFile, nil)
            } else {
                loaded = SSL_CTX_set_default_verify_paths(ctx)
            }
            guard loaded == 1 else {
                let e = TLSError.drain(caFile.map { "loading CA file \($0)" } ?? "loading the system trust store")
                SSL_CTX_free(ctx)
                throw e
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// A client session to resume a later connection with.
public final class TLSSession {
    let session: OpaquePointer
    init(_ s: OpaquePointer) { session = s }
    deinit { SSL_SESSION_free(session) }
}
