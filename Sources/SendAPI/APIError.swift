/// APIError: errors that may reach a client, as SPEC §4 spells their bodies:
/// `{"ok":false,"error":{"code":CODE,"message":TEXT,"fields":{FIELD:[TEXT,…]}}}`.
/// Everything else is a logged 500 with a generic body (STYLE habit 15). Pure.
import HTTP1

public struct APIError: Error, Sendable, Equatable {
    public var status: Int
    public var code: String
    public var message: String
    public var fields: [(String, [String])]
    public var extraHeaders: [(String, String)]

    public init(status: Int, code: String, message: String,
                fields: [(String, [String])] = [], extraHeaders: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.extraHeaders = extraHeaders
    }

    public static func == (a: APIError, b: APIError) -> Bool {
        a.status == b.status && a.code == b.code && a.message == b.message
            && a.fields.elementsEqual(b.fields, by: { $0.0 == $1.0 && $0.1 == $1.1 })
            && a.extraHeaders.elementsEqual(b.extraHeaders, by: { $0.0 == $1.0 && $0.1 == $1.1 })
    }

    public var jsonBody: String {
        var s = "{\"ok\":false,\"error\":{\"code\":"
        JSONText.appendString(code, to: &s)
        s += ",\"message\":"
        JSONText.appendString(message, to: &s)
        if !fields.isEmpty {
            s += ",\"fields\":{"
            for (i, (name, reasons)) in fields.enumerated() {
                if i > 0 { s += "," }
                JSONText.appendString(name, to: &s)
                s += ":["
                for (j, r) in reasons.enumerated() {
                    if j > 0 { s += "," }
                    JSONText.appendString(r, to: &s)
                }
                s += "]"
            }
            s += "}"
        }
        s += "}}"
        return s
    }

    public var response: HTTPResponse {
        var headers = HTTPHeaders([(name: "Content-Type", value: "application/json")])
        for (n, v) in extraHeaders { headers.add(name: n, value: v) }
        return HTTPResponse(status: status, headers: headers, body: Array(jsonBody.utf8))
    }

    // The errors of SPEC §4's status table.
    public static func unauthenticated(_ message: String = "A valid bearer token is required.") -> APIError {
        APIError(status: 401, code: "unauthenticated", message: message, extraHeaders: [("WWW-Authenticate", "Bearer")])
    }

    public static func forbidden(ability: String) -> APIError {
        APIError(status: 403, code: "forbidden", message: "This token lacks the \(ability) ability.")
    }

    /// A header that must be given once was given more than once (400).
    public static func duplicateHeader(_ name: String) -> APIError {
        APIError(status: 400, code: "bad_request", message: "The \(name) header must be given once.")
    }

    public static let unsupportedMediaType = APIError(status: 415, code: "unsupported_media_type",
                                                      message: "Content-Type must be application/json.")

    public static func validation(_ fields: [(String, [String])], message: String = "The given data was invalid.") -> APIError {
        APIError(status: 422, code: "validation_failed", message: message, fields: fields)
    }

    public static let idempotencyConflict = APIError(status: 409, code: "idempotency_key_conflict",
        message: "This Idempotency-Key was already used with a different request body.")

    public static let idempotencyInUse = APIError(status: 409, code: "idempotency_key_in_use",
        message: "A request with this Idempotency-Key is still being processed; retry shortly.")

    public static let internalError = APIError(status: 500, code: "internal_error", message: "Internal server error.")

    public static let unavailable = APIError(status: 503, code: "unavailable",
        message: "The request could not be stored; nothing was sent. Retry with the same Idempotency-Key.",
        extraHeaders: [("Retry-After", "1")])

    // The protocol-level errors (SPEC §4 codes where SPEC names one).
    public static func notFound(_ method: String, _ path: String) -> APIError {
        APIError(status: 404, code: "not_found", message: "No such endpoint: \(path)")
    }

    /// A resource under a known endpoint that does not exist (`GET /api/audit/999`).
    public static func noSuchResource(_ what: String) -> APIError {
        APIError(status: 404, code: "not_found", message: what)
    }

    public static func methodNotAllowed(_ method: String, allowed: [String]) -> APIError {
        APIError(status: 405, code: "method_not_allowed",
                 message: "Method \(method) is not allowed here; use \(allowed.joined(separator: ", "))",
                 extraHeaders: [("Allow", allowed.joined(separator: ", "))])
    }

    /// The body for a request the HTTP parser rejected.
    public static func protocolError(_ error: ParseError) -> APIError {
        let code: String
        switch error.status {
        case 413: code = "payload_too_large"
        case 431: code = "request_header_fields_too_large"
        case 501: code = "not_implemented"
        case 505: code = "http_version_not_supported"
        case 503: code = "server_busy"
        default: code = "bad_request"
        }
        return APIError(status: error.status, code: code, message: error.reason)
    }
}

/// Minimal JSON text helpers (string escaping per RFC 8259 §7).
public enum JSONText {
    public static func appendString(_ value: String, to out: inout String) {
        out.append("\"")
        // Most values need no escape (no control character, quote, backslash, or the E2 80 A8/A9
        // of U+2028/U+2029): appended whole.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0xE2 }) {
            out.append(value)
            out.append("\"")
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            case "\u{2028}": out.append("\\u2028")   // valid JSON, but breaks JavaScript embedding
            case "\u{2029}": out.append("\\u2029")
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }

    public static func quoted(_ value: String) -> String {
        var s = ""
        appendString(value, to: &s)
        return s
    }
}
