/// Migrations: the schema, versioned by PRAGMA user_version and applied in order at open.
/// A migration never changes once released; a new one is appended.
///
/// `messages` is the outbound queue and the sent-mail audit in one row per accepted call, its
/// bytes in `message_bodies` under the same id: the inserts of the acceptance transaction make
/// both durable together (SPEC §4).
/// Times are milliseconds since the Unix epoch.
enum Migrations {
    enum Step {
        /// SQL run as it is.
        case sql(String)
        /// Text replacements in tables' stored definitions, for changes that leave every stored
        /// row valid and the file format as it is (SQLite's documented writable_schema procedure,
        /// lang_altertable.html §7): no table rebuild, whatever the table's size.
        case redefine([(table: String, from: String, to: String)])
    }

    static let steps: [Step] = [
        // 1: tokens, mailboxes, templates, idempotency records, messages (queue + audit)
        .sql("""
        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            secret_hash BLOB NOT NULL,
            abilities TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER
        );
        CREATE TABLE mailboxes (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            address TEXT NOT NULL,
            display_name TEXT,
            dsn TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE templates (
            id INTEGER PRIMARY KEY,
            identifier TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            html TEXT NOT NULL,
            text TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE idempotency (
            token_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            fingerprint BLOB NOT NULL,
            status INTEGER NOT NULL,
            body BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (token_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX idempotency_created ON idempotency(created_at);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            accepted_at INTEGER NOT NULL,
            sent_at INTEGER,
            token_name TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            mailbox_name TEXT NOT NULL,
            mailbox_address TEXT NOT NULL,
            recipient TEXT NOT NULL,
            subject TEXT NOT NULL,
            template TEXT,
            message_id TEXT NOT NULL,
            raw BLOB NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued','sending','deferred','sent','failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            last_reply TEXT
        );
        CREATE INDEX messages_due ON messages(status, next_attempt_at, id);
        CREATE INDEX messages_recipient ON messages(recipient COLLATE NOCASE, id);
        """),
        // 2: one row per delivery attempt (the audit's "attempts" detail)
        .sql("""
        CREATE TABLE delivery_attempts (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id),
            at INTEGER NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('sent','deferred','failed')),
            reply TEXT NOT NULL
        );
        CREATE INDEX delivery_attempts_message ON delivery_attempts(message_id, id);
        """),
        // 3: the audit's pages, newest first by (accepted_at, id), one index per filter so a page
        // is one bounded index range whatever the table's size (every index ends in the rowid,
        // which is `id`: the keyset order needs no sort).
        .sql("""
        DROP INDEX messages_recipient;
        CREATE INDEX messages_recipient ON messages(recipient COLLATE NOCASE, accepted_at);
        CREATE INDEX messages_accepted ON messages(accepted_at);
        CREATE INDEX messages_status ON messages(status, accepted_at);
        """),
        // 4: the message bytes move to their own table, written once at acceptance. A `messages`
        // row was ~2.3 KB with them — one row per 4 KB page, so every status change rewrote a
        // whole page into the WAL (and the checkpoint copied it again); without them ~15 rows
        // share a page and a batch of status changes touches a few pages. And the due index holds
        // only what may be due (`queued`, `deferred`): a message accepted straight into `sending`
        // and then `sent` never enters it, one index insert and one delete fewer per message.
        .sql("""
        CREATE TABLE message_bodies (
            id INTEGER PRIMARY KEY REFERENCES messages(id),
            raw BLOB NOT NULL
        );
        INSERT INTO message_bodies (id, raw) SELECT id, raw FROM messages;
        ALTER TABLE messages DROP COLUMN raw;
        DROP INDEX messages_due;
        CREATE INDEX messages_due ON messages(status, next_attempt_at, id) WHERE status = 'queued' OR status = 'deferred';
        """),
        // 5: CHECK (x IN (…constants…)) made SQLite build an ephemeral b-tree of the constants on
        // every INSERT and UPDATE of the row (OpenEphemeral + one IdxInsert per constant: 2.2 µs of
        // a 3.4 µs insert, three times per delivered message). The same constraints as OR chains
        // compile to plain comparisons; every stored row satisfies both forms.
        .redefine([
            (table: "messages", from: "CHECK (status IN ('queued','sending','deferred','sent','failed'))",
             to: "CHECK (status = 'queued' OR status = 'sending' OR status = 'deferred' OR status = 'sent' OR status = 'failed')"),
            (table: "delivery_attempts", from: "CHECK (outcome IN ('sent','deferred','failed'))",
             to: "CHECK (outcome = 'sent' OR outcome = 'deferred' OR outcome = 'failed')"),
        ]),
        // 6: a message with Cc or Bcc recipients: each one's state (RecipientState.encode);
        // NULL — no bytes at all — for the usual message with only its To.
        .sql("ALTER TABLE messages ADD COLUMN recipients TEXT;"),
        // 7: metadata — on the row for reading it back (`key value` lines, NULL for none), and
        // one row per pair in its own table whose index makes a `metadata.KEY=VALUE` page one
        // range, newest first, however large the audit grows.
        .sql("""
        ALTER TABLE messages ADD COLUMN metadata TEXT;
        CREATE TABLE message_metadata (
            message_id INTEGER NOT NULL REFERENCES messages(id),
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            accepted_at INTEGER NOT NULL,
            PRIMARY KEY (message_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX message_metadata_lookup ON message_metadata(key, value, accepted_at, message_id);
        """),
        // 8: one call's entry by its Idempotency-Key or its Message-ID (GET /api/audit?idempotency_key=…,
        // ?message_id=…). Message-IDs start with their millisecond (MessageBuilder): that index grows
        // at its end; keys are the client's (random UUIDs): one more random insert per message.
        .sql("""
        CREATE INDEX messages_idempotency_key ON messages(idempotency_key, accepted_at);
        CREATE INDEX messages_message_id ON messages(message_id, accepted_at);
        """),
        // 9: each token's last use (`token list`), written at most once a minute per token.
        .sql("ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;"),
        // 10: relays in the real world (SPEC §6): the statuses `uncertain` (the end-of-data reply
        // never came) and `cancelled` (an operator's), and the attempts a throttled try and an
        // operator's retry or cancel leave in the audit.
        .redefine([
            (table: "messages", from: "OR status = 'failed')", to: "OR status = 'failed' OR status = 'uncertain' OR status = 'cancelled')"),
            (table: "delivery_attempts", from: "OR outcome = 'failed')",
             to: "OR outcome = 'failed' OR outcome = 'uncertain' OR outcome = 'throttled' OR outcome = 'retried' OR outcome = 'cancelled')"),
        ]),
        // 11: how often a message ended uncertain (bounded by --uncertain-retries); a mailbox's
        // pause (throttled or over its quota: `mailbox list`, kept across restarts); recipients
        // given to each mailbox's relay per minute (its `daily_recipients=` rolling window,
        // at most 1 440 rows a mailbox: older ones are deleted as new minutes begin).
        .sql("""
        ALTER TABLE messages ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE mailbox_pauses (
            mailbox TEXT PRIMARY KEY,
            until INTEGER NOT NULL,
            level INTEGER NOT NULL,
            reason TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE mailbox_usage (
            mailbox TEXT NOT NULL,
            minute INTEGER NOT NULL,
            recipients INTEGER NOT NULL,
            PRIMARY KEY (mailbox, minute)
        ) WITHOUT ROWID;
        """),
        // 12: a send_email call's idempotency record on its message's row (`record_token`: the
        // token it is scoped to; NULL — a batch's message, or a row from before — when the record,
        // if any, is in `idempotency`). Its look-up is then the messages_idempotency_key range the
        // audit needs anyway, and accepting a message no longer inserts into the idempotency
        // B-tree — random-keyed (the client's UUIDs), so every insert dirtied a page of its own
        // that the WAL and then the checkpoint wrote, and every expiry deleted from another. At
        // 1 000 000 rows that insert was 16 KB of the 43 KB a message wrote to the disk and 30 µs
        // of 107 µs of CPU (Benchmarks/floor). `idempotency` keeps the other endpoints' records
        // (render_template, batches) and those written before; a look-up reads both.
        .sql("""
        ALTER TABLE messages ADD COLUMN record_token INTEGER;
        ALTER TABLE messages ADD COLUMN record_fingerprint BLOB;
        ALTER TABLE messages ADD COLUMN record_status INTEGER;
        ALTER TABLE messages ADD COLUMN record_body BLOB;
        """),
    ]

    /// Applies the steps after the database's version, through `target`. Returns true when a
    /// `.redefine` step ran (the caller then opens a fresh connection).
    @discardableResult
    static func run(on db: Database, through target: Int = steps.count) throws(SQLiteError) -> Bool {
        let s = try db.statement("PRAGMA user_version")
        let current = try s.step() ? s.int(0) : 0
        s.finish()
        guard current < target else {
            if current > steps.count {
                throw SQLiteError(message: "database schema version \(current) is newer than this program (\(steps.count))")
            }
            return false
        }
        var redefined = false
        try db.begin()
        do {
            for i in current..<target {
                switch steps[i] {
                case .sql(let sql): try db.execute(sql)
                case .redefine(let edits):
                    try redefine(edits, on: db)
                    redefined = true
                }
            }
            try db.execute("PRAGMA user_version=\(target)")
            try db.commit()
            return redefined
        } catch {
            db.rollback()
            throw error
        }
    }

    /// Inside the migration's transaction: each table's stored `CREATE TABLE` text must contain
    /// `from` (else the migration fails and rolls back); then the schema cookie is bumped so
    /// other connections reload the definitions.
    static func redefine(_ edits: [(table: String, from: String, to: String)], on db: Database) throws(SQLiteError) {
        let v = try db.statement("PRAGMA schema_version")
        let version = try v.step() ? v.int64(0) : 0
        v.finish()
        try db.execute("PRAGMA writable_schema=ON")
        do throws(SQLiteError) {
            for e in edits {
                try db.statement("UPDATE sqlite_master SET sql = replace(sql, ?2, ?3) WHERE type = 'table' AND name = ?1 AND instr(sql, ?2) > 0")
                    .bind(1, e.table).bind(2, e.from).bind(3, e.to).run()
                guard db.changes == 1 else {
                    throw SQLiteError(message: "migration: the definition of table \(e.table) does not contain \(e.from)")
                }
            }
            try db.execute("PRAGMA schema_version=\(version + 1)")
        } catch {
            try? db.execute("PRAGMA writable_schema=RESET")
            throw error
        }
        // RESET: writing off, and this connection reloads the definitions for the rest of the
        // migration (its own cookie already matches the bumped one); Database then replaces it.
        try db.execute("PRAGMA writable_schema=RESET")
    }
}
