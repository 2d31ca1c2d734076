/// Attachments (SPEC §4 "Beyond the seed"): the base64 an integrator sends, checked strictly
/// (RFC 4648 §4, line breaks tolerated) and re-wrapped into the message's 76-character lines
/// without ever being decoded — the text is already the part's transfer encoding, so the
/// attachment is read once and written once; the media type from the file name's extension;
/// the file name as MIME parameters (RFC 2231 `filename*` plus an RFC 2047 `name` for old
/// clients when it is not ASCII).

/// One attachment part as `MessageBuilder` writes it.
public struct AttachmentPart: Sendable, Equatable {
    public var filename: String
    /// Standard base64, validated by `Base64.check` (whitespace may remain: it is skipped).
    public var base64: String
    public var contentType: String
    /// Set: an inline part of `multipart/related`, referenced as `cid:` from the HTML.
    public var contentID: String?
    /// The size once decoded (what the limit counts and the audit shows).
    public var decodedSize: Int

    public init(filename: String, base64: String, contentType: String, contentID: String?, decodedSize: Int) {
        self.filename = filename
        self.base64 = base64
        self.contentType = contentType
        self.contentID = contentID
        self.decodedSize = decodedSize
    }
}

public enum Base64 {
    /// What is wrong with a base64 text, said so that the sender can fix it.
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case dataURL
        case badCharacter(Character, position: Int)
        case badLength(Int)
        case misplacedPadding(position: Int)
        case nonCanonicalEnding

        public var description: String {
            switch self {
            case .dataURL:
                return "is a data: URL; send only the base64 text after the comma"
            case .badCharacter(let c, let position):
                let shown = c.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) ? "\"\(c)\"" : "U+\(String(c.unicodeScalars.first!.value, radix: 16, uppercase: true))"
                return "is not base64: character \(shown) at position \(position) is not in the standard base64 alphabet (A–Z a–z 0–9 + /; base64url's - and _ are not accepted)"
            case .badLength(let n):
                return "is not base64: \(n) characters (line breaks not counted) is not a multiple of 4 — is the = padding missing?"
            case .misplacedPadding(let position):
                return "is not base64: = padding at position \(position) is not at the end"
            case .nonCanonicalEnding:
                return "is not base64: the bits after the last byte are not zero (is it truncated or joined from pieces?)"
            }
        }
    }

    static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in Encodings.b64.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }

    /// The decoded size of `text`, or what is wrong with it.
    public static func check(_ text: String) -> Result<Int, Problem> {
        if text.utf8.starts(with: "data:".utf8) { return .failure(.dataURL) }
        var text = text
        return text.withUTF8 { check($0) }
    }

    public static func check(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Int, Problem> {
        // The table as a local buffer: a global's lazy-initialisation check per byte made this
        // 3× slower.
        values.withUnsafeBufferPointer { table in
            var count = 0, padding = 0
            var last: UInt8 = 0
            var i = 0
            // Four characters at a time while all are of the alphabet (values < 64; 0xFF marks
            // the rest): one branch per four bytes.
            while padding == 0 && i + 4 <= bytes.count {
                let a = table[Int(bytes[i])], b = table[Int(bytes[i + 1])], c = table[Int(bytes[i + 2])], d = table[Int(bytes[i + 3])]
                if (a | b | c | d) & 0x80 != 0 { break }
                last = d
                count += 4
                i += 4
            }
            while i < bytes.count {
                let b = bytes[i]
                let v = table[Int(b)]
                if v != 0xFF && padding == 0 {   // the common case: an alphabet character
                    last = v
                    count += 1
                    i += 1
                    continue
                }
                if isSpace(b) { i += 1; continue }
                if b == 0x3D {
                    padding += 1
                    if padding > 2 { return .failure(.misplacedPadding(position: i)) }
                } else if padding > 0 {
                    return .failure(.misplacedPadding(position: i - 1))
                } else {
                    return .failure(.badCharacter(character(at: i, in: bytes), position: i))
                }
                count += 1
                i += 1
            }
            guard count % 4 == 0 else { return .failure(.badLength(count)) }
            // The unused low bits of the last character must be zero (RFC 4648 §3.5): otherwise
            // two different texts would decode to the same bytes.
            if padding == 1 && last & 0x03 != 0 || padding == 2 && last & 0x0F != 0 { return .failure(.nonCanonicalEnding) }
            return .success(count / 4 * 3 - padding)
        }
    }

    static func character(at i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Character {
        var end = i + 1
        while end < bytes.count && bytes[end] & 0xC0 == 0x80 { end += 1 }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[i..<end]), as: UTF8.self).first ?? "?"
    }

    /// `text` (checked) without its whitespace, in lines of 76 characters ending CRLF: runs of
    /// base64 characters copied as blocks (a byte loop cost as much as the check).
    public static func appendLines(of text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { bytes in
            let count = bytes.count
            guard count > 0, let src = bytes.baseAddress else { return }
            let capacity = count + (count / 76 + 1) * 2
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: capacity))
            var n = start
            out.withUnsafeMutableBufferPointer { o in
                let dst = o.baseAddress!
                var line = 0
                var i = 0
                while i < count {
                    if isSpace(src[i]) { i += 1; continue }
                    var end = i
                    let limit = min(count, i + 76 - line)
                    // Checked base64 is ASCII: a word has whitespace iff it has a byte < 0x21.
                    while end + 8 <= limit {
                        let w = UnsafeRawPointer(src + end).loadUnaligned(as: UInt64.self)
                        if (w &- 0x2121_2121_2121_2121) & ~w & 0x8080_8080_8080_8080 != 0 { break }
                        end += 8
                    }
                    while end < limit && !isSpace(src[end]) { end += 1 }
                    (dst + n).update(from: src + i, count: end - i)
                    n += end - i
                    line += end - i
                    i = end
                    if line == 76 {
                        dst[n] = 0x0D
                        dst[n + 1] = 0x0A
                        n += 2
                        line = 0
                    }
                }
                if line > 0 {
                    dst[n] = 0x0D
                    dst[n + 1] = 0x0A
                    n += 2
                }
            }
            out.removeLast(out.count - n)
        }
    }
}

public enum MediaTypes {
    /// By extension (lower-cased); what is not here is `application/octet-stream`.
    static let byExtension: [String: String] = [
        "pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "svg": "image/svg+xml", "ico": "image/x-icon", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
        "csv": "text/csv", "txt": "text/plain", "html": "text/html", "htm": "text/html", "ics": "text/calendar", "vcf": "text/vcard",
        "md": "text/markdown", "xml": "application/xml", "json": "application/json", "zip": "application/zip", "gz": "application/gzip",
        "7z": "application/x-7z-compressed", "tar": "application/x-tar", "rtf": "application/rtf", "eml": "message/rfc822",
        "doc": "application/msword", "xls": "application/vnd.ms-excel", "ppt": "application/vnd.ms-powerpoint",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "mp3": "audio/mpeg", "wav": "audio/wav", "mp4": "video/mp4", "mov": "video/quicktime",
    ]

    /// Executable types a receiving system would block (and a phisher would send).
    public static let blockedExtensions: Set<String> = [
        "exe", "bat", "cmd", "com", "cpl", "scr", "pif", "msi", "msp", "js", "jse", "vbs", "vbe", "wsf", "wsh", "ps1", "jar", "lnk",
        "hta", "reg", "dll",
    ]

    /// The last extension of `filename`, lower-cased (ASCII), or nil.
    public static func fileExtension(_ filename: String) -> String? {
        guard let dot = filename.utf8.lastIndex(of: 0x2E) else { return nil }
        let ext = filename[filename.utf8.index(after: dot)...]
        return ext.isEmpty ? nil : ext.lowercased()
    }

    public static func forFilename(_ filename: String) -> String {
        fileExtension(filename).flatMap { byExtension[$0] } ?? "application/octet-stream"
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        // RFC 2045 §5.1 token: printable ASCII except SP and tspecials.
        b > 0x20 && b < 0x7F && !"()<>@,;:\\\"/[]?=".utf8.contains(b)
    }

    /// `type/subtype` of RFC 2045 token characters (no parameters).
    public static func isValid(_ contentType: String) -> Bool {
        let parts = contentType.utf8.split(separator: 0x2F, omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.count <= 127 && $0.allSatisfy(isTokenByte) }
    }
}

extension Encodings {
    /// `key="value"` for a printable-ASCII value (quoted-string, `\` and `"` escaped).
    static func quotedParameter(_ key: String, _ value: String) -> String {
        var v = ""
        for c in value.unicodeScalars {
            if c == "\\" || c == "\"" { v += "\\" }
            v.unicodeScalars.append(c)
        }
        return "\(key)=\"\(v)\""
    }

    static func isPrintableASCII(_ s: String) -> Bool { s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } }

    /// RFC 2231 `key*=utf-8''…`: every byte but attribute characters as %XX.
    static func extendedParameter(_ key: String, _ value: String) -> String {
        var out = "\(key)*=utf-8''"
        for b in value.utf8 {
            let attributeChar = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$&+-.^_`|~".utf8.contains(b)
            if attributeChar {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "%"
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 15)]))
            }
        }
        return out
    }

    /// Printable ASCII without `"` and `\`: a plain quoted-string. Names with those are legal
    /// quoted-strings too, but parsers disagree on the escapes (ripmime drops such a part), so
    /// they are encoded like non-ASCII names.
    /// A name holding "=?" would read back as an RFC 2047 word (old clients decode those even in
    /// a quoted parameter): encoded as well (found by FuzzAudit).
    static func isPlainQuotable(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C } && !s.contains("=?")
    }

    /// The `name=` parameter of Content-Type: quoted, or one RFC 2047 word otherwise (not
    /// standard inside a parameter, but what old clients read).
    public static func nameParameter(_ filename: String) -> String {
        isPlainQuotable(filename) ? quotedParameter("name", filename) : "name=\"=?UTF-8?B?\(base64(Array(filename.utf8)))?=\""
    }

    /// The `filename` parameter of Content-Disposition: quoted, or RFC 2231 otherwise.
    public static func filenameParameter(_ filename: String) -> String {
        isPlainQuotable(filename) ? quotedParameter("filename", filename) : extendedParameter("filename", filename)
    }
}
