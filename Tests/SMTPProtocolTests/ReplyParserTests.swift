import Testing
import MIME
@testable import SMTPProtocol

struct ReplyParserTests {
    static let good: [(String, [String])] = [
        ("220 mx.example ESMTP\r\n", ["220|nil|mx.example ESMTP"]),
        ("250 2.1.0 Ok\r\n", ["250|2.1.0|2.1.0 Ok"]),
        ("250\r\n", ["250|nil|"]),
        ("250 \r\n", ["250|nil|"]),
        ("250-a\r\n250-b\r\n250 c\r\n", ["250|nil|a / b / c"]),
        ("250-a\n250 b\n", ["250|nil|a / b"]),                             // bare LF
        ("550 5.1.1 <x@y>: Recipient address rejected\r\n", ["550|5.1.1|5.1.1 <x@y>: Recipient address rejected"]),
        ("451 4.7.1 later\r\n354 go\r\n", ["451|4.7.1|4.7.1 later", "354|nil|go"]),
        ("550 4.1.1 class mismatch\r\n", ["550|nil|4.1.1 class mismatch"]),  // enhanced class must match
        ("250 2.0.0\r\n", ["250|2.0.0|2.0.0"]),
        ("250 2.1234.0 too long\r\n", ["250|nil|2.1234.0 too long"]),
        ("250 bell\u{07}tab\t\r\n", ["250|nil|bell?tab\t"]),
        ("221 Bye\r\n", ["221|nil|Bye"]),
        ("250 ok", []),                                                   // incomplete: nothing yet
        ("250-only a continuation\r\n", []),
    ]

    @Test(arguments: good)
    func parses(input: String, expected: [String]) throws {
        for split in [nil] + Array(0...input.utf8.count).map({ Optional($0) }) {
            var p = ReplyParser()
            var out: [SMTPReply] = []
            let bytes = Array(input.utf8)
            if let split {
                try p.feed(Array(bytes[..<split]), into: &out)
                try p.feed(Array(bytes[split...]), into: &out)
            } else {
                try p.feed(bytes, into: &out)
            }
            #expect(out.map { "\($0.code)|\($0.enhancedCode ?? "nil")|\($0.lines.joined(separator: " / "))" } == expected, "split \(String(describing: split))")
        }
    }

    static let bad: [(String, String)] = [
        ("hello\r\n", "malformed"),
        ("25\r\n", "malformed"),
        ("150 no\r\n", "malformed"),
        ("260 no\r\n", "malformed"),
        ("250_x\r\n", "malformed"),
        ("2500\r\n", "malformed"),
        ("250-a\r\n251 b\r\n", "changed its code"),
        ("\r\n", "malformed"),
        (String(repeating: "x", count: 3000), "longer than"),
        ("250 " + String(repeating: "y", count: 2100) + "\r\n", "longer than"),
    ]

    @Test(arguments: bad)
    func refuses(input: String, reason: String) {
        var p = ReplyParser()
        var out: [SMTPReply] = []
        #expect(throws: SMTPProtocolError.self) { try p.feed(Array(input.utf8), into: &out) }
        do {
            var q = ReplyParser()
            try q.feed(Array(input.utf8), into: &out)
        } catch {
            #expect(error.reason.contains(reason), "\(error.reason)")
        }
    }

    /// Any input, cut anywhere: the bulk parser gives the replies (and the error, at the same
    /// point) that feeding one byte at a time gives.
    @Test func bulkFeedingAgreesWithByteByByte() {
        var state: UInt64 = 0xD1B5_4A32_D192_ED03
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        let pieces = ["250", "-", " ", "2.1.0", "ok", "\r\n", "\n", "354", "550 5.1.1", "\u{07}", "x", "251", "2",
                      String(repeating: "z", count: 700)]
        func describe(_ r: [SMTPReply]) -> [String] { r.map { "\($0.code)|\($0.enhancedCode ?? "-")|\($0.lines)" } }
        for _ in 0..<3000 {
            let input = Array((0..<(next() % 16)).map { _ in pieces[next() % pieces.count] }.joined().utf8)
            var reference = ReplyParser(), bulk = ReplyParser()
            var expected: [SMTPReply] = [], got: [SMTPReply] = []
            var expectedError: String?, gotError: String?
            do { try reference.feedByteByByte(input, into: &expected) } catch { expectedError = error.reason }
            var at = 0
            do {
                while at < input.count {   // random chunks, as reads deliver them
                    let end = min(input.count, at + 1 + next() % 40)
                    try bulk.feed(Array(input[at..<end]), into: &got)
                    at = end
                }
            } catch { gotError = error.reason }
            #expect(describe(got) == describe(expected))
            #expect(gotError == expectedError)
            if expectedError == nil { #expect(bulk.isMidReply == reference.isMidReply) }
        }
    }

    @Test func aThousandLineReplyIsOneReply() throws {
        var text = ""
        for i in 0..<999 { text += "250-line \(i)\r\n" }
        text += "250 last\r\n"
        var p = ReplyParser()
        var out: [SMTPReply] = []
        try p.feed(Array(text.utf8), into: &out)
        #expect(out.count == 1 && out[0].lines.count == 1000 && out[0].lines.last == "last")
    }

    @Test func tooManyLinesIsAnError() {
        var text = ""
        for _ in 0..<ReplyParser.maxLines { text += "250-x\r\n" }
        text += "250 end\r\n"
        var p = ReplyParser()
        var out: [SMTPReply] = []
        #expect(throws: SMTPProtocolError.self) { try p.feed(Array(text.utf8), into: &out) }
    }

    @Test func capabilitiesInOddCase() {
        let r = SMTPReply(code: 250, lines: ["mx.example hello", "pipelining", "Size 10240000", "StartTLS", "8bitmime",
                                             "smtputf8", "auth login Plain", "AUTH=CRAM-MD5", "ENHANCEDSTATUSCODES", "X-UNKNOWN y"])
        let c = Capabilities(ehlo: r)
        #expect(c.pipelining && c.startTLS && c.eightBitMIME && c.smtpUTF8 && c.enhancedStatusCodes)
        #expect(c.size == 10_240_000)
        #expect(c.authMechanisms == ["LOGIN", "PLAIN", "CRAM-MD5"])
        // The greeting line is not a capability.
        #expect(!Capabilities(ehlo: SMTPReply(code: 250, lines: ["PIPELINING"])).pipelining)
        #expect(Capabilities(ehlo: SMTPReply(code: 250, lines: ["x", "SIZE"])).size == 0)
    }

    static let stuffing: [(String, String)] = [
        ("a\r\nb\r\n", "a\r\nb\r\n.\r\n"),
        (".a\r\n..b\r\n.\r\n", "..a\r\n...b\r\n..\r\n.\r\n"),
        ("no final line end", "no final line end\r\n.\r\n"),
        ("bare\nlf\rcr\r\n", "bare\r\nlf\r\ncr\r\n.\r\n"),
        ("x\r\n.", "x\r\n..\r\n.\r\n"),
        ("", ".\r\n"),
        (".", "..\r\n.\r\n"),
        ("\r", "\r\n.\r\n"),
        ("\n", "\r\n.\r\n"),
        ("\r\r\n", "\r\n\r\n.\r\n"),
        ("\n.\n", "\r\n..\r\n.\r\n"),
        ("a\r\n\r\n.", "a\r\n\r\n..\r\n.\r\n"),
        ("\r\n", "\r\n.\r\n"),
    ]

    @Test(arguments: stuffing)
    func dotStuffing(input: String, expected: String) {
        #expect(String(decoding: DataEncoding.dotStuffed(Array(input.utf8)), as: UTF8.self) == expected)
    }

    /// The run-copying implementation agrees with the byte-at-a-time definition on random
    /// messages made of the bytes that matter (CR, LF, dot) and a few others.
    @Test func dotStuffingMatchesTheByteAtATimeDefinition() {
        func reference(_ m: [UInt8]) -> [UInt8] {
            var out: [UInt8] = []
            var lineStart = true
            var i = 0
            while i < m.count {
                let b = m[i]
                if lineStart && b == 0x2E { out.append(0x2E) }
                switch b {
                case 0x0D:
                    out += [0x0D, 0x0A]
                    if i + 1 < m.count && m[i + 1] == 0x0A { i += 1 }
                    lineStart = true
                case 0x0A:
                    out += [0x0D, 0x0A]
                    lineStart = true
                default:
                    out.append(b)
                    lineStart = false
                }
                i += 1
            }
            if !lineStart { out += [0x0D, 0x0A] }
            return out + [0x2E, 0x0D, 0x0A]
        }
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0x0D, 0x0A, 0x2E, 0x61, 0xC3, 0x20]
        for _ in 0..<2000 {
            let m = (0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            #expect(DataEncoding.dotStuffed(m) == reference(m), "\(m)")
        }
        // Messages as the builder makes them (CRLF lines of any length, dots inside lines) —
        // the one-copy path — and the same with one flaw put anywhere: a bare CR or LF, a
        // dot starting a line, a missing final CRLF.
        let inLine: [UInt8] = [0x61, 0x2E, 0x20, 0x3D]
        for round in 0..<3000 {
            var m: [UInt8] = []
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                var line = (0..<Int.random(in: 0...90, using: &rng)).map { _ in inLine.randomElement(using: &rng)! }
                if line.first == 0x2E { line[0] = 0x61 }
                m += line + [0x0D, 0x0A]
            }
            if round % 2 == 1 {
                let at = Int.random(in: 0..<m.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: m.insert(0x0D, at: at)
                case 1: m.insert(0x0A, at: at)
                case 2: m.insert(contentsOf: [0x0D, 0x0A, 0x2E], at: at)
                default: m.removeLast(Int.random(in: 1...2, using: &rng))
                }
            }
            #expect(DataEncoding.dotStuffed(m) == reference(m), "\(m)")
        }
    }

    /// What MessageBuilder makes takes the one-copy path (CRLF lines, no leading dot).
    @Test func builtMessagesAreAlreadyClean() {
        var random = SystemRandomNumberGenerator()
        let message = MessageBuilder.build(.init(fromAddress: "a@b.example", fromName: "A", to: "c@d.example", subject: "s",
                                                 html: "<p>.dot first</p>\n.\n<p>" + String(repeating: "long line. ", count: 40) + "</p>", text: nil),
                                           epochSeconds: 0, random: &random).bytes
        #expect(DataEncoding.isCleanCRLF(message))
        #expect(DataEncoding.dotStuffed(message) == message + Array(".\r\n".utf8))
        #expect(!DataEncoding.isCleanCRLF(Array("a\r\n.b\r\n".utf8)) && !DataEncoding.isCleanCRLF(Array("a\nb\r\n".utf8)))
    }

    @Test func envelopeNeeds() {
        #expect(!Envelope(from: "a@b.c", to: "d@e.f", message: Array("Subject: x\r\n\r\nbody".utf8)).needsSMTPUTF8)
        #expect(Envelope(from: "a@b.c", to: "ü@e.f", message: []).needsSMTPUTF8)
        let utf8Header = Envelope(from: "a@b.c", to: "d@e.f", message: Array("To: ü@e.f\r\n\r\nbody".utf8))
        #expect(utf8Header.needsSMTPUTF8 && utf8Header.has8BitContent)
        let utf8Body = Envelope(from: "a@b.c", to: "d@e.f", message: Array("To: d@e.f\r\n\r\nbödy".utf8))
        #expect(!utf8Body.needsSMTPUTF8 && utf8Body.has8BitContent)
    }

    /// The eight-at-a-time scan agrees with the byte-at-a-time definition for every length up
    /// to 40 and every position of a single high octet (word boundaries and the tail).
    @Test func highBitScanAgreesWithTheDefinition() {
        for n in 0...40 {
            let clean = [UInt8](repeating: 0x7F, count: n)
            #expect(!Envelope.hasHighBit(clean))
            for at in 0..<n {
                for b: UInt8 in [0x80, 0xC3, 0xFF] {
                    var m = clean
                    m[at] = b
                    #expect(Envelope.hasHighBit(m), "length \(n), octet \(b) at \(at)")
                }
            }
        }
    }

    @Test(arguments: [(1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (60, 3600), (1000, 3600)])
    func backoff(attempt: Int, seconds: Int) {
        #expect(RetryPolicy(baseSeconds: 60, maxSeconds: 3600, maxQueueAgeSeconds: 86400).delaySeconds(afterAttempt: attempt) == seconds)
    }

    @Test func backoffStopsAtMaxAge() {
        let p = RetryPolicy(baseSeconds: 60, maxSeconds: 3600, maxQueueAgeSeconds: 100)
        #expect(p.afterDeferral(attempts: 1, acceptedAtMilliseconds: 0, nowMilliseconds: 10_000) == .retry(atMilliseconds: 70_000))
        #expect(p.afterDeferral(attempts: 2, acceptedAtMilliseconds: 0, nowMilliseconds: 70_000) == .retry(atMilliseconds: 100_000))
        #expect(p.afterDeferral(attempts: 3, acceptedAtMilliseconds: 0, nowMilliseconds: 100_000) == .giveUp)
    }

    @Test func base64() {
        #expect(Encodings.base64([]) == "")
        #expect(Encodings.base64(Array("f".utf8)) == "Zg==")
        #expect(Encodings.base64(Array("fo".utf8)) == "Zm8=")
        #expect(Encodings.base64(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Encodings.base64([0] + Array("user".utf8) + [0] + Array("pass".utf8)) == "AHVzZXIAcGFzcw==")
    }
}

extension ReplyParser {
    /// One byte at a time: the definition `feed` must agree with (the parser before it copied
    /// whole lines).
    mutating func feedByteByByte(_ bytes: [UInt8], into replies: inout [SMTPReply]) throws(SMTPProtocolError) {
        for b in bytes {
            if b == 0x0A {
                if let r = try finishLine() { replies.append(r) }
                continue
            }
            guard line.count < ReplyParser.maxLineLength else {
                throw SMTPProtocolError("reply line longer than \(ReplyParser.maxLineLength) octets")
            }
            line.append(b)
        }
    }
}
