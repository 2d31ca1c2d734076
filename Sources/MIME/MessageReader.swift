/// MessageReader: the stored message read back for the audit (`GET /api/audit/{id}`) — its
/// header fields (unfolded, RFC 2047 words decoded) and the decoded text and HTML parts.
///
/// Reads what `MessageBuilder` writes, and anything shaped like it: RFC 5322 §2.2.3 unfolding,
/// RFC 2045 §6.7/§6.8 quoted-printable and base64, RFC 2046 §5.1 multipart (one level of
/// nesting searched, so `multipart/mixed` around an alternative still yields its parts).
/// Text is decoded as UTF-8 (other charsets are not converted; invalid bytes become U+FFFD).
/// Never fails: a part it cannot find is nil.

public struct MessageHeader: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A part that is a file (an attachment or an inline image): what the audit lists. Its bytes
/// come from `MessageReader.attachment(_:index:)`.
public struct ReadAttachment: Sendable, Equatable {
    public var filename: String
    public var contentType: String
    /// Decoded size in bytes.
    public var size: Int
    public var contentID: String?
    public var inline: Bool
}

public struct ReadMessage: Sendable, Equatable {
    public var headers: [MessageHeader]
    public var text: String?
    public var html: String?
    public var attachments: [ReadAttachment] = []

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

public enum MessageReader {
    public static func read(_ bytes: [UInt8]) -> ReadMessage {
        var message = ReadMessage(headers: [], text: nil, html: nil)
        let (headers, body) = splitHead(bytes[...])
        message.headers = headers
        var files: [(ReadAttachment, [MessageHeader], ArraySlice<UInt8>)] = []
        collectParts(headers: headers, body: body, into: &message, files: &files, depth: 0)
        message.attachments = files.map(\.0)
        return message
    }

    /// Attachment `index` (as `read` lists them) and its decoded bytes; nil when there is none.
    public static func attachment(_ bytes: [UInt8], index: Int) -> (ReadAttachment, [UInt8])? {
        var message = ReadMessage(headers: [], text: nil, html: nil)
        let (headers, body) = splitHead(bytes[...])
        var files: [(ReadAttachment, [MessageHeader], ArraySlice<UInt8>)] = []
        collectParts(headers: headers, body: body, into: &message, files: &files, depth: 0)
        guard files.indices.contains(index) else { return nil }
        let (a, h, b) = files[index]
        return (a, decode(b, encoding: transferEncoding(h)))
    }

    static func transferEncoding(_ headers: [MessageHeader]) -> String {
        (headers.last { $0.name.lowercased() == "content-transfer-encoding" }?.value ?? "7bit").trimmingSpaces().lowercased()
    }

    static func decode(_ body: ArraySlice<UInt8>, encoding: String) -> [UInt8] {
        switch encoding {
        case "quoted-printable": return decodeQuotedPrintable(body)
        case "base64": return decodeBase64(body)
        default: return Array(body)
        }
    }

    /// Mixed ⊃ related ⊃ alternative is three levels; one more for what others write.
    static let maxDepth = 4

    static func collectParts(headers: [MessageHeader], body: ArraySlice<UInt8>, into m: inout ReadMessage,
                             files: inout [(ReadAttachment, [MessageHeader], ArraySlice<UInt8>)], depth: Int) {
        let contentType = headers.last { $0.name.lowercased() == "content-type" }?.value ?? "text/plain"
        let (type, params) = parseContentType(contentType)
        if type.hasPrefix("multipart/") {
            guard depth < maxDepth, let boundary = params["boundary"], !boundary.isEmpty else { return }
            for part in splitMultipart(body, boundary: Array(boundary.utf8)) {
                let (h, b) = splitHead(part)
                collectParts(headers: h, body: b, into: &m, files: &files, depth: depth + 1)
            }
            return
        }
        let (disposition, dparams) = parseContentType(headers.last { $0.name.lowercased() == "content-disposition" }?.value ?? "")
        let filename = parameterValue(dparams, "filename") ?? parameterValue(params, "name")
        let isBody = (type == "text/plain" || type == "text/html") && disposition != "attachment" && filename == nil
        guard isBody else {
            guard depth > 0 else { return }   // a whole message that is one file: not ours to list
            let encoding = transferEncoding(headers)
            let size = encoding == "base64" ? base64DecodedCount(body) : decode(body, encoding: encoding).count
            var cid = headers.last { $0.name.lowercased() == "content-id" }?.value.trimmingSpaces()
            if let c = cid, c.hasPrefix("<"), c.hasSuffix(">") { cid = String(c.dropFirst().dropLast()) }
            files.append((ReadAttachment(filename: filename ?? "attachment-\(files.count + 1)", contentType: type.isEmpty ? "application/octet-stream" : type,
                                         size: size, contentID: cid, inline: disposition == "inline"), headers, body))
            return
        }
        let decoded = decode(body, encoding: transferEncoding(headers))
        let text = String(decoding: decoded, as: UTF8.self)
        if type == "text/plain" {
            if m.text == nil { m.text = text }
        } else if m.html == nil {
            m.html = text
        }
    }

    // MARK: Head

    /// Header fields (unfolded) and the body after the empty line. Lines end in CRLF or LF.
    static func splitHead(_ bytes: ArraySlice<UInt8>) -> ([MessageHeader], ArraySlice<UInt8>) {
        var fields: [[UInt8]] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            var end = i
            while end < bytes.endIndex && bytes[end] != 0x0A { end += 1 }
            var line = bytes[i..<end]
            if line.last == 0x0D { line = line.dropLast() }
            let next = end < bytes.endIndex ? end + 1 : end
            if line.isEmpty { return (fields.compactMap(header), bytes[next...]) }
            if (line.first == 0x20 || line.first == 0x09), !fields.isEmpty {
                fields[fields.count - 1].append(contentsOf: line)
            } else {
                fields.append(Array(line))
            }
            i = next
        }
        return (fields.compactMap(header), bytes[bytes.endIndex...])
    }

    static func header(_ field: [UInt8]) -> MessageHeader? {
        guard let colon = field.firstIndex(of: 0x3A), colon > 0 else { return nil }
        let name = String(decoding: field[..<colon], as: UTF8.self)
        let value = String(decoding: field[(colon + 1)...], as: UTF8.self).trimmingSpaces()
        return MessageHeader(name: name, value: decodeEncodedWords(value))
    }

    /// `type/subtype` lower-cased, and the parameters (names lower-cased, quoted-strings
    /// unquoted with their escapes; a `;` inside quotes is part of the value).
    static func parseContentType(_ value: String) -> (String, [String: String]) {
        var pieces: [String] = [""]
        var quoted = false, escaped = false
        for c in value {
            if escaped { pieces[pieces.count - 1].append(c); escaped = false; continue }
            if quoted && c == "\\" { pieces[pieces.count - 1].append(c); escaped = true; continue }
            if c == "\"" { quoted.toggle() }
            if c == ";" && !quoted { pieces.append(""); continue }
            pieces[pieces.count - 1].append(c)
        }
        let type = pieces[0].trimmingSpaces().lowercased()
        var params: [String: String] = [:]
        for p in pieces.dropFirst() {
            guard let eq = p.firstIndex(of: "=") else { continue }
            let name = String(p[..<eq]).trimmingSpaces().lowercased()
            params[name] = p[p.index(after: eq)...].trimmingSpaces().unquoted()
        }
        return (type, params)
    }

    /// A file name parameter: RFC 2231 `name*=charset'lang'%XX…` first (UTF-8 or ASCII), else
    /// the plain one with any RFC 2047 words decoded (what old clients read).
    static func parameterValue(_ params: [String: String], _ name: String) -> String? {
        if let ext = params[name + "*"] {
            let pieces = ext.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
            if pieces.count == 3, ["utf-8", "us-ascii", ""].contains(pieces[0].lowercased()) {
                var bytes: [UInt8] = []
                var it = Array(pieces[2].utf8).makeIterator()
                while let b = it.next() {
                    if b == 0x25, let h = it.next().flatMap(hexValue), let l = it.next().flatMap(hexValue) { bytes.append(h << 4 | l) } else { bytes.append(b) }
                }
                if let s = String(validating: bytes, as: UTF8.self), !s.isEmpty { return s }
            }
        }
        guard let plain = params[name], !plain.isEmpty else { return nil }
        return decodeEncodedWords(plain)
    }

    /// The decoded size of base64 without decoding it.
    static func base64DecodedCount(_ body: ArraySlice<UInt8>) -> Int {
        var chars = 0, padding = 0
        for b in body {
            if base64Value(b) != nil { chars += 1 } else if b == 0x3D { padding += 1 }
        }
        return max(0, (chars + padding) / 4 * 3 - padding)
    }

    /// RFC 2046 §5.1.1: the bodies between `--boundary` lines, up to `--boundary--`. The line
    /// break before a delimiter belongs to the delimiter.
    static func splitMultipart(_ body: ArraySlice<UInt8>, boundary: [UInt8]) -> [ArraySlice<UInt8>] {
        var parts: [ArraySlice<UInt8>] = []
        var partStart: Int?
        var i = body.startIndex
        while i < body.endIndex {
            var end = i
            while end < body.endIndex && body[end] != 0x0A { end += 1 }
            var line = body[i..<end]
            if line.last == 0x0D { line = line.dropLast() }
            if line.count >= boundary.count + 2, line[line.startIndex] == 0x2D, line[line.startIndex + 1] == 0x2D,
               line[(line.startIndex + 2)..<(line.startIndex + 2 + boundary.count)].elementsEqual(boundary) {
                let rest = line[(line.startIndex + 2 + boundary.count)...]
                let closing = rest.starts(with: [0x2D, 0x2D])
                if rest.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) || closing {
                    if let s = partStart {
                        var e = i
                        if e > s && body[e - 1] == 0x0A { e -= 1 }
                        if e > s && body[e - 1] == 0x0D { e -= 1 }
                        parts.append(body[s..<e])
                    }
                    if closing { return parts }
                    partStart = end < body.endIndex ? end + 1 : end
                }
            }
            i = end < body.endIndex ? end + 1 : end
        }
        if let s = partStart { parts.append(body[s...]) }   // no closing delimiter: keep what there is
        return parts
    }

    // MARK: Decodings

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    /// RFC 2045 §6.7: `=XX` octets, `=` at a line end is a soft break, trailing white space on
    /// a line is dropped; anything malformed is kept literally.
    static func decodeQuotedPrintable(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var i = body.startIndex
        while i < body.endIndex {
            let b = body[i]
            if b == 0x3D {
                if i + 2 < body.endIndex, let h = hexValue(body[i + 1]), let l = hexValue(body[i + 2]) {
                    out.append(h << 4 | l)
                    i += 3
                    continue
                }
                // Soft line break: "=" then optional white space then CRLF / LF.
                var j = i + 1
                while j < body.endIndex && (body[j] == 0x20 || body[j] == 0x09) { j += 1 }
                if j < body.endIndex && body[j] == 0x0D { j += 1 }
                if j < body.endIndex && body[j] == 0x0A { i = j + 1; continue }
                if j == body.endIndex { break }
                out.append(b)
                i += 1
                continue
            }
            if b == 0x20 || b == 0x09 {
                var j = i
                while j < body.endIndex && (body[j] == 0x20 || body[j] == 0x09) { j += 1 }
                if j == body.endIndex || body[j] == 0x0D || body[j] == 0x0A { i = j; continue }
                out.append(contentsOf: body[i..<j])
                i = j
                continue
            }
            out.append(b)
            i += 1
        }
        return out
    }

    static func base64Value(_ b: UInt8) -> UInt32? {
        switch b {
        case 0x41...0x5A: return UInt32(b - 0x41)
        case 0x61...0x7A: return UInt32(b - 0x61 + 26)
        case 0x30...0x39: return UInt32(b - 0x30 + 52)
        case 0x2B: return 62
        case 0x2F: return 63
        default: return nil
        }
    }

    /// RFC 2045 §6.8: characters outside the alphabet (line breaks, padding) are skipped.
    static func decodeBase64<S: Sequence>(_ body: S) -> [UInt8] where S.Element == UInt8 {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for b in body {
            guard let v = base64Value(b) else { continue }
            acc = acc << 6 | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }

    /// RFC 2047 encoded words in UTF-8 (B or Q); white space between adjacent words is dropped
    /// (§6.2). Words in other charsets are left as they are.
    static func decodeEncodedWords(_ value: String) -> String {
        guard value.contains("=?") else { return value }
        var out = ""
        var pendingSpace = ""
        var lastWasWord = false
        for token in value.split(separator: " ", omittingEmptySubsequences: false) {
            if let decoded = decodeWord(token) {
                if !lastWasWord { out += pendingSpace }
                out += decoded
                lastWasWord = true
            } else {
                out += pendingSpace
                out += token
                lastWasWord = false
            }
            pendingSpace = " "
        }
        return out
    }

    static func decodeWord(_ token: Substring) -> String? {
        guard token.hasPrefix("=?"), token.hasSuffix("?="), token.count >= 8 else { return nil }
        let inner = token.dropFirst(2).dropLast(2)
        let pieces = inner.split(separator: "?", maxSplits: 2, omittingEmptySubsequences: false)
        guard pieces.count == 3, pieces[0].lowercased() == "utf-8" || pieces[0].lowercased() == "us-ascii" else { return nil }
        let data = Array(pieces[2].utf8)
        switch pieces[1].lowercased() {
        case "b":
            return String(decoding: decodeBase64(data), as: UTF8.self)
        case "q":
            var bytes: [UInt8] = []
            var i = 0
            while i < data.count {
                if data[i] == 0x5F { bytes.append(0x20); i += 1; continue }
                if data[i] == 0x3D, i + 2 < data.count, let h = hexValue(data[i + 1]), let l = hexValue(data[i + 2]) {
                    bytes.append(h << 4 | l)
                    i += 3
                    continue
                }
                bytes.append(data[i])
                i += 1
            }
            return String(decoding: bytes, as: UTF8.self)
        default:
            return nil
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }

    /// A quoted-string's content (RFC 5322 §3.2.4: the quotes dropped, quoting backslashes
    /// undone); any other text as it is.
    func unquoted() -> String {
        guard count >= 2, hasPrefix("\""), hasSuffix("\"") else { return String(self) }
        var out = ""
        var escaped = false
        for c in dropFirst().dropLast() {
            if escaped { out.append(c); escaped = false } else if c == "\\" { escaped = true } else { out.append(c) }
        }
        return out
    }
}

/// The display name and address of a From field as `MessageReader` gives it back (unfolded,
/// RFC 2047 words decoded): `"Shop Sales" <sales@shop.example>`, `Shop <a@b>`, `a@b`.
/// RFC 5322 §3.4 name-addr: a quoted display name loses its quotes and quoting backslashes
/// (§3.2.4); a comment or a group is left as written. The audit shows the name the recipient
/// saw, which is the mailbox's display name at the time it was sent, not today's.
public enum FromField {
    public static func parse(_ value: String) -> (name: String?, address: String) {
        let v = value.trimmingSpaces()
        guard v.hasSuffix(">"), let open = v.lastIndex(of: "<") else { return (nil, v) }
        let address = v[v.index(after: open)..<v.index(before: v.endIndex)].trimmingSpaces()
        let name = v[..<open].trimmingSpaces().unquoted()
        return (name.isEmpty ? nil : name, address)
    }
}
