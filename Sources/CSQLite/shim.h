/// CSQLite: the system SQLite (Debian libsqlite3-dev). SQLITE_TRANSIENT is a cast macro that
/// does not import into Swift; these inlines bind with it.
#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>
static inline int csqlite_bind_text_transient(sqlite3_stmt *s, int i, const char *z, int n) {
    return sqlite3_bind_text(s, i, z, n, SQLITE_TRANSIENT); }
static inline int csqlite_bind_blob_transient(sqlite3_stmt *s, int i, const void *z, int n) {
    return sqlite3_bind_blob(s, i, z, n, SQLITE_TRANSIENT); }
/* Extended result codes are built with a shift macro and do not import. */
static const int CSQLITE_CONSTRAINT_UNIQUE = SQLITE_CONSTRAINT_UNIQUE;
static const int CSQLITE_CONSTRAINT_PRIMARYKEY = SQLITE_CONSTRAINT_PRIMARYKEY;
#endif
