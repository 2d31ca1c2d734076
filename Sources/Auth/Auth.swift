/// Auth: bearer tokens in Laravel Sanctum's plain-text form `ID|SECRET`, abilities, and the
/// 401/403 decision. Pure: the caller passes the stored token (looked up by ID) and a random
/// generator; nothing here touches the database or the clock.
///
/// Only SHA-256(SECRET) is stored; the presented secret is hashed and compared with
/// `Digest.constantTimeEquals`. The numeric ID makes the look-up an index hit without
/// revealing anything: a wrong secret and an unknown ID give the same 401.
import Digest

public enum Ability {
    public static let sendEmail = "send-email"
    public static let auditRead = "audit-read"
    public static let all = "*"
    public static let known: Set<String> = [sendEmail, auditRead, all]
}

/// A token as the store keeps it.
public struct StoredToken: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var secretHash: [UInt8]
    public var abilities: [String]
    public var revoked: Bool

    public init(id: Int64, name: String, secretHash: [UInt8], abilities: [String], revoked: Bool) {
        self.id = id
        self.name = name
        self.secretHash = secretHash
        self.abilities = abilities
        self.revoked = revoked
    }

    public func grants(_ ability: String) -> Bool {
        abilities.contains(ability) || abilities.contains(Ability.all)
    }
}

/// Why a request is not authenticated (all answered 401 with `WWW-Authenticate: Bearer`).
public enum AuthFailure: Error, Sendable, Equatable {
    case missing
    case malformed
    case unknownOrRevoked
}

public enum BearerToken {
    /// Sanctum secrets are 40 characters of [A-Za-z0-9].
    public static let secretLength = 40
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// A fresh secret from `random` (the CLI passes the system generator; tests a seeded one).
    public static func makeSecret<R: RandomNumberGenerator>(using random: inout R) -> String {
        var out = [UInt8]()
        out.reserveCapacity(secretLength)
        for _ in 0..<secretLength {
            out.append(alphabet[Int(random.next(upperBound: UInt64(alphabet.count)))])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hash(secret: String) -> [UInt8] {
        Digest.sha256(secret)
    }

    /// `Authorization: Bearer ID|SECRET` → (ID, SECRET). The scheme is case-insensitive
    /// (RFC 9110 §11.1); the credentials are exactly one token68-like word.
    public static func parse(authorization: String?) -> Result<(id: Int64, secret: String), AuthFailure> {
        guard let header = authorization, !header.isEmpty else { return .failure(.missing) }
        let utf8 = Array(header.utf8)
        guard utf8.count > 7, utf8.count <= 512,
              String(decoding: utf8[0..<6], as: UTF8.self).lowercased() == "bearer", utf8[6] == 32 else {
            return .failure(.malformed)
        }
        var i = 7
        while i < utf8.count && utf8[i] == 32 { i += 1 }
        let credentials = utf8[i...]
        guard let bar = credentials.firstIndex(of: 124) else { return .failure(.malformed) }
        let idPart = credentials[credentials.startIndex..<bar]
        let secretPart = credentials[(bar + 1)...]
        guard !idPart.isEmpty, idPart.count <= 18, idPart.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let id = Int64(String(decoding: idPart, as: UTF8.self)), id > 0,
              !secretPart.isEmpty, secretPart.count <= 128,
              secretPart.allSatisfy({ ($0 >= 48 && $0 <= 57) || (($0 | 0x20) >= 97 && ($0 | 0x20) <= 122) }) else {
            return .failure(.malformed)
        }
        return .success((id, String(decoding: secretPart, as: UTF8.self)))
    }

    /// Checks a presented secret against the stored token (nil: no such ID).
    public static func verify(secret: String, against stored: StoredToken?) -> Result<StoredToken, AuthFailure> {
        let presented = hash(secret: secret)
        guard let stored else {
            // Same work as a real comparison: unknown IDs and wrong secrets look alike.
            _ = Digest.constantTimeEquals(presented, [UInt8](repeating: 0, count: 32))
            return .failure(.unknownOrRevoked)
        }
        guard Digest.constantTimeEquals(presented, stored.secretHash), !stored.revoked else {
            return .failure(.unknownOrRevoked)
        }
        return .success(stored)
    }
}
