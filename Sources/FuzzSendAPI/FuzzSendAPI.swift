/// libFuzzer target for request decoding and validation (`SendAPI` over `JSON`).
///
/// Invariants checked on every input: no crash; a parsed body re-serialized compactly parses
/// back to the same value; the canonical form is a fixed point (canonicalizing the parse of a
/// canonical form changes nothing); every 422 names at least one field; an accepted request's
/// recipient passes the injection guard and, when asked, the full syntax check; an accepted
/// direct subject has no CR/LF.
/// Build and run: `Tests/Scripts/fuzz FuzzSendAPI SECONDS`.
#if canImport(Glibc)
import Glibc
#endif
import JSON
import MIME
import SendAPI

func fuzzOne(_ data: UnsafeBufferPointer<UInt8>) -> Int32 {
    let bytes = Array(data)
    switch SendAPI.parseBody(bytes) {
    case .failure(let e):
        precondition(e.status == 422 && !e.fields.isEmpty, "parse failure without a field")
    case .success(let value):
        let compact = value.compactBytes
        precondition((try? JSONParser.parse(compact)) == value, "compact form does not round-trip")
        let canonical = value.canonicalBytes
        let reparsed = try? JSONParser.parse(canonical)
        precondition(reparsed?.canonicalBytes == canonical, "canonical form is not a fixed point")
        switch SendAPI.validate(value) {
        case .failure(let e):
            precondition(e.status == 422 && !e.fields.isEmpty, "validation failure without a field")
        case .success(let r):
            precondition(EmailAddress.injectionProblem(r.toAddress) == nil, "accepted an unsafe recipient")
            if r.validateAddress { precondition(EmailAddress.syntaxProblem(r.toAddress) == nil, "accepted an invalid address") }
            if case .direct(let subject, _) = r.content {
                precondition(!subject.unicodeScalars.contains { $0 == "\r" || $0 == "\n" }, "accepted a subject with a line break")
            }
            // The optional fields: nothing unsafe reaches a header, an RCPT or a part.
            for a in r.cc + r.bcc + r.replyTo {
                precondition(EmailAddress.injectionProblem(a) == nil, "accepted an unsafe cc/bcc/reply-to address")
            }
            precondition(1 + r.cc.count + r.bcc.count <= SendAPI.maxRecipients, "more than 50 recipients")
            for h in r.headers {
                precondition(!h.value.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" }, "accepted a header value with CR/LF/NUL")
            }
            for a in r.attachments {
                precondition(Base64.check(a.base64) == .success(a.decodedSize), "an attachment's size disagrees with its base64")
                precondition(!a.filename.unicodeScalars.contains { $0.value < 0x20 || $0 == "/" || $0 == "\\" }, "accepted an unsafe file name")
            }
        }
        if case .success(let (identifier, data)) = SendAPI.validateRender(value) {
            precondition(!identifier.isEmpty, "render: an empty identifier accepted")
            if case .object = data {} else { preconditionFailure("render: data that is not an object accepted") }
        }
    }
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
        print("build with: Tests/Scripts/fuzz FuzzSendAPI SECONDS")
    }
}
#endif
