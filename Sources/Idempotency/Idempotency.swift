/// Idempotency: the decision for a request that carries an `Idempotency-Key` (SPEC §4,
/// after Stripe and the IETF Idempotency-Key draft). Pure: the stored record, what is in
/// flight and `now` are passed in.
///
/// Keys are scoped to the token. The fingerprint is SHA-256 of the canonical JSON body
/// (sorted keys, no whitespace), so key order and formatting do not matter. Same key and
/// fingerprint → replay the stored status and body byte for byte; different fingerprint →
/// 409 `idempotency_key_conflict`; the first request with the key not yet durable →
/// 409 `idempotency_key_in_use`; a record older than the retention → as if absent.
/// Failed requests store nothing, so a client may fix the request and retry with the key.
import Digest
import JSON

public struct IdempotencyRecord: Sendable, Equatable {
    public var fingerprint: [UInt8]
    public var status: Int
    public var body: [UInt8]
    /// Milliseconds since the epoch.
    public var createdAt: Int64

    public init(fingerprint: [UInt8], status: Int, body: [UInt8], createdAt: Int64) {
        self.fingerprint = fingerprint
        self.status = status
        self.body = body
        self.createdAt = createdAt
    }
}

public enum IdempotencyDecision: Sendable, Equatable {
    case proceed
    case replay(status: Int, body: [UInt8])
    case conflict
    case inUse
}

public enum Idempotency {
    public static func fingerprint(_ body: JSONValue) -> [UInt8] {
        Digest.sha256(body.canonicalBytes)
    }

    /// The fingerprint of a call to another endpoint than send_email: the endpoint's name is
    /// part of it, so one key used on two endpoints is a conflict (SPEC §4). send_email's
    /// stays the body's alone (records stored before this keep replaying).
    public static func fingerprint(_ body: JSONValue, endpoint: String) -> [UInt8] {
        Digest.sha256(Array("\(endpoint)\u{0}".utf8) + body.canonicalBytes)
    }

    /// - Parameters:
    ///   - stored: the durable record for (token, key), if any.
    ///   - inFlight: the fingerprint of a request with this key accepted but not yet committed.
    public static func decide(stored: IdempotencyRecord?, inFlight: [UInt8]?, fingerprint: [UInt8],
                              nowMilliseconds: Int64, retentionMilliseconds: Int64) -> IdempotencyDecision {
        if inFlight != nil { return .inUse }
        guard let stored, nowMilliseconds - stored.createdAt < retentionMilliseconds else { return .proceed }
        guard Digest.constantTimeEquals(stored.fingerprint, fingerprint) else { return .conflict }
        return .replay(status: stored.status, body: stored.body)
    }
}
