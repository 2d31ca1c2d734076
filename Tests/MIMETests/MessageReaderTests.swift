/// MessageReader: what MessageBuilder writes reads back to the same subject, names, text and
/// HTML (non-ASCII, long lines, trailing spaces, `=` signs, dots at line starts); hand-written
/// messages cover base64, LF-only line ends, nested multiparts, missing parts and garbage.
import Testing
@testable import MIME

@Suite struct MessageReaderTests {
    static let long = String(repeating: "Lorem ipsum dolor sit amet, ", count: 80)

    @Test(arguments: [
        ("Hello", "<p>Hi</p>", nil as String?, "Support" as String?),
        ("Rechnung Nr. 42 – fällig am 1. Dezember 🧾", "<p>Grüße aus Köln</p>", "Grüße aus Köln", "Müller & Söhne"),
        ("=?UTF-8?B?not-a-word?= literal", "<p>a=b =3D c</p>\n.leading dot\n", "trailing space   \nnext line", nil),
        ("Long", "<div>\(MessageReaderTests.long)</div>", MessageReaderTests.long, "A very long display name that goes past sixty columns for sure"),
        ("日本語の件名です、とても長い件名がここに続きます。もっと長く。さらに長く。", "<p>本文</p>", nil, "山田"),
    ])
    func readsBackWhatTheBuilderWrote(subject: String, html: String, text: String?, name: String?) {
        var r = FixedRandom()
        let m = MessageBuilder.build(.init(fromAddress: "support@shop.example", fromName: name, to: "alice@example.org",
                                           subject: subject, html: html, text: text), epochSeconds: 1_795_000_000, random: &r)
        let read = MessageReader.read(m.bytes)
        #expect(read.header("subject") == subject)
        #expect(read.header("To") == "alice@example.org")
        #expect(read.header("Message-ID") == m.messageID)
        // Quoted-printable is canonical text: line ends come back as CRLF.
        #expect(read.html == crlf(html))
        #expect(read.text == crlf(text ?? HTMLText.plainText(fromHTML: html)))
        if let name { #expect(read.header("From")?.contains(name) == true, "\(read.header("From") ?? "")") }
        #expect(read.header("From")?.hasSuffix("support@shop.example>") == (name != nil))
        #expect(read.headers.map(\.name) == ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"])
    }

    func crlf(_ s: String) -> String {
        s.replacingAll("\r\n", with: "\n").replacingAll("\n", with: "\r\n")
    }

    @Test func base64PartsLFLineEndsAndNestedMultiparts() {
        let raw = """
            Subject: =?utf-8?q?caf=C3=A9_au_lait?=
            Content-Type: multipart/mixed; boundary=outer

            preamble
            --outer
            Content-Type: multipart/alternative; boundary="inner"

            --inner
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: base64

            aMOpbGxv
            IHdvcmxk
            --inner
            Content-Type: text/html

            <b>hi</b>
            --inner--
            --outer
            Content-Type: application/pdf
            Content-Transfer-Encoding: base64

            JVBERi0=
            --outer--
            epilogue
            """
        let read = MessageReader.read(Array(raw.utf8))
        #expect(read.header("Subject") == "café au lait")
        #expect(read.text == "héllo world")
        #expect(read.html == "<b>hi</b>")
    }

    @Test(arguments: [
        ("", nil as String?, "" as String?, 0),
        ("no colon here\r\n\r\nbody", nil, "body", 0),
        ("Subject: x\r\n\r\nplain body", nil, "plain body", 1),
        ("Content-Type: text/html\r\n\r\n<i>x</i>", "<i>x</i>", nil, 1),
        ("Content-Type: multipart/alternative\r\n\r\n--x\r\n\r\nno boundary param", nil, nil, 1),
        ("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nunterminated", nil, "unterminated", 1),
        ("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbad =ZZ escape=\r\nsoft", nil, "bad =ZZ escapesoft", 2),
        ("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!@@@", nil, "", 2),
    ])
    func malformedInputNeverTraps(raw: String, html: String?, text: String?, headerCount: Int) {
        let read = MessageReader.read(Array(raw.utf8))
        #expect(read.html == html)
        #expect(read.text == text)
        #expect(read.headers.count == headerCount)
    }

    @Test(arguments: [
        ("a=3Db", "a=b"), ("soft=\r\nbreak", "softbreak"), ("soft=  \nbreak", "softbreak"), ("trail   \r\nx", "trail\r\nx"),
        ("=C3=A9", "é"), ("=c3=a9", "é"), ("end=", "end"), ("tab\there", "tab\there"),
    ])
    func quotedPrintable(encoded: String, decoded: String) {
        #expect(String(decoding: MessageReader.decodeQuotedPrintable(Array(encoded.utf8)[...]), as: UTF8.self) == decoded)
    }

    @Test func quotedPrintableRoundTripsEveryByteClass() {
        var s = ""
        for v in 0x20..<0x7F { s.unicodeScalars.append(Unicode.Scalar(v)!) }
        s += "\r\nÄ€😀 \t\r\n" + String(repeating: "x", count: 300) + " \r\n."
        let encoded = Encodings.quotedPrintable(s)
        #expect(String(decoding: MessageReader.decodeQuotedPrintable(encoded[...]), as: UTF8.self) == s)
    }
}

/// The files of a message as the audit lists them: read back from what MessageBuilder writes
/// (three levels deep), names decoded from RFC 2231 and RFC 2047, sizes without decoding, and
/// each one's bytes by index.
@Suite struct MessageReaderAttachmentTests {
    @Test func filesOfEveryLayoutAreListed() {
        let pdf = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var r = FixedRandom()
        let m = MessageBuilder.build(.init(fromAddress: "a@shop.example", fromName: nil, to: "b@x.example", subject: "s", html: "<p>hi <img src=\"cid:logo\"></p>",
                                           text: "hi", attachments: [
                                               AttachmentPart(filename: "Rechnung März.pdf", base64: Encodings.base64(pdf), contentType: "application/pdf", contentID: nil, decodedSize: pdf.count),
                                               AttachmentPart(filename: "notes.txt", base64: "aGVsbG8=", contentType: "text/plain", contentID: nil, decodedSize: 5),
                                               AttachmentPart(filename: "logo.png", base64: "iVBORw==", contentType: "image/png", contentID: "logo", decodedSize: 4),
                                           ]), epochSeconds: 0, random: &r)
        let read = MessageReader.read(m.bytes)
        #expect(read.text == "hi" && read.html == "<p>hi <img src=\"cid:logo\"></p>", "the body parts, not the text/plain attachment")
        #expect(read.attachments.map(\.filename) == ["logo.png", "Rechnung März.pdf", "notes.txt"])
        #expect(read.attachments.map(\.contentType) == ["image/png", "application/pdf", "text/plain"])
        #expect(read.attachments.map(\.size) == [4, 5000, 5])
        #expect(read.attachments.map(\.inline) == [true, false, false] && read.attachments[0].contentID == "logo")
        #expect(MessageReader.attachment(m.bytes, index: 1)?.1 == pdf)
        #expect(MessageReader.attachment(m.bytes, index: 2)?.1 == Array("hello".utf8))
        #expect(MessageReader.attachment(m.bytes, index: 3) == nil)
    }

    @Test(arguments: [
        ("attachment; filename*=utf-8''%E2%82%AC%20rate.pdf", "€ rate.pdf"),
        ("attachment; filename=\"a; b.pdf\"", "a; b.pdf"),
        ("attachment; filename=\"say \\\"hi\\\".txt\"", "say \"hi\".txt"),
        ("attachment; filename=plain.csv", "plain.csv"),
    ])
    func fileNamesOthersWrite(disposition: String, name: String) {
        let raw = Array("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: application/octet-stream; name=\"=?UTF-8?B?w7w=?=\"\r\nContent-Disposition: \(disposition)\r\nContent-Transfer-Encoding: base64\r\n\r\nYWJj\r\n--b--\r\n".utf8)
        let read = MessageReader.read(raw)
        #expect(read.text == "body")
        #expect(read.attachments.map(\.filename) == [name])
        #expect(read.attachments.first?.size == 3)
    }

    @Test func theNameParameterWhenThereIsNoDisposition() {
        let raw = Array("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=\"=?UTF-8?B?w7wucGRm?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYWJj\r\n--b--\r\n".utf8)
        #expect(MessageReader.read(raw).attachments.map(\.filename) == ["ü.pdf"])
    }
}

/// FromField: the audit's From (display name as the header has it, and address).
@Suite struct FromFieldTests {
    @Test(arguments: [
        ("\"Shop Sales\" <sales@shop.example>", "Shop Sales", "sales@shop.example"),
        ("Shop <sales@shop.example>", "Shop", "sales@shop.example"),
        ("Müller & Söhne <m@shop.example>", "Müller & Söhne", "m@shop.example"),
        ("\"Shop \\\"Best\\\" Sales\" <a@b.example>", "Shop \"Best\" Sales", "a@b.example"),
        ("\"Doe, Jane\"   <jane@x.example>", "Doe, Jane", "jane@x.example"),
        ("sales@shop.example", nil, "sales@shop.example"), ("<sales@shop.example>", nil, "sales@shop.example"),
        ("  \"\" <a@b.example> ", nil, "a@b.example"), ("", nil, ""),
    ] as [(String, String?, String)])
    func displayNameAndAddress(value: String, name: String?, address: String) {
        let f = FromField.parse(value)
        #expect(f.name == name && f.address == address, "\(value)")
    }
}
