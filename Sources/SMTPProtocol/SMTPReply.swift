/// SMTPReply and ReplyParser: server replies as RFC 5321 §4.2 writes them, parsed from bytes
/// that may arrive in any split.
///
/// A reply is one or more lines `ddd-text` … `ddd text` (or a bare `ddd`), all with the same
/// code. The parser is resumable (state kept between `feed` calls) and bounded: a line longer
/// than `maxLineLength` or a reply of more than `maxLines` lines is a protocol error, never
/// unbounded buffering (STYLE 13). Bare LF line ends are accepted (lenient servers exist);
/// control characters in text are replaced so a reply can be logged and stored safely.
/// Enhanced status codes (RFC 3463, `c.sss.ddd`) are recognised on the first line when their
/// class matches the reply's.
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    /// RFC 3463 enhanced status code, e.g. "5.1.1".
    public var enhancedCode: String?
    /// The text of each line, after the code and separator.
    public var lines: [String]
    /// Made up by us for a local failure (`local`), not said by the relay: the relay-policy
    /// table (Relay.ReplyClassifier) reads only what relays say.
    public var isLocal = false

    public init(code: Int, enhancedCode: String? = nil, lines: [String]) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = lines
    }

    /// A reply we make up for a local failure, in SMTP's vocabulary (STYLE 9), e.g.
    /// `.local(421, "4.4.2", "timeout while sending RCPT TO")`.
    public static func local(_ code: Int, _ enhanced: String, _ text: String) -> SMTPReply {
        var r = SMTPReply(code: code, enhancedCode: enhanced, lines: ["\(enhanced) \(text)"])
        r.isLocal = true
        return r
    }

    public var isPositive: Bool { code >= 200 && code < 300 }
    public var isIntermediate: Bool { code >= 300 && code < 400 }
    public var isTransient: Bool { code >= 400 && code < 500 }
    public var isPermanent: Bool { code >= 500 }

    /// One line for logs and the audit: "550 5.1.1 no such user" (multi-line joined by " / ").
    public var description: String {
        lines.isEmpty ? "\(code)" : "\(code) " + lines.joined(separator: " / ")
    }
}

public struct SMTPProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

public struct ReplyParser: Sendable {
    /// RFC 5321 §4.5.3.1.5 allows reply lines of 512 octets; real servers exceed it (long
    /// capability lists, verbose rejections), so four times that before calling it garbage.
    public static let maxLineLength = 2048
    /// A generous cap on continuation lines (some servers list hundreds of capabilities).
    public static let maxLines = 4096

    var line: [UInt8] = []
    var lines: [String] = []
    var code = 0
    var enhanced: String?

    public init() {}

    /// True when a reply has started but not ended.
    public var isMidReply: Bool { !line.isEmpty || !lines.isEmpty }

    /// Feeds bytes; complete replies are appended to `replies` in order. Each line's bytes are
    /// found by a scan for LF and copied at once (appending byte by byte cost a capacity and
    /// uniqueness check per byte: ~3 000 instructions a reply line).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, into replies: inout [SMTPReply]) throws(SMTPProtocolError) {
        var start = 0
        let n = bytes.count
        while start < n {
            var i = start
            while i < n && bytes[i] != 0x0A { i += 1 }
            if i > start {
                guard line.count + (i - start) <= ReplyParser.maxLineLength else {
                    throw SMTPProtocolError("reply line longer than \(ReplyParser.maxLineLength) octets")
                }
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            }
            if i == n { return }
            if let r = try finishLine() { replies.append(r) }
            start = i + 1
        }
    }

    public mutating func feed(_ bytes: [UInt8], into replies: inout [SMTPReply]) throws(SMTPProtocolError) {
        var failure: SMTPProtocolError?
        bytes.withUnsafeBytes { raw in
            do throws(SMTPProtocolError) { try feed(raw, into: &replies) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    mutating func finishLine() throws(SMTPProtocolError) -> SMTPReply? {
        if line.last == 0x0D { line.removeLast() }
        defer { line.removeAll(keepingCapacity: true) }
        guard line.count >= 3,
              (0x32...0x35).contains(line[0]), (0x30...0x35).contains(line[1]), (0x30...0x39).contains(line[2])
        else {
            throw SMTPProtocolError("malformed reply line \"\(ReplyParser.printable(line.prefix(80)))\"")
        }
        let c = Int(line[0] - 0x30) * 100 + Int(line[1] - 0x30) * 10 + Int(line[2] - 0x30)
        var last = true
        if line.count > 3 {
            switch line[3] {
            case 0x20: last = true
            case 0x2D: last = false
            default: throw SMTPProtocolError("malformed reply line \"\(ReplyParser.printable(line.prefix(80)))\"")
            }
        }
        if lines.isEmpty {
            code = c
        } else if c != code {
            throw SMTPProtocolError("multi-line reply changed its code from \(code) to \(c)")
        }
        guard lines.count < ReplyParser.maxLines else {
            throw SMTPProtocolError("reply of more than \(ReplyParser.maxLines) lines")
        }
        let text = line.count > 4 ? ReplyParser.printable(line[4...]) : ""
        if lines.isEmpty { enhanced = ReplyParser.enhancedCode(text, replyClass: line[0]) }
        lines.append(text)
        guard last else { return nil }
        let reply = SMTPReply(code: code, enhancedCode: enhanced, lines: lines)
        lines.removeAll(keepingCapacity: true)
        enhanced = nil
        return reply
    }

    /// UTF-8 (lossy), with control characters other than tab replaced by "?".
    static func printable(_ bytes: ArraySlice<UInt8>) -> String {
        if bytes.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        return String(decoding: bytes.map { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F ? 0x3F : $0 }, as: UTF8.self)
    }

    /// RFC 3463 §2: class "." subject "." detail, subject and detail of 1–3 digits.
    static func enhancedCode(_ text: String, replyClass: UInt8) -> String? {
        let u = Array(text.utf8.prefix(12))
        guard u.count >= 5, u[0] == replyClass, u[1] == 0x2E else { return nil }
        var i = 2
        var parts = 0
        while parts < 2 {
            let start = i
            while i < u.count, (0x30...0x39).contains(u[i]) { i += 1 }
            let n = i - start
            guard n >= 1 && n <= 3 else { return nil }
            parts += 1
            if parts == 1 {
                guard i < u.count, u[i] == 0x2E else { return nil }
                i += 1
            }
        }
        guard i == u.count || u[i] == 0x20 else { return nil }
        return String(decoding: u[0..<i], as: UTF8.self)
    }
}
