/// DevelopmentCertificate: a self-signed certificate for local use, made in-process through
/// OpenSSL's X509 API (no `openssl` binary needed): ECDSA P-256 by default (RSA-2048 for
/// tests), X509v3, random 128-bit serial, valid from an hour ago for 365 days, SAN
/// `DNS:localhost, IP:127.0.0.1, IP:::1`, `basicConstraints CA:FALSE`, `extendedKeyUsage
/// serverAuth`, SHA-256. A self-signed end-entity certificate is accepted as its own trust
/// anchor by OpenSSL (curl --cacert, s_client -CAfile). The key is written PKCS#8 PEM with
/// mode 0600 from creation (never chmod-ed after writing); both files appear atomically
/// (temp file in the same folder + rename).
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

public enum DevelopmentCertificate {
    public enum KeyType: Sendable { case ecdsaP256, rsa2048 }

    public static func generate(certificatePath: String, privateKeyPath: String,
                                commonName: String = "localhost", keyType: KeyType = .ecdsaP256) throws(TLSError) {
        ERR_clear_error()
        let pkey = try makeKey(keyType)
        defer { EVP_PKEY_free(pkey) }
        guard let x509 = X509_new() else { throw TLSError.drain("X509_new") }
        defer { X509_free(x509) }
        guard X509_set_version(x509, 2) == 1 else { throw TLSError.drain("X509_set_version") }

        var serial = [UInt8](repeating: 0, count: 16)
        guard RAND_bytes(&serial, 16) == 1 else { throw TLSError.drain("RAND_bytes") }
        serial[0] &= 0x7f   // positive
        guard let bn = BN_bin2bn(serial, 16, nil) else { throw TLSError.drain("BN_bin2bn") }
        defer { BN_free(bn) }
        guard BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x509)) != nil else { throw TLSError.drain("serial") }

        guard X509_gmtime_adj(X509_getm_notBefore(x509), -3600) != nil,
              X509_gmtime_adj(X509_getm_notAfter(x509), 365 * 86400) != nil else { throw TLSError.drain("validity") }
        guard X509_set_pubkey(x509, pkey) == 1 else { throw TLSError.drain("X509_set_pubkey") }

        guard let name = X509_get_subject_name(x509),
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1,
              X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, "tickiti-mail development", -1, -1, 0) == 1,
              X509_set_issuer_name(x509, name) == 1 else { throw TLSError.drain("subject name") }

        var v3 = X509V3_CTX()
        X509V3_set_ctx(&v3, x509, x509, nil, nil, 0)
        let keyUsage = keyType == .rsa2048 ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature"
        for (nid, value) in [(NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"),
                             (NID_basic_constraints, "critical,CA:FALSE"),
                             (NID_key_usage, keyUsage),
                             (NID_ext_key_usage, "serverAuth"),
                             (NID_subject_key_identifier, "hash")] {
            guard let ext = X509V3_EXT_conf_nid(nil, &v3, nid, value) else { throw TLSError.drain("extension \(value)") }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(x509, ext, -1) == 1 else { throw TLSError.drain("adding extension \(value)") }
        }
        guard X509_sign(x509, pkey, EVP_sha256()) > 0 else { throw TLSError.drain("signing the certificate") }

        let keyPEM = try pem("private key") { PEM_write_bio_PrivateKey($0, pkey, nil, nil, 0, nil, nil) }
        let certPEM = try pem("certificate") { PEM_write_bio_X509($0, x509) }
        try writeAtomically(privateKeyPath, keyPEM, mode: 0o600)
        try writeAtomically(certificatePath, certPEM, mode: 0o644)
    }

    static func makeKey(_ type: KeyType) throws(TLSError) -> OpaquePointer {
        let algorithm = type == .ecdsaP256 ? "EC" : "RSA"
        guard let pctx = EVP_PKEY_CTX_new_from_name(nil, algorithm, nil) else { throw TLSError.drain("key context \(algorithm)") }
        defer { EVP_PKEY_CTX_free(pctx) }
        guard EVP_PKEY_keygen_init(pctx) == 1 else { throw TLSError.drain("keygen init") }
        switch type {
        case .ecdsaP256:
            guard EVP_PKEY_CTX_set_group_name(pctx, "P-256") == 1 else { throw TLSError.drain("curve P-256") }
        case .rsa2048:
            guard EVP_PKEY_CTX_set_rsa_keygen_bits(pctx, 2048) == 1 else { throw TLSError.drain("RSA bits") }
        }
        var pkey: OpaquePointer?
        guard EVP_PKEY_generate(pctx, &pkey) == 1, let key = pkey else { throw TLSError.drain("generating the key") }
        return key
    }

    static func pem(_ what: String, _ write: (OpaquePointer) -> Int32) throws(TLSError) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw TLSError.drain("BIO for \(what)") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw TLSError.drain("PEM-encoding the \(what)") }
        let n = Int(cossl_BIO_ctrl_pending(bio))
        var out = [UInt8](repeating: 0, count: n)
        guard BIO_read(bio, &out, Int32(n)) == Int32(n) else { throw TLSError.drain("reading the \(what) PEM") }
        return out
    }

    static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(TLSError) {
        let tmp = path + ".tmp.\(getpid())"
        _ = unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw TLSError(operation: "writing \(path)", message: String(cString: strerror(errno)))
        }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                let msg = String(cString: strerror(errno))
                close(fd)
                unlink(tmp)
                throw TLSError(operation: "writing \(path)", message: msg)
            }
            off += n
        }
        _ = fsync(fd)
        close(fd)
        guard rename(tmp, path) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(tmp)
            throw TLSError(operation: "renaming into \(path)", message: msg)
        }
    }
}
