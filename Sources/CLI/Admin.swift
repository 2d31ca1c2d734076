/// Admin subcommands: tokens and mailboxes, on the same database the server uses (it sees
/// their changes without a restart). Output for people on stdout; errors one line on stderr.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Auth
import Relay
import PostgresStore
import Store

func nowMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// `--db`: the environment's `TICKITI_DB`, else the embedded default.
let defaultDatabase = getenv("TICKITI_DB").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "./data/tickiti.db"
let databaseHelp = ArgumentHelp(
    "The store: a SQLite file path (its folder is made when missing) or a PostgreSQL URI, postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=… (default: $TICKITI_DB, else ./data/tickiti.db).",
    valueName: "path-or-uri")

/// Opens (and migrates) the store `--db` names, for an admin command.
func openDatabase(_ location: String) throws -> AdminStore {
    do {
        return try openAdminStore(StoreLocation(location))
    } catch {
        printError("tickiti-mail: error: \(error)")
        throw ExitCode(1)
    }
}

func openAdminStore(_ location: StoreLocation) throws -> AdminStore {
    switch location {
    case .sqlite(let path): return try Database(path: path)
    case .postgres(let uri): return try PostgresAdminStore(uri: uri)
    }
}

struct StoreUnavailable: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A change to one object named on the command line: prints `done` when made; when there is
/// no such object (`body` returns false), one line and exit 1.
func changeNamed(_ db: String, _ step: String, missing: String, done: String, _ body: (AdminStore) throws -> Bool) throws {
    let database = try openDatabase(db)
    guard try adminStep(step, { try body(database) }) else {
        printError("tickiti-mail: error: \(missing)")
        throw ExitCode(1)
    }
    print(done)
}

/// Runs `body`, turning store errors into one line and exit 1.
func adminStep<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as StoreError where e.isUniqueViolation {
        printError("tickiti-mail: error: \(what): that name is already taken")
        throw ExitCode(1)
    } catch {
        printError("tickiti-mail: error: \(what): \(error)")
        throw ExitCode(1)
    }
}

func formatTime(_ ms: Int64) -> String {
    var t = time_t(ms / 1000)
    var tmv = tm()
    gmtime_r(&t, &tmv)
    var buf = [CChar](repeating: 0, count: 32)
    strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &tmv)
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list, revoke and remove API tokens.",
        subcommands: [Create.self, List.self, Revoke.self, Remove.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token and print it once, as the last line: ID|SECRET, what clients send as 'Authorization: Bearer ID|SECRET' (only a hash of SECRET is kept).")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Option(help: "A name to know the token by (unique).") var name: String
        @Option(help: "send-email, audit-read or * (repeatable).") var ability: [String] = []

        func validate() throws {
            if name.isEmpty || name.count > 100 || name.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                throw usageError("--name must be 1–100 printable characters")
            }
            if ability.isEmpty { throw usageError("give at least one --ability (send-email, audit-read or *)") }
            for a in ability where !Ability.known.contains(a) {
                throw usageError("unknown ability \"\(a)\"; use send-email, audit-read or *")
            }
        }

        func run() throws {
            let database = try openDatabase(db)
            var rng = SystemRandomNumberGenerator()
            let secret = BearerToken.makeSecret(using: &rng)
            let id = try adminStep("token create") {
                try database.createToken(name: name, secretHash: BearerToken.hash(secret: secret),
                                         abilities: Array(Set(ability)).sorted(), now: nowMilliseconds())
            }
            printError("token \"\(name)\" created with \(Array(Set(ability)).sorted().joined(separator: ", ")); it is shown once — store it now")
            print("\(id)|\(secret)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @Option(help: databaseHelp) var db = defaultDatabase

        func run() throws {
            let database = try openDatabase(db)
            let tokens = try adminStep("token list") { try database.tokens() }
            if tokens.isEmpty { print("no tokens"); return }
            for t in tokens {
                let state = t.revokedAt.map { "revoked \(formatTime($0))" } ?? "active"
                let used = t.lastUsedAt.map { "last used \(formatTime($0))" } ?? "never used"
                print("\(t.id)\t\(t.name)\t\(t.abilities.joined(separator: ","))\tcreated \(formatTime(t.createdAt))\t\(used)\t\(state)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by name; it stops working at once.")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument(help: "The token's name.") var name: String

        func run() throws {
            try changeNamed(db, "token revoke", missing: "no active token named \"\(name)\"", done: "revoked \(name)") {
                try $0.revokeToken(name: name, now: nowMilliseconds())
            }
        }
    }
}

extension TokenCommand {
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a token and its idempotency records (revoke keeps it listed; the audit keeps the name either way).")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument(help: "The token's name.") var name: String

        func run() throws {
            try changeNamed(db, "token remove", missing: "no token named \"\(name)\"", done: "removed token \(name)") { try $0.removeToken(name: name) }
        }
    }
}

struct MailboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mailbox", abstract: "Add, list, change, enable, disable and remove outbound mailboxes.",
        subcommands: [Add.self, List.self, Update.self, Enable.self, Disable.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a mailbox (name, sender address, relay DSN).")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Option(help: "Unique name (what API callers pass as \"mailbox\").") var name: String
        @Option(help: "Sender address.") var address: String
        @Option(help: "smtp://[user:pass@]host[:port], smtps://…, or file://DIR; parameters after ?: starttls=required|opportunistic|off, ca_file=PATH, verify_peer=false, max_connections=N (default 4), rate=N/s|N/m|N/h (messages), daily_recipients=N (a rolling 24 hours).") var dsn: String
        @Option(name: .customLong("display-name"), help: "Display name for From.") var displayName: String?
        @Flag(help: "Add it disabled.") var disabled = false

        func validate() throws {
            if name.isEmpty || name.count > 100 || name.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                throw usageError("--name must be 1–100 printable characters")
            }
            try validateMailboxFields(address: address, displayName: displayName, dsn: dsn)
        }

        func run() throws {
            let database = try openDatabase(db)
            _ = try adminStep("mailbox add") {
                try database.addMailbox(name: name, address: address, displayName: displayName, dsn: dsn,
                                        enabled: !disabled, now: nowMilliseconds())
            }
            if let parsed = try? RelayDSN(parsing: dsn), !parsed.verifyPeer {
                printError("warning: verify_peer=false — the relay's certificate will NOT be checked; development only")
            }
            print("added mailbox \(name) <\(address)>\(disabled ? " (disabled)" : "")")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List mailboxes in creation order (passwords hidden), with what their relay said: paused (throttled or over a quota) until when, and the recipients of the last 24 hours against daily_recipients=.")
        @Option(help: databaseHelp) var db = defaultDatabase

        func run() throws {
            let database = try openDatabase(db)
            let boxes = try adminStep("mailbox list") { try database.mailboxes() }
            if boxes.isEmpty { print("no mailboxes"); return }
            let now = nowMilliseconds()
            for m in boxes {
                var state = m.enabled ? "enabled" : "disabled"
                if let p = m.pause, p.until > now { state += ", paused until \(formatTime(p.until)) (\(p.reason))" }
                if let limit = (try? RelayDSN(parsing: m.dsn))?.dailyRecipients {
                    let used = try adminStep("mailbox list") { try database.recipientsSent(mailbox: m.name, since: now - 86_400_000) }
                    state += ", \(used) of \(limit) recipients in the last 24 h"
                }
                print("\(m.name)\t\(m.displayName.map { "\($0) " } ?? "")<\(m.address)>\t\(redactPassword(m.dsn))\t\(state)")
            }
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a mailbox's sender address, display name or relay DSN (the server uses the change for its next messages).")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument(help: "The mailbox's name.") var name: String
        @Option(help: "New sender address.") var address: String?
        @Option(name: .customLong("display-name"), help: "New display name for From (\"\" removes it).") var displayName: String?
        @Option(help: "New relay DSN (the forms of mailbox add).") var dsn: String?

        func validate() throws {
            guard address != nil || displayName != nil || dsn != nil else {
                throw usageError("give at least one of --address, --display-name, --dsn")
            }
            try validateMailboxFields(address: address, displayName: displayName, dsn: dsn)
        }

        func run() throws {
            try changeNamed(db, "mailbox update", missing: "no mailbox named \"\(name)\"", done: "updated mailbox \(name)") {
                try $0.updateMailbox(name: name, address: address, displayName: displayName, dsn: dsn)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a mailbox. Refused while messages wait to go through it (disable it instead: they stay queued until it is enabled).")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument(help: "The mailbox's name.") var name: String

        func run() throws {
            try changeNamed(db, "mailbox remove", missing: "no mailbox named \"\(name)\"", done: "removed mailbox \(name) (its messages stay in the audit)") {
                let waiting = try $0.unfinishedMessages(mailbox: name)
                if waiting > 0 {
                    printError("tickiti-mail: error: \(waiting) message(s) are still queued, sending or deferred through mailbox \"\(name)\"; removing it would strand them. Disable it (mailbox disable \(name)) or wait until they are delivered.")
                    throw ExitCode(1)
                }
                return try $0.removeMailbox(name: name)
            }
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a mailbox.")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument var name: String
        func run() throws { try toggle(db: db, name: name, enabled: true) }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a mailbox.")
        @Option(help: databaseHelp) var db = defaultDatabase
        @Argument var name: String
        func run() throws { try toggle(db: db, name: name, enabled: false) }
    }
}

/// The rules of `mailbox add` for the fields given (`update` passes only what changes).
func validateMailboxFields(address: String?, displayName: String?, dsn: String?) throws {
    if let address {
        let a = address.unicodeScalars
        guard let at = address.lastIndex(of: "@"), at != address.startIndex, address.index(after: at) != address.endIndex,
              !a.contains(where: { $0.value < 0x21 || $0 == "<" || $0 == ">" || $0 == "," || $0 == ";" || $0.value == 0x7f }) else {
            throw usageError("--address \"\(address)\" is not an email address")
        }
    }
    if let d = displayName, d.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
        throw usageError("--display-name must not contain control characters")
    }
    guard let dsn else { return }
    let parsed: RelayDSN
    do { parsed = try RelayDSN(parsing: dsn) } catch { throw usageError("--dsn: \(error)") }
    if let ca = parsed.caFile, access(ca, R_OK) != 0 {
        throw usageError("--dsn: ca_file \(ca) is not readable")
    }
    if case .file(let directory) = parsed.transport, let blocker = Mailbox.notAFolder(on: directory) {
        // The server creates missing folders (relative ones in its working directory, here
        // assumed to be this one); a file in the way would fail every delivery.
        throw usageError("--dsn: file://\(directory) cannot be a folder: \(blocker) is a file")
    }
}

func toggle(db: String, name: String, enabled: Bool) throws {
    try changeNamed(db, "mailbox \(enabled ? "enable" : "disable")", missing: "no mailbox named \"\(name)\"",
                    done: "\(enabled ? "enabled" : "disabled") \(name)") { try $0.setMailboxEnabled(name: name, enabled) }
}

/// `smtp://user:secret@host` → `smtp://user:***@host`.
func redactPassword(_ dsn: String) -> String {
    guard let schemeEnd = dsn.firstIndex(of: "/"), let at = dsn.lastIndex(of: "@"), at > schemeEnd else { return dsn }
    let userInfo = dsn[dsn.index(schemeEnd, offsetBy: 2)..<at]
    guard let colon = userInfo.firstIndex(of: ":") else { return dsn }
    return String(dsn[..<dsn.index(after: colon)]) + "***" + String(dsn[at...])
}

enum Mailbox {
    /// The first existing component of `directory`'s path that is not a folder, if any.
    static func notAFolder(on directory: String) -> String? {
        var path = directory.hasPrefix("/") ? "" : "."
        for part in directory.split(separator: "/") {
            path += "/" + part
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }   // missing from here on: made at delivery
            if (st.st_mode & S_IFMT) != S_IFDIR { return path.hasPrefix("./") ? String(path.dropFirst(2)) : path }
        }
        return nil
    }
}
