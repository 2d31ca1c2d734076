/// `audit list|show`: the sent-mail audit from the command line — every accepted call with
/// its recipient, subject, status, attempts and, for `show`, the rendered message.
import ArgumentParser
import JSON
import MIME
import Store
import App
import AuditAPI
import SendAPI

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
        @Option(help: ArgumentHelp("Only entries accepted at or after this time (RFC 3339).", valueName: "TIME")) var since: String?
        @Option(help: ArgumentHelp("Only entries accepted before this time (RFC 3339).", valueName: "TIME")) var until: String?
        @Option(help: ArgumentHelp("Only entries whose metadata has KEY with exactly VALUE (what the send gave in \"metadata\").",
                                   valueName: "KEY=VALUE")) var metadata: String?
        @Flag(help: "One JSON object per line, with the field names and times of GET /api/audit.") var json = false

        func run() throws {
            guard (1...10_000).contains(limit) else { throw usageError("--limit must be 1–10000") }
            if let s = status, !AuditQuery.statuses.contains(s) {
                throw usageError("--status must be one of \(AuditQuery.statuses.joined(separator: ", "))")
            }
            func time(_ v: String?, _ flag: String) throws -> Int64? {
                guard let v else { return nil }
                guard let ms = RFC3339.parse(v) else { throw usageError("\(flag) must be an RFC 3339 time, e.g. 2026-12-04T09:30:00Z") }
                return ms
            }
            let from = try time(since, "--since"), to_ = try time(until, "--until")
            if let f = from, let u = to_, f >= u { throw usageError("--until must be later than --since") }
            var pair: MetadataPair?
            if let m = metadata {
                guard let eq = m.firstIndex(of: "="), eq != m.startIndex, m.index(after: eq) != m.endIndex else {
                    throw usageError("--metadata must be KEY=VALUE, e.g. --metadata order=SP-2412-0489")
                }
                pair = MetadataPair(key: String(m[..<eq]), value: String(m[m.index(after: eq)...]))
            }
            let database = try openDatabase(db)
            let entries = try adminStep("audit list") {
                try database.auditPage(AuditFilter(recipient: to, status: status, since: from, until: to_, metadata: pair), limit: limit, after: nil)
            }
            if json {
                for e in entries { print(auditJSONLine(e)) }
                return
            }
            if entries.isEmpty { print("no messages"); return }
            print("ID\tACCEPTED\tSTATUS\tTO\tSUBJECT\tMAILBOX\tATTEMPTS")
            for e in entries {
                print("\(e.id)\t\(formatTime(e.acceptedAt))\t\(e.status)\t\(e.recipient)\t\(e.subject)\t\(e.mailboxName)\t\(e.attempts)")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One entry: its facts, each delivery attempt and the next retry, and the message decoded (headers, text, HTML).")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Flag(help: "Print the message's exact bytes instead of decoding it.") var raw = false
        @Argument(help: "The audit entry's id (the first column of audit list).") var id: Int64

        func run() throws {
            let database = try openDatabase(db)
            guard let e = try adminStep("audit show", { try database.auditEntry(id: id) }) else {
                printError("tickiti-mail: error: no audit entry \(id)")
                throw ExitCode(1)
            }
            let attempts = try adminStep("audit show") { try database.deliveryAttempts(messageID: id) }
            print("id:              \(e.id)")
            print("accepted-at:     \(formatTime(e.acceptedAt))")
            print("sent-at:         \(e.sentAt.map(formatTime) ?? "-")")
            print("status:          \(e.status)")
            if e.status == "deferred" || e.status == "queued", let next = e.nextAttemptAt { print("next retry:      \(formatTime(next))") }
            print("attempts:        \(e.attempts)")
            for a in attempts { print("  \(formatTime(a.at))  \(a.outcome.padding(toLength: 8, withPad: " ", startingAt: 0)) \(a.reply)") }
            print("last reply:      \(e.lastReply ?? "-")")
            print("token:           \(e.tokenName)")
            print("idempotency-key: \(e.idempotencyKey)")
            print("mailbox:         \(e.mailboxName) <\(e.mailboxAddress)>")
            print("recipient:       \(e.recipient)")
            for r in e.recipients ?? [] {
                print("  \(r.kind.rawValue.padding(toLength: 3, withPad: " ", startingAt: 0)) \(r.address): \(r.status.rawValue)\(r.lastReply.map { " (\($0))" } ?? "")")
            }
            for pair in e.metadata { print("metadata:        \(pair.key) = \(pair.value)") }
            let message = MessageReader.read(e.raw)
            for (i, a) in message.attachments.enumerated() {
                print("attachment \(i):    \(a.filename) (\(a.contentType), \(a.size) bytes\(a.inline ? ", inline cid:\(a.contentID ?? "")" : ""))")
            }
            print("subject:         \(e.subject)")
            print("template:        \(e.template ?? "-")")
            print("message-id:      \(e.messageID)")
            print("")
            if raw {
                print(String(decoding: e.raw, as: UTF8.self).replacingCRLF())
                return
            }
            print("-- headers")
            for h in message.headers { print("\(h.name): \(h.value)") }
            print("-- text part")
            print(message.text.map { $0.replacingCRLF() } ?? "(none)")
            print("-- HTML part")
            print(message.html.map { $0.replacingCRLF() } ?? "(none)")
        }
    }
}

/// One entry as `GET /api/audit` writes it (the same names and RFC 3339 times).
func auditJSONLine(_ e: AuditEntry) -> String {
    var w = JSONWriter(capacity: 512)
    w.open("{")
    w.entry(e)
    w.close("}")
    return w.out
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
