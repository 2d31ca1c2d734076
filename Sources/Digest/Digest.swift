/// Digest: SHA-256 and constant-time comparison over OpenSSL's EVP (computation only; no
/// keys kept, no I/O). Used to store token secrets hashed and to fingerprint request bodies.
import COpenSSL

public enum Digest {
    /// SHA-256 of `bytes` (32 bytes).
    public static func sha256<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out = [UInt8](repeating: 0, count: 32)
        let done: Bool? = bytes.withContiguousStorageIfAvailable { buf in
            out.withUnsafeMutableBufferPointer { o in
                SHA256(buf.baseAddress, buf.count, o.baseAddress) != nil
            }
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBufferPointer { buf in
                _ = out.withUnsafeMutableBufferPointer { o in SHA256(buf.baseAddress, buf.count, o.baseAddress) }
            }
        }
        return out
    }

    public static func sha256(_ text: String) -> [UInt8] {
        sha256(Array(text.utf8))
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
