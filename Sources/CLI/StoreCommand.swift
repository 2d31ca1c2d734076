/// `tickiti-mail store copy`: moves a whole store between SQLite and PostgreSQL (either way).
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Store

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Work on a whole store.",
        subcommands: [Copy.self, StoreFill.self, StoreSQL.self, StoreCheckpointer.self])

    struct Copy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy everything from one store into a new, empty one.",
            discussion: """
            Tokens, mailboxes, templates, idempotency records, the queue and the audit (with every \
            delivery attempt and message) are copied with their ids, from SQLite to PostgreSQL or \
            back. The source is read as one consistent snapshot, so a server may keep running on \
            it; messages it accepts after the copy starts are not copied. The target must be \
            empty (a new SQLite file or an empty PostgreSQL database; its schema is created) and \
            is written in one transaction: an interrupted copy leaves it empty. A server started \
            on the target serves at once: replays, audit entries and queued messages continue.
            """)
        @Option(help: ArgumentHelp("The store to read: a SQLite file path or a PostgreSQL URI.", valueName: "path-or-uri")) var from: String
        @Option(help: ArgumentHelp("The new store to write: a SQLite file path or a PostgreSQL URI.", valueName: "path-or-uri")) var to: String

        func run() throws {
            let source = StoreLocation(from), target = StoreLocation(to)
            if source == target || Self.sameFile(source, target) {
                printError("tickiti-mail: error: --from and --to name the same store")
                throw ExitCode(64)
            }
            if case .sqlite(let path) = source, access(path, F_OK) != 0 {
                printError("tickiti-mail: error: --from \(path): no such file")
                throw ExitCode(1)
            }
            let src = try openDatabase(from)
            let dst = try openDatabase(to)
            let live = isatty(2) != 0
            var lastLine = ""
            var printedUpTo = 0   // without a terminal: a line per table and per 100 000 rows
            let copied = try adminStep("store copy") {
                try StoreCopy.run(from: src, to: dst) { p in
                    let line = "copying \(p.table): \(p.copied)/\(p.total)"
                    if live {
                        printPartial("\r" + line + String(repeating: " ", count: max(0, lastLine.count - line.count)))
                        lastLine = line
                        if p.copied == p.total { printPartial("\n"); lastLine = "" }
                    } else if p.copied == p.total || p.copied / 100_000 > printedUpTo / 100_000 {
                        printError(line)
                        printedUpTo = p.copied == p.total ? 0 : p.copied
                    }
                }
            }
            print("copied " + copied.map { "\($0.table) \($0.rows)" }.joined(separator: ", "))
        }

        static func sameFile(_ a: StoreLocation, _ b: StoreLocation) -> Bool {
            guard case .sqlite(let p) = a, case .sqlite(let q) = b else { return false }
            var s1 = stat(), s2 = stat()
            return stat(p, &s1) == 0 && stat(q, &s2) == 0 && s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino
        }
    }
}

/// Writes `s` to stderr without a newline (a progress line rewritten in place).
func printPartial(_ s: String) {
    var bytes = Array(s.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if n <= 0 { if errno == EINTR { continue } else { return } }
        bytes = bytes.dropFirst(n)
    }
}
