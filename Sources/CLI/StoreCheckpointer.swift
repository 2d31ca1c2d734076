/// `tickiti-mail store checkpointer` (hidden; started by `serve --sqlite-checkpoints helper`, not the
/// default on SQLite): the WAL checkpoint helper of Store's CheckpointHandOff. Reads checkpoint
/// requests from descriptor 3 (a pipe from the server) and runs each as a PASSIVE checkpoint on
/// its own connection; exits when the pipe closes (the server stopped or died).
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import Store

struct StoreCheckpointer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpointer", abstract: "The WAL checkpoint helper a SQLite server starts (reads requests from descriptor 3).",
        shouldDisplay: false)
    @Option(help: databaseHelp) var db = defaultDatabase
    @Option(name: .customLong("sqlite-synchronous"), help: "FULL or NORMAL, as the server's.") var sqliteSynchronous = "FULL"

    func run() throws {
        guard case .sqlite(let path) = StoreLocation(db) else { throw usageError("the checkpointer works on a SQLite store") }
        guard let synchronous = Database.Synchronous(rawValue: sqliteSynchronous.uppercased()) else {
            throw usageError("--sqlite-synchronous must be FULL or NORMAL")
        }
        let logger = bootstrapLogging(.notice)
        guard fcntl(3, F_GETFD) >= 0 else {
            logger.error("the checkpointer reads its requests from descriptor 3, which is not open: it is started by serve, not by hand")
            throw ExitCode(1)
        }
        // The server opened and migrated the database before starting this: opening it finds
        // nothing to migrate, but may meet the server's first transactions (a fresh WAL being
        // set up answers SQLITE_BUSY): waiting here holds up nothing of the server's. A PASSIVE
        // checkpoint never waits, whatever the timeout.
        let database = try Database(path: path, synchronous: synchronous, busyTimeoutMilliseconds: 5000)
        try CheckpointerProcess(db: database, fd: 3, logger: logger).run()
    }
}
