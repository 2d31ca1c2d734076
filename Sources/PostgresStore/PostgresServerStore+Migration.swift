/// The schema migrations as `serve` runs them: in the loop, on every new connection, before
/// the directory is loaded — a few pipeline segments instead of the admin commands' blocking
/// calls (`PostgresAdminStore.migrate`), the same steps (`PostgresSchema.steps`) under the same
/// advisory lock, so servers and admin commands starting at once are safe together.
///
/// Segments: take the lock and make sure the version table exists; read the version (its
/// statement is prepared only once the table is sure to exist); one segment per missing step,
/// its statements in one `DO` block (a step's later statements name tables its earlier ones
/// create, which could not be prepared ahead) with its version row — the segment is one
/// implicit transaction, so a step lands whole or not at all; release the lock. Migrations on a
/// large database may run long: their segments lift `statement_timeout` for their own
/// transaction and wait up to `migrationTimeout`. A session lock dies with its connection, so a
/// connection lost midway leaves nothing held.
import PostgresClient

extension PostgresServerStore {
    static let migrationTimeout: Duration = .seconds(600)

    static let lockSchema = PGStatement("migrate_lock", "SELECT pg_advisory_lock($1::bigint)")
    static let noStatementTimeout = PGStatement("migrate_no_timeout", "SELECT set_config('statement_timeout', '0', true)")
    static let versionTable = PGStatement("migrate_table", "CREATE TABLE IF NOT EXISTS tickiti_schema (version INTEGER NOT NULL)")
    static let schemaVersion = PGStatement("migrate_version", "SELECT max(version) FROM tickiti_schema")
    static let unlockSchema = PGStatement("migrate_unlock", "SELECT pg_advisory_unlock($1::bigint)")

    /// Step `index` (0-based) as one statement: its DDL, then its version row.
    static func stepStatement(_ index: Int) -> PGStatement {
        let body = PostgresSchema.steps[index].map { "EXECUTE \(dollarQuoted($0));" }.joined(separator: "\n")
        return PGStatement("migrate_step_\(index + 1)", """
            DO $tickiti_migration$ BEGIN
            \(body)
            INSERT INTO tickiti_schema (version) VALUES (\(index + 1));
            END $tickiti_migration$
            """)
    }

    /// `sql` as a dollar-quoted literal whose tag it does not contain.
    static func dollarQuoted(_ sql: String) -> String {
        var tag = "s"
        while sql.contains("$\(tag)$") { tag += "s" }
        return "$\(tag)$\(sql)$\(tag)$"
    }

    /// Runs on each new connection; `then` once the schema is this program's.
    func migrate(then done: @escaping () -> Void) {
        migrating = true
        let lock = PGValue.int(PostgresSchema.migrationLock)
        let sent = connection.send([PGQuery(Self.noStatementTimeout), PGQuery(Self.lockSchema, [lock]), PGQuery(Self.versionTable)],
                                   timeout: Self.migrationTimeout) { [self] result in
            guard migrationSegmentSucceeded(result, "taking the schema lock") else { return }
            _ = connection.send([PGQuery(Self.schemaVersion)]) { [self] result in
                guard migrationSegmentSucceeded(result, "reading the schema version"), case .success(let o) = result, case .ok(let r) = o[0] else { return }
                let current = r.isNull(0, 0) ? 0 : Int(r.int(0, 0))
                if current > PostgresSchema.steps.count {
                    migrationFailed("the database's schema version \(current) is newer than this program's (\(PostgresSchema.steps.count)): run the newer tickiti-mail")
                    return
                }
                apply(from: current, then: done)
            }
        }
        if !sent { migrating = false }
    }

    func apply(from version: Int, then done: @escaping () -> Void) {
        guard version < PostgresSchema.steps.count else {
            _ = connection.send([PGQuery(Self.unlockSchema, [.int(PostgresSchema.migrationLock)])]) { [self] result in
                guard migrationSegmentSucceeded(result, "releasing the schema lock") else { return }
                migrating = false
                done()
            }
            return
        }
        _ = connection.send([PGQuery(Self.noStatementTimeout), PGQuery(Self.stepStatement(version))], timeout: Self.migrationTimeout) { [self] result in
            guard migrationSegmentSucceeded(result, "applying schema step \(version + 1)") else { return }
            logger.notice("PostgreSQL schema migrated to version \(version + 1)")
            apply(from: version + 1, then: done)
        }
    }

    /// A lost connection: the disconnect handler has run (the next connection starts over).
    /// A refused statement: the lock is released and the store stays unavailable, saying why.
    func migrationSegmentSucceeded(_ result: Result<[PGOutcome], PGError>, _ what: String) -> Bool {
        switch result {
        case .failure:
            migrating = false
            return false
        case .success(let outcomes):
            for o in outcomes {
                if case .failed(let e) = o {
                    migrationFailed("\(what) failed: \(e)")
                    return false
                }
            }
            return true
        }
    }

    func migrationFailed(_ reason: String) {
        migrating = false
        migrationFailure = reason
        logger.error("PostgreSQL schema migration: \(reason)")
        _ = connection.send([PGQuery(Self.unlockSchema, [.int(PostgresSchema.migrationLock)])]) { _ in }
    }
}
