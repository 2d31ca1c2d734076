/// libFuzzer target for the audit's parsers: `AuditQuery.parse` (query strings, cursors, RFC
/// 3339) and `MessageReader.read` (a stored message read back into headers, text and HTML).
///
/// Invariants on every input: no crash; a query that parses has a limit in 1…200, a status
/// from the list and `since < until`; a decoded cursor re-encodes to a cursor that decodes to
/// the same position; a parsed RFC 3339 time formats to text that parses to the same instant;
/// reading a message is deterministic, and reading the bytes the builder makes from the
/// subject and text found returns that subject (the reader and builder agree).
/// Build and run: `Tests/Scripts/fuzz FuzzAudit SECONDS`.
#if canImport(Glibc)
import Glibc
#endif
import AuditAPI
import MIME

struct Fixed: RandomNumberGenerator {
    var n: UInt64 = 7
    mutating func next() -> UInt64 { n &+= 0x9E37_79B9_7F4A_7C15; return n }
}

func fuzzOne(_ data: UnsafeBufferPointer<UInt8>) -> Int32 {
    let bytes = Array(data)
    let text = String(decoding: bytes, as: UTF8.self)

    if case .success(let q) = AuditQuery.parse(text) {
        precondition((1...200).contains(q.limit), "limit out of range")
        precondition(q.status.map { AuditQuery.statuses.contains($0) } ?? true, "unknown status accepted")
        if let s = q.since, let u = q.until { precondition(s < u, "since ≥ until accepted") }
        if let c = q.cursor { precondition(AuditCursor(encoded: c.encoded) == c, "cursor does not round-trip") }
    }
    if let c = AuditCursor(encoded: text) { precondition(AuditCursor(encoded: c.encoded) == c, "cursor does not round-trip") }
    if let ms = RFC3339.parse(text) {
        precondition(RFC3339.parse(RFC3339.format(milliseconds: ms)) == ms, "RFC 3339 does not round-trip")
    }

    let read = MessageReader.read(bytes)
    precondition(MessageReader.read(bytes) == read, "reading is not deterministic")
    for (i, a) in read.attachments.enumerated() {
        precondition(MessageReader.attachment(bytes, index: i)?.0 == a, "attachment \(i) listed but not found the same by index")
    }
    precondition(MessageReader.attachment(bytes, index: read.attachments.count) == nil, "an attachment past the list")
    // Builder ↔ reader for files: the input as an attachment's bytes, a name made of its
    // characters, come back bit for bit and character for character.
    var name = String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F && !(0x80..<0xA0).contains($0.value) && $0 != "/" && $0 != "\\" }.prefix(60)))
    if name.isEmpty { name = "file.bin" }
    var fr = Fixed()
    let withFile = MessageBuilder.build(.init(fromAddress: "a@b.example", fromName: nil, to: "c@d.example", subject: "s", html: "<p>x</p>", text: nil,
                                              attachments: [AttachmentPart(filename: name, base64: Encodings.base64(bytes), contentType: "application/octet-stream",
                                                                           contentID: nil, decodedSize: bytes.count)]), epochSeconds: 0, random: &fr)
    let file = MessageReader.attachment(withFile.bytes, index: 0)
    precondition(file?.1 == bytes, "attachment bytes do not survive a build and a read")
    precondition(file?.0.filename == name, "file name \(name.debugDescription) read back as \(file?.0.filename.debugDescription ?? "nil")")
    // Builder ↔ reader: a subject without line breaks survives a build and a read.
    let subject = String(text.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.prefix(200))
    var r = Fixed()
    let built = MessageBuilder.build(.init(fromAddress: "a@b.example", fromName: nil, to: "c@d.example", subject: subject,
                                           html: "<p>x</p>", text: text), epochSeconds: 0, random: &r)
    let back = MessageReader.read(built.bytes)
    var trimmed = Substring(subject)
    while let f = trimmed.first, f == " " || f == "\t" { trimmed = trimmed.dropFirst() }
    while let l = trimmed.last, l == " " || l == "\t" { trimmed = trimmed.dropLast() }
    precondition(back.header("Subject") == String(trimmed) || back.header("Subject") == subject || subject.contains("=?"), "subject \(subject.debugDescription) read back as \(back.header("Subject")?.debugDescription ?? "nil")")
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    return fuzzOne(UnsafeBufferPointer(start: data, count: size))
}

#if !FUZZING
@main
struct FuzzMain {
    static func main() {
        print("build with: Tests/Scripts/fuzz FuzzAudit SECONDS")
    }
}
#endif
