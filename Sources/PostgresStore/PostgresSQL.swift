/// PostgresSQL: every statement the PostgreSQL store runs, in one place (the server's are
/// prepared once per connection; the admin commands run the same texts). Parameters carry
/// explicit casts: they are sent untyped and some appear where PostgreSQL cannot infer a type.
import AuditAPI
import Idempotency
import PostgresClient
import Store

enum PostgresSQL {
    // MARK: Group commit

    /// The start of every statement that takes an idempotency key ($1 token, $2 key, $3
    /// fingerprint, $4 status, $5 body, $6 time, $7 expiry cutoff): `l` says whether this
    /// transaction may take it (another process committing the key holds the lock: "in use",
    /// never a wait on its row), `k` stores the record unless an unexpired one holds the key.
    static let takeKey = """
        l AS MATERIALIZED (
            SELECT pg_try_advisory_xact_lock(hashtextextended($2::text, $1::bigint)) AS free
        ), k AS (
            INSERT INTO idempotency (token_id, key, fingerprint, status, body, created_at)
            SELECT $1::bigint, $2::text, $3::bytea, $4::integer, $5::bytea, $6::bigint FROM l WHERE l.free
            ON CONFLICT (token_id, key) DO UPDATE
                SET fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, body = EXCLUDED.body, created_at = EXCLUDED.created_at
                WHERE idempotency.created_at < $7::bigint
            RETURNING 1
        )
        """
    /// Their end: the record that holds the key when `k` stored nothing.
    static let holder = """
        FROM l
        LEFT JOIN idempotency i ON l.free AND i.token_id = $1::bigint AND i.key = $2::text AND NOT EXISTS (SELECT 1 FROM k)
        """

    /// One accepted message: its idempotency record (replacing an expired one), the queue/audit
    /// row and its bytes — or, when an unexpired record holds the key, nothing but that record.
    /// Never an error for a taken key: in a pipeline one error would abort the whole batch.
    /// Result: one row (message id or NULL, then the holding record's columns or NULLs).
    static let accept = PGStatement("accept", """
        WITH \(takeKey), m AS (
            INSERT INTO messages (accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject,
                                  template, message_id, status, attempts, next_attempt_at, owner, recipients, metadata)
            SELECT $6::bigint, $8::text, $2::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::text, $15::text, 0,
                   $6::bigint, CASE WHEN $15::text = 'sending' THEN $17::bigint END, $18::text, $19::text
            FROM k
            RETURNING id
        ), b AS (
            INSERT INTO message_bodies (id, raw) SELECT id, $16::bytea FROM m
        ), md AS (
            INSERT INTO message_metadata (message_id, key, value, accepted_at)
            SELECT m.id, u.k, u.v, $6::bigint FROM m, unnest($20::text[], $21::text[]) AS u(k, v)
        )
        SELECT (SELECT id FROM m), i.fingerprint, i.status, i.body, i.created_at, NOT l.free
        \(holder)
        """)

    /// A record alone (render_template): the same answer shape as `accept` (0 for the id when
    /// stored).
    static let record = PGStatement("record", """
        WITH \(takeKey)
        SELECT CASE WHEN EXISTS (SELECT 1 FROM k) THEN 0::bigint END, i.fingerprint, i.status, i.body, i.created_at, NOT l.free
        \(holder)
        """)

    /// A batch (`send_email/batch`): its record, and its messages only when the record was
    /// stored by this very statement (a key another process holds or committed stores none);
    /// one statement, so all or nothing. Result: one row — the message ids as an array (NULL
    /// when not stored), then the holding record's columns, then "in use".
    static let acceptMany = PGStatement("accept_many", """
        WITH \(takeKey), input AS MATERIALIZED (
            SELECT t.* FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                                   $16::text[], $17::text[])
                WITH ORDINALITY AS t(token_name, mailbox_name, mailbox_address, recipient, subject, template, message_id, queue_status,
                                     recipients, metadata, ord)
            WHERE EXISTS (SELECT 1 FROM k)
        ), ids AS MATERIALIZED (
            SELECT ord, nextval('messages_id_seq'::regclass) AS id FROM input ORDER BY ord
        ), m AS (
            INSERT INTO messages (id, accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject,
                                  template, message_id, status, attempts, next_attempt_at, owner, recipients, metadata)
            SELECT ids.id, $6::bigint, i.token_name, $2::text, i.mailbox_name, i.mailbox_address, i.recipient, i.subject, i.template,
                   i.message_id, i.queue_status, 0, $6::bigint, CASE WHEN i.queue_status = 'sending' THEN $18::bigint END,
                   i.recipients, i.metadata
            FROM input i JOIN ids ON ids.ord = i.ord
        ), b AS (
            INSERT INTO message_bodies (id, raw) SELECT ids.id, ($19::bytea[])[ids.ord::integer] FROM ids
        ), md AS (
            INSERT INTO message_metadata (message_id, key, value, accepted_at)
            SELECT ids.id, u.k, u.v, $6::bigint FROM unnest($20::bigint[], $21::text[], $22::text[]) AS u(ord, k, v) JOIN ids ON ids.ord = u.ord
        )
        SELECT coalesce((SELECT array_to_string(array_agg(id ORDER BY ord), ',') FROM ids),
                        -- the key taken for a batch none of whose messages passed validation: '' (no ids), not NULL (a holder)
                        CASE WHEN EXISTS (SELECT 1 FROM k) THEN '' END),
               i.fingerprint, i.status, i.body, i.created_at, NOT l.free
        \(holder)
        """)

    static func acceptManyParameters(tokenID: Int64, key: String, _ r: IdempotencyRecord, _ items: [(NewMessage, sending: Bool)],
                                     cutoff: Int64, lease: Lease) -> [PGValue] {
        let ms = items.map(\.0)
        return [.int(tokenID), .text(key), .bytes(r.fingerprint), .int(Int64(r.status)), .bytes(r.body), .int(r.createdAt), .int(cutoff),
                PGArray.text(ms.map(\.tokenName)), PGArray.text(ms.map(\.mailboxName)), PGArray.text(ms.map(\.mailboxAddress)),
                PGArray.text(ms.map(\.recipient)), PGArray.text(ms.map(\.subject)), PGArray.text(ms.map(\.template)),
                PGArray.text(ms.map(\.messageID)), PGArray.text(items.map { $0.sending ? "sending" : "queued" }),
                PGArray.text(ms.map { $0.recipients.map(RecipientState.encode) }), PGArray.text(ms.map { MetadataPair.encode($0.metadata) }),
                .int(lease.owner), PGArray.bytea(ms.map(\.raw)),
                PGArray.int8(ms.enumerated().flatMap { (i, m) in m.metadata.map { _ in Int64(i + 1) } }),
                PGArray.text(ms.flatMap { $0.metadata.map(\.key) }), PGArray.text(ms.flatMap { $0.metadata.map(\.value) })]
    }

    static func acceptParameters(_ m: NewMessage, sending: Bool, cutoff: Int64, lease: Lease) -> [PGValue] {
        [.int(m.tokenID), .text(m.idempotencyKey), .bytes(m.fingerprint), .int(Int64(m.responseStatus)), .bytes(m.responseBody),
         .int(m.acceptedAt), .int(cutoff), .text(m.tokenName), .text(m.mailboxName), .text(m.mailboxAddress), .text(m.recipient),
         .text(m.subject), m.template.map { .text($0) } ?? .null, .text(m.messageID), .text(sending ? "sending" : "queued"), .bytes(m.raw),
         .int(lease.owner), m.recipients.map { .text(RecipientState.encode($0)) } ?? .null,
         MetadataPair.encode(m.metadata).map { .text($0) } ?? .null, PGArray.text(m.metadata.map(\.key)), PGArray.text(m.metadata.map(\.value))]
    }

    /// The same for a whole group commit in ONE statement: the accepted messages travel as
    /// arrays (one per column) and are inserted by three set-based INSERTs, so PostgreSQL sets
    /// up one executor per batch instead of one per message (per message that setup was most of
    /// the server's CPU: ~140 µs a message, measured with perf on the backend). Message ids are
    /// drawn in acceptance order (a volatile target list is evaluated after ORDER BY).
    /// Result: one row per input in order (ord, message id or NULL, then the holding record's
    /// columns or NULLs). Keys must be distinct within the batch (ON CONFLICT cannot touch a
    /// row twice): the caller falls back to `accept` per message if this statement fails.
    static let acceptBatch = PGStatement("accept_batch", """
        WITH input AS MATERIALIZED (
            -- A key another process is committing right now is "in use" (409) at once: its
            -- transaction holds this lock until it commits, and ours never waits on its row.
            SELECT t.*, pg_try_advisory_xact_lock(hashtextextended(t.key, t.token_id)) AS free FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::integer[], $5::bytea[], $6::bigint[], $7::text[],
                                 $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
                WITH ORDINALITY AS t(token_id, key, fingerprint, status, body, accepted_at, token_name, mailbox_name, mailbox_address,
                                     recipient, subject, template, message_id, queue_status, ord)
        ), k AS (
            INSERT INTO idempotency (token_id, key, fingerprint, status, body, created_at)
            SELECT token_id, key, fingerprint, status, body, accepted_at FROM input WHERE free ORDER BY ord
            ON CONFLICT (token_id, key) DO UPDATE
                SET fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, body = EXCLUDED.body, created_at = EXCLUDED.created_at
                WHERE idempotency.created_at < $16::bigint
            RETURNING token_id, key
        ), ids AS MATERIALIZED (
            SELECT i.ord, nextval('messages_id_seq'::regclass) AS id
            FROM input i JOIN k ON k.token_id = i.token_id AND k.key = i.key
            ORDER BY i.ord
        ), m AS (
            INSERT INTO messages (id, accepted_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject,
                                  template, message_id, status, attempts, next_attempt_at, owner, recipients, metadata)
            SELECT ids.id, i.accepted_at, i.token_name, i.key, i.mailbox_name, i.mailbox_address, i.recipient, i.subject, i.template,
                   i.message_id, i.queue_status, 0,
                   i.accepted_at, CASE WHEN i.queue_status = 'sending' THEN $17::bigint END, ($18::text[])[ids.ord::integer],
                   ($19::text[])[ids.ord::integer]
            FROM input i JOIN ids ON ids.ord = i.ord
        ), md AS (
            -- Every pair of the batch flat, with the ordinal of its message.
            INSERT INTO message_metadata (message_id, key, value, accepted_at)
            SELECT ids.id, u.k, u.v, ($6::bigint[])[u.ord::integer]
            FROM unnest($20::bigint[], $21::text[], $22::text[]) AS u(ord, k, v) JOIN ids ON ids.ord = u.ord
        ), b AS (
            -- The bodies by subscript, not through the input's rows: every join of those rows
            -- would copy each message's bytes into its hash table again.
            INSERT INTO message_bodies (id, raw) SELECT ids.id, ($15::bytea[])[ids.ord::integer] FROM ids
        )
        SELECT i.ord, ids.id, h.fingerprint, h.status, h.body, h.created_at, NOT i.free
        FROM input i LEFT JOIN ids ON ids.ord = i.ord
        LEFT JOIN LATERAL (
            -- Only for a key that was taken: a one-time gate, then one primary-key probe.
            -- LIMIT keeps the subquery from being pulled up into a join, which the planner
            -- made a hash join over a sequential scan of the whole table.
            SELECT fingerprint, status, body, created_at FROM idempotency
            WHERE ids.id IS NULL AND i.free AND token_id = i.token_id AND key = i.key
            LIMIT 1
        ) h ON true
        ORDER BY i.ord
        """)

    static func acceptBatchParameters(_ items: [(NewMessage, Bool)], cutoff: Int64, lease: Lease) -> [PGValue] {
        [PGArray.int8(items.map { $0.0.tokenID }), PGArray.text(items.map { $0.0.idempotencyKey }),
         PGArray.bytea(items.map { $0.0.fingerprint }), PGArray.int4(items.map { Int32($0.0.responseStatus) }),
         PGArray.bytea(items.map { $0.0.responseBody }), PGArray.int8(items.map { $0.0.acceptedAt }),
         PGArray.text(items.map { $0.0.tokenName }), PGArray.text(items.map { $0.0.mailboxName }),
         PGArray.text(items.map { $0.0.mailboxAddress }), PGArray.text(items.map { $0.0.recipient }),
         PGArray.text(items.map { $0.0.subject }), PGArray.text(items.map { $0.0.template }),
         PGArray.text(items.map { $0.0.messageID }), PGArray.text(items.map { $0.1 ? "sending" : "queued" }),
         PGArray.bytea(items.map { $0.0.raw }), .int(cutoff), .int(lease.owner),
         PGArray.text(items.map { $0.0.recipients.map(RecipientState.encode) }),
         PGArray.text(items.map { MetadataPair.encode($0.0.metadata) }),
         PGArray.int8(items.enumerated().flatMap { (i, item) in item.0.metadata.map { _ in Int64(i + 1) } }),
         PGArray.text(items.flatMap { $0.0.metadata.map(\.key) }), PGArray.text(items.flatMap { $0.0.metadata.map(\.value) })]
    }

    /// Who this process is on the shared queue and how long its lease lasts (SPEC §7).
    struct Lease {
        /// Drawn at start; never 0.
        var owner: Int64
        var milliseconds: Int64
    }

    /// The session plans every statement for its arguments (`plan_cache_mode=force_custom_plan`,
    /// PostgresConnection). These two bracket the segments of the hot path — the group commit
    /// and the queue claim — whose statements instead keep one generic plan each, made with
    /// sequential and bitmap scans off: every plan they can get is then an index range, fixed
    /// once (planning per execution cost more than the execution for batches of a few rows, and
    /// a plan chosen from stale statistics once bitmap-scanned and sorted a whole backlog). A
    /// failing segment's rollback undoes the first one too.
    static let batchPlans = PGStatement("batch_plans", """
        SELECT set_config('plan_cache_mode', 'force_generic_plan', false), set_config('enable_seqscan', 'off', false),
               set_config('enable_bitmapscan', 'off', false)
        """)
    static let sessionPlans = PGStatement("session_plans", """
        SELECT set_config('plan_cache_mode', 'force_custom_plan', false), set_config('enable_seqscan', 'on', false),
               set_config('enable_bitmapscan', 'on', false)
        """)

    /// Status writes in runs of one kind, each run one statement (order kept across runs).
    /// Every write of a row this process is sending is conditional on still owning it: a lease
    /// that ran out (this process frozen, say) belongs to whoever claimed the row since.
    static let markSendingBatch = PGStatement("mark_sending_batch",
        "UPDATE messages SET status = 'sending', owner = $2::bigint WHERE id = ANY($1::bigint[])")
    static let requeueBatch = PGStatement("requeue_batch", """
        UPDATE messages SET status = 'queued', owner = NULL, next_attempt_at = $3::bigint
        WHERE id = ANY($1::bigint[]) AND status = 'sending' AND owner = $2::bigint
        """)
    /// This process's lease (at connect, then every third of a lease): true when the row was
    /// made, not renewed — at any time but the first, the lease had run out meanwhile.
    static let heartbeat = PGStatement("heartbeat", """
        INSERT INTO processes (owner, lease_until, started_at, host) VALUES ($1::bigint, $2::bigint, $3::bigint, $4::text)
        ON CONFLICT (owner) DO UPDATE SET lease_until = EXCLUDED.lease_until
        RETURNING (xmax = 0)
        """)
    /// Whoever notices: the rows of processes whose lease ran out (and `sending` rows of no
    /// one) are queued again, due now; a dead process's row goes once it holds nothing (a
    /// later pass: this statement sees its rows as they were). Rows another pass is taking at
    /// this moment are skipped, never waited for.
    static let takeOver = PGStatement("take_over", """
        WITH dead AS MATERIALIZED (
            SELECT owner FROM processes WHERE lease_until < $1::bigint
        ), r AS (
            UPDATE messages SET status = 'queued', owner = NULL, next_attempt_at = $1::bigint
            WHERE id IN (SELECT id FROM messages WHERE status = 'sending'
                                AND (owner IS NULL OR owner IN (SELECT owner FROM dead)
                                     OR ($2::boolean AND owner NOT IN (SELECT owner FROM processes)))
                         FOR UPDATE SKIP LOCKED)
            RETURNING id
        ), d AS (
            DELETE FROM processes p WHERE p.owner IN (SELECT owner FROM dead)
            AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.status = 'sending' AND m.owner = p.owner)
        )
        SELECT count(*) FROM r
        """)

    static let recordAttemptBatch = PGStatement("record_attempt_batch", """
        WITH w AS (
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $7::text[]) WITH ORDINALITY
                AS t(id, status, reply, at, next, outcome, ord)
        ), u AS (
            UPDATE messages m SET status = w.status, last_reply = w.reply, owner = NULL,
                   attempts = m.attempts + CASE WHEN w.outcome IN ('sent', 'deferred', 'failed', 'uncertain') THEN 1 ELSE 0 END,
                   uncertain = m.uncertain + CASE WHEN w.outcome = 'uncertain' THEN 1 ELSE 0 END,
                   sent_at = CASE WHEN w.status = 'sent' THEN w.at ELSE m.sent_at END, next_attempt_at = w.next
            -- `= ANY` as well as the join: a primary-key range the planner always takes (with
            -- the join alone its generic plan hashed a sequential scan of the whole table).
            FROM w WHERE m.id = w.id AND m.id = ANY($1::bigint[]) AND m.owner = $6::bigint
            RETURNING m.id
        )
        INSERT INTO delivery_attempts (message_id, at, outcome, reply)
        SELECT w.id, w.at, w.outcome, w.reply FROM w WHERE w.id IN (SELECT id FROM u) ORDER BY w.ord
        """)

    static func batchedQueries(_ writes: [StatusWrite], lease: Lease, now: Int64) -> [PGQuery] {
        var out: [PGQuery] = []
        var i = 0
        while i < writes.count {
            var j = i
            switch writes[i] {
            case .sending:
                var ids: [Int64] = []
                while j < writes.count, case .sending(let id) = writes[j] { ids.append(id); j += 1 }
                out.append(PGQuery(markSendingBatch, [PGArray.int8(ids), .int(lease.owner)]))
            case .requeue:
                var ids: [Int64] = []
                while j < writes.count, case .requeue(let id) = writes[j] { ids.append(id); j += 1 }
                out.append(PGQuery(requeueBatch, [PGArray.int8(ids), .int(lease.owner), .int(now)]))
            case .attempt:
                var ids: [Int64] = [], statuses: [String?] = [], replies: [String?] = [], ats: [Int64] = [], nexts: [Int64] = []
                var outcomes: [String?] = []
                while j < writes.count, case .attempt(let id, let status, let outcome, let reply, let at, let next) = writes[j] {
                    ids.append(id); statuses.append(status); replies.append(reply); ats.append(at); nexts.append(next)
                    outcomes.append(outcome)
                    j += 1
                }
                out.append(PGQuery(recordAttemptBatch, [PGArray.int8(ids), PGArray.text(statuses), PGArray.text(replies),
                                                        PGArray.int8(ats), PGArray.int8(nexts), .int(lease.owner), PGArray.text(outcomes)]))
            case .recipients, .tokenUsed, .mailboxPause, .recipientsSent:
                out.append(query(writes[i], lease: lease, now: now))
                j += 1
            }
            i = j
        }
        return out
    }

    static let lookUp = PGStatement("look_up", """
        SELECT fingerprint, status, body, created_at FROM idempotency
        WHERE token_id = $1::bigint AND key = $2::text AND created_at >= $3::bigint
        """)

    static let markSending = PGStatement("mark_sending",
        "UPDATE messages SET status = 'sending', owner = $2::bigint WHERE id = $1::bigint")
    static let requeue = PGStatement("requeue", """
        UPDATE messages SET status = 'queued', owner = NULL, next_attempt_at = $3::bigint
        WHERE id = $1::bigint AND status = 'sending' AND owner = $2::bigint
        """)
    static let recordAttempt = PGStatement("record_attempt", """
        WITH u AS (
            UPDATE messages SET status = $2::text, last_reply = $3::text, owner = NULL,
                   attempts = attempts + CASE WHEN $7::text IN ('sent', 'deferred', 'failed', 'uncertain') THEN 1 ELSE 0 END,
                   uncertain = uncertain + CASE WHEN $7::text = 'uncertain' THEN 1 ELSE 0 END,
                   sent_at = CASE WHEN $2::text = 'sent' THEN $4::bigint ELSE sent_at END, next_attempt_at = $5::bigint
            WHERE id = $1::bigint AND owner = $6::bigint
            RETURNING id
        )
        INSERT INTO delivery_attempts (message_id, at, outcome, reply) SELECT id, $4::bigint, $7::text, $3::text FROM u
        """)

    /// A mailbox's pause, and a NOTIFY: every process reloads its directory copy and with it
    /// the pause (a relay that throttles one process throttles them all).
    static let setPause = PGStatement("set_pause", """
        WITH u AS (
            INSERT INTO mailbox_pauses (mailbox, until, level, reason) VALUES ($1::text, $2::bigint, $3::integer, $4::text)
            ON CONFLICT (mailbox) DO UPDATE SET until = excluded.until, level = excluded.level, reason = excluded.reason
            RETURNING 1
        )
        SELECT pg_notify('\(PostgresSchema.directoryChannel)', '') FROM u
        """)
    static let clearPause = PGStatement("clear_pause", """
        WITH d AS (DELETE FROM mailbox_pauses WHERE mailbox = $1::text RETURNING 1)
        SELECT pg_notify('\(PostgresSchema.directoryChannel)', '') FROM d LIMIT 1
        """)
    /// One more minute's count of the mailbox's `daily_recipients=` window (minutes that left
    /// it are deleted as new ones begin).
    static let addUsage = PGStatement("add_usage", """
        WITH i AS (
            INSERT INTO mailbox_usage (mailbox, minute, recipients) VALUES ($1::text, $2::bigint, $3::integer)
            ON CONFLICT (mailbox, minute) DO UPDATE SET recipients = mailbox_usage.recipients + excluded.recipients
            RETURNING 1
        )
        DELETE FROM mailbox_usage WHERE mailbox = $1::text AND minute <= $2::bigint - 1440
        """)
    static let takeBudget = PGStatement("take_budget",
        "SELECT tickiti_take_budget($1::text, $2::bigint, $3::bigint, $4::integer, $5::integer, $6::integer)")


    static func query(_ w: StatusWrite, lease: Lease, now: Int64) -> PGQuery {
        switch w {
        case .sending(let id): return PGQuery(markSending, [.int(id), .int(lease.owner)])
        case .requeue(let id): return PGQuery(requeue, [.int(id), .int(lease.owner), .int(now)])
        case .attempt(let id, let status, let outcome, let reply, let at, let next):
            return PGQuery(recordAttempt, [.int(id), .text(status), .text(reply), .int(at), .int(next), .int(lease.owner), .text(outcome)])
        case .mailboxPause(let mailbox, let pause?):
            return PGQuery(setPause, [.text(mailbox), .int(pause.until), .int(Int64(pause.level)), .text(pause.reason)])
        case .mailboxPause(let mailbox, nil):
            return PGQuery(clearPause, [.text(mailbox)])
        case .recipientsSent(let mailbox, let at, let count):
            return PGQuery(addUsage, [.text(mailbox), .int(at / 60_000), .int(Int64(count))])
        case .recipients(let id, let list):
            return PGQuery(setRecipients, [.int(id), .text(list), .int(lease.owner)])
        case .tokenUsed(let id, let at):
            return PGQuery(tokenUsed, [.int(id), .int(at)])
        }
    }

    /// Never moves back (processes write out of order); no NOTIFY: the directory's copy has no use in it.
    static let tokenUsed = PGStatement("token_used",
        "UPDATE tokens SET last_used_at = GREATEST(coalesce(last_used_at, 0), $2::bigint) WHERE id = $1::bigint")

    static let setRecipients = PGStatement("set_recipients",
        "UPDATE messages SET recipients = $2::text WHERE id = $1::bigint AND owner = $3::bigint")

    // MARK: Start-up

    /// The embedded demo, only into a store with no mailbox and no token; serialised by a
    /// transaction lock (two processes starting on one empty database make one demo), with the
    /// NOTIFY every directory write sends. Result: the new token's id, or no row.
    static let seedLock = PGStatement("seed_lock", "SELECT pg_advisory_xact_lock($1::bigint)")
    static let seed = PGStatement("seed", """
        WITH e AS MATERIALIZED (
            SELECT NOT EXISTS (SELECT 1 FROM mailboxes) AND NOT EXISTS (SELECT 1 FROM tokens) AS empty
        ), m AS (
            INSERT INTO mailboxes (name, address, display_name, dsn, enabled, created_at)
            SELECT $1::text, $2::text, $3::text, $4::text, true, $12::bigint FROM e WHERE e.empty
        ), t AS (
            INSERT INTO templates (identifier, subject, html, text, created_at, updated_at)
            SELECT $5::text, $6::text, $7::text, $8::text, $12::bigint, $12::bigint FROM e WHERE e.empty
            ON CONFLICT (identifier) DO UPDATE SET subject = EXCLUDED.subject, html = EXCLUDED.html, text = EXCLUDED.text,
                updated_at = EXCLUDED.updated_at
        ), k AS (
            INSERT INTO tokens (name, secret_hash, abilities, created_at)
            SELECT $9::text, $10::bytea, $11::text, $12::bigint FROM e WHERE e.empty
            RETURNING id
        )
        SELECT k.id, pg_notify('\(PostgresSchema.directoryChannel)', '') FROM k
        """)

    static func seedParameters(_ d: DemoSeed) -> [PGValue] {
        [.text(d.mailboxName), .text(d.mailboxAddress), .text(d.mailboxDisplayName), .text(d.mailboxDSN), .text(d.templateIdentifier),
         .text(d.templateSubject), .text(d.templateHTML), .text(d.templateText), .text(d.tokenName), .bytes(d.tokenSecretHash),
         .text(d.tokenAbilities.joined(separator: ",")), .int(d.now)]
    }

    // MARK: Directory

    static let listen = PGStatement("listen", "LISTEN \(PostgresSchema.directoryChannel)")
    static let tokens = PGStatement("tokens", "SELECT id, name, secret_hash, abilities, created_at, revoked_at FROM tokens ORDER BY id")
    static let mailboxes = PGStatement("mailboxes", """
        SELECT m.id, m.name, m.address, m.display_name, m.dsn, m.enabled, m.created_at, p.until, p.level, p.reason
        FROM mailboxes m LEFT JOIN mailbox_pauses p ON p.mailbox = m.name ORDER BY m.created_at, m.id
        """)
    static let templates = PGStatement("templates", "SELECT identifier, subject, html, text, updated_at FROM templates ORDER BY identifier")

    // MARK: Queue

    /// Due rows claimed for this process: one ordered range of the due index; rows another
    /// process is claiming at this moment are skipped, never waited for.
    static let claim = PGStatement("claim", """
        WITH c AS MATERIALIZED (
            SELECT id FROM messages
            WHERE status IN ('queued', 'deferred') AND next_attempt_at <= $1::bigint
            ORDER BY next_attempt_at, id LIMIT $2::bigint
            FOR UPDATE SKIP LOCKED
        ), u AS (
            UPDATE messages m SET status = 'sending', owner = $3::bigint
            FROM c WHERE m.id = c.id
            RETURNING m.id, m.accepted_at, m.mailbox_name, m.mailbox_address, m.recipient, m.message_id, m.attempts, m.recipients, m.uncertain
        )
        SELECT u.id, u.accepted_at, u.mailbox_name, u.mailbox_address, u.recipient, u.message_id, b.raw, u.attempts, u.recipients, u.uncertain
        FROM u JOIN message_bodies b ON b.id = u.id
        ORDER BY u.id
        """)
    static let nextDue = PGStatement("next_due",
        "SELECT min(next_attempt_at) FROM messages WHERE status IN ('queued', 'deferred') AND next_attempt_at > $1::bigint")
    static let queueCounts = PGStatement("queue_counts", """
        SELECT s, (SELECT count(*) FROM messages WHERE status = s) FROM unnest(ARRAY['queued', 'sending', 'deferred', 'uncertain', 'cancelled']) AS s
        """)
    static let sweep = PGStatement("sweep", """
        DELETE FROM idempotency WHERE (token_id, key) IN
          (SELECT token_id, key FROM idempotency WHERE created_at < $1::bigint LIMIT $2::bigint)
        """)

    // MARK: Mailbox session slots

    /// Slot `i` of mailbox `m` is the session-level advisory lock (hashtext of the mailbox's
    /// name, i): held while this process has an SMTP session open on it, released with the
    /// session — or by PostgreSQL when this process's connection ends (a crashed process frees
    /// its slots by itself). Slots this process holds already are skipped, not locked again.
    static let acquireSlots = PGStatement("acquire_slots", """
        SELECT i FROM generate_series(0, $2::integer - 1) AS i
        WHERE CASE WHEN i = ANY($3::integer[]) THEN false
                   ELSE pg_try_advisory_lock(hashtext('tickiti-mailbox:' || $1::text), i) END
        LIMIT $4::integer
        """)
    static let releaseSlot = PGStatement("release_slot",
        "SELECT pg_advisory_unlock(hashtext('tickiti-mailbox:' || $1::text), $2::integer)")

    // MARK: Audit

    static let auditColumns = """
        id, accepted_at, sent_at, token_name, idempotency_key, mailbox_name, mailbox_address, recipient, subject, template,
        message_id, status, attempts, last_reply, recipients, metadata, next_attempt_at
        """

    /// A page's statement for the filters present (each shape prepared once), and its values.
    /// A metadata page walks `message_metadata_lookup` for the pair newest first and reads each
    /// entry by its primary key; the other filters check those rows.
    static func auditPage(_ filter: AuditFilter, limit: Int, after: AuditCursor?) -> PGQuery {
        var terms: [String] = []
        var values: [PGValue] = []
        var shape = "audit"
        func parameter(_ v: PGValue, _ type: String) -> String {
            values.append(v)
            return "$\(values.count)::\(type)"
        }
        let viaMetadata = filter.metadata != nil
        let m = viaMetadata ? "m." : ""
        let (at, id) = viaMetadata ? ("md.accepted_at", "md.message_id") : ("accepted_at", "id")
        if let md = filter.metadata {
            terms += ["md.key = \(parameter(.text(md.key), "text"))", "md.value = \(parameter(.text(md.value), "text"))"]
            shape += "_m"
        }
        if let k = filter.idempotencyKey {
            terms.append("\(m)idempotency_key = \(parameter(.text(k), "text"))")
            shape += "_k"
        }
        if let i = filter.messageID {
            terms.append("\(m)message_id = \(parameter(.text(i), "text"))")
            shape += "_i"
        }
        if let r = filter.recipient {
            terms.append("lower(\(m)recipient) = lower(\(parameter(.text(r), "text")))")
            shape += "_r"
        }
        if let st = filter.status {
            terms.append("\(m)status = \(parameter(.text(st), "text"))")
            shape += "_s"
        }
        if let v = filter.since {
            terms.append("\(at) >= \(parameter(.int(v), "bigint"))")
            shape += "_f"
        }
        if let v = filter.until {
            terms.append("\(at) < \(parameter(.int(v), "bigint"))")
            shape += "_u"
        }
        if let a = after {
            terms.append("(\(at), \(id)) < (\(parameter(.int(a.acceptedAt), "bigint")), \(parameter(.int(a.id), "bigint")))")
            shape += "_p"
        }
        var sql = viaMetadata
            ? "SELECT \(auditColumns(prefix: "m.")) FROM message_metadata md JOIN messages m ON m.id = md.message_id"
            : "SELECT \(auditColumns) FROM messages"
        if !terms.isEmpty { sql += " WHERE " + terms.joined(separator: " AND ") }
        sql += " ORDER BY \(at) DESC, \(id) DESC LIMIT \(parameter(.int(Int64(limit)), "bigint"))"
        return PGQuery(PGStatement(shape, sql), values)
    }

    /// The audit columns of a table named `prefix` ("m.") in a join.
    static func auditColumns(prefix: String) -> String {
        auditColumns.split(separator: ",").map { prefix + $0.filter { $0 != " " && $0 != "\n" } }.joined(separator: ", ")
    }

    static let auditEntry = PGStatement("audit_entry", """
        SELECT \(auditColumns), (SELECT raw FROM message_bodies b WHERE b.id = messages.id) FROM messages WHERE id = $1::bigint
        """)
    static let attempts = PGStatement("attempts",
        "SELECT at, outcome, reply FROM delivery_attempts WHERE message_id = $1::bigint ORDER BY id")

    // MARK: Reading rows

    static func auditEntry(_ r: PGResult, _ row: Int, raw: Bool) -> AuditEntry {
        AuditEntry(id: r.int64(row, 0), acceptedAt: r.int64(row, 1), sentAt: r.isNull(row, 2) ? nil : r.int64(row, 2),
                   tokenName: r.string(row, 3), idempotencyKey: r.string(row, 4), mailboxName: r.string(row, 5),
                   mailboxAddress: r.string(row, 6), recipient: r.string(row, 7), subject: r.string(row, 8),
                   template: r.optionalString(row, 9), messageID: r.string(row, 10), status: r.string(row, 11),
                   attempts: r.int(row, 12), lastReply: r.optionalString(row, 13), raw: raw ? r.bytes(row, 17) : [],
                   recipients: RecipientState.decode(r.optionalString(row, 14)), metadata: MetadataPair.decode(r.optionalString(row, 15)),
                   nextAttemptAt: r.isNull(row, 16) ? nil : r.int64(row, 16))
    }

    static func attempts(_ r: PGResult) -> [DeliveryAttempt] {
        (0..<r.rowCount).map { DeliveryAttempt(at: r.int64($0, 0), outcome: r.string($0, 1), reply: r.string($0, 2)) }
    }
}
