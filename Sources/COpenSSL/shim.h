/// COpenSSL: OpenSSL 3 (Debian libssl-dev) for Swift. Function-like macros over SSL_ctrl /
/// BIO_ctrl and the SSL_OP_* constants (built from the SSL_OP_BIT(n) macro in 3.0) do not
/// import into Swift, so they are re-exported here as inline functions and constants.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/rand.h>
#include <openssl/bn.h>
#include <openssl/sha.h>

/* SHA-256 over the low-level interface: a context on the stack, no allocation, no provider
 * dispatch. EVP_Digest allocates and frees a digest context and the provider's context on
 * every call (~5 500 instructions of overhead around one 64-byte block). Deprecated in
 * OpenSSL 3 in favour of EVP, still built by Debian and computing the same function.
 * Returns 1 on success. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline int cossl_sha256(const void *data, size_t n, unsigned char out[32]) {
    SHA256_CTX c;
    if (SHA256_Init(&c) != 1) return 0;
    if (n > 0 && SHA256_Update(&c, data, n) != 1) return 0;
    return SHA256_Final(out, &c);
}
#pragma GCC diagnostic pop

static inline long cossl_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline int cossl_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
static inline int cossl_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_max_proto_version(ctx, v); }
static inline int cossl_SSL_set_min_proto_version(SSL *ssl, int v) { return (int)SSL_set_min_proto_version(ssl, v); }
static inline int cossl_SSL_set_max_proto_version(SSL *ssl, int v) { return (int)SSL_set_max_proto_version(ssl, v); }
static inline int cossl_SSL_set_tlsext_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
static inline long cossl_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long m) { return SSL_CTX_set_session_cache_mode(ctx, m); }
static inline long cossl_SSL_CTX_sess_set_cache_size(SSL_CTX *ctx, long n) { return SSL_CTX_sess_set_cache_size(ctx, n); }
static inline long cossl_BIO_set_mem_eof_return(BIO *b, long v) { return BIO_set_mem_eof_return(b, v); }
static inline size_t cossl_BIO_ctrl_pending(BIO *b) { return BIO_ctrl_pending(b); }
/* For a BIO_METHOD of our own (TLSEngine's): the retry flags are macros over BIO_set_flags. */
static inline void cossl_BIO_clear_retry_flags(BIO *b) { BIO_clear_retry_flags(b); }
static inline void cossl_BIO_set_retry_read(BIO *b) { BIO_set_retry_read(b); }
static inline int cossl_SSL_CTX_set_num_tickets(SSL_CTX *ctx, size_t n) { return SSL_CTX_set_num_tickets(ctx, n); }

/* SSL_OP_* are built from the function-like macro SSL_OP_BIT(n) in 3.0, so none of them import. */
static const uint64_t COSSL_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;
static const uint64_t COSSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t COSSL_OP_CIPHER_SERVER_PREFERENCE = SSL_OP_CIPHER_SERVER_PREFERENCE;
static const uint64_t COSSL_OP_NO_TICKET = SSL_OP_NO_TICKET;
static const uint64_t COSSL_OP_IGNORE_UNEXPECTED_EOF = SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
