/// SendRequest: `POST /api/send_email` decoded and validated (SPEC §4, the seed article).
/// Pure: headers and body bytes in, a request or the exact error out.
///
/// Check order (SPEC §4): authentication (the caller's), then `Content-Type`,
/// `Idempotency-Key`, JSON parse, idempotency look-up (the caller's), validation.
import HTTP1
import JSON
import MIME

public struct SendRequest: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case direct(subject: String, html: String)
        case template(identifier: String, data: JSONValue)
    }

    public var toAddress: String
    public var content: Content
    /// A mailbox *name*.
    public var mailbox: String?
    public var validateAddress: Bool

    public var usesTemplate: Bool {
        if case .template = content { return true }
        return false
    }
}

public enum SendAPI {
    /// `application/json`, optionally with `charset=utf-8` (any case, OWS tolerated).
    public static func contentTypeIsJSON(_ value: String?) -> Bool {
        guard let value else { return false }
        // Fast path: the exact common forms.
        if asciiCaseInsensitiveEquals(value, "application/json") || asciiCaseInsensitiveEquals(value, "application/json; charset=utf-8") {
            return true
        }
        let parts = value.split(separator: ";", omittingEmptySubsequences: false).map { $0.trimmingSpaces.lowercased() }
        guard parts.first == "application/json" else { return false }
        for p in parts.dropFirst() {
            let kv = p.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces }
            guard kv.count == 2, kv[0] == "charset", kv[1] == "utf-8" || kv[1] == "\"utf-8\"" else { return false }
        }
        return true
    }

    /// 1–255 printable ASCII characters (SPEC §4); nil when fine.
    public static func idempotencyKeyProblem(_ key: String?) -> String? {
        guard let key, !key.isEmpty else { return "The Idempotency-Key header is required." }
        guard key.utf8.count <= 255 else { return "The Idempotency-Key header must be at most 255 characters." }
        guard key.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            return "The Idempotency-Key header must be printable ASCII without spaces."
        }
        return nil
    }

    /// The body as JSON; a 422 when it is not a JSON object.
    public static func parseBody(_ body: [UInt8]) -> Result<JSONValue, APIError> {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            return .failure(.validation([("body", ["must be a JSON object (\(error))"])], message: "The request body is not valid JSON."))
        }
        guard case .object = value else {
            return .failure(.validation([("body", ["must be a JSON object, not \(value.typeName == "array" ? "an" : "a") \(value.typeName)"])],
                                        message: "The request body must be a JSON object."))
        }
        return .success(value)
    }

    public static let maxSubjectLength = 998

    /// The rules for a subject, given or rendered from a template (nil when fine): not empty,
    /// no line break, no control character but tab, at most `maxSubjectLength` bytes (the
    /// header is folded or encoded to lines of ≤ 78 columns either way).
    public static func subjectProblem(_ v: String) -> String? {
        if v.isEmpty { return "must not be empty" }
        if v.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) { return "must not contain line breaks" }
        if v.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) }) {
            return "must not contain control characters"
        }
        if v.utf8.count > maxSubjectLength { return "must be at most \(maxSubjectLength) bytes" }
        return nil
    }

    /// Field rules; every problem is reported, each under its field.
    public static func validate(_ body: JSONValue) -> Result<SendRequest, APIError> {
        var fields: [(String, [String])] = []
        func add(_ field: String, _ message: String) {
            if let i = fields.firstIndex(where: { $0.0 == field }) { fields[i].1.append(message) } else { fields.append((field, [message])) }
        }
        func present(_ k: String) -> JSONValue? {
            guard let v = body[k], v != .null else { return nil }
            return v
        }

        var validateAddress = false
        if let v = present("validate_address") {
            if case .bool(let b) = v { validateAddress = b } else { add("validate_address", "must be a boolean") }
        }

        var to = ""
        switch present("to_address") {
        case nil:
            add("to_address", "is required")
        case .string(let s)?:
            if let p = EmailAddress.injectionProblem(s) {
                add("to_address", p)
            } else if validateAddress, let p = EmailAddress.syntaxProblem(s) {
                add("to_address", "is not a valid email address: \(p)")
            }
            to = s
        case let v?:
            add("to_address", "must be a string, not \(v.typeName)")
        }

        var mailbox: String?
        if let v = present("mailbox") {
            if case .string(let s) = v, !s.isEmpty { mailbox = s } else { add("mailbox", "must be a non-empty string (a mailbox name)") }
        }

        let subject = present("subject"), content = present("content")
        let identifier = present("template_identifier"), data = present("data")
        let hasA = subject != nil || content != nil
        let hasB = identifier != nil || data != nil
        var result: SendRequest.Content?
        if hasA && hasB {
            for (k, v) in [("template_identifier", identifier), ("data", data)] where v != nil {
                add(k, "cannot be combined with subject/content: send exactly one payload shape")
            }
        } else if !hasA && !hasB {
            add("subject", "is required unless template_identifier and data are given")
            add("content", "is required unless template_identifier and data are given")
        } else if hasA {
            var s = "", c = ""
            switch subject {
            case nil: add("subject", "is required with content")
            case .string(let v)?:
                if let p = subjectProblem(v) { add("subject", p) }
                s = v
            case let v?: add("subject", "must be a string, not \(v.typeName)")
            }
            switch content {
            case nil: add("content", "is required with subject")
            case .string(let v)?:
                if v.isEmpty { add("content", "must not be empty") }
                c = v
            case let v?: add("content", "must be a string, not \(v.typeName)")
            }
            result = .direct(subject: s, html: c)
        } else {
            var id = ""
            var d = JSONValue.object([])
            switch identifier {
            case nil: add("template_identifier", "is required with data")
            case .string(let v)?:
                if v.isEmpty { add("template_identifier", "must not be empty") }
                id = v
            case let v?: add("template_identifier", "must be a string, not \(v.typeName)")
            }
            switch data {
            case nil: add("data", "is required with template_identifier")
            case .object?: d = data!
            case let v?: add("data", "must be an object, not \(v.typeName)")
            }
            result = .template(identifier: id, data: d)
        }
        guard fields.isEmpty, let result else { return .failure(.validation(fields)) }
        return .success(SendRequest(toAddress: to, content: result, mailbox: mailbox, validateAddress: validateAddress))
    }
}

extension Substring {
    var trimmingSpaces: String {
        var t = self
        while let f = t.first, f == " " || f == "\t" { t = t.dropFirst() }
        while let l = t.last, l == " " || l == "\t" { t = t.dropLast() }
        return String(t)
    }
}
