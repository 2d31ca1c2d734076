/// JSON: a strict RFC 8259 parser into an ordered value tree, a canonical serialization
/// (for idempotency fingerprints), and compact output. Pure; no Foundation.
///
/// Why not Foundation: `JSONDecoder` costs ≈11 µs and `JSONSerialization` ≈7.7 µs for a
/// 320-byte object on this machine (../shared/notes/toolchain.md §7) — most of a request's
/// budget; a single-pass parser over the bytes does it in a few µs, and we need the raw
/// number text and key order anyway (canonical form, template rendering).
///
/// Strictness: one top-level value; no trailing commas, comments, NaN or leading zeros;
/// strings must be valid UTF-8 with valid escapes (lone surrogates rejected); duplicate
/// object keys rejected (their meaning is ambiguous — RFC 8259 §4); nesting limited.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text exactly as sent (validated against the RFC 8259 grammar).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// An object member (a struct, not a tuple: a recursive enum with a tuple payload trips the
/// compiler — toolchain notes §8.6).
public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue
    public init(key: String, value: JSONValue) {
        self.key = key
        self.value = value
    }
}

public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "\(reason) at byte \(offset)" }
}
