/// `tickiti-mail store sql` (hidden; for Benchmarks/floor — issue 21 item 1): prints the SQL the
/// SQLite store runs to accept a message and to record its delivery, one `name<TAB>text` line
/// each, from the store's own constants (not a copy), so the floor benchmark runs exactly the
/// server's statements. Multi-line texts are printed on one line (newlines become spaces; SQLite
/// compiles the same program). The lines, in this order:
///   pragma              each PRAGMA a connection runs at open, in order (`--synchronous` as
///                       `serve --sqlite-synchronous`)
///   status_pragma       the PRAGMA of a commit that carries only status writes
///   status_sync_ms      how long after such a commit the WAL is synced (fdatasync) at the latest
///   begin, commit       the group commit's bounds
///   idempotency_lookup, idempotency_row_lookup, insert_message, insert_message_metadata,
///   insert_message_body the acceptance (Database.insertAccepted and the look-ups before it)
///   put_idempotency     a record in the table (render_template, a batch's; not run per message)
///   mark_sending, record_attempt, insert_attempt   the delivery (Database.markSending, recordAttempt)
import ArgumentParser
import Store

struct StoreSQL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sql", abstract: "Benchmarks: print the SQL statements the SQLite store uses to accept and deliver a message.",
        shouldDisplay: false)
    @Option(help: "FULL or NORMAL, as serve --sqlite-synchronous.") var synchronous = "FULL"

    func run() throws {
        guard let durable = Database.Synchronous(rawValue: synchronous.uppercased()) else {
            throw usageError("--synchronous must be FULL or NORMAL")
        }
        var lines: [(String, String)] = Database.connectionPragmas(durable).map { ("pragma", $0) }
        lines += [
            ("status_pragma", "PRAGMA synchronous=\(SQLiteServerStore.statusCommitSynchronous(durable).rawValue)"),
            ("status_sync_ms", "\(Int(SQLiteServerStore.statusSyncDelay / .milliseconds(1)))"),
            ("begin", Database.beginSQL),
            ("commit", Database.commitSQL),
            ("idempotency_lookup", Database.idempotencyLookupSQL),
            ("idempotency_row_lookup", Database.idempotencyRowLookupSQL),
            ("insert_message", Database.insertMessageSQL),
            ("insert_message_metadata", Database.insertMetadataSQL),
            ("insert_message_body", Database.insertBodySQL),
            ("put_idempotency", Database.putIdempotencySQL),
            ("mark_sending", Database.markSendingSQL),
            ("record_attempt", Database.recordAttemptSQL),
            ("insert_attempt", Database.insertAttemptSQL),
        ]
        for (name, text) in lines {
            precondition(!text.contains("\t"), "a tab in the SQL of \(name)")
            print("\(name)\t\(String(text.map { $0 == "\n" ? " " : $0 }))")
        }
    }
}
