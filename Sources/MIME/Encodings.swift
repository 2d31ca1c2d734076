/// Encodings used on the wire: quoted-printable (RFC 2045 §6.7), RFC 2047 encoded-words
/// for non-ASCII header text, base64 (RFC 4648), and the RFC 5322 date.
import HTTP1
public enum Encodings {
    static let hex = Array("0123456789ABCDEF".utf8)
    static let b64 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Quoted-printable with CRLF line ends: encoded lines ≤ 76 characters (soft breaks
    /// `=`), `=`, non-ASCII and control bytes as `=XX`, trailing space/tab encoded, any input
    /// line ending (LF, CRLF, lone CR) normalised to CRLF. A leading "." is encoded too, so
    /// no line starts with a dot (one less thing for SMTP dot-stuffing to get wrong).
    public static func quotedPrintable(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { quotedPrintable($0) }
    }

    /// Bytes written per input byte at most: 3 (`=XX`, or CRLF for a lone CR/LF), plus a soft
    /// break (`=` CRLF) per encoded line, and a line holds at least 73 output bytes, so at
    /// least 24 input bytes.
    static func quotedPrintableCapacity(_ count: Int) -> Int { 3 * count + 3 * (count / 24 + 1) }

    public static func quotedPrintable(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let capacity = quotedPrintableCapacity(bytes.count)
        return [UInt8](unsafeUninitializedCapacity: capacity) { out, written in
            // Written through the buffer's pointer: appending to the array byte by byte cost
            // a capacity and uniqueness check per byte, ~50 instructions each.
            var n = 0
            var lineLength = 0
            var i = 0
            @inline(__always) func put(_ b: UInt8) { precondition(n < capacity); out[n] = b; n += 1 }
            while i < bytes.count {
                let b = bytes[i]
                if b == 0x0D || b == 0x0A {
                    put(0x0D); put(0x0A)
                    lineLength = 0
                    if b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A { i += 1 }
                    i += 1
                    continue
                }
                let atLineEnd = i + 1 == bytes.count || bytes[i + 1] == 0x0D || bytes[i + 1] == 0x0A
                let literal = ((b >= 0x21 && b <= 0x7E && b != 0x3D) || ((b == 0x20 || b == 0x09) && !atLineEnd))
                    && !(b == 0x2E && lineLength == 0)
                let width = literal ? 1 : 3
                if lineLength + width > 75 {   // soft line break
                    put(0x3D); put(0x0D); put(0x0A)
                    lineLength = 0
                    if b == 0x2E && literal {   // a dot that now starts a line is encoded after all
                        put(0x3D); put(0x32); put(0x45)
                        lineLength = 3
                        i += 1
                        continue
                    }
                }
                if literal {
                    put(b)
                } else {
                    put(0x3D); put(hex[Int(b >> 4)]); put(hex[Int(b & 15)])
                }
                lineLength += width
                i += 1
            }
            written = n
        }
    }

    public static func base64(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(contentsOf: [b64[Int(n >> 18 & 63)], b64[Int(n >> 12 & 63)], b64[Int(n >> 6 & 63)], b64[Int(n & 63)]])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out.append(contentsOf: [b64[Int(n >> 18 & 63)], b64[Int(n >> 12 & 63)], 0x3D, 0x3D])
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(contentsOf: [b64[Int(n >> 18 & 63)], b64[Int(n >> 12 & 63)], b64[Int(n >> 6 & 63)], 0x3D])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Header text: as is when printable ASCII, else RFC 2047 `=?UTF-8?B?…?=` words of at most
    /// 75 characters, split on character boundaries, joined by CRLF SP (folding).
    public static func headerText(_ s: String) -> String {
        var plain = true
        var previous: UInt8 = 0
        for b in s.utf8 {
            if b < 0x20 || b >= 0x7F || (previous == 0x3D && b == 0x3F) { plain = false; break }   // "=?" would read as an encoded word
            previous = b
        }
        if plain {
            // "Subject: " and the value on one line when it fits in 78 columns (RFC 5322
            // §2.1.1); longer, folded before spaces; a word too long for a 78-column line
            // cannot be folded: encoded words instead (lines of ≤ 78 either way, never
            // near the 998-octet limit).
            if s.utf8.count <= 78 - 9 { return s }
            if let folded = foldAtSpaces(s, firstLineTaken: 9) { return folded }
        }
        var words: [String] = []
        var chunk: [UInt8] = []
        // 42 bytes → 56 base64 chars → 68-character words, so "Subject: " + a word fits in
        // 78 columns (RFC 2047 §2 allows 75 per word; RFC 5322 §2.1.1 asks for ≤ 78 per line).
        for ch in s {
            let bytes = Array(String(ch).utf8)
            if chunk.count + bytes.count > 42 {
                words.append("=?UTF-8?B?\(base64(chunk))?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?\(base64(chunk))?=") }
        return words.joined(separator: "\r\n ")
    }

    /// A caller's extra header field value (no CR/LF): printable ASCII as is, folded before
    /// spaces to 78 columns where it can be (a long URL cannot, and must not become encoded
    /// words: List-Unsubscribe is read by machines); otherwise RFC 2047 words, on a line of
    /// their own when the name leaves no room for one.
    public static func headerValue(_ s: String, nameLength: Int) -> String {
        if isPrintableASCII(s) {
            return foldAtSpaces(s, firstLineTaken: nameLength + 2) ?? s
        }
        let words = headerText(s)
        if !words.hasPrefix("=?") { return words }
        return nameLength + 2 + 68 > 78 ? "\r\n " + words : words
    }

    /// Folds `s` by inserting CRLF before spaces so that lines are at most 78 columns (the
    /// first line already holds `firstLineTaken` columns of header name); nil when a word
    /// does not fit on a line of its own.
    static func foldAtSpaces(_ s: String, firstLineTaken: Int) -> String? {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 30)
        var lineLength = firstLineTaken
        var i = 0
        while i < bytes.count {
            // The next unit: the spaces before a word, then the word.
            var j = i
            while j < bytes.count && bytes[j] == 0x20 { j += 1 }
            while j < bytes.count && bytes[j] != 0x20 { j += 1 }
            let unit = bytes[i..<j]
            if lineLength + unit.count > 78 && lineLength > 1 && unit.first == 0x20 {
                out.append(contentsOf: [0x0D, 0x0A])   // the unit's leading space starts the next line
                lineLength = 0
            }
            if lineLength + unit.count > 78 { return nil }
            out.append(contentsOf: unit)
            lineLength += unit.count
            i = j
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 5322 §3.3 date-time in UTC: "Wed, 25 Nov 2026 02:58:58 +0000".
    public static func rfc5322Date(epochSeconds: Int) -> String {
        IMFDate.format(epochSeconds: epochSeconds, zone: "+0000")
    }

    public static func appendRFC5322Date(epochSeconds: Int, to out: inout [UInt8]) {
        IMFDate.append(epochSeconds: epochSeconds, zone: "+0000", to: &out)
    }
}

extension Array where Element == UInt8 {
    /// Appends the string's UTF-8 at once (the UTF-8 view's own `append(contentsOf:)` goes
    /// through a generic, byte-at-a-time path): message and command bytes are built with it.
    @inline(__always)
    public mutating func append(utf8 s: String) {
        var s = s
        s.withUTF8 { append(contentsOf: $0) }
    }

    @inline(__always)
    public mutating func append(utf8 s: StaticString) {
        s.withUTF8Buffer { append(contentsOf: $0) }
    }
}
