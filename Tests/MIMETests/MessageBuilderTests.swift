/// MessageBuilder and encodings: byte-level properties, plus a round trip through a real
/// MIME parser (Python's `email` package) for non-ASCII subjects, names and long lines.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import MIME

struct FixedRandom: RandomNumberGenerator {
    var n: UInt64 = 0x1234
    mutating func next() -> UInt64 { n &+= 0x9E37_79B9_7F4A_7C15; return n }
}

@Suite struct MessageBuilderTests {
    func build(subject: String = "Hello", html: String = "<p>Hi</p>", text: String? = nil, name: String? = "Support") -> OutgoingMessage {
        var r = FixedRandom()
        return MessageBuilder.build(.init(fromAddress: "support@shop.example", fromName: name, to: "alice@example.org",
                                          subject: subject, html: html, text: text), epochSeconds: 1_795_000_000, random: &r)
    }

    @Test func headersAndStructure() {
        let m = build()
        let s = String(decoding: m.bytes, as: UTF8.self)
        #expect(s.hasPrefix("From: \"Support\" <support@shop.example>\r\nTo: alice@example.org\r\nSubject: Hello\r\nDate: "))
        #expect(m.messageID.hasPrefix("<") && m.messageID.hasSuffix("@shop.example>"))
        #expect(s.contains("Message-ID: \(m.messageID)\r\n"))
        #expect(s.contains("MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="))
        #expect(s.contains("Content-Type: text/plain; charset=utf-8"))
        #expect(s.contains("Content-Type: text/html; charset=utf-8"))
    }

    /// No header line over 78 columns for any subject up to the 998-byte limit: short ones on
    /// one line, long ones folded before spaces (unfolding gives the subject back), and a
    /// subject that is one long word as encoded words. (A 998-byte subject made a 1 007-octet
    /// line before.)
    @Test(arguments: [
        "Short", String(repeating: "Order shipped ", count: 70), String(repeating: "x", count: 998),
        String(repeating: "word ", count: 150) + String(repeating: "y", count: 200), "  leading and  double  spaces " + String(repeating: "z ", count: 60),
        String(repeating: "Grüße ", count: 100),
    ])
    func subjectHeadersAreFoldedOrEncoded(subject: String) throws {
        let m = build(subject: subject)
        let headEnd = m.bytes.firstRange(of: [0x0D, 0x0A, 0x0D, 0x0A])!.lowerBound
        let head = String(decoding: m.bytes[..<headEnd], as: UTF8.self)
        for line in head.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 78, "a \(line.utf8.count)-octet header line")
        }
        // Unfold the Subject field (RFC 5322 §2.2.3: remove each CRLF before WSP).
        let start = try #require(head.range(of: "\r\nSubject: "))
        var field = String(head[start.upperBound...])
        if let next = field.range(of: "\r\nDate: ") { field = String(field[..<next.lowerBound]) }
        let unfolded = field.replacingOccurrences(of: "\r\n", with: "")
        if subject.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) && !unfolded.hasPrefix("=?") {
            #expect(unfolded == subject)
        } else {
            #expect(unfolded.hasPrefix("=?UTF-8?B?"))   // decoded back by Python in the round-trip test
        }
    }

    @Test func everyLineEndsInCRLFAndIsShortAndASCII() {
        let long = String(repeating: "Ünïcödé and a very long line without breaks ", count: 200)
        let m = build(subject: String(repeating: "Grüße ", count: 30), html: "<p>\(long)</p>\n.leading dot\nx \n", text: nil)
        var lineStart = 0
        let bodyStart = m.bytes.firstRange(of: [0x0D, 0x0A, 0x0D, 0x0A])!.upperBound
        for (i, b) in m.bytes.enumerated() {
            #expect(b < 0x80, "non-ASCII byte at \(i)")
            if b == 0x0A {
                #expect(i > 0 && m.bytes[i - 1] == 0x0D, "bare LF at \(i)")
                // RFC 5322 §2.1.1: ≤ 998 always; we keep to 78 (QP bodies, folded headers).
                #expect(i - lineStart <= 78 || (i < bodyStart && i - lineStart <= 998), "line of \(i - lineStart) octets")
                if i < bodyStart { #expect(i - lineStart <= 78, "header line of \(i - lineStart) octets") }
                #expect(m.bytes[lineStart] != 0x2E || i - lineStart < 2, "line starts with a dot")
                lineStart = i + 1
            }
        }
    }

    @Test func messageIDsDiffer() {
        var r = FixedRandom()
        let input = MessageBuilder.Input(fromAddress: "a@b.example", fromName: nil, to: "c@d.example", subject: "s", html: "h", text: nil)
        let a = MessageBuilder.build(input, epochSeconds: 0, random: &r)
        let b = MessageBuilder.build(input, epochSeconds: 0, random: &r)
        #expect(a.messageID != b.messageID)
    }

    @Test(arguments: [
        ("plain ascii", "plain ascii"), ("a=b", "a=3Db"), ("trailing space ", "trailing space=20"), ("é", "=C3=A9"),
        (".dot", "=2Edot"), ("line1\nline2", "line1\r\nline2"), ("x\r\ny", "x\r\ny"),
    ])
    func quotedPrintable(input: String, expected: String) {
        #expect(String(decoding: Encodings.quotedPrintable(input), as: UTF8.self) == expected)
    }

    /// The quoted-printable definition, byte by byte (what the encoder wrote before it wrote
    /// through a pointer): the encoder must agree with it on any input.
    static func referenceQuotedPrintable(_ bytes: [UInt8]) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        var lineLength = 0
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0D || b == 0x0A {
                out += [0x0D, 0x0A]
                lineLength = 0
                if b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A { i += 1 }
                i += 1
                continue
            }
            let atLineEnd = i + 1 == bytes.count || bytes[i + 1] == 0x0D || bytes[i + 1] == 0x0A
            let literal = ((b >= 0x21 && b <= 0x7E && b != 0x3D) || ((b == 0x20 || b == 0x09) && !atLineEnd))
                && !(b == 0x2E && lineLength == 0)
            let width = literal ? 1 : 3
            if lineLength + width > 75 {
                out += [0x3D, 0x0D, 0x0A]
                lineLength = 0
                if b == 0x2E && literal {
                    out += [0x3D, 0x32, 0x45]
                    lineLength = 3
                    i += 1
                    continue
                }
            }
            out += literal ? [b] : [0x3D, hex[Int(b >> 4)], hex[Int(b & 15)]]
            lineLength += width
            i += 1
        }
        return out
    }

    /// Random inputs weighted toward what stresses the encoder: bytes that need =XX (the most
    /// output per input byte, the capacity bound), dots and spaces at line ends, CR/LF runs.
    @Test func quotedPrintableAgreesWithTheDefinition() {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        let alphabet: [UInt8] = [0x2E, 0x20, 0x09, 0x0D, 0x0A, 0x3D, 0x00, 0xFF, 0xC3, 0x41, 0x7A, 0x7F]
        for round in 0..<3000 {
            let length = next() % (round < 2000 ? 200 : 3000)
            let bytes = (0..<length).map { _ in next() % 3 == 0 ? UInt8(next() % 256) : alphabet[next() % alphabet.count] }
            let encoded = bytes.withUnsafeBufferPointer { Encodings.quotedPrintable($0) }
            #expect(encoded == Self.referenceQuotedPrintable(bytes))
            #expect(encoded.count <= Encodings.quotedPrintableCapacity(bytes.count))
        }
        // The worst case for the bound: every byte encoded.
        for length in [0, 1, 24, 25, 26, 75, 76, 1000] {
            let bytes = [UInt8](repeating: 0xFF, count: length)
            let encoded = bytes.withUnsafeBufferPointer { Encodings.quotedPrintable($0) }
            #expect(encoded == Self.referenceQuotedPrintable(bytes))
        }
    }

    @Test func base64AndEncodedWords() {
        #expect(Encodings.base64(Array("Man".utf8)) == "TWFu")
        #expect(Encodings.base64(Array("Ma".utf8)) == "TWE=")
        #expect(Encodings.base64(Array("M".utf8)) == "TQ==")
        #expect(Encodings.headerText("ascii") == "ascii")
        #expect(Encodings.headerText("é") == "=?UTF-8?B?w6k=?=")
        for word in Encodings.headerText(String(repeating: "ß", count: 100)).components(separatedBy: "\r\n ") {
            #expect(word.count <= 75)
        }
    }

    @Test func rfc5322Date() {
        #expect(Encodings.rfc5322Date(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 +0000")
    }

    @Test func htmlToText() {
        let t = HTMLText.plainText(fromHTML: "<html><head><title>x</title><style>p{}</style></head><body><h1>Invoice</h1><p>Total: 5 &amp; 6 &lt;ok&gt;</p><ul><li>one</li><li>two</li></ul><a href=\"https://x.example/p\">pay</a><script>alert(1)</script></body></html>")
        #expect(t == "Invoice\n\nTotal: 5 & 6 <ok>\n\n- one\n- two\npay (https://x.example/p)")
    }

    /// Tag names are matched case-insensitively by their whole name: a longer name that starts
    /// like a known tag is not it, and names too long for any known tag are just dropped.
    @Test(arguments: [
        ("<P>a</P><BR/>b<BLOCKQUOTE>c</BLOCKQUOTE>", "a\n\nb\nc"),
        ("<SCRIPT>x</script>y<Style>z</STYLE>w", "yw"),
        ("<pre>a</pre><paragraph>b</paragraph><lix>c", "abc"),
        ("a<averyveryverylongtagnamezzz>b</averyveryverylongtagnamezzz>c", "abc"),
        ("<scriptsixteenchr>kept</scriptsixteenchr>", "kept"),
        ("<LI>one<Li>two", "- one\n- two"),
        ("<A HREF='https://x.example'>go</A>", "go (https://x.example)"),
    ])
    func htmlToTextTagNames(html: String, expected: String) {
        #expect(HTMLText.plainText(fromHTML: html) == expected)
    }

    @Test func pythonEmailParserDecodesWhatWeEncode() throws {
        let subject = "Rechnung Nr. 42 — Grüße aus Köln 🎉 " + String(repeating: "lang ", count: 20)
        let html = "<p>Hallo Jörg,</p><p>\(String(repeating: "Sehr lange Zeile ohne Umbruch äöü ", count: 60))</p>"
        let text = "Hallo Jörg,\nDein Betrag: 12,50 €\n.Punkt am Anfang\n"
        let m = build(subject: subject, html: html, text: text, name: "Müller & Söhne \"GmbH\"")
        let dir = NSTemporaryDirectory() + "mime-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/m.eml"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(m.bytes)))
        let script = """
        import email, email.policy, json, sys
        m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
        parts = {p.get_content_type(): p.get_content() for p in m.iter_parts()}
        print(json.dumps({"subject": str(m["subject"]), "from_name": m["from"].addresses[0].display_name,
                          "from_addr": m["from"].addresses[0].addr_spec, "to": str(m["to"]), "defects": len(m.defects),
                          "text": parts.get("text/plain"), "html": parts.get("text/html"), "mid": m["message-id"]}))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let decoded = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        #expect(decoded["subject"] as? String == subject)
        #expect(decoded["from_name"] as? String == "Müller & Söhne \"GmbH\"")
        #expect(decoded["from_addr"] as? String == "support@shop.example")
        #expect(decoded["to"] as? String == "alice@example.org")
        #expect(decoded["defects"] as? Int == 0)
        #expect((decoded["text"] as? String)?.replacingOccurrences(of: "\r\n", with: "\n") == text)
        #expect((decoded["html"] as? String)?.replacingOccurrences(of: "\r\n", with: "\n") == html + "\n" || (decoded["html"] as? String) == html)
        #expect(decoded["mid"] as? String == m.messageID)
    }
}

/// The layouts of SPEC §4 (alternative; related around it for inline parts; mixed around that
/// for attachments), decoded by two independent MIME parsers — Python's `email` and ripmime
/// (C, Debian) — whose attachment bytes must be ours bit for bit, non-ASCII names exactly.
@Suite struct AttachmentLayoutTests {
    static let pdf: [UInt8] = Array("%PDF-1.4\n".utf8) + (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + (0..<300).map { UInt8(truncatingIfNeeded: $0) }

    func build(inline: Bool, attached: Bool) -> OutgoingMessage {
        var parts: [AttachmentPart] = []
        if attached {
            parts.append(AttachmentPart(filename: "Rechnung März 2026.pdf", base64: Encodings.base64(Self.pdf), contentType: "application/pdf",
                                        contentID: nil, decodedSize: Self.pdf.count))
            parts.append(AttachmentPart(filename: "orders (Q4) 50% off.csv", base64: "YSxiDQoxLDINCg==", contentType: "text/csv", contentID: nil, decodedSize: 10))
        }
        if inline {
            parts.append(AttachmentPart(filename: "logo.png", base64: Encodings.base64(Self.png), contentType: "image/png", contentID: "logo@shop.example",
                                        decodedSize: Self.png.count))
        }
        var r = FixedRandom()
        return MessageBuilder.build(.init(fromAddress: "billing@shop.example", fromName: "Shop", to: "alice@example.org", subject: "Invoice",
                                          html: "<p>Your invoice <img src=\"cid:logo@shop.example\"></p>", text: "Your invoice",
                                          replyTo: ["help@shop.example", "ops@shop.example"],
                                          headers: [MessageHeader(name: "X-Order-Id", value: "SP-2412-0489"),
                                                    MessageHeader(name: "X-Note", value: "Grüße aus Köln")],
                                          attachments: parts), epochSeconds: 1_795_000_000, random: &r)
    }

    func python(_ path: String) throws -> [String: Any] {
        let script = """
        import email, email.policy, json, sys, hashlib
        m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
        def tree(p):
            return p.get_content_type() if not p.is_multipart() else [p.get_content_type()] + [tree(c) for c in p.iter_parts()]
        files = []
        for p in m.walk():
            if p.get_filename():
                files.append({"name": p.get_filename(), "sha": hashlib.sha256(p.get_payload(decode=True)).hexdigest(),
                              "cid": p.get("content-id"), "disposition": p.get_content_disposition()})
        print(json.dumps({"tree": tree(m), "files": files, "defects": sum(len(p.defects) for p in m.walk()),
                          "reply_to": str(m["reply-to"]), "note": str(m["x-note"]), "order": str(m["x-order-id"])}))
        """
        let (rc, out) = try runProcess(["python3", "-c", script, path])
        #expect(rc == 0, "\(out)")
        return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
    }

    func runProcess(_ argv: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    static func sha256Hex(_ bytes: [UInt8]) throws -> String {
        let dir = NSTemporaryDirectory() + "sha-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        FileManager.default.createFile(atPath: dir, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [dir]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: out, as: UTF8.self).prefix(64))
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func layoutsDecodeInTwoParsers(inline: Bool, attached: Bool) throws {
        let m = build(inline: inline, attached: attached)
        let s = String(decoding: m.bytes, as: UTF8.self)
        for line in s.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 998) }
        #expect(!s.contains("\r\n.\r\n"))
        let dir = NSTemporaryDirectory() + "layout-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/m.eml"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(m.bytes)))

        let d = try python(path)
        let alternative: [Any] = ["multipart/alternative", "text/plain", "text/html"]
        let related: [Any] = inline ? ["multipart/related", alternative, "image/png"] : alternative
        let expected: [Any] = attached ? ["multipart/mixed", related, "application/pdf", "text/csv"] : related
        #expect(NSArray(array: d["tree"] as? [Any] ?? []) == NSArray(array: expected), "\(d["tree"] ?? "")")
        #expect(d["defects"] as? Int == 0)
        #expect(d["reply_to"] as? String == "help@shop.example, ops@shop.example")
        #expect(d["note"] as? String == "Grüße aus Köln")
        #expect(d["order"] as? String == "SP-2412-0489")
        var want: [String: String] = [:]
        if attached {
            want["Rechnung März 2026.pdf"] = try Self.sha256Hex(Self.pdf)
            want["orders (Q4) 50% off.csv"] = try Self.sha256Hex(Array("a,b\r\n1,2\r\n".utf8))
        }
        if inline { want["logo.png"] = try Self.sha256Hex(Self.png) }
        let files = (d["files"] as? [[String: Any]]) ?? []
        #expect(Dictionary(files.map { ($0["name"] as? String ?? "", $0["sha"] as? String ?? "") }, uniquingKeysWith: { a, _ in a }) == want)
        for f in files where f["name"] as? String == "logo.png" {
            #expect(f["cid"] as? String == "<logo@shop.example>" && f["disposition"] as? String == "inline")
        }

        // ripmime: writes each part with a file name under that name.
        let (rc, out) = try runProcess(["ripmime", "-i", path, "-d", dir + "/out", "--no-nameless"])
        #expect(rc == 0, "\(out)")
        for (name, sha) in want {
            let data = FileManager.default.contents(atPath: dir + "/out/" + name)
            #expect(data != nil, "ripmime wrote no \(name): \((try? FileManager.default.contentsOfDirectory(atPath: dir + "/out")) ?? [])")
            if let data { #expect(try Self.sha256Hex(Array(data)) == sha) }
        }
    }
}
