/// `message retry|cancel` (SPEC §6): an operator's hand on the queue, by id or by filter, each
/// change recorded as an attempt in the audit. The server sees them without a restart: SQLite's
/// next loop iteration notices another connection's commit and scans the queue; PostgreSQL
/// servers scan it every second.
import ArgumentParser
import Store

struct MessageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "message", abstract: "Retry or cancel queued messages (one by id, or all that match a filter).",
        subcommands: [Retry.self, Cancel.self])

    struct Selection: ParsableArguments {
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument(help: "The message's id (as in the audit).") var id: Int64?
        @Option(help: "Every message in this status instead of one id.") var status: String?
        @Option(help: "With --status: only messages through this mailbox.") var mailbox: String?
        @Option(help: "With --status: at most this many messages.") var limit = 10_000

        func check(allowed: [String]) throws {
            if id != nil && (status != nil || mailbox != nil) { throw usageError("give a message id or --status (with --mailbox), not both") }
            if id == nil && status == nil { throw usageError("give a message id, or --status STATUS (and --mailbox NAME) for many") }
            if mailbox != nil && status == nil { throw usageError("--mailbox needs --status") }
            if let s = status, !allowed.contains(s) { throw usageError("--status must be one of \(allowed.joined(separator: ", "))") }
            if limit < 1 { throw usageError("--limit must be at least 1") }
        }

        /// Applies `change` to the selection; prints one line per message and a count; exit 1
        /// when a single id could not be changed.
        func apply(_ verb: String, _ change: (AdminStore, Int64, Int64) throws -> MessageChange) throws {
            let database = try openDatabase(db)
            let now = nowMilliseconds()
            if let id {
                switch try adminStep("message \(verb)", { try change(database, id, now) }) {
                case .changed:
                    print("\(verb == "retry" ? "queued" : "cancelled") message \(id)")
                case .notFound:
                    printError("tickiti-mail: error: no message \(id)")
                    throw ExitCode(1)
                case .refused(let status):
                    printError("tickiti-mail: error: message \(id) is \(status): \(verb) applies to \(verb == "retry" ? "deferred, failed or uncertain" : "queued or deferred") messages")
                    throw ExitCode(1)
                }
                return
            }
            let ids = try adminStep("message \(verb)") { try database.messageIDs(status: status!, mailbox: mailbox, limit: limit) }
            var changed = 0
            for id in ids {
                if case .changed = try adminStep("message \(verb)", { try change(database, id, now) }) { changed += 1 }
            }
            print("\(verb == "retry" ? "queued" : "cancelled") \(changed) message(s)")
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a deferred, failed or uncertain message again now (its attempt counts start over; an uncertain one may reach its recipients twice).")
        @OptionGroup var selection: Selection
        func validate() throws { try selection.check(allowed: ["deferred", "failed", "uncertain"]) }
        func run() throws { try selection.apply("retry") { try $0.retryMessage(id: $1, now: $2) } }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a queued or deferred message from being sent (it stays in the audit as cancelled). A message being sent at this moment cannot be cancelled.")
        @OptionGroup var selection: Selection
        func validate() throws { try selection.check(allowed: ["queued", "deferred"]) }
        func run() throws { try selection.apply("cancel") { try $0.cancelMessage(id: $1, now: $2) } }
    }
}
