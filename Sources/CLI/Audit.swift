/// `audit list|show`: the sent-mail audit from the command line — every accepted call with
/// its recipient, subject, status, attempts and, for `show`, the rendered message.
import ArgumentParser
import JSON
import MIME
import Store

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The sent-mail audit: list accepted messages, show one.",
        subcommands: [List.self, Show.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The accepted messages, newest first: id, accepted-at, status, recipient, subject, mailbox, attempts.")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Option(help: "At most this many entries (1–10000).") var limit = 50
        @Option(help: "Only this recipient (case-insensitive).") var to: String?
        @Option(help: "Only this status: queued, sending, deferred, sent, failed.") var status: String?
        @Option(help: ArgumentHelp("Only entries whose metadata has KEY with exactly VALUE (what the send gave in \"metadata\").",
                                   valueName: "KEY=VALUE")) var metadata: String?
        @Flag(help: "One JSON object per line.") var json = false

        func run() throws {
            guard (1...10_000).contains(limit) else { throw usageError("--limit must be 1–10000") }
            if let s = status, !["queued", "sending", "deferred", "sent", "failed"].contains(s) {
                throw usageError("--status must be queued, sending, deferred, sent or failed")
            }
            var pair: MetadataPair?
            if let m = metadata {
                guard let eq = m.firstIndex(of: "="), eq != m.startIndex, m.index(after: eq) != m.endIndex else {
                    throw usageError("--metadata must be KEY=VALUE, e.g. --metadata order=SP-2412-0489")
                }
                pair = MetadataPair(key: String(m[..<eq]), value: String(m[m.index(after: eq)...]))
            }
            let database = try openDatabase(db)
            let entries = try adminStep("audit list") {
                try database.auditPage(AuditFilter(recipient: to, status: status, metadata: pair), limit: limit, after: nil)
            }
            if entries.isEmpty && !json { print("no messages"); return }
            for e in entries {
                if json {
                    print(String(decoding: auditJSON(e).compactBytes, as: UTF8.self))
                } else {
                    print("\(e.id)\t\(formatTime(e.acceptedAt))\t\(e.status)\t\(e.recipient)\t\(e.subject)\t\(e.mailboxName)\tattempts \(e.attempts)")
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One entry: headers, status, attempts, last reply, the rendered message.")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument(help: "The audit entry's id.") var id: Int64

        func run() throws {
            let database = try openDatabase(db)
            guard let e = try adminStep("audit show", { try database.auditEntry(id: id) }) else {
                printError("tickiti-mail: error: no audit entry \(id)")
                throw ExitCode(1)
            }
            print("id:              \(e.id)")
            print("accepted-at:     \(formatTime(e.acceptedAt))")
            print("sent-at:         \(e.sentAt.map(formatTime) ?? "-")")
            print("status:          \(e.status)")
            print("attempts:        \(e.attempts)")
            print("last reply:      \(e.lastReply ?? "-")")
            print("token:           \(e.tokenName)")
            print("idempotency-key: \(e.idempotencyKey)")
            print("mailbox:         \(e.mailboxName) <\(e.mailboxAddress)>")
            print("recipient:       \(e.recipient)")
            for pair in e.metadata { print("metadata:        \(pair.key) = \(pair.value)") }
            for (i, a) in MessageReader.read(e.raw).attachments.enumerated() {
                print("attachment \(i):    \(a.filename) (\(a.contentType), \(a.size) bytes\(a.inline ? ", inline cid:\(a.contentID ?? "")" : ""))")
            }
            for r in e.recipients ?? [] {
                print("  \(r.kind.rawValue.padding(toLength: 3, withPad: " ", startingAt: 0)) \(r.address): \(r.status.rawValue)\(r.lastReply.map { " (\($0))" } ?? "")")
            }
            print("subject:         \(e.subject)")
            print("template:        \(e.template ?? "-")")
            print("message-id:      \(e.messageID)")
            print("")
            print(String(decoding: e.raw, as: UTF8.self).replacingCRLF())
        }
    }
}

func auditJSON(_ e: AuditEntry) -> JSONValue {
    func s(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
    func n(_ v: Int64?) -> JSONValue { v.map { .number(String($0)) } ?? .null }
    return .object([
        JSONMember(key: "id", value: n(e.id)), JSONMember(key: "accepted_at", value: .string(formatTime(e.acceptedAt))),
        JSONMember(key: "sent_at", value: s(e.sentAt.map(formatTime))), JSONMember(key: "status", value: .string(e.status)),
        JSONMember(key: "attempts", value: n(Int64(e.attempts))), JSONMember(key: "token", value: .string(e.tokenName)),
        JSONMember(key: "idempotency_key", value: .string(e.idempotencyKey)), JSONMember(key: "mailbox", value: .string(e.mailboxName)),
        JSONMember(key: "mailbox_address", value: .string(e.mailboxAddress)), JSONMember(key: "recipient", value: .string(e.recipient)),
        JSONMember(key: "subject", value: .string(e.subject)), JSONMember(key: "template", value: s(e.template)),
        JSONMember(key: "message_id", value: .string(e.messageID)), JSONMember(key: "last_reply", value: s(e.lastReply)),
        JSONMember(key: "metadata", value: .object(e.metadata.map { JSONMember(key: $0.key, value: .string($0.value)) })),
        JSONMember(key: "recipients", value: e.recipients.map { list in
            .array(list.map { r in
                .object([JSONMember(key: "address", value: .string(r.address)), JSONMember(key: "kind", value: .string(r.kind.rawValue)),
                         JSONMember(key: "status", value: .string(r.status.rawValue)), JSONMember(key: "last_reply", value: s(r.lastReply))])
            })
        } ?? .null),
    ])
}

extension String {
    func replacingCRLF() -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        var prevCR = false
        for u in unicodeScalars {
            if prevCR && u != "\n" { out.unicodeScalars.append("\r") }
            prevCR = u == "\r"
            if !prevCR { out.unicodeScalars.append(u) }
        }
        return out
    }
}
