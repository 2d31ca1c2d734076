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
    /// Shape A's plain-text part instead of the one derived from the HTML.
    public var text: String? = nil
    public var replyTo: [String] = []
    public var cc: [String] = []
    /// Envelope recipients only: never in a header or in the stored bytes.
    public var bcc: [String] = []
    public var headers: [MessageHeader] = []
    public var attachments: [AttachmentPart] = []
    /// The integrator's own keys for finding the entry again (`GET /api/audit?metadata.K=V`).
    public var metadata: [MetadataItem] = []

    public var usesTemplate: Bool {
        if case .template = content { return true }
        return false
    }
}

public struct MetadataItem: Sendable, Equatable {
    public var key: String
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
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

    /// `POST /api/render_template`'s body: shape B alone (`template_identifier` + `data`, the
    /// same rules and messages as send_email's); any other field is refused by name.
    public static func validateRender(_ body: JSONValue) -> Result<(identifier: String, data: JSONValue), APIError> {
        var problems = FieldProblems()
        func add(_ field: String, _ message: String) { problems.add(field, message) }
        if case .object(let members) = body {
            for m in members where m.key != "template_identifier" && m.key != "data" {
                add(m.key, "is not a known field (render_template takes template_identifier and data)")
            }
        }
        var id = ""
        switch body["template_identifier"] {
        case nil, .null?: add("template_identifier", "is required")
        case .string(let v)?:
            if v.isEmpty { add("template_identifier", "must not be empty") }
            id = v
        case let v?: add("template_identifier", "must be a string, not \(v.typeName)")
        }
        var data = JSONValue.object([])
        switch body["data"] {
        case nil, .null?: add("data", "is required")
        case .object?: data = body["data"]!
        case let v?: add("data", "must be an object, not \(v.typeName)")
        }
        guard problems.fields.isEmpty else { return .failure(.validation(problems.fields)) }
        return .success((id, data))
    }

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

    /// Every problem found, each under its field, in the order first reported.
    struct FieldProblems {
        var fields: [(String, [String])] = []
        /// Hashed: a hostile body may name thousands of fields.
        var positions: [String: Int] = [:]

        mutating func add(_ field: String, _ message: String) {
            if let i = positions[field] { fields[i].1.append(message) } else { positions[field] = fields.count; fields.append((field, [message])) }
        }
    }

    /// The fields a send_email body may have (SPEC §4); any other is refused by name.
    public static let knownFields: [String] = [
        "to_address", "subject", "content", "template_identifier", "data", "mailbox", "validate_address",
        "text", "reply_to", "cc", "bcc", "headers", "attachments", "metadata",
    ]
    /// Positions in `knownFields`.
    enum Field: Int {
        case toAddress, subject, content, templateIdentifier, data, mailbox, validateAddress,
             text, replyTo, cc, bcc, headers, attachments, metadata
    }

    /// The known field `key` names, by its position; a length check before each comparison
    /// (every request runs this per member: no hashing, no Set built).
    static func fieldIndex(_ key: String) -> Int? {
        let n = key.utf8.count
        for (i, name) in knownFields.enumerated() where name.utf8.count == n && name == key { return i }
        return nil
    }
    /// To, Cc and Bcc together (SPEC §4).
    public static let maxRecipients = 50

    public static let defaultMaxAttachmentBytes = 10 << 20

    /// Field rules; every problem is reported, each under its field.
    public static func validate(_ body: JSONValue, maxAttachmentBytes: Int = defaultMaxAttachmentBytes) -> Result<SendRequest, APIError> {
        var problems = FieldProblems()
        func add(_ field: String, _ message: String) { problems.add(field, message) }
        // One pass over the members: each known field's first value, by position; a repeated
        // field and an unknown one are refused by name.
        var values = [JSONValue?](repeating: nil, count: knownFields.count)
        if case .object(let members) = body {
            var unknown = Set<String>()   // hashed: a hostile body may hold many thousands
            for m in members {
                if let i = fieldIndex(m.key) {
                    if values[i] != nil { add(m.key, "is given more than once") } else { values[i] = m.value }
                } else if !unknown.insert(m.key).inserted {
                    add(m.key, "is given more than once")
                } else {
                    add(m.key, "is not a known field")
                }
            }
        }
        func present(_ f: Field) -> JSONValue? {
            guard let v = values[f.rawValue], v != .null else { return nil }
            return v
        }

        var validateAddress = false
        if let v = present(.validateAddress) {
            if case .bool(let b) = v { validateAddress = b } else { add("validate_address", "must be a boolean") }
        }

        var to = ""
        switch present(.toAddress) {
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
        if let v = present(.mailbox) {
            if case .string(let s) = v, !s.isEmpty { mailbox = s } else { add("mailbox", "must be a non-empty string (a mailbox name)") }
        }

        let subject = present(.subject), content = present(.content)
        let identifier = present(.templateIdentifier), data = present(.data)
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
        var text: String?
        if let v = present(.text) {
            if hasB || !hasA {
                add("text", "is only for subject/content (a template has its own text part)")
            } else if case .string(let t) = v, !t.isEmpty {
                text = t
            } else {
                add("text", "must be a non-empty string")
            }
        }
        let replyTo = addresses("reply_to", present(.replyTo), max: 5, validateAddress: validateAddress, add)
        // Duplicates (case-insensitive) count once, across To, Cc and Bcc: the first wins.
        var cc: [String] = [], bcc: [String] = []
        if present(.cc) != nil || present(.bcc) != nil {
            var seen: Set<String> = [to.lowercased()]
            cc = addresses("cc", present(.cc), max: maxRecipients, validateAddress: validateAddress, add).filter { seen.insert($0.lowercased()).inserted }
            bcc = addresses("bcc", present(.bcc), max: maxRecipients, validateAddress: validateAddress, add).filter { seen.insert($0.lowercased()).inserted }
        }
        if 1 + cc.count + bcc.count > maxRecipients {
            add(present(.bcc) != nil ? "bcc" : "cc", "makes \(1 + cc.count + bcc.count) recipients with to_address and cc/bcc; at most \(maxRecipients) are allowed")
        }
        let headers = extraHeaders(present(.headers), add)
        let attachments = attachmentParts(present(.attachments), maxBytes: maxAttachmentBytes, add)
        let metadata = metadataItems(present(.metadata), add)

        guard problems.fields.isEmpty, let result else { return .failure(.validation(problems.fields)) }
        return .success(SendRequest(toAddress: to, content: result, mailbox: mailbox, validateAddress: validateAddress, text: text,
                                    replyTo: replyTo, cc: cc, bcc: bcc, headers: headers, attachments: attachments, metadata: metadata))
    }

    /// A string or an array of strings, each an address by the recipient rules; duplicates
    /// (case-insensitive) once.
    static func addresses(_ field: String, _ value: JSONValue?, max: Int, validateAddress: Bool, _ add: (String, String) -> Void) -> [String] {
        let items: [JSONValue]
        switch value {
        case nil: return []
        case .string?: items = [value!]
        case .array(let a)?:
            if a.isEmpty { add(field, "must not be an empty array") }
            items = a
        case let v?:
            add(field, "must be an address or an array of addresses, not \(v.typeName)")
            return []
        }
        if items.count > max { add(field, "has \(items.count) addresses; at most \(max) are allowed") }
        var out: [String] = []
        var seen = Set<String>()
        for (i, item) in items.enumerated() {
            // Named only for a problem: no string built per valid address.
            func name() -> String { if case .array? = value { return "\(field)[\(i)]" } else { return field } }
            guard case .string(let s) = item else {
                add(name(), "must be a string, not \(item.typeName)")
                continue
            }
            if let p = EmailAddress.injectionProblem(s) {
                add(name(), p)
            } else if validateAddress, let p = EmailAddress.syntaxProblem(s) {
                add(name(), "is not a valid email address: \(p)")
            } else if seen.insert(s.lowercased()).inserted {
                out.append(s)
            }
        }
        return out
    }

    /// The header names a message may be given besides `X-…` (SPEC §4).
    static let allowedHeaders = ["List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "In-Reply-To", "References", "Auto-Submitted", "Precedence"]
    public static let maxHeaders = 50
    public static let maxHeaderValueBytes = 900

    static func isTokenByte(_ b: UInt8) -> Bool {
        // RFC 7230 tchar.
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
    }

    static func extraHeaders(_ value: JSONValue?, _ add: (String, String) -> Void) -> [MessageHeader] {
        guard let value else { return [] }
        guard case .object(let members) = value else {
            add("headers", "must be an object of header name → value, not \(value.typeName)")
            return []
        }
        if members.count > maxHeaders { add("headers", "has \(members.count) headers; at most \(maxHeaders) are allowed") }
        var out: [MessageHeader] = []
        var seen = Set<String>()
        for m in members {
            let field = "headers.\(m.key)"
            let lower = m.key.lowercased()
            let canonical = allowedHeaders.first { $0.lowercased() == lower }
            guard !m.key.isEmpty, m.key.utf8.allSatisfy(isTokenByte), canonical != nil || (lower.hasPrefix("x-") && m.key.utf8.count > 2) else {
                add(field, "is not a header a message may be given: X-… names (letters, digits, -) or one of \(allowedHeaders.joined(separator: ", "))")
                continue
            }
            guard seen.insert(lower).inserted else {
                add(field, "is given more than once (header names are case-insensitive)")
                continue
            }
            guard case .string(let v) = m.value else {
                add(field, "must be a string, not \(m.value.typeName)")
                continue
            }
            if v.isEmpty { add(field, "must not be empty"); continue }
            if v.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) { add(field, "must not contain CR, LF or NUL"); continue }
            if v.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }) { add(field, "must not contain control characters"); continue }
            if v.utf8.count > maxHeaderValueBytes { add(field, "must be at most \(maxHeaderValueBytes) bytes"); continue }
            out.append(MessageHeader(name: canonical ?? m.key, value: v))
        }
        return out
    }

    public static let maxMetadata = 10
    public static let maxMetadataValueCharacters = 500

    /// `[A-Za-z0-9_-]{1,40}` (also what the audit's `metadata.KEY` filter accepts).
    public static func isMetadataKey(_ k: String) -> Bool {
        (1...40).contains(k.utf8.count) && k.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }
    }

    static func metadataItems(_ value: JSONValue?, _ add: (String, String) -> Void) -> [MetadataItem] {
        guard let value else { return [] }
        guard case .object(let members) = value else {
            add("metadata", "must be an object of string keys to string values, not \(value.typeName)")
            return []
        }
        if members.count > maxMetadata { add("metadata", "has \(members.count) keys; at most \(maxMetadata) are allowed") }
        var out: [MetadataItem] = []
        for m in members {
            let field = "metadata.\(m.key)"
            guard isMetadataKey(m.key) else {
                add(field, "is not a metadata key: 1 to 40 of A–Z a–z 0–9 _ -")
                continue
            }
            guard case .string(let v) = m.value else {
                add(field, "must be a string, not \(m.value.typeName)")
                continue
            }
            if v.count > maxMetadataValueCharacters { add(field, "must be at most \(maxMetadataValueCharacters) characters"); continue }
            if v.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { add(field, "must not contain control characters"); continue }
            out.append(MetadataItem(key: m.key, value: v))
        }
        return out
    }

    public static let maxAttachments = 50

    static func attachmentParts(_ value: JSONValue?, maxBytes: Int, _ add: (String, String) -> Void) -> [AttachmentPart] {
        guard let value else { return [] }
        guard case .array(let items) = value else {
            add("attachments", "must be an array of {filename, content, content_type?, content_id?}, not \(value.typeName)")
            return []
        }
        if items.count > maxAttachments { add("attachments", "has \(items.count) attachments; at most \(maxAttachments) are allowed") }
        var out: [AttachmentPart] = []
        var total = 0
        var contentIDs = Set<String>()
        for (i, item) in items.enumerated() {
            let at = "attachments[\(i)]"
            guard case .object(let members) = item else {
                add(at, "must be an object {filename, content, content_type?, content_id?}, not \(item.typeName)")
                continue
            }
            var ok = true
            func problem(_ f: String, _ message: String) { add("\(at).\(f)", message); ok = false }
            for m in members where !["filename", "content", "content_type", "content_id"].contains(m.key) {
                problem(m.key, "is not a known field of an attachment")
            }
            var filename = ""
            switch item["filename"] {
            case nil, .null?: problem("filename", "is required")
            case .string(let f)?:
                filename = f
                if f.isEmpty { problem("filename", "must not be empty") }
                else if f.utf8.count > 255 { problem("filename", "must be at most 255 bytes") }
                else if f.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" }) { problem("filename", "must be a file name, without / or \\") }
                else if f.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) }) {
                    problem("filename", "must not contain control characters")
                } else if let ext = MediaTypes.fileExtension(f), MediaTypes.blockedExtensions.contains(ext) {
                    problem("filename", "is an executable type (.\(ext)) that mail systems block; send it inside an archive or as a link")
                }
            case let v?: problem("filename", "must be a string, not \(v.typeName)")
            }
            var content = ""
            var size = 0
            switch item["content"] {
            case nil, .null?: problem("content", "is required (the file's bytes in base64)")
            case .string(let c)?:
                switch Base64.check(c) {
                case .success(let n):
                    content = c
                    size = n
                case .failure(let p): problem("content", p.description)
                }
            case let v?: problem("content", "must be a base64 string, not \(v.typeName)")
            }
            var contentType = MediaTypes.forFilename(filename)
            switch item["content_type"] {
            case nil, .null?: break
            case .string(let t)? where MediaTypes.isValid(t): contentType = t.lowercased()
            case .string?: problem("content_type", "must be a media type type/subtype such as application/pdf (no parameters)")
            case let v?: problem("content_type", "must be a string, not \(v.typeName)")
            }
            var contentID: String?
            switch item["content_id"] {
            case nil, .null?: break
            case .string(let c)?:
                if c.isEmpty || c.utf8.count > 250 || !c.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3C && $0 != 0x3E }) {
                    problem("content_id", "must be 1–250 ASCII characters without spaces, < or > (referenced as cid:… from the HTML)")
                } else if !contentIDs.insert(c).inserted {
                    problem("content_id", "is used by an earlier attachment")
                } else {
                    contentID = c
                }
            case let v?: problem("content_id", "must be a string, not \(v.typeName)")
            }
            total += size
            if ok { out.append(AttachmentPart(filename: filename, base64: content, contentType: contentType, contentID: contentID, decodedSize: size)) }
        }
        if total > maxBytes {
            add("attachments", "total \(total) bytes once decoded, over the limit of \(maxBytes) (--max-attachment-bytes)")
        }
        return out
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
