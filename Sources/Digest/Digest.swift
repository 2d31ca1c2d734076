/// Digest: SHA-256 and constant-time comparison over OpenSSL (computation only; no
/// keys kept, no I/O). Used to store token secrets hashed and to fingerprint request bodies.
import COpenSSL

public enum Digest {
    /// SHA-256 for EVP, fetched once (OpenSSL 3 looks an algorithm up by name otherwise): only
    /// `sha256EVP`, the reference the tests hold `sha256` to, uses it. Fetched algorithms are
    /// immutable and may be shared between threads.
    nonisolated(unsafe) static let sha256Algorithm: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)

    /// SHA-256 of `bytes` (32 bytes).
    public static func sha256<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        if let done = bytes.withContiguousStorageIfAvailable({ sha256(UnsafeRawBufferPointer($0)) }) { return done }
        return Array(bytes).withUnsafeBytes { sha256($0) }
    }

    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            // A digest that silently failed would compare tokens against garbage: stop instead.
            // The low-level SHA-256 (a stack context; see the shim): EVP_Digest's allocations
            // and provider dispatch cost ten times the hashing of a token or a request body.
            let ok = cossl_sha256(bytes.baseAddress, bytes.count, out.baseAddress) == 1
            precondition(ok, "OpenSSL could not compute SHA-256")
            count = 32
        }
    }

    /// SHA-256 through EVP (the interface OpenSSL 3 recommends): tests check `sha256` against it.
    static func sha256EVP(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            let ok = EVP_Digest(bytes.baseAddress, bytes.count, out.baseAddress, nil, sha256Algorithm, nil) == 1
            precondition(ok, "OpenSSL could not compute SHA-256")
            count = 32
        }
    }

    public static func sha256(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { sha256(UnsafeRawBufferPointer($0)) }
    }

    /// Equal contents, in time that depends only on the length (CRYPTO_memcmp): a token check
    /// must not tell an attacker how many leading bytes of a guess were right.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }

    /// Lower-case hex.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
