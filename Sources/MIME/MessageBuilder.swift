/// MessageBuilder: the RFC 5322 / MIME bytes of one message, built once at acceptance and
/// stored; every delivery attempt sends exactly these bytes (SPEC §4 "The message on the
/// wire"). Pure: the time and a random source are parameters.
///
/// Shape: From (display name + address), To, Reply-To, Subject (RFC 2047 when not ASCII),
/// Date, Message-ID `<32 hex digits@mailbox-domain>`, the caller's extra fields, MIME-Version,
/// then `multipart/alternative` with a text/plain part (given, the template's, or derived from
/// the HTML) and the text/html part — inside `multipart/related` with the inline parts when
/// there are any, inside `multipart/mixed` with the attachments when there are any. Text parts
/// are UTF-8 and quoted-printable — so every line is ASCII and ≤ 78 octets, well
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
        /// `Reply-To` addresses (validated by the caller).
        public var replyTo: [String] = []
        /// `Cc` addresses (Bcc recipients are the envelope's only: never here).
        public var cc: [String] = []
        /// Extra header fields (names from the caller's allow-list; values without CR/LF).
        public var headers: [MessageHeader] = []
        public var attachments: [AttachmentPart] = []
        public init(fromAddress: String, fromName: String?, to: String, subject: String, html: String, text: String?,
                    replyTo: [String] = [], cc: [String] = [], headers: [MessageHeader] = [], attachments: [AttachmentPart] = []) {
            self.cc = cc
            self.fromAddress = fromAddress
            self.fromName = fromName
            self.to = to
            self.subject = subject
            self.html = html
            self.text = text
            self.replyTo = replyTo
            self.headers = headers
            self.attachments = attachments
        }
    }

    /// `epochMilliseconds`: the acceptance time to the millisecond (it starts the Message-ID);
    /// `epochSeconds · 1000` when not given.
    public static func build<R: RandomNumberGenerator>(_ m: Input, epochSeconds: Int, epochMilliseconds: Int64? = nil,
                                                       random: inout R) -> OutgoingMessage {
        for v in [m.subject, m.to, m.fromAddress, m.fromName ?? ""] + m.replyTo + m.cc + m.headers.flatMap({ [$0.name, $0.value] })
            + m.attachments.flatMap({ [$0.filename, $0.contentType, $0.contentID ?? ""] }) {
            precondition(!v.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }), "CR/LF in a header value")
        }
        let domain = m.fromAddress.utf8.lastIndex(of: 0x40).map { String(m.fromAddress[m.fromAddress.utf8.index(after: $0)...]) } ?? "localhost"
        // `<` 12 hex digits of the millisecond, 20 random ones `@domain>`: unique and
        // unguessable (80 random bits), and in time order to the millisecond, so the audit's
        // Message-ID index grows at its end (ordered by the second only, every message dirtied
        // a page of its own among that second's: 19 µs of CPU per accepted message).
        let ms = UInt64(max(epochMilliseconds ?? Int64(epochSeconds) * 1000, 0))
        var idBytes: [UInt8] = [0x3C]
        appendHex(ms, &idBytes)
        idBytes.removeSubrange(1..<5)   // the low 12 of the 16 digits: 48 bits of milliseconds
        appendHex(random.next(), &idBytes)
        var tail: [UInt8] = []
        appendHex(random.next(), &tail)
        idBytes.append(contentsOf: tail[12...])
        idBytes.append(0x40)
        idBytes.append(contentsOf: domain.utf8)
        idBytes.append(0x3E)
        let messageID = String(decoding: idBytes, as: UTF8.self)
        var boundary: [UInt8] = Array("=_tickiti_".utf8)
        appendHex(random.next(), &boundary)
        appendHex(random.next(), &boundary)

        let text = m.text ?? HTMLText.plainText(fromHTML: m.html)
        let inline = m.attachments.filter { $0.contentID != nil }
        let attached = m.attachments.filter { $0.contentID == nil }
        var out: [UInt8] = []
        out.reserveCapacity(640 + m.html.utf8.count * 2 + text.utf8.count + m.subject.utf8.count * 2
                            + m.attachments.reduce(0) { $0 + $1.base64.utf8.count * 78 / 76 + 300 })
        out.append(utf8: "From: "); out.append(utf8: mailbox(name: m.fromName, address: m.fromAddress)); out.append(utf8: "\r\n")
        out.append(utf8: "To: "); out.append(utf8: m.to); out.append(utf8: "\r\n")
        if !m.cc.isEmpty {
            let list = m.cc.joined(separator: ", ")
            out.append(utf8: "Cc: "); out.append(utf8: Encodings.foldAtSpaces(list, firstLineTaken: 4) ?? list); out.append(utf8: "\r\n")
        }
        if !m.replyTo.isEmpty {
            let list = m.replyTo.joined(separator: ", ")
            out.append(utf8: "Reply-To: "); out.append(utf8: Encodings.foldAtSpaces(list, firstLineTaken: 10) ?? list); out.append(utf8: "\r\n")
        }
        out.append(utf8: "Subject: "); out.append(utf8: Encodings.headerText(m.subject)); out.append(utf8: "\r\n")
        out.append(utf8: "Date: "); Encodings.appendRFC5322Date(epochSeconds: epochSeconds, to: &out); out.append(utf8: "\r\n")
        out.append(utf8: "Message-ID: "); out.append(contentsOf: idBytes); out.append(utf8: "\r\n")
        for h in m.headers {
            out.append(utf8: h.name); out.append(utf8: ": ")
            out.append(utf8: Encodings.headerValue(h.value, nameLength: h.name.utf8.count)); out.append(utf8: "\r\n")
        }
        out.append(utf8: "MIME-Version: 1.0\r\n")

        // multipart/mixed (attachments) ⊃ multipart/related (inline parts) ⊃ multipart/alternative,
        // each level only when needed; one boundary per level.
        func open(_ type: StaticString, _ suffix: UInt8, _ extra: String = "") -> [UInt8] {
            let b = boundary + [0x5F, suffix]
            out.append(utf8: "Content-Type: "); out.append(utf8: type); out.append(utf8: ";\r\n boundary=\"")
            out.append(contentsOf: b); out.append(utf8: "\""); out.append(utf8: extra); out.append(utf8: "\r\n\r\n")
            return b
        }
        func delimiter(_ b: [UInt8]) { out.append(utf8: "--"); out.append(contentsOf: b); out.append(utf8: "\r\n") }
        func close(_ b: [UInt8]) { out.append(utf8: "--"); out.append(contentsOf: b); out.append(utf8: "--\r\n") }
        func part(_ a: AttachmentPart) {
            out.append(utf8: "Content-Type: "); out.append(utf8: a.contentType); out.append(utf8: ";\r\n ")
            out.append(utf8: Encodings.nameParameter(a.filename)); out.append(utf8: "\r\n")
            out.append(utf8: a.contentID == nil ? "Content-Disposition: attachment;\r\n " : "Content-Disposition: inline;\r\n ")
            out.append(utf8: Encodings.filenameParameter(a.filename)); out.append(utf8: "\r\n")
            if let cid = a.contentID { out.append(utf8: "Content-ID: <"); out.append(utf8: cid); out.append(utf8: ">\r\n") }
            out.append(utf8: "Content-Transfer-Encoding: base64\r\n\r\n")
            Base64.appendLines(of: a.base64, to: &out)
        }

        let mixed = attached.isEmpty ? nil : open("multipart/mixed", 0x6D)
        if let mixed { delimiter(mixed) }
        let related = inline.isEmpty ? nil : open("multipart/related", 0x72, ";\r\n type=\"multipart/alternative\"")
        if let related { delimiter(related) }
        let alternative = open("multipart/alternative", 0x61)
        for (type, body) in [("text/plain" as StaticString, text), ("text/html", m.html)] {
            delimiter(alternative)
            out.append(utf8: "Content-Type: "); out.append(utf8: type)
            out.append(utf8: "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
            out.append(contentsOf: Encodings.quotedPrintable(body))
            out.append(utf8: "\r\n")
        }
        close(alternative)
        if let related {
            for a in inline { delimiter(related); part(a) }
            close(related)
        }
        if let mixed {
            for a in attached { delimiter(mixed); part(a) }
            close(mixed)
        }
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
