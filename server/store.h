/*
** The server's one handle on the engine, and group commit.
**
** Group commit: with it on, the first write command of an event-loop
** iteration opens an engine transaction (the batch) and every write of
** every client in that iteration joins it; before the loop sleeps again
** the batch is committed and only then are the replies sent.  So a reply
** never acknowledges a write that is not yet durable, and one commit (one
** write(), one fdatasync at sync=full) serves many commands.  With it off
** every write command is its own engine transaction.
**
** Whoever sends replies registers a hook that hears how each batch ended;
** when a commit fails, the hook must not send the replies made since the
** batch opened (the writes they acknowledge were rolled back).
**
** Durable group commit with overlap (--sync full and group commit): the
** engine then runs at sync=normal, so a batch's commit only writes it to
** the OS, and the sync thread (syncer.h) fdatasyncs every batch committed
** so far while the loop reads, runs and commits the next commands.  Each
** reply is tagged with the batch its command could see (store_visible_id:
** reads too, since they may return data of a batch not yet durable, which
** is what Redis with appendfsync always gives: no reply of a loop turn,
** read or write, leaves before that turn's fsync) and held until that
** batch is durable (store_durable_id).  A failed fdatasync breaks the
** engine: every held reply becomes an error, and the store is reopened
** (store_recover); writes whose sync failed may or may not be there after
** that, as the engine's own contract says of any failed sync.
*/
#ifndef TKS_STORE_H
#define TKS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "tinkv.h"

/* Open (creating if needed) the store in dir.  A TKV_* code; on failure
** tkv_errmsg() says why. */
int store_open(const char *dir, tkv_sync_mode sync, int group_commit,
               uint64_t merge_min);
/* After store_open: 0 if the store holds raw keys and values (marking a
** new one so), -1 (logged) if it holds the typed encoding of SQL tables. */
int store_check_encoding(void);
/* Commit any open batch, sync and close the store (releasing its lock). */
int store_close(void);
tkv_db *store_db(void);
/* A hint that the n keys will be read or written soon (tkv_prefetch):
** pipelined requests and multi-key commands call it before running. */
void store_prefetch(size_t n, const void *const *keys, const size_t *klens);

/*
** Keyed writes: every write of the server goes through these, so that each
** is counted into the batch and every key change is announced to the
** key-change hook (WATCH listens to it).  The same flags and results as
** tkv_write() and tkv_delete().
*/
int store_write(const void *key, size_t klen, const void *val, size_t vlen,
                unsigned flags);
int store_delete(const void *key, size_t klen);
/* store_write with an expiry time (ms since the epoch; 0: none), and
** tkv_expire_set: a new expiry time for a key (0 clears it). */
int store_write_expire(const void *key, size_t klen, const void *val,
                       size_t vlen, unsigned flags, uint64_t expire);
int store_expire_set(const void *key, size_t klen, uint64_t expire);

/*
** Active expiry, as Redis's: called ten times a second, it commits the open
** batch and deletes expired keys in rounds of tkv_expire_step, for at most
** a quarter of the interval, so that expired keys nobody reads again give
** their memory and disk back.  Reads never see an expired key either way.
** With `all`, no time budget: every expired key goes (at start-up).  Keys
** removed lose their OBJECT ENCODING note (objenc_forget).
*/
void store_expire_cycle(int all);

/* Called after each successful write or delete of a key. */
typedef void (*store_key_hook)(const void *key, size_t klen);
void store_set_key_hook(store_key_hook hook);

/* Called when batches end.  rc TKV_OK: every batch up to batch_id is
** durable, its replies may go.  Else batch_id and every later batch failed
** (why says how): their replies must not be sent. */
typedef void (*store_batch_hook)(int rc, uint64_t batch_id, const char *why);
void store_set_batch_hook(store_batch_hook hook);

/* Start the sync thread on the loop (durable group commit only).  0, or
** -1 with the reason logged. */
int store_attach_loop(struct event_base *base);
/* The batch a command run now could see (the open one, else the last
** committed), and the last one known durable: a reply waits until the
** first is at most the second. */
uint64_t store_visible_id(void);
uint64_t store_durable_id(void);
/* A sync just answered n clients (store_end_turn waits for them); one of
** them sent its next command, or left. */
void store_expect(unsigned n);
void store_client_back(void);
/* End of a loop turn: commit the batch, start a sync (store.c says
** when).  A TKV_* code. */
int store_end_turn(void);
/* Commit the open batch and make everything committed durable before
** returning (waits for the sync thread).  A TKV_* code. */
int store_settle(void);

/* Before a write command: with group commit on, open the batch if none is
** open.  A TKV_* code. */
int store_batch_join(void);
/* Id of the open batch (ids grow from 1), or 0 when none is open. */
uint64_t store_batch_id(void);
/* Count one write of `bytes` into the open batch (no-op without one). */
void store_batch_count(size_t bytes);
/* Nonzero when the open batch is big enough to commit now, before the
** loop iteration ends (bounds the memory and size of one transaction). */
int store_batch_due(void);
/* Commit the open batch, if any, and tell the hook.  On failure the batch
** is rolled back.  A TKV_* code (TKV_OK when no batch was open). */
int store_batch_commit(void);

/*
** An all-or-nothing group of writes inside one command (MSET, DEL of
** several keys, FLUSHDB, EXEC).  Outside any transaction it is an engine
** transaction of its own; inside the batch or an EXEC it is a savepoint,
** so a failure undoes this command's writes only.
*/
typedef struct store_atomic {
  int own_txn;     /* began the engine transaction */
  int savepoint;   /* savepoint number, or -1 */
} store_atomic;

int store_atomic_begin(store_atomic *a);
/* ok nonzero: keep the writes (commit an own transaction; its status is
** returned).  ok zero: undo them.  A TKV_* code. */
int store_atomic_end(store_atomic *a, int ok);

/* Commit the batch and compact now (COMMAND, POST /v1/compact).  Automatic
** merging is the engine's: a background thread of this process merges the
** deadest segments past --compact-min stale bytes.  A TKV_* code. */
int store_compact(uint64_t *preclaimed);

/* Log what the engine's background merging did since the last call: how
** many merges, the bytes reclaimed and the time spent, a damaged record
** one skipped, a failure (called once a second). */
void store_log_merges(void);
/* Commit the batch and compact now, on request (who: "COMPACT from client
** 5", "POST /v1/compact"); logged with the bytes reclaimed and the time it
** took.  A TKV_* code. */
int store_compact_now(const char *who, uint64_t *preclaimed);
/* The directory of backup `name` under --backup-dir, into out; NULL, or
** why the name (or a server without --backup-dir) cannot have one. */
const char *store_backup_path(const char *name, size_t len, char *out,
                              size_t size);
/* Commit the batch and back the store up into dest (tkv_backup), online;
** logged with what was copied and the time it took.  A TKV_* code. */
int store_backup(const char *who, const char *dest, int incremental,
                 tkv_backup_report *rep);
/* Commit the batch and check the store (tkv_check_db), each problem to
** problem_fn; logged with the outcome and the time it took.  TKV_OK,
** TKV_CORRUPT when problems were found, or another TKV_* code. */
int store_check(const char *who, tkv_problem_fn problem_fn, void *ctx,
                tkv_check_report *rep);

/* Flush and fdatasync the store (commits an open batch first). */
int store_sync(void);

/* Record the status of an engine call that failed.  TKV_BROKEN means the
** engine refuses writes until the store is reopened; store_recover() then
** does that. */
void store_note(int rc);
/* If the engine reported TKV_BROKEN, close and reopen the store (between
** loop iterations, when nothing holds a cursor).  0, or -1 when it cannot
** be reopened and the server must stop. */
int store_recover(void);

#endif
