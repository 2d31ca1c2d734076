/// The README's administration commands, read from README.md and run as printed (issue 22: a
/// newcomer pastes them). Each line of the "Administration" block is a synopsis: alternatives
/// separated by ` | ` are each run, an optional `[…]` part is run with it (not dropped: its
/// flag must exist), a value list `a|b|c` is run with its first value, and the placeholders in
/// capitals get a value of the kind they name. Every command must exit 0 — a flag renamed or a
/// subcommand removed in the code without the README following fails here. The store is SQLite
/// (the commands do not depend on it; the PostgreSQL pass runs the same CLI in its own tests).
import Foundation
import Testing
import Store

@Suite struct ReadmeCommandTests {
    /// The commands of README.md's "## Administration" section, one string per command as it
    /// would be typed (continuation lines joined, comments dropped), in order.
    static func administrationSynopses() throws -> [String] {
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        let parts = readme.components(separatedBy: "\n## Administration\n")
        guard parts.count == 2 else { throw TestFailure("README.md has no '## Administration' section") }
        let section = parts[1].components(separatedBy: "\n## ")[0]
        var lines: [String] = []
        var continuing = false
        for raw in section.split(separator: "\n", omittingEmptySubsequences: false) {
            guard raw.hasPrefix("    ") else { continuing = false; continue }
            var line = String(raw.dropFirst(4))
            if let comment = line.range(of: #"\s+#\s.*$"#, options: .regularExpression) { line.removeSubrange(comment) }
            let joins = line.hasSuffix("\\")
            if joins { line = String(line.dropLast()) }
            line = line.trimmingCharacters(in: .whitespaces)
            if continuing, !lines.isEmpty {
                lines[lines.count - 1] += " " + line
            } else if line.hasPrefix("tickiti-mail ") {
                lines.append(line)
            }
            continuing = joins
        }
        return lines
    }

    /// One synopsis line → the commands it shows, with values for its placeholders.
    static func commands(_ synopsis: String, values: (_ command: String, _ placeholder: String) -> String) -> [String] {
        let alternatives = synopsis.components(separatedBy: " | ").enumerated().map { i, a in
            i == 0 ? a : "tickiti-mail " + a
        }
        return alternatives.map { alternative in
            let unwrapped = alternative.replacingOccurrences(of: "[", with: "").replacingOccurrences(of: "]", with: "")
            var words = unwrapped.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            let command = words.prefix(3).joined(separator: " ")
            for i in words.indices {
                let w = words[i]
                if w.contains("|"), !w.hasPrefix("'"), !w.hasPrefix("\"") {
                    words[i] = String(w.split(separator: "|")[0])           // a value list: its first value
                } else if w.count <= 5, w.allSatisfy({ $0.isUppercase || $0 == "=" }), w.contains(where: \.isUppercase) {
                    words[i] = values(command, w)                             // NAME, ID, N, ADDR, K=V, A, D, DSN
                }
            }
            return words.joined(separator: " ")
        }
    }

    @Test(.enabled(if: TestStore.isSQLite)) func theAdministrationCommandsWorkAsPrinted() throws {
        let synopses = try Self.administrationSynopses()
        #expect(synopses.count >= 12, "the Administration block: \(synopses)")

        // A store with messages to show, retry and cancel, through a mailbox of their own (the
        // README's `mailbox remove` of its example mailbox must not be refused because of them).
        let dir = makeTempDir()
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let failedID: Int64, queuedID: Int64
        do {
            let db = try Database(path: dir + "/data/tickiti.db")
            func message(_ n: Int) -> NewMessage {
                NewMessage(acceptedAt: 1_790_000_000_000 + Int64(n), tokenID: 1, tokenName: "ops", idempotencyKey: "readme-\(n)",
                           fingerprint: [UInt8(n)], responseStatus: 200, responseBody: Array(#"{"ok":true}"#.utf8),
                           mailboxName: "Billing", mailboxAddress: "billing@shop.example", recipient: "customer@example.com",
                           subject: "Invoice \(n)", template: nil, messageID: "<readme.\(n)@shop.example>",
                           raw: Array("Subject: Invoice \(n)\r\nFrom: billing@shop.example\r\nTo: customer@example.com\r\n\r\nHello\r\n".utf8))
            }
            _ = try db.insertAccepted(message(1))
            failedID = try db.insertAccepted(message(2), sending: true)
            try db.recordAttempt(id: failedID, status: "failed", outcome: "failed", reply: "550 5.1.1 no such user",
                                 atMilliseconds: 1_790_000_000_100, nextAttemptAt: 1_790_000_000_100)
            queuedID = try db.insertAccepted(message(3))
        }
        try "<p>Invoice {{invoice_number}}</p>".write(toFile: dir + "/invoice.html", atomically: true, encoding: .utf8)
        try "Invoice {{invoice_number}}".write(toFile: dir + "/invoice.txt", atomically: true, encoding: .utf8)

        let binary = URL(fileURLWithPath: binaryPath()).standardizedFileURL.path   // absolute: the commands run in `dir`
        var ran = 0
        for synopsis in synopses {
            for command in Self.commands(synopsis, values: { command, placeholder in
                switch placeholder {
                case "NAME": return command.hasPrefix("tickiti-mail token") ? "shop" : command.hasPrefix("tickiti-mail message") ? "Billing" : "Sales"
                case "ID":
                    if command.hasPrefix("tickiti-mail template") { return "invoice_delivery" }
                    if command.hasPrefix("tickiti-mail message retry") { return String(failedID) }
                    if command.hasPrefix("tickiti-mail message cancel") { return String(queuedID) }
                    return "1"
                case "N": return "5"
                case "ADDR": return "customer@example.com"
                case "K=V": return "order=SP-1"
                case "A": return "sales2@shop.example"
                case "D": return "'Shop Two'"
                case "DSN": return "'file://data/outbox'"
                default: return placeholder
                }
            }) {
                let line = "'\(binary)'" + command.dropFirst("tickiti-mail".count)
                let (rc, out) = try run(["sh", "-c", "cd '\(dir)' && env -u TICKITI_DB \(line)"])
                #expect(rc == 0, "README.md's `\(synopsis)` as `\(command)` exited \(rc):\n\(out)")
                ran += 1
            }
        }
        #expect(ran >= 19, "\(ran) commands")
        // What they did, as the README says: `message retry ID` queued the failed message again,
        // `message cancel ID` cancelled one queued message and `--status queued` the other two.
        let (rc, shown) = try run(["sh", "-c", "cd '\(dir)' && env -u TICKITI_DB '\(binary)' audit list --json"])
        #expect(rc == 0)
        #expect(shown.components(separatedBy: #""status":"cancelled""#).count - 1 == 3, "\(shown)")
    }
}
