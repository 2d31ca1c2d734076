#include <sqlite3.h>
#include "sqlite_page_cache.h"

/* The wrapper of include/sqlite_page_cache.h: every method forwards to pcache1; xFetch, xRekey
** and xUnpin keep the bound, xTruncate consults it. Single-threaded use per cache, as SQLite
** calls a cache under its connection's mutex. */
typedef struct Wrapped {
  sqlite3_pcache *inner;
  unsigned maxKey;          /* every page in the cache has a key <= maxKey, or is at tempKey */
  unsigned tempKey;         /* PENDING_BYTE / page size + 1: btree's temporary page number */
  int tempHeld;             /* a page may be at tempKey */
  sqlite3_pcache_page *tempPage;
} Wrapped;

static sqlite3_pcache_methods2 inner;
static int installed;
/* Per thread: a connection's truncations run on the thread using it (one per server process;
** a test's own thread in the test suite). */
static _Thread_local unsigned long long forwardedCount, skippedCount;

static int wInit(void *arg) { (void)arg; return inner.xInit ? inner.xInit(inner.pArg) : SQLITE_OK; }
static void wShutdown(void *arg) { (void)arg; if (inner.xShutdown) inner.xShutdown(inner.pArg); }

static sqlite3_pcache *wCreate(int szPage, int szExtra, int bPurgeable) {
  Wrapped *w = sqlite3_malloc(sizeof *w);
  if (!w) return 0;
  w->inner = inner.xCreate(szPage, szExtra, bPurgeable);
  if (!w->inner) { sqlite3_free(w); return 0; }
  w->maxKey = 0;
  w->tempKey = 0x40000000u / (unsigned)szPage + 1;
  w->tempHeld = 0;
  w->tempPage = 0;
  return (sqlite3_pcache *)w;
}
static void wCachesize(sqlite3_pcache *p, int n) { inner.xCachesize(((Wrapped *)p)->inner, n); }
static int wPagecount(sqlite3_pcache *p) { return inner.xPagecount(((Wrapped *)p)->inner); }
static sqlite3_pcache_page *wFetch(sqlite3_pcache *p, unsigned key, int createFlag) {
  Wrapped *w = (Wrapped *)p;
  sqlite3_pcache_page *page = inner.xFetch(w->inner, key, createFlag);
  if (page) {
    if (key == w->tempKey) { w->tempHeld = 1; w->tempPage = page; }
    else if (key > w->maxKey) w->maxKey = key;
  }
  return page;
}
static void wUnpin(sqlite3_pcache *p, sqlite3_pcache_page *page, int discard) {
  Wrapped *w = (Wrapped *)p;
  if (discard && page == w->tempPage) { w->tempHeld = 0; w->tempPage = 0; }
  inner.xUnpin(w->inner, page, discard);
}
static void wRekey(sqlite3_pcache *p, sqlite3_pcache_page *page, unsigned oldKey, unsigned newKey) {
  Wrapped *w = (Wrapped *)p;
  inner.xRekey(w->inner, page, oldKey, newKey);
  if (oldKey == w->tempKey) { w->tempHeld = 0; w->tempPage = 0; }
  if (newKey == w->tempKey) { w->tempHeld = 1; w->tempPage = page; }
  else if (newKey > w->maxKey) w->maxKey = newKey;
}
static void wTruncate(sqlite3_pcache *p, unsigned limit) {
  Wrapped *w = (Wrapped *)p;
  int tempAbove = w->tempHeld && w->tempKey >= limit;
  if (w->maxKey < limit && !tempAbove) { skippedCount++; return; }   /* nothing at or above limit */
  forwardedCount++;
  inner.xTruncate(w->inner, limit);
  if (limit == 0) w->maxKey = 0; else if (w->maxKey >= limit) w->maxKey = limit - 1;
  if (tempAbove) { w->tempHeld = 0; w->tempPage = 0; }
}
static void wDestroy(sqlite3_pcache *p) { Wrapped *w = (Wrapped *)p; inner.xDestroy(w->inner); sqlite3_free(w); }
static void wShrink(sqlite3_pcache *p) { inner.xShrink(((Wrapped *)p)->inner); }

int tickiti_sqlite_install_page_cache(void) {
  if (installed) return SQLITE_OK;
  sqlite3_pcache_methods2 current;
  int rc = sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &current);
  if (rc != SQLITE_OK) return rc;
  if (current.iVersion < 1 || !current.xRekey) return SQLITE_ERROR;
  inner = current;
  static sqlite3_pcache_methods2 methods = {
    1, 0, wInit, wShutdown, wCreate, wCachesize, wPagecount, wFetch, wUnpin, wRekey, wTruncate, wDestroy, wShrink
  };
  rc = sqlite3_config(SQLITE_CONFIG_PCACHE2, &methods);
  if (rc == SQLITE_OK) installed = 1;
  return rc;
}

void tickiti_sqlite_page_cache_counts(unsigned long long *forwarded, unsigned long long *skipped) {
  *forwarded = forwardedCount;
  *skipped = skippedCount;
}
