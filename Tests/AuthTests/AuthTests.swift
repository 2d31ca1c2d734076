/// Auth and Digest: bearer parsing (a table of good and bad headers), secret generation,
/// hashing, constant-time comparison, abilities.
import Testing
@testable import Auth
@testable import Digest

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct AuthTests {
    @Test(arguments: [
        ("Bearer 1|abcDEF123", 1, "abcDEF123"),
        ("bearer 42|x", 42, "x"),
        ("BEARER   7|Zz9", 7, "Zz9"),
        ("Bearer 123456789012345678|\(String(repeating: "a", count: 40))", 123_456_789_012_345_678, String(repeating: "a", count: 40)),
    ] as [(String, Int64, String)])
    func validHeadersParse(header: String, id: Int64, secret: String) throws {
        let r = BearerToken.parse(authorization: header)
        guard case .success(let t) = r else { Issue.record("\(r)"); return }
        #expect(t.id == id)
        #expect(t.secret == secret)
    }

    @Test(arguments: [
        (nil, AuthFailure.missing), ("", .missing),
        ("Basic dXNlcjpwYXNz", .malformed), ("Bearer", .malformed), ("Bearer ", .malformed),
        ("Bearer abc", .malformed), ("Bearer |abc", .malformed), ("Bearer 1|", .malformed),
        ("Bearer 0|abc", .malformed), ("Bearer -1|abc", .malformed), ("Bearer 1|ab c", .malformed),
        ("Bearer 1|ab;c", .malformed), ("Bearer 1|abc|d", .malformed), ("Bearer x1|abc", .malformed),
        ("Bearer 1234567890123456789|abc", .malformed), ("Bearer 1|\u{e9}t\u{e9}", .malformed),
        ("Bearer\t1|abc", .malformed), ("Token 1|abc", .malformed),
        ("Bearer 1|\(String(repeating: "a", count: 129))", .malformed),
    ] as [(String?, AuthFailure)])
    func badHeadersAreRejected(header: String?, failure: AuthFailure) {
        guard case .failure(let got) = BearerToken.parse(authorization: header) else {
            Issue.record("accepted \(String(describing: header))")
            return
        }
        #expect(got == failure)
    }

    @Test func secretsAreSanctumShaped() {
        var g = SeededGenerator(state: 1)
        let a = BearerToken.makeSecret(using: &g)
        let b = BearerToken.makeSecret(using: &g)
        #expect(a.count == 40)
        #expect(a != b)
        #expect(a.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || (($0 | 0x20) >= 97 && ($0 | 0x20) <= 122) })
    }

    @Test func verifyChecksHashRevocationAndUnknown() {
        let stored = StoredToken(id: 3, name: "shop", secretHash: BearerToken.hash(secret: "right"), abilities: ["send-email"], revoked: false)
        #expect(BearerToken.verify(secret: "right", against: stored) == .success(stored))
        #expect(BearerToken.verify(secret: "wrong", against: stored) == .failure(.unknownOrRevoked))
        #expect(BearerToken.verify(secret: "right", against: nil) == .failure(.unknownOrRevoked))
        var revoked = stored
        revoked.revoked = true
        #expect(BearerToken.verify(secret: "right", against: revoked) == .failure(.unknownOrRevoked))
    }

    @Test(arguments: [
        (["send-email"], "send-email", true), (["send-email"], "audit-read", false),
        (["*"], "audit-read", true), (["audit-read", "send-email"], "send-email", true), ([], "send-email", false),
    ])
    func abilities(granted: [String], asked: String, expected: Bool) {
        let t = StoredToken(id: 1, name: "t", secretHash: [], abilities: granted, revoked: false)
        #expect(t.grants(asked) == expected)
    }

    @Test func sha256KnownAnswers() {
        #expect(Digest.hex(Digest.sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.hex(Digest.sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // The same bytes through each entry point: contiguous slice, non-contiguous collection.
        #expect(Digest.hex(Digest.sha256(Array("xabc".utf8)[1...])) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.hex(Digest.sha256("abc".utf8.lazy.map { $0 })) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(Digest.hex(Digest.sha256(million)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The low-level SHA-256 agrees with EVP's on every length around the block boundaries
    /// (55/56/64 bytes: where the padding spills into a second block) and on random contents.
    @Test func sha256AgreesWithEVP() {
        var state: UInt64 = 7
        for length in Array(0...200) + [1000, 4096, 65537] {
            let bytes = (0..<length).map { _ -> UInt8 in state = state &* 6364136223846793005 &+ 1; return UInt8(truncatingIfNeeded: state >> 56) }
            let a = bytes.withUnsafeBytes { Digest.sha256($0) }
            let b = bytes.withUnsafeBytes { Digest.sha256EVP($0) }
            #expect(a == b, "length \(length)")
            #expect(a.count == 32)
        }
    }

    @Test func constantTimeEquals() {
        #expect(Digest.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Digest.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Digest.constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(Digest.constantTimeEquals([], []))
    }
}
