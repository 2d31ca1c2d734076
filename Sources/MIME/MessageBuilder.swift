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
        let domain = m.fromAddress.split(separator: "@").last.map(String.init) ?? "localhost"
        let messageID = "<\(hex(random.next()))\(hex(random.next()))@\(domain)>"
        let boundary = "=_tickiti_\(hex(random.next()))\(hex(random.next()))"
        var h = ""
        h += "From: \(mailbox(name: m.fromName, address: m.fromAddress))\r\n"
        h += "To: \(m.to)\r\n"
        h += "Subject: \(Encodings.headerText(m.subject))\r\n"
        h += "Date: \(Encodings.rfc5322Date(epochSeconds: epochSeconds))\r\n"
        h += "Message-ID: \(messageID)\r\n"
        h += "MIME-Version: 1.0\r\n"
        h += "Content-Type: multipart/alternative;\r\n boundary=\"\(boundary)\"\r\n"
        h += "\r\n"
        var out = Array(h.utf8)
        let text = m.text ?? HTMLText.plainText(fromHTML: m.html)
        for (type, body) in [("text/plain", text), ("text/html", m.html)] {
            out += Array("--\(boundary)\r\nContent-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".utf8)
            out += Encodings.quotedPrintable(body)
            out += [0x0D, 0x0A]
        }
        out += Array("--\(boundary)--\r\n".utf8)
        return OutgoingMessage(messageID: messageID, bytes: out)
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

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
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
