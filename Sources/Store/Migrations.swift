/// Migrations: the schema, versioned by PRAGMA user_version and applied in order at open.
/// A migration never changes once released; a new one is appended.
///
/// `messages` is the outbound queue and the sent-mail audit in one row per accepted call, its
/// bytes in `message_bodies` under the same id: the inserts of the acceptance transaction make
/// both durable together (SPEC §4).
/// Times are milliseconds since the Unix epoch.
enum Migrations {
    static let steps: [String] = [
        // 1: tokens, mailboxes, templates, idempotency records, messages (queue + audit)
        """
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
        """,
        // 2: one row per delivery attempt (the audit's "attempts" detail)
        """
        CREATE TABLE delivery_attempts (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id),
            at INTEGER NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('sent','deferred','failed')),
            reply TEXT NOT NULL
        );
        CREATE INDEX delivery_attempts_message ON delivery_attempts(message_id, id);
        """,
        // 3: the audit's pages, newest first by (accepted_at, id), one index per filter so a page
        // is one bounded index range whatever the table's size (every index ends in the rowid,
        // which is `id`: the keyset order needs no sort).
        """
        DROP INDEX messages_recipient;
        CREATE INDEX messages_recipient ON messages(recipient COLLATE NOCASE, accepted_at);
        CREATE INDEX messages_accepted ON messages(accepted_at);
        CREATE INDEX messages_status ON messages(status, accepted_at);
        """,
        // 4: the message bytes move to their own table, written once at acceptance. A `messages`
        // row was ~2.3 KB with them — one row per 4 KB page, so every status change rewrote a
        // whole page into the WAL (and the checkpoint copied it again); without them ~15 rows
        // share a page and a batch of status changes touches a few pages. And the due index holds
        // only what may be due (`queued`, `deferred`): a message accepted straight into `sending`
        // and then `sent` never enters it, one index insert and one delete fewer per message.
        """
        CREATE TABLE message_bodies (
            id INTEGER PRIMARY KEY REFERENCES messages(id),
            raw BLOB NOT NULL
        );
        INSERT INTO message_bodies (id, raw) SELECT id, raw FROM messages;
        ALTER TABLE messages DROP COLUMN raw;
        DROP INDEX messages_due;
        CREATE INDEX messages_due ON messages(status, next_attempt_at, id) WHERE status = 'queued' OR status = 'deferred';
        """,
    ]

    static func run(on db: Database, through target: Int = steps.count) throws(SQLiteError) {
        let s = try db.statement("PRAGMA user_version")
        let current = try s.step() ? s.int(0) : 0
        s.finish()
        guard current < target else {
            if current > steps.count {
                throw SQLiteError(message: "database schema version \(current) is newer than this program (\(steps.count))")
            }
            return
        }
        try db.begin()
        do {
            for i in current..<target {
                try db.execute(steps[i])
            }
            try db.execute("PRAGMA user_version=\(target)")
            try db.commit()
        } catch {
            db.rollback()
            throw error
        }
    }
}
