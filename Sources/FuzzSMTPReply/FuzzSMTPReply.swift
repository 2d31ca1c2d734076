/// libFuzzer target for the SMTP reply parser and the session machine it drives.
///
/// Invariants on every input: no crash; the parse is split-invariant (whole input, byte by
/// byte and split in the middle give the same replies and the same error); every reply has a
/// code in 200…559 and at most `maxLines` lines; the session machine fed those replies (as a
/// relay would send them, with TLS "established" whenever it asks and a message submitted
/// whenever it is ready) never crashes, never sends the password unless TLS is up, and reports
/// at most one outcome per submitted message.
/// Build and run: `Tests/Scripts/fuzz FuzzSMTPReply SECONDS`.
#if canImport(Glibc)
import Glibc
#endif
import MIME
import SMTPProtocol

func parseAll(_ bytes: [UInt8], splits: [Int]) -> ([SMTPReply], String?) {
    var p = ReplyParser()
    var out: [SMTPReply] = []
    var start = 0
    for end in splits + [bytes.count] where end >= start {
        do {
            try p.feed(Array(bytes[start..<end]), into: &out)
        } catch {
            return (out, error.reason)
        }
        start = end
    }
    return (out, nil)
}

func fuzzOne(_ data: UnsafeBufferPointer<UInt8>) -> Int32 {
    let bytes = Array(data)
    let whole = parseAll(bytes, splits: [])
    let bytewise = parseAll(bytes, splits: Array(0..<bytes.count))
    let half = parseAll(bytes, splits: [bytes.count / 2])
    precondition(whole.0 == bytewise.0 && whole.1 == bytewise.1, "byte-by-byte parse differs")
    precondition(whole.0 == half.0 && whole.1 == half.1, "split parse differs")
    for r in whole.0 {
        precondition((200...559).contains(r.code) && !r.lines.isEmpty && r.lines.count <= ReplyParser.maxLines, "bad reply \(r)")
    }

    let secret = "pässwörd-\(bytes.count)"
    let secretPlain = Encodings.base64([0] + Array("u".utf8) + [0] + Array(secret.utf8))
    let secretLogin = Encodings.base64(Array(secret.utf8))
    for security in [SessionMachine.Security.startTLS(required: true), .startTLS(required: false), .implicitTLS] {
        var m = SessionMachine(policy: .init(security: security, credentials: .init(user: "u", password: secret), clientName: "client.test"))
        var submitted = 0
        var outcomes = 0
        var events: [SessionMachine.Event] = whole.0.map { .reply($0) }
        /// The next message: the second one needs SMTPUTF8; a pipelined one carries no dot line.
        func nextEnvelope(pipelined: Bool) -> Envelope {
            submitted += 1
            return Envelope(from: "a@example.com", to: submitted == 2 ? "ü@example.com" : "b@example.com",
                            message: Array((pipelined ? "Subject: y\r\n\r\nline\r\n" : "Subject: x\r\n\r\n.dot\r\n").utf8))
        }
        var i = 0
        while i < events.count {
            let actions = m.receive(events[i])
            i += 1
            for a in actions {
                switch a {
                case .send(let b):
                    let text = String(decoding: b, as: UTF8.self)
                    if text.contains(secretPlain) || text.contains(secretLogin) {
                        precondition(m.isSecure, "credentials sent without TLS")
                    }
                case .startTLS:
                    events.insert(.tlsEstablished, at: i)
                case .ready:
                    if submitted < 3 {
                        events.insert(.submit(nextEnvelope(pipelined: false)), at: i)
                    } else {
                        events.insert(.quit, at: i)
                    }
                case .pipelineNext:
                    // Pipeline the next message behind the data (what the driver does), unless
                    // preflight refuses it (the driver reports that one itself).
                    if submitted < 3 {
                        let e = nextEnvelope(pipelined: true)
                        if m.preflight(e) == nil { events.insert(.submit(e), at: i) } else { outcomes += 1 }
                    }
                case .outcome:
                    outcomes += 1
                    precondition(outcomes <= submitted, "more outcomes than messages")
                case .close:
                    break
                }
            }
        }
        _ = m.receive(.timeout)
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
        print("build with: Tests/Scripts/fuzz FuzzSMTPReply SECONDS")
    }
}
#endif
