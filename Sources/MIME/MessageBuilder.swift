/// MessageBuilder: the RFC 5322 / MIME bytes of one message, built once at acceptance and
/// stored; every delivery attempt sends exactly these bytes (SPEC §4 "The message on the
/// wire"). Pure: the time and a random source are parameters.
///
/// Shape: From (display name + address), To, Subject (RFC 2047 when not ASCII), Date,
/// Message-ID `<32 hex digits@mailbox-domain>`, MIME-Version, then `multipart/alternative`
/// with a text/plain part (the template's text or derived from the HTML) and the text/html
/// part, both UTF-8 and quoted-printable — so every line is ASCII and ≤ 78 octets, well
/// within RFC 5322's 998 — with CRLF line ends. A display name is a quoted-string (or
/// encoded-words when not ASCII); CR/LF can never reach a header (callers validate, and
/// this builder refuses them too).
public struct OutgoingMessage: Sendable, Equatable {
    public var messageID: String
    public var bytes: [UInt8]
}

public enum MessageBuilder {
    public struct Input: Sendable {
        public var fromAddress: String
        public var fromName: String?
        public var to: String
        public var subject: String
        public var html: String
        public var text: String?
        public init(fromAddress: String, fromName: String?, to: String, subject: String, html: String, text: String?) {
            self.fromAddress = fromAddress
            self.fromName = fromName
            self.to = to
            self.subject = subject
            self.html = html
            self.text = text
        }
    }

    public static func build<R: RandomNumberGenerator>(_ m: Input, epochSeconds: Int, random: inout R) -> OutgoingMessage {
        for v in [m.subject, m.to, m.fromAddress, m.fromName ?? ""] {
            precondition(!v.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }), "CR/LF in a header value")
        }
        let domain = m.fromAddress.utf8.lastIndex(of: 0x40).map { String(m.fromAddress[m.fromAddress.utf8.index(after: $0)...]) } ?? "localhost"
        var idBytes: [UInt8] = [0x3C]
        appendHex(random.next(), &idBytes)
        appendHex(random.next(), &idBytes)
        idBytes.append(0x40)
        idBytes.append(contentsOf: domain.utf8)
        idBytes.append(0x3E)
        let messageID = String(decoding: idBytes, as: UTF8.self)
        var boundary: [UInt8] = Array("=_tickiti_".utf8)
        appendHex(random.next(), &boundary)
        appendHex(random.next(), &boundary)

        let text = m.text ?? HTMLText.plainText(fromHTML: m.html)
        var out: [UInt8] = []
        out.reserveCapacity(640 + m.html.utf8.count * 2 + text.utf8.count + m.subject.utf8.count * 2)
        out.append(utf8: "From: "); out.append(utf8: mailbox(name: m.fromName, address: m.fromAddress)); out.append(utf8: "\r\n")
        out.append(utf8: "To: "); out.append(utf8: m.to); out.append(utf8: "\r\n")
        out.append(utf8: "Subject: "); out.append(utf8: Encodings.headerText(m.subject)); out.append(utf8: "\r\n")
        out.append(utf8: "Date: "); Encodings.appendRFC5322Date(epochSeconds: epochSeconds, to: &out); out.append(utf8: "\r\n")
        out.append(utf8: "Message-ID: "); out.append(contentsOf: idBytes); out.append(utf8: "\r\n")
        out.append(utf8: "MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary=\"")
        out.append(contentsOf: boundary)
        out.append(utf8: "\"\r\n\r\n")
        for (type, body) in [("text/plain" as StaticString, text), ("text/html", m.html)] {
            out.append(utf8: "--"); out.append(contentsOf: boundary)
            out.append(utf8: "\r\nContent-Type: "); out.append(utf8: type)
            out.append(utf8: "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
            out.append(contentsOf: Encodings.quotedPrintable(body))
            out.append(utf8: "\r\n")
        }
        out.append(utf8: "--"); out.append(contentsOf: boundary); out.append(utf8: "--\r\n")
        return OutgoingMessage(messageID: messageID, bytes: out)
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// 16 lower-case hex digits, most significant first.
    static func appendHex(_ v: UInt64, _ out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { digits in
            hexDigits.withUnsafeBufferPointer { table in
                for i in 0..<16 { digits[i] = table[Int((v >> UInt64(60 - 4 * i)) & 15)] }
            }
            out.append(contentsOf: UnsafeBufferPointer(digits))
        }
    }

    /// `"Name" <address>` (quoted-string, or encoded-words when not ASCII), or the address.
    static func mailbox(name: String?, address: String) -> String {
        guard let name, !name.isEmpty else { return address }
        if name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) {
            let escaped = name.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
            let quoted = "\"\(escaped)\""
            return quoted.utf8.count + address.utf8.count > 60 ? "\(quoted)\r\n <\(address)>" : "\(quoted) <\(address)>"
        }
        return "\(Encodings.headerText(name))\r\n <\(address)>"   // folded: encoded words can be long
    }

}

extension String {
    func replacingAll(_ a: String, with b: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: a) {
            out += rest[..<r.lowerBound]
            out += b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
