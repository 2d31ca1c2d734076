/* floor: the durable floor of accepting one message (SPEC §8, issue 21 items 1 and 5) — exactly
 * the SQLite writes the store makes for one accepted POST /api/send_email, and nothing else: no
 * HTTP, TLS, JSON, MIME or event loop. A durable send cannot cost less than this.
 *
 * What it runs is not a copy: `tickiti-mail store sql` prints the store's own statement texts and
 * PRAGMAs (name<TAB>text lines, Sources/CLI/StoreSQL.swift); this program prepares them by name
 * and binds their parameters in the order Database.insertAccepted / recordAttempt bind them, on a
 * database made by the product's own migrations (`tickiti-mail store fill`, Benchmarks/run-floor).
 *
 * Per accepted message, inside one `BEGIN IMMEDIATE … COMMIT` per group commit of mean size
 * --batch (SQLiteServerStore.commit, `synchronous` as `pragma` lines say: FULL by default):
 *   idempotency_lookup and idempotency_row_lookup (no row: a new key), insert_message (status
 *   'sending': the scheduler takes it at once; the call's idempotency record on the row),
 *   insert_message_body. The workload has no metadata pairs and no
 *   Cc/Bcc (insert_message_metadata is not run; recipients and metadata are NULL), like
 *   Benchmarks/send_email.lua: a random UUIDv4 key, a recipient of 100 000, Examples A and B in turn.
 * --with-delivery adds, after each acceptance commit, the scheduler's writes for the same
 *   messages delivered (`sent`): record_attempt and insert_attempt per message, one transaction per
 *   batch, under `status_pragma` (NORMAL: a status-only commit is not synced) with the WAL synced
 *   (fdatasync) when `status_sync_ms` pass without a synced commit, and at the end.
 *
 * Message contents come from --sample DB (a database in which the real server accepted Example A
 * and then Example B: their stored bytes, subject, template and 200 body, reused as they are) or,
 * without one, are synthetic bytes of the sizes --msg-bytes A,B. Keys, recipients, Message-IDs
 * and fingerprints are made before the measured phase; only SQLite calls are measured.
 *
 * Report (stdout, one line each):
 *   floor messages=N batch=B cpu_us_per_msg=X bytes_per_msg=Y msg_bytes=Z commits=C wall_s=W page_size=P
 *         msg_bytes_a=A msg_bytes_b=B   (msg_bytes: the mean; A and B: Example A's and B's)
 *   floor_delivery messages=N batch=B cpu_us_per_msg=X bytes_per_msg=Y commits=C wal_syncs=S
 * cpu = getrusage(RUSAGE_SELF) utime+stime; bytes = the disk's sectors written (--disk NAME, see
 * disk_bytes) or else the write calls' bytes; write_call_bytes = /proc/self/io wchar (WAL,
 * checkpoints into the database file): all as deltas over the phase. Without --with-delivery the insert phase
 * is measured once around the whole loop; with it, around each transaction (a few µs of counter
 * reads per transaction land in the figures).
 *
 * Checkpoints run inline, as SQLite's autocheckpoint runs them: the same work the server hands to
 * its checkpoint helper (`serve --sqlite-checkpoints helper`), whose CPU the benchmarks count as
 * the server's.
 *
 * The page cache is the server's: SQLite's own behind Sources/CSQLitePageCache's wrapper,
 * installed before the first open as the store installs it.
 *
 * Build: cc -O2 -I Sources/CSQLitePageCache/include -o floor floor.c \
 *          Sources/CSQLitePageCache/page_cache.c -lsqlite3          Bounded: N messages, then exit. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "sqlite_page_cache.h"
#include <unistd.h>

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("floor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- the statement texts from `tickiti-mail store sql` ---- */

#define MAX_LINES 64
static char *sql_names[MAX_LINES], *sql_texts[MAX_LINES];
static int sql_count;

static void read_sql(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        if (sql_count == MAX_LINES) die("%s: more than %d lines", path, MAX_LINES);
        *tab = 0;
        sql_names[sql_count] = strdup(line);
        sql_texts[sql_count] = strdup(tab + 1);
        sql_count++;
    }
    free(line);
    fclose(f);
}

static const char *sql_named(const char *name) {
    for (int i = 0; i < sql_count; i++)
        if (strcmp(sql_names[i], name) == 0) return sql_texts[i];
    die("no statement named %s in the --sql file (is it `tickiti-mail store sql` output?)", name);
    return NULL;
}

static sqlite3 *db;

static void exec_sql(const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) die("%s: %s", sql, err ? err : sqlite3_errmsg(db));
}

/* As Database.statement: prepared once, SQLITE_PREPARE_PERSISTENT. */
static sqlite3_stmt *prepare(const char *name) {
    const char *sql = sql_named(name);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
        die("prepare %s: %s (%s)", name, sqlite3_errmsg(db), sql);
    return s;
}

static void check(int rc, sqlite3_stmt *s) {
    if (rc != SQLITE_OK) die("bind: %s (%s)", sqlite3_errmsg(db), sqlite3_sql(s));
}

/* Statement.bind(_:String) and bind(_:blob:) copy (SQLITE_TRANSIENT); so do these. */
static void bind_text(sqlite3_stmt *s, int i, const char *v, int n) {
    check(v ? sqlite3_bind_text(s, i, v, n, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i), s);
}
static void bind_blob(sqlite3_stmt *s, int i, const void *v, int n) {
    check(n == 0 ? sqlite3_bind_zeroblob(s, i, 0) : sqlite3_bind_blob(s, i, v, n, SQLITE_TRANSIENT), s);
}
static void bind_int(sqlite3_stmt *s, int i, int64_t v) { check(sqlite3_bind_int64(s, i, v), s); }

/* Statement.run: step to the end. Returns the rows seen. */
static int run(sqlite3_stmt *s) {
    int rows = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) rows++;
    if (rc != SQLITE_DONE) die("step: %s (%s)", sqlite3_errmsg(db), sqlite3_sql(s));
    return rows;
}

/* ---- workload values ---- */

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

typedef struct {
    char *subject, *tmpl; /* tmpl NULL: direct content (Example A) */
    unsigned char *raw, *response;
    int raw_len, response_len, status;
} Example;

typedef struct {
    char key[37], recipient[48], message_id[96];
    unsigned char fingerprint[32];
} Item;

static Example examples[2];
static int64_t token_id = 1;
static char token_name[256] = "bench", mailbox_name[256] = "bench", mailbox_address[256] = "bench@tickiti.localhost";

static char *column_text(sqlite3_stmt *s, int c) {
    const unsigned char *t = sqlite3_column_text(s, c);
    return t ? strdup((const char *)t) : NULL;
}
static unsigned char *column_blob(sqlite3_stmt *s, int c, int *n) {
    *n = sqlite3_column_bytes(s, c);
    unsigned char *p = malloc(*n ? *n : 1);
    if (*n) memcpy(p, sqlite3_column_blob(s, c), *n);
    return p;
}

/* The newest message without a template (Example A) and with one (Example B), as the server
 * stored them, with their idempotency record's answer. */
static void load_sample(const char *path) {
    sqlite3 *sdb;
    if (sqlite3_open_v2(path, &sdb, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die("cannot open --sample %s", path);
    const char *q =
        "SELECT m.subject, m.template, b.raw, m.record_status, m.record_body FROM messages m JOIN message_bodies b ON b.id = m.id "
        "WHERE m.record_token IS NOT NULL AND (m.template IS NULL) = ?1 ORDER BY m.id DESC LIMIT 1";
    for (int e = 0; e < 2; e++) {
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(sdb, q, -1, &s, NULL) != SQLITE_OK) die("--sample %s: %s", path, sqlite3_errmsg(sdb));
        sqlite3_bind_int(s, 1, e == 0);
        if (sqlite3_step(s) != SQLITE_ROW) die("--sample %s holds no message %s a template", path, e == 0 ? "without" : "with");
        Example *x = &examples[e];
        x->subject = column_text(s, 0);
        x->tmpl = column_text(s, 1);
        x->raw = column_blob(s, 2, &x->raw_len);
        x->status = sqlite3_column_int(s, 3);
        x->response = column_blob(s, 4, &x->response_len);
        sqlite3_finalize(s);
    }
    sqlite3_close(sdb);
}

static void synthetic(int bytes_a, int bytes_b) {
    const char *subjects[2] = {"Your order SP-2412-0489 has shipped", "Invoice INV-2026-0488"};
    int sizes[2] = {bytes_a, bytes_b};
    for (int e = 0; e < 2; e++) {
        Example *x = &examples[e];
        x->subject = strdup(subjects[e]);
        x->tmpl = e ? strdup("invoice_delivery") : NULL;
        x->raw_len = sizes[e];
        x->raw = malloc(sizes[e] + 1);
        for (int i = 0; i < sizes[e]; i++) x->raw[i] = (i % 78 == 77) ? '\n' : "Lorem ipsum dolor sit amet, "[i % 28];
        char r[512];
        x->response_len = snprintf(r, sizeof r, "{\"ok\":true,\"data\":{\"mailbox\":\"%s\",\"used_template\":%s}}",
                                   mailbox_address, e ? "true" : "false");
        x->response = (unsigned char *)strdup(r);
        x->status = 200;
    }
}

/* The target's first token and mailbox (the ones `store fill` and the server use). */
static void load_identity(void) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT id, name FROM tokens ORDER BY id LIMIT 1", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        token_id = sqlite3_column_int64(s, 0);
        snprintf(token_name, sizeof token_name, "%s", sqlite3_column_text(s, 1));
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(db, "SELECT name, address FROM mailboxes ORDER BY id LIMIT 1", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        snprintf(mailbox_name, sizeof mailbox_name, "%s", sqlite3_column_text(s, 0));
        snprintf(mailbox_address, sizeof mailbox_address, "%s", sqlite3_column_text(s, 1));
    }
    sqlite3_finalize(s);
}

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}
static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* ---- counters ---- */

/* Bytes written: to the disk (--disk: the block device's sectors written, /sys/class/block/NAME/
 * stat, what the device received — WAL, checkpoints, the file system's journal; the machine must be
 * otherwise quiet) and through write calls (/proc/self/io wchar: what SQLite asked for). Not
 * /proc/self/io write_bytes: with large folios (Linux 6.x on ext4) one 4 KiB pwrite into a cached
 * file counts its whole folio, up to 64 KiB, several times what reaches the disk. */
static int io_fd = -1, disk_fd = -1;
static int64_t wchar_bytes(void) {
    char buf[1024];
    ssize_t n = pread(io_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) die("reading /proc/self/io: %s", strerror(errno));
    buf[n] = 0;
    char *p = strstr(buf, "wchar:");
    if (!p) die("/proc/self/io has no wchar");
    return strtoll(p + 6, NULL, 10);
}
static int64_t disk_bytes(void) {
    if (disk_fd < 0) return 0;
    char buf[512];
    ssize_t n = pread(disk_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) die("reading the disk's stat: %s", strerror(errno));
    buf[n] = 0;
    long long f[7];
    if (sscanf(buf, "%lld %lld %lld %lld %lld %lld %lld", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]) != 7) die("the disk's stat: %s", buf);
    return f[6] * 512;
}
static int64_t cpu_us(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (int64_t)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}
typedef struct { int64_t cpu, bytes, wchar; long commits; } Phase;
typedef struct { int64_t cpu, bytes, wchar; } Mark;
static Mark mark(void) { Mark m = {cpu_us(), disk_bytes(), wchar_bytes()}; return m; }
static void add(Phase *p, Mark a) {
    Mark b = mark();
    p->cpu += b.cpu - a.cpu; p->bytes += b.bytes - a.bytes; p->wchar += b.wchar - a.wchar;
}

/* ---- main ---- */

static void usage(void) {
    fputs("usage: floor --db PATH --sql FILE [--messages N] [--batch B] [--with-delivery]\n"
          "             [--sample DB | --msg-bytes A,B] [--recipients N] [--disk NAME]\n", stderr);
    exit(64);
}

int main(int argc, char **argv) {
    const char *path = NULL, *sql_path = NULL, *sample = NULL, *disk = NULL;
    long messages = 200000, recipients = 100000;
    double batch = 40;
    int with_delivery = 0, bytes_a = 1500, bytes_b = 1500;
    if (tickiti_sqlite_install_page_cache() != SQLITE_OK) die("cannot install the page cache wrapper");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--with-delivery")) { with_delivery = 1; continue; }
        if (!v) usage();
        if (!strcmp(a, "--db")) path = v;
        else if (!strcmp(a, "--sql")) sql_path = v;
        else if (!strcmp(a, "--sample")) sample = v;
        else if (!strcmp(a, "--messages")) messages = atol(v);
        else if (!strcmp(a, "--batch")) batch = atof(v);
        else if (!strcmp(a, "--recipients")) recipients = atol(v);
        else if (!strcmp(a, "--disk")) disk = v;
        else if (!strcmp(a, "--msg-bytes")) { if (sscanf(v, "%d,%d", &bytes_a, &bytes_b) != 2) usage(); }
        else usage();
        i++;
    }
    if (!path || !sql_path || messages < 1 || messages > 100000000 || batch < 1 || recipients < 1) usage();
    read_sql(sql_path);

    /* As Database.openHandle + configure: no CREATE (the file must come from our migrations). */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        die("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_busy_timeout(db, 5000);
    for (int i = 0; i < sql_count; i++)
        if (!strcmp(sql_names[i], "pragma")) exec_sql(sql_texts[i]);
    sqlite3_stmt *s;
    int user_version = 0, page_size = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) user_version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) page_size = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (user_version == 0) die("%s has no schema: make it with tickiti-mail (store fill) first", path);
    load_identity();
    if (sample) load_sample(sample); else synthetic(bytes_a, bytes_b);

    const char *durable_pragma = NULL, *status_pragma = sql_named("status_pragma");
    for (int i = 0; i < sql_count; i++)
        if (!strcmp(sql_names[i], "pragma") && strstr(sql_texts[i], "synchronous")) durable_pragma = sql_texts[i];
    if (!durable_pragma) die("no synchronous pragma in the --sql file");
    int status_sync_ms = atoi(sql_named("status_sync_ms"));
    const char *begin_sql = sql_named("begin"), *commit_sql = sql_named("commit");
    sqlite3_stmt *lookup = prepare("idempotency_lookup"), *row_lookup = prepare("idempotency_row_lookup"),
                 *ins_msg = prepare("insert_message"), *ins_body = prepare("insert_message_body"),
                 *rec_attempt = prepare("record_attempt"), *ins_attempt = prepare("insert_attempt");

    /* Everything that is not SQLite, before the measured phase. */
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &rng_state, sizeof rng_state) != sizeof rng_state) die("/dev/urandom");
    close(fd);
    rng_state |= 1;
    Item *items = malloc(sizeof(Item) * messages);
    if (!items) die("out of memory");
    const char *domain = strrchr(mailbox_address, '@');
    domain = domain ? domain + 1 : "localhost";
    int64_t t0ms = now_ms();
    for (long i = 0; i < messages; i++) {
        Item *it = &items[i];
        uint64_t a = rnd(), b = rnd();
        snprintf(it->key, sizeof it->key, "%08x-%04x-4%03x-%04x-%04x%08x", (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
                 (unsigned)a & 0xfff, 0x8000 | ((unsigned)(b >> 48) & 0x3fff), (unsigned)(b >> 32) & 0xffff, (unsigned)b);
        snprintf(it->recipient, sizeof it->recipient, "customer-%ld@example.test", (long)(rnd() % (uint64_t)recipients));
        /* MessageBuilder: `<` 12 hex digits of the millisecond, 20 random ones, `@domain>`. */
        uint64_t r1 = rnd(), r2 = rnd();
        snprintf(it->message_id, sizeof it->message_id, "<%012llx%016llx%04llx@%s>", (unsigned long long)((t0ms + i / 50) & 0xffffffffffffULL),
                 (unsigned long long)r1, (unsigned long long)(r2 & 0xffff), domain);
        for (int k = 0; k < 32; k += 8) { uint64_t f = rnd(); memcpy(it->fingerprint + k, &f, 8); }
    }
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(batch + 2));
    if (!ids) die("out of memory");
    io_fd = open("/proc/self/io", O_RDONLY);
    if (io_fd < 0) die("cannot open /proc/self/io: %s", strerror(errno));
    if (disk) {
        char stat_path[512];
        snprintf(stat_path, sizeof stat_path, "/sys/class/block/%s/stat", disk);
        disk_fd = open(stat_path, O_RDONLY);
        if (disk_fd < 0) die("--disk %s: cannot open %s: %s", disk, stat_path, strerror(errno));
    }

    Phase acc = {0}, del = {0};
    long wal_syncs = 0;
    int64_t msg_bytes = 0;
    int unsynced = 0;
    double unsynced_since = 0;
    char wal_path[4096];
    snprintf(wal_path, sizeof wal_path, "%s-wal", path);
    double w0 = mono_s();
    Mark whole = mark();
    long done = 0, round = 0;
    while (done < messages) {
        /* Group commits of mean size `batch`: sizes floor((k+1)·B) − floor(k·B). */
        long n = (long)((round + 1) * batch) - (long)(round * batch);
        if (n > messages - done) n = messages - done;
        round++;
        Mark m0;
        if (with_delivery) {
            m0 = mark();
            exec_sql(durable_pragma); /* SQLiteServerStore.commit: setSynchronous before begin */
        }
        exec_sql(begin_sql);
        int64_t at = now_ms();
        for (long j = 0; j < n; j++) {
            Item *it = &items[done + j];
            const Example *x = &examples[(done + j) % 2]; /* send_email.lua: A, B, A, … */
            /* SQLiteServerStore.write(.accept): the look-up, then Database.insertAccepted. */
            sqlite3_reset(lookup);
            bind_int(lookup, 1, token_id);
            bind_text(lookup, 2, it->key, -1);
            if (run(lookup) != 0) die("key %s already stored", it->key);
            sqlite3_reset(lookup);
            sqlite3_reset(row_lookup);
            bind_int(row_lookup, 1, token_id);
            bind_text(row_lookup, 2, it->key, -1);
            if (run(row_lookup) != 0) die("key %s already stored", it->key);
            sqlite3_reset(row_lookup);
            sqlite3_reset(ins_msg);
            bind_int(ins_msg, 1, at);
            bind_text(ins_msg, 2, token_name, -1);
            bind_text(ins_msg, 3, it->key, -1);
            bind_text(ins_msg, 4, mailbox_name, -1);
            bind_text(ins_msg, 5, mailbox_address, -1);
            bind_text(ins_msg, 6, it->recipient, -1);
            bind_text(ins_msg, 7, x->subject, -1);
            bind_text(ins_msg, 8, x->tmpl, -1);
            bind_text(ins_msg, 9, it->message_id, -1);
            bind_text(ins_msg, 10, "sending", 7);
            bind_text(ins_msg, 11, NULL, 0); /* recipients: no Cc/Bcc */
            bind_text(ins_msg, 12, NULL, 0); /* metadata: none */
            bind_int(ins_msg, 13, token_id); /* the idempotency record */
            bind_blob(ins_msg, 14, it->fingerprint, 32);
            bind_int(ins_msg, 15, x->status);
            bind_blob(ins_msg, 16, x->response, x->response_len);
            run(ins_msg);
            int64_t id = sqlite3_last_insert_rowid(db);
            ids[j] = id;
            sqlite3_reset(ins_body);
            bind_int(ins_body, 1, id);
            bind_blob(ins_body, 2, x->raw, x->raw_len);
            run(ins_body);
            msg_bytes += x->raw_len;
        }
        exec_sql(commit_sql);
        acc.commits++;
        unsynced = 0; /* a durable commit syncs every frame before it */
        if (with_delivery) {
            add(&acc, m0);
            /* The same messages delivered: DeliveryScheduler's .attempt writes, one status-only
             * commit (Database.recordAttempt). */
            m0 = mark();
            exec_sql(status_pragma);
            exec_sql(begin_sql);
            int64_t sent_at = now_ms();
            static const char reply[] = "250 2.0.0 Ok: queued";
            for (long j = 0; j < n; j++) {
                sqlite3_reset(rec_attempt);
                bind_int(rec_attempt, 1, ids[j]);
                bind_text(rec_attempt, 2, "sent", 4);
                bind_text(rec_attempt, 3, reply, sizeof reply - 1);
                bind_int(rec_attempt, 4, sent_at);
                bind_int(rec_attempt, 5, sent_at);
                bind_int(rec_attempt, 6, 1); /* AttemptOutcome.counts("sent") */
                bind_int(rec_attempt, 7, 0); /* not uncertain */
                run(rec_attempt);
                sqlite3_reset(ins_attempt);
                bind_int(ins_attempt, 1, ids[j]);
                bind_int(ins_attempt, 2, sent_at);
                bind_text(ins_attempt, 3, "sent", 4);
                bind_text(ins_attempt, 4, reply, sizeof reply - 1);
                run(ins_attempt);
            }
            exec_sql(commit_sql);
            del.commits++;
            if (strstr(status_pragma, "NORMAL") && !strstr(durable_pragma, "NORMAL")) {
                /* SQLiteServerStore's WAL sync timer: status_sync_ms after the first unsynced
                 * commit, if no synced one came since (here the next acceptance commit usually does). */
                double t = mono_s();
                if (!unsynced) { unsynced = 1; unsynced_since = t; }
                else if ((t - unsynced_since) * 1000 >= status_sync_ms) {
                    int wfd = open(wal_path, O_RDONLY | O_CLOEXEC);
                    if (wfd >= 0) { fdatasync(wfd); close(wfd); }
                    wal_syncs++;
                    unsynced = 0;
                }
            }
            add(&del, m0);
        }
        done += n;
    }
    if (with_delivery && unsynced) { /* SQLiteServerStore.finish */
        Mark m0 = mark();
        int wfd = open(wal_path, O_RDONLY | O_CLOEXEC);
        if (wfd >= 0) { fdatasync(wfd); close(wfd); }
        wal_syncs++;
        add(&del, m0);
    }
    if (!with_delivery) add(&acc, whole);
    double wall = mono_s() - w0;

    /* Without --disk, bytes are the write calls' (the same within a few per cent here). */
    if (disk_fd < 0) { acc.bytes = acc.wchar; del.bytes = del.wchar; }
    printf("floor messages=%ld batch=%g cpu_us_per_msg=%.2f bytes_per_msg=%.0f write_call_bytes_per_msg=%.0f msg_bytes=%.0f"
           " commits=%ld wall_s=%.2f page_size=%d msg_bytes_a=%d msg_bytes_b=%d bytes=%s\n",
           messages, batch, (double)acc.cpu / messages, (double)acc.bytes / messages, (double)acc.wchar / messages,
           (double)msg_bytes / messages, acc.commits, wall, page_size, examples[0].raw_len, examples[1].raw_len,
           disk_fd < 0 ? "write-calls" : "disk");
    if (with_delivery)
        printf("floor_delivery messages=%ld batch=%g cpu_us_per_msg=%.2f bytes_per_msg=%.0f write_call_bytes_per_msg=%.0f"
               " commits=%ld wal_syncs=%ld\n",
               messages, batch, (double)del.cpu / messages, (double)del.bytes / messages, (double)del.wchar / messages,
               del.commits, wal_syncs);
    sqlite3_finalize(lookup); sqlite3_finalize(ins_msg); sqlite3_finalize(ins_body); sqlite3_finalize(row_lookup);
    sqlite3_finalize(rec_attempt); sqlite3_finalize(ins_attempt);
    if (sqlite3_close(db) != SQLITE_OK) die("close: %s", sqlite3_errmsg(db));
    return 0;
}
