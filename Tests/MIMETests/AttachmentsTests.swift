/// Base64 checking and re-wrapping against RFC 4648's test vectors and random round trips,
/// media types and file-name parameters.
import Testing
@testable import MIME

@Suite struct AttachmentsTests {
    /// RFC 4648 §10.
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Encodings.base64(Array(plain.utf8)) == encoded)
        #expect(Base64.check(encoded) == .success(plain.utf8.count))
        #expect(MessageReader.decodeBase64(Array(encoded.utf8)) == Array(plain.utf8))
        #expect(Base64.check(" \(encoded.prefix(2))\r\n\t\(encoded.dropFirst(2)) ") == .success(plain.utf8.count), "whitespace tolerated")
    }

    @Test(arguments: [
        ("data:application/pdf;base64,Zm9v", Base64.Problem.dataURL),
        ("Zm9", .badLength(3)),
        ("Zm9vY", .badLength(5)),
        ("Zg=", .badLength(3)),
        ("Z===", .misplacedPadding(position: 3)),
        ("Zg==Zm9v", .misplacedPadding(position: 3)),
        ("Zm9v!A==", .badCharacter("!", position: 4)),
        ("Zm9v-_==", .badCharacter("-", position: 4)),
        ("Zh==", .nonCanonicalEnding),
        ("Zm9=", .nonCanonicalEnding),
    ])
    func refused(text: String, problem: Base64.Problem) {
        #expect(Base64.check(text) == .failure(problem))
    }

    /// Random bytes: encoded, broken into odd lines, checked, re-wrapped to 76 columns and
    /// decoded give the same bytes back.
    @Test func randomRoundTrips() {
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 2, 3, 56, 57, 58, 1000, 4099] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let encoded = Encodings.base64(bytes)
            var odd = ""
            for (i, c) in encoded.enumerated() { odd.append(c); if i % 61 == 60 { odd += "\r\n" } }
            #expect(Base64.check(odd) == .success(n))
            var wrapped: [UInt8] = []
            Base64.appendLines(of: odd, to: &wrapped)
            let lines = String(decoding: wrapped, as: UTF8.self).components(separatedBy: "\r\n")
            #expect(lines.last == "")
            #expect(lines.dropLast().allSatisfy { $0.count <= 76 } && lines.dropLast().dropLast().allSatisfy { $0.count == 76 })
            #expect(MessageReader.decodeBase64(wrapped) == bytes)
        }
    }

    @Test(arguments: [
        ("invoice.pdf", "application/pdf"), ("INVOICE.PDF", "application/pdf"), ("photo.JPG", "image/jpeg"), ("a.jpeg", "image/jpeg"),
        ("report.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("cal.ics", "text/calendar"),
        ("archive.tar.gz", "application/gzip"), ("README", "application/octet-stream"), ("trailing.", "application/octet-stream"),
        ("x.unknownext", "application/octet-stream"),
    ])
    func mediaTypes(filename: String, type: String) {
        #expect(MediaTypes.forFilename(filename) == type)
    }

    @Test(arguments: [("application/pdf", true), ("image/svg+xml", true), ("pdf", false), ("a/b/c", false), ("text/plain; charset=x", false),
                      ("/x", false), ("x/", false), ("te xt/plain", false)])
    func mediaTypeSyntax(type: String, valid: Bool) {
        #expect(MediaTypes.isValid(type) == valid)
    }

    @Test func filenameParameters() {
        #expect(Encodings.filenameParameter("Invoice 42.pdf") == #"filename="Invoice 42.pdf""#)
        #expect(Encodings.filenameParameter(#"a "b" \c.txt"#) == "filename*=utf-8''a%20%22b%22%20%5Cc.txt")
        #expect(Encodings.quotedParameter("name", #"a "b" \c"#) == #"name="a \"b\" \\c""#)
        #expect(Encodings.filenameParameter("Rechnung März.pdf") == "filename*=utf-8''Rechnung%20M%C3%A4rz.pdf")
        // Looks like an RFC 2047 word: encoded, so no reader decodes it into something else.
        #expect(Encodings.filenameParameter("a =?UTF-8?B?w6k=?= b.txt").hasPrefix("filename*=utf-8''"))
        var r = FixedRandom()
        let m = MessageBuilder.build(.init(fromAddress: "a@b.example", fromName: nil, to: "c@d.example", subject: "s", html: "x", text: nil,
                                           attachments: [AttachmentPart(filename: "a =?UTF-8?B?w6k=?= b.txt", base64: "YQ==", contentType: "text/plain",
                                                                        contentID: nil, decodedSize: 1)]), epochSeconds: 0, random: &r)
        #expect(MessageReader.attachment(m.bytes, index: 0)?.0.filename == "a =?UTF-8?B?w6k=?= b.txt")
        #expect(Encodings.nameParameter("Rechnung März.pdf") == "name=\"=?UTF-8?B?\(Encodings.base64(Array("Rechnung März.pdf".utf8)))?=\"")
    }
}
