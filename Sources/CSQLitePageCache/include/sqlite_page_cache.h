/// CSQLitePageCache: SQLite's own page cache (pcache1) behind a thin wrapper that skips a
/// truncation with nothing to drop.
///
/// Why: at the end of every write transaction the pager truncates the page cache to the
/// database's size (pager_end_transaction → sqlite3PcacheTruncate). pcache1 decides from the
/// largest key it has seen (iMaxKey) whether anything lies beyond; when that key is far past the
/// database's end it walks its whole hash table. And the B-tree's balance_nonroot swaps page
/// numbers through a temporary key — PENDING_BYTE / page size + 1, page 262 145 with 4 KiB pages
/// — so after any transaction that split pages iMaxKey is 262 145, and the commit walks every
/// bucket of a cache of up to `cache_size` pages: measured 5–7 % of the server's CPU when
/// accepting messages with random keys (SQLite 3.40, cache_size = 32 MiB).
///
/// The wrapper keeps its own bound: every page of the cache has a key ≤ `maxKey`, or is the one
/// at the temporary key (`tempHeld`). Pages enter a cache only through xFetch and xRekey, so the
/// bound is exact or too large (pcache1 may recycle a page unseen), never too small; a
/// truncation is forwarded unless the bound proves nothing is at or above its limit.
#ifndef CSQLITE_PAGE_CACHE_H
#define CSQLITE_PAGE_CACHE_H

/// Installs the wrapper around the current page cache. Must run before SQLite is initialised
/// (before the process's first sqlite3_open); returns SQLITE_OK, or SQLITE_MISUSE when SQLite was
/// already initialised (SQLite then keeps its own cache, unwrapped).
int tickiti_sqlite_install_page_cache(void);

/// How many truncations the installed wrapper forwarded to pcache1 and how many it skipped, on
/// the calling thread (for tests and diagnostics).
void tickiti_sqlite_page_cache_counts(unsigned long long *forwarded, unsigned long long *skipped);

#endif
