/*
** tinkv: a Bitcask-model key-value storage engine.
**
** A store is a directory of append-only segment files.  Every live key is
** held in an in-memory, ordered keydir that points at the latest record of
** the key on disk, so a read is one index lookup and one pread.  The on-disk
** format is described in core/FORMAT.md.
**
** This header is the whole public C API.  It has no SQLite dependency.
**
** Conventions:
**   - Every function that can fail returns a TKV_* status code.
**   - After a failure, tkv_errmsg() returns a message for the calling
**     thread that says what failed and where (path, offset, errno text).
**   - Memory returned to the caller (values, keys, messages) is released
**     with tkv_free().
**   - A tkv_db handle may be used from several threads.  Opening the same
**     directory twice in one process gives two handles on one shared engine.
**     Each handle has at most one open transaction.
*/
#ifndef TINKV_H
#define TINKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TINKV_VERSION "0.1.0"

/* Status codes. */
#define TKV_OK        0   /* success */
#define TKV_NOTFOUND  1   /* no such key (or id) */
#define TKV_EXISTS    2   /* key exists and TKV_NOOVERWRITE was given */
#define TKV_IO        3   /* an I/O call failed (ENOSPC, EIO, EACCES, ...) */
#define TKV_CORRUPT   4   /* a file fails its checks; message names file+offset */
#define TKV_LOCKED    5   /* the store is held exclusively elsewhere (a destroy,
                          ** an offline check, an older tinkv) */
#define TKV_BUSY      6   /* another handle or process is in a write transaction
                          ** (past the busy timeout), or compaction was refused
                          ** for that reason or for other processes' opens */
#define TKV_NOMEM     7   /* an allocation failed */
#define TKV_TOOBIG    8   /* key, value or transaction over its limit */
#define TKV_INVALID   9   /* a bad argument or option */
#define TKV_NOTSTORE 10   /* the directory exists but holds no tinkv store */
#define TKV_MISUSE   11   /* API used out of order (e.g. commit without begin) */
#define TKV_BROKEN   12   /* an earlier failure left the engine unable to write
                          ** safely; close and reopen the store (see "Failures"
                          ** below) */
#define TKV_READONLY 13   /* a write through a handle opened read-only */

/* Limits. */
#define TKV_KEY_MAX        (1u << 20)      /* bytes in a key (1 MiB) */
#define TKV_VALUE_MAX      1000000000u     /* bytes in a value (SQLite's limit) */
#define TKV_FILE_SIZE_MIN  4096u           /* smallest max_file_size accepted */
#define TKV_FILE_SIZE_MAX  (1ull << 31)    /* largest max_file_size (2 GiB) */

/* Defaults. */
#define TKV_DEFAULT_MAX_FILE_SIZE     (64ull << 20)   /* 64 MiB */
#define TKV_DEFAULT_COMPACT_THRESHOLD (10ull << 20)   /* 10 MiB */
#define TKV_DEFAULT_BUSY_TIMEOUT      5000            /* milliseconds */

typedef struct tkv_db tkv_db;
typedef struct tkv_cursor tkv_cursor;

/*
** Durability of a commit.
**   FULL:   the commit is fdatasync'ed before it returns (survives power loss).
**   NORMAL: the commit is written to the OS before it returns (survives the
**           process being killed, not a power loss).
**   OFF:    the commit may stay in the process's buffer until it fills, a
**           tkv_sync() or tkv_close() (survives neither).
*/
typedef enum tkv_sync_mode {
  TKV_SYNC_FULL = 0,
  TKV_SYNC_NORMAL = 1,
  TKV_SYNC_OFF = 2
} tkv_sync_mode;

typedef struct tkv_options {
  tkv_sync_mode sync;          /* default TKV_SYNC_FULL */
  uint64_t max_file_size;      /* segment rotation size; 0 = default */
  uint64_t compact_threshold;  /* stale bytes that start an automatic
                               ** compaction; 0 = default; UINT64_MAX = never */
  int create;                  /* nonzero: create the store (and the directory,
                               ** not its parents) if it does not exist */
  int readonly;                /* nonzero: this handle only reads: writes,
                               ** transactions and compaction fail with
                               ** TKV_READONLY, and no store file changes */
  int busy_timeout;            /* milliseconds to wait while another process
                               ** writes (or recovers the store at its open);
                               ** 0 = default, < 0 = fail at once */
  int exclusive;               /* nonzero: no other process may open the store
                               ** while this one has it (TKV_LOCKED both ways
                               ** if another has it open) */
} tkv_options;

/* Fill *opts with the defaults. */
void tkv_options_init(tkv_options *opts);

/*
** Open the store in directory `path`.  With opts->create, a missing or empty
** directory becomes a new store; otherwise a directory that holds no store
** fails with TKV_NOTSTORE.  Any number of processes may have one store open
** (README, "Several processes"): readers never wait, writers take turns,
** one write transaction at a time.  The first process to open the store
** recovers it (hint files, segment scans, cutting a torn tail, finishing
** or discarding an interrupted compaction); the others load what it and
** later writers published.  A store held by tkv_destroy, an offline
** tkv_check or an older tinkv fails with TKV_LOCKED.
** A second open of the same store in one process shares the engine; its
** options are then ignored, but for readonly and busy_timeout, which
** belong to the handle.  `opts` may be NULL for the defaults.
*/
int tkv_open(const char *path, const tkv_options *opts, tkv_db **pdb);

/* Set how long (milliseconds) this handle's next transactions wait for
** another process's write transaction to end before TKV_BUSY; 0 or less:
** not at all. */
void tkv_busy_timeout(tkv_db *db, int ms);

/* Roll back this handle's open transaction, if any, and close the handle.
** The last handle of an engine flushes, syncs and releases the lock. */
int tkv_close(tkv_db *db);

/* The calling thread's message for its last failure. Never NULL. */
const char *tkv_errmsg(void);
/* A short English name for a status code. */
const char *tkv_strerror(int rc);
/* TINKV_VERSION and the on-disk format version, e.g. "0.1.0 (format 1)". */
const char *tkv_version(void);
/* Release memory returned by this API. */
void tkv_free(void *p);

/* ---------------------------------------------------------------- Reads. */

/*
** Read the value of `key` into a new buffer (*pval, *pvlen; release with
** tkv_free).  A value of length 0 gives a non-NULL buffer.  Inside a
** transaction the handle sees its own uncommitted writes; other handles see
** only committed data.  TKV_NOTFOUND if absent.  The record's CRC is checked:
** a mismatch is TKV_CORRUPT naming the file and offset.
*/
int tkv_get(tkv_db *db, const void *key, size_t klen, void **pval,
            size_t *pvlen);

/*
** Look `key` up in the keydir only (no disk read).  Any of pid and pvlen may
** be NULL.  *pid is the key's id: stable while the key exists and the store
** is open, never reused while the store is open.  TKV_NOTFOUND if absent.
*/
int tkv_lookup(tkv_db *db, const void *key, size_t klen, uint64_t *pid,
               size_t *pvlen);

/*
** A hint that the n keys keys[i] (klens[i] bytes; NULL only with length 0)
** will be read soon, as by a pipeline of GETs or a multi-key read: they are
** looked up together and their records fetched ahead, so that the reads
** that follow do not each wait for memory.  Changes nothing and cannot
** fail; reads return the same with or without it.
*/
void tkv_prefetch(tkv_db *db, size_t n, const void *const *keys,
                  const size_t *klens);

/*
** A number that changes whenever the committed contents this handle reads
** may have changed: a commit by any handle or process, a compaction.  It
** first catches up with what other processes committed (as a read does).
** Equal values from two calls mean nothing was committed in between, so a
** caller that read at the first call and writes after the second knows its
** read is still current (the SQL extension refuses a write transaction
** whose earlier reads are no longer current).  Not a count: only compare.
*/
uint64_t tkv_data_version(tkv_db *db);

/* Number of live keys visible to this handle (committed keys adjusted by its
** own open transaction; expired keys are not counted).  O(1) while no key
** has expired that the expiry step has not yet removed; else it visits
** those keys only (the expiry table is ordered by time), and the keys this
** handle's open transaction wrote with an expiry time. */
uint64_t tkv_count(tkv_db *db);
/* tkv_count, except that keys that expired and that no tombstone removed
** yet (tkv_expire_step, a delete or a write of the key) are still counted,
** as Redis's DBSIZE counts keys it has not reclaimed.  Always O(1). */
uint64_t tkv_count_stored(tkv_db *db);

/* --------------------------------------------------------------- Writes. */

/* Flags for tkv_write and tkv_write_expire. */
#define TKV_NOOVERWRITE 0x1   /* fail with TKV_EXISTS if the key is present */
#define TKV_MUSTEXIST   0x2   /* fail with TKV_NOTFOUND if it is absent */
#define TKV_KEEPEXPIRE  0x4   /* keep the key's expiry time (if it has one) */

/*
** Set `key` to `val`.  Outside a transaction the write is its own
** transaction, durable as the sync mode says when this returns.  *pid (if
** not NULL) receives the key's id.
*/
int tkv_write(tkv_db *db, const void *key, size_t klen, const void *val,
              size_t vlen, unsigned flags, uint64_t *pid);
/* tkv_write with no flags. */
int tkv_put(tkv_db *db, const void *key, size_t klen, const void *val,
            size_t vlen);
/* Delete `key` (a tombstone record).  TKV_NOTFOUND, with nothing written, if
** the key is absent; TKV_NOTFOUND too for a key that has expired, whose
** tombstone is written (that reclaims it). */
int tkv_delete(tkv_db *db, const void *key, size_t klen);

/* ---------------------------------------------------------------- Expiry.
**
** A key may carry an expiry time: milliseconds since the Unix epoch, on
** the clock of tkv_clock_ms().  Once that clock is past it, the key is
** absent for every read (tkv_get, tkv_lookup, cursors, tkv_count, ids)
** and for the flags of tkv_write, at once.  The time is in the key's
** record, so it survives restarts and crashes with the write.  The disk
** space comes back when a tombstone is written for the key: by
** tkv_expire_step (which a server runs on a timer), by tkv_delete, or by
** any write of the key; merges then drop both like any deleted key.
** Writing a key without an expiry time clears it (TKV_KEEPEXPIRE keeps
** it).  A time of 0 means "none".
*/

/* The clock expiry times are compared with: CLOCK_REALTIME, ms. */
uint64_t tkv_clock_ms(void);

/*
** Stop the clock this thread sees at now_ms (0: follow the real clock
** again).  Until then every expiry decision of this thread's calls uses
** that one time, so that a read and the write computed from it agree on
** whether a key has expired: a read-modify-write (an increment, an append)
** of a key whose time passes between the two then sees it live both
** times, instead of reading a value and writing it back after the key
** expired.  Redis stops its clock for each command in the same way.
** Other threads, the background merge included, keep the real clock.
*/
void tkv_clock_pin(uint64_t now_ms);

/* tkv_write with an expiry time (0: none). */
int tkv_write_expire(tkv_db *db, const void *key, size_t klen,
                     const void *val, size_t vlen, unsigned flags,
                     uint64_t expire_ms, uint64_t *pid);

/* The expiry time of a live key into *pexpire_ms (0 when it has none).
** TKV_NOTFOUND if the key is absent or expired. */
int tkv_expire_get(tkv_db *db, const void *key, size_t klen,
                   uint64_t *pexpire_ms);

/*
** Give a live key a new expiry time (0 clears it), keeping its value: the
** key's record is written again with the new time (so this reads the
** value).  TKV_NOTFOUND, with nothing written, if the key is absent or
** expired.  A time in the past makes the key expire at once.
*/
int tkv_expire_set(tkv_db *db, const void *key, size_t klen,
                   uint64_t expire_ms);

/*
** Reclaim expired keys: write tombstones for up to `max` keys whose time
** has passed, in one transaction (one sync), and put their number in *pn
** (may be NULL).  TKV_BUSY when this handle has a transaction open.  Run
** it now and then (the server does, ten times a second).
*/
int tkv_expire_step(tkv_db *db, unsigned max, unsigned *pn);
/* tkv_expire_step, calling fn (if not NULL) after the commit with each key
** it removed, so that a caller can drop what it keeps about those keys. */
typedef void (*tkv_key_fn)(void *ctx, const void *key, size_t klen);
int tkv_expire_step_keys(tkv_db *db, unsigned max, tkv_key_fn fn, void *ctx,
                         unsigned *pn);

/* --------------------------------------------------------- Transactions. */

/*
** Begin a transaction on this handle.  One transaction is open per engine
** at a time: if another handle has one open, this waits up to 5 s when that
** handle was last used by another thread, then (or at once when it is this
** thread) fails with TKV_BUSY.  Writes of the transaction are visible to the
** handle's own reads, invisible to others until commit, atomic on disk.
*/
int tkv_begin(tkv_db *db);

/*
** Savepoints, numbered from 0 like SQLite's xSavepoint: tkv_savepoint(db,n)
** marks savepoint n (and any lower unmarked ones) at the current point;
** tkv_rollback_to(db,n) undoes every write made after savepoint n (or since
** begin, when n was never marked) and keeps n; tkv_release(db,n) forgets
** savepoints n and above.  Only valid inside a transaction.
*/
int tkv_savepoint(tkv_db *db, int n);
int tkv_rollback_to(tkv_db *db, int n);
int tkv_release(tkv_db *db, int n);

/*
** Phase one of commit: write the commit record, flush and sync as the sync
** mode says.  All fallible I/O of the commit happens here.  After it
** succeeds, only tkv_commit (which then cannot fail) or tkv_rollback may
** follow.  On failure the transaction is still open; what else may follow
** is under "Failures" below.
*/
int tkv_prepare(tkv_db *db);
/* Prepare (if not yet done) and publish the transaction.  After a successful
** tkv_prepare this always returns TKV_OK.  Never merges: when stale bytes
** pass compact_threshold it wakes the store's background merge thread. */
int tkv_commit(tkv_db *db);
/* Undo the transaction completely (keydir and files).  The transaction is
** closed even when this fails. */
int tkv_rollback(tkv_db *db);
/* Nonzero if this handle has an open transaction. */
int tkv_in_transaction(tkv_db *db);

/*
** Read transactions: a view of the store that does not change.  After
** tkv_read_begin (which first catches up with other processes' commits),
** every read through the handle (tkv_get, tkv_lookup, tkv_count, cursors,
** ids) sees the store as it was then, while other handles and processes
** go on committing and merges go on running; tkv_read_end lets go.  Costs
** nothing until something changes; then each change of a key costs a
** record per open read transaction, and files merges replaced stay on
** disk until the read transactions that began before end (keep them
** short, as SQLite's and LMDB's readers should be).  tkv_begin (or a
** write) on the handle turns it into a write transaction if nothing
** changed since it began, else fails with TKV_BUSY and leaves it open.
** TKV_MISUSE when a transaction of either kind is already open.
*/
int tkv_read_begin(tkv_db *db);
/* End the read transaction (TKV_MISUSE if none is open). */
int tkv_read_end(tkv_db *db);
/* Nonzero if this handle has an open read transaction. */
int tkv_in_read(tkv_db *db);

/*
** Failures.  A commit is acknowledged (TKV_OK) only when its records and
** commit record are written, and synced as the sync mode says; nothing
** that fails is acknowledged later by a retry.  What a failure leaves:
**
**   - A write (tkv_put, tkv_write, tkv_delete) that fails leaves nothing of
**     itself; its transaction, if any, goes on.
**   - tkv_commit / tkv_prepare failing before the commit record reached
**     the file (a write error such as ENOSPC, TKV_NOMEM, TKV_TOOBIG): the
**     transaction is not committed and stays open; roll it back, or commit
**     again.
**   - A failed fdatasync (of a commit with TKV_SYNC_FULL, or in tkv_sync):
**     TKV_IO, and the engine becomes read-only until the store is reopened
**     (TKV_BROKEN from every later write, begin, commit, savepoint,
**     compaction and tkv_sync; reads go on).  The kernel may have dropped
**     the pages it could not write and report the next fdatasync as a
**     success, so a retry could acknowledge what is not on disk.  The
**     failed commit's transaction can only be rolled back; like any write
**     whose sync failed, it may or may not be there after a power loss.
**   - TKV_BROKEN from tkv_commit / tkv_prepare: the fdatasync failed and
**     the commit record could not be taken back either.  The record is in
**     the file: the next open finds the transaction committed, unless
**     tkv_rollback or the last tkv_close manages to cut it off (they try).
**   - A rollback or rollback-to whose records cannot be taken out of the
**     file (truncate and the overwrite with zeros both fail): TKV_BROKEN;
**     the writes are undone in memory all the same, and the engine is
**     read-only until reopened.  After a failed tkv_rollback_to the
**     transaction can only be rolled back.
**   - The last tkv_close of an engine that became read-only returns
**     TKV_BROKEN: the failure's effects are settled by the next open, which
**     finds every acknowledged commit.
** No call waits forever because of an earlier failure.
*/

/* ------------------------------------------------------------- Cursors. */

/*
** Cursors walk keys in ascending bytewise (memcmp, shorter first) order,
** seeing what tkv_get would see.  A cursor stays usable while the store is
** written (by this or other handles): it then continues from the first key
** after its current one.  Open cursors do not block compaction.
*/
int tkv_cursor_open(tkv_db *db, tkv_cursor **pcur);
void tkv_cursor_close(tkv_cursor *cur);
/* Position at the first key >= key (key NULL/klen 0: the first key). */
int tkv_cursor_seek(tkv_cursor *cur, const void *key, size_t klen);
/* Position at the key whose id is `id`; TKV_NOTFOUND (cursor invalid) if no
** live key has that id. */
int tkv_cursor_seek_id(tkv_cursor *cur, uint64_t id);
/* Position at a key chosen at random, every key the handle sees equally
** likely, from the random bits `seed` (a different seed each call);
** TKV_NOTFOUND (cursor invalid) if there is no key. */
int tkv_cursor_seek_random(tkv_cursor *cur, uint64_t seed);
/* Move to the next key; the cursor becomes invalid after the last. */
int tkv_cursor_next(tkv_cursor *cur);
/* Nonzero while positioned on a key. */
int tkv_cursor_valid(const tkv_cursor *cur);
/* The current key; the pointer is valid until the cursor moves or closes. */
void tkv_cursor_key(const tkv_cursor *cur, const void **pkey, size_t *pklen);
/* The current key's id. */
uint64_t tkv_cursor_id(const tkv_cursor *cur);
/* The current value's length, from the keydir (no disk read). */
size_t tkv_cursor_value_size(const tkv_cursor *cur);
/* Read the current value (a new buffer, as tkv_get).  TKV_NOTFOUND if the key
** was deleted since the cursor reached it. */
int tkv_cursor_value(tkv_cursor *cur, void **pval, size_t *pvlen);

/* --------------------------------------------------- Maintenance, stats. */

typedef struct tkv_stats {
  uint64_t keys;            /* live keys (committed), expired ones that no
                            ** tombstone removed yet included */
  uint64_t expires;         /* of those, keys with an expiry time */
  uint64_t live_bytes;      /* bytes of the records of live keys */
  uint64_t stale_bytes;     /* bytes of overwritten/deleted records,
                            ** tombstones and commit records */
  uint64_t files;           /* segment files */
  uint64_t disk_bytes;      /* bytes of all files of the store */
  uint64_t checks;          /* tkv_check_db runs since open */
  uint64_t last_check_usec; /* how long the last one took, microseconds */
  uint64_t backups;         /* tkv_backup runs since open (successful) */
  uint64_t last_backup_usec;/* how long the last one took, microseconds */
  uint64_t compactions;     /* compactions run since open */
  uint64_t last_reclaimed;  /* bytes reclaimed by the last compaction */
  uint64_t keydir_bytes;    /* memory held by the keydir */
  uint64_t compact_threshold; /* the automatic compaction threshold */
  int last_compact_rc;      /* status of the last automatic merge */
  /* Merging (background and tkv_compact), since open. */
  uint64_t merges;          /* merges run (same as compactions) */
  uint64_t merge_bytes_copied;    /* record bytes merges wrote */
  uint64_t merge_bytes_reclaimed; /* disk bytes merges freed */
  uint64_t merge_usec;      /* time spent merging, microseconds */
  uint64_t merge_damaged;   /* unreadable records merges skipped */
  char merge_note[160];     /* the last one: file, offset and why */
  double dead_ratio;        /* stale_bytes / all record bytes, now */
  uint64_t bytes_written;   /* bytes the engine wrote to files */
  uint64_t user_bytes;      /* key and value bytes committed */
  double write_amp;         /* bytes_written / user_bytes */
  /* Read transactions (tkv_read_begin) of this process. */
  uint64_t read_txns;       /* open now */
  uint64_t held_bytes;      /* disk bytes of files this process's merges
                            ** replaced that wait for deletion, until the
                            ** read transactions older than the merge end
                            ** and every other process has caught up with
                            ** it (counted in disk_bytes too) */
} tkv_stats;

int tkv_stats_get(tkv_db *db, tkv_stats *st);

/*
** The statistics as one JSON object in a new string (release with
** tkv_free): every field of tkv_stats under its name here, plus
** "last_compact_status" (tkv_strerror of last_compact_rc) and "path"
** (`path`, or the store's directory when NULL).  Every front end (SQL
** tinkv_stats(), the server's /v1/stats) shows this same object.
*/
int tkv_stats_json(tkv_db *db, const char *path, char **pjson);

/*
** Compact now: merge every segment (live records copied into new segments,
** in key order, with hint files; every stale record and tombstone dropped),
** then delete the old segments.  Other handles may read and write
** meanwhile.  *preclaimed (may be NULL) receives the bytes of disk space
** freed.  Fails with TKV_BUSY while any transaction is open.  Automatic
** merging needs no call: a background thread of the process merges the
** deadest segments once stale bytes pass compact_threshold.
*/
int tkv_compact(tkv_db *db, uint64_t *preclaimed);

/* Flush buffered writes and fdatasync the active segment. */
int tkv_sync(tkv_db *db);

/*
** tkv_sync, with the fdatasync done without holding the engine's lock:
** other threads' writes, commits and reads go on while the disk works, so
** that one thread can sync a group of commits (made with TKV_SYNC_NORMAL)
** while another writes the next (the server's group commit).  Every commit
** that returned before this call is durable when it returns TKV_OK.  A
** failed fdatasync makes the engine read-only until reopened, as for
** tkv_sync (TKV_IO, then TKV_BROKEN).  Any thread; the handle may have a
** transaction open on another thread meanwhile.
*/
int tkv_sync_concurrent(tkv_db *db);

/*
** Remove the files of the closed store in `path` that tinkv made (segments,
** hints, lock and identity files), then the directory if it is then empty.
** TKV_LOCKED if the store is open, here or in another process.
*/
int tkv_destroy(const char *path);

/* Nonzero if `path` is a directory holding a tinkv store. */
int tkv_is_store(const char *path);

/*
** What a store's keys and values are, as recorded in its identity file.
** The engine stores bytes and never looks at this; the front ends record
** it so that each can refuse a store it would misread: tinkv-server and
** SQL tables with encoding=raw read raw bytes, the other SQL tables their
** own typed encoding.  A store made by the C API (or before the record
** existed) has none until a front end records one.
*/
#define TKV_ENCODING_UNKNOWN 0    /* not recorded */
#define TKV_ENCODING_RAW     1    /* bytes as the application gave them */
#define TKV_ENCODING_SQL     2    /* the typed encoding of SQL tables */

/* Read the recorded encoding into *penc (TKV_ENCODING_UNKNOWN on error). */
int tkv_encoding(tkv_db *db, int *penc);
/* Record enc (a TKV_ENCODING_* value), durably. */
int tkv_set_encoding(tkv_db *db, int enc);

/* ------------------------------------------ Check, backup, inspection. */

/* Called once per problem a check finds: the file, the byte offset in it
** and what is wrong there. */
typedef void (*tkv_problem_fn)(void *ctx, const char *file, uint64_t offset,
                               const char *what);
/* Called as a long operation goes: `done` of `total` bytes. */
typedef void (*tkv_progress_fn)(void *ctx, uint64_t done, uint64_t total);

typedef struct tkv_check_report {
  uint64_t files;           /* files read */
  uint64_t records;         /* records whose checksum was verified */
  uint64_t hint_entries;    /* hint entries compared with their records */
  uint64_t bytes;           /* bytes read */
  uint64_t problems;        /* problems found (each given to problem_fn) */
  uint64_t usec;            /* duration, microseconds */
} tkv_check_report;

/*
** Check every byte of the closed store in `path`: the identity file, every
** segment header, every record's checksum and framing, every transaction,
** the bytes after the data, and every hint file against its segment.  Each
** problem goes to problem_fn (may be NULL) with its file and offset; the
** check goes on after it.  Changes nothing.  TKV_OK when nothing is wrong,
** TKV_CORRUPT when something is (the message counts the problems and names
** the first), TKV_LOCKED if a process has the store open (check it there
** with tkv_check_db).  Any callback and rep may be NULL.
*/
int tkv_check(const char *path, tkv_problem_fn problem_fn,
              tkv_progress_fn progress_fn, void *ctx, tkv_check_report *rep);
/* The same for the store of an open handle, while it is used: the files as
** of the last commit (the active segment up to it). */
int tkv_check_db(tkv_db *db, tkv_problem_fn problem_fn,
                 tkv_progress_fn progress_fn, void *ctx,
                 tkv_check_report *rep);

/* Flags of tkv_backup. */
#define TKV_BACKUP_INCREMENTAL 0x1  /* `dest` may hold an earlier backup of
                                    ** this store: copy only what it lacks */

typedef struct tkv_backup_report {
  uint64_t files;           /* files the backup is made of */
  uint64_t linked;          /* files hard-linked (same file system) */
  uint64_t copied;          /* files copied */
  uint64_t kept;            /* files already in dest (incremental) */
  uint64_t removed;         /* files of an earlier backup no longer needed */
  uint64_t bytes_copied;    /* bytes copied */
  uint64_t usec;            /* duration, microseconds */
} tkv_backup_report;

/*
** Back up the store of an open handle into directory `dest`, online: the
** copy is the store as of its last commit, taken while other handles and
** threads go on writing.  Sealed segments never change, so they are
** hard-linked when dest is on the same file system, else copied; the
** active segment is copied up to its last commit; hint files come along.
** dest must not exist, or be an empty directory, or (with
** TKV_BACKUP_INCREMENTAL) hold an earlier backup.  The identity file is
** written last and everything is synced, so dest is a store only once the
** backup is whole.  Restore by opening dest (or a copy of it) as a store.
*/
int tkv_backup(tkv_db *db, const char *dest, unsigned flags,
               tkv_progress_fn progress_fn, void *ctx,
               tkv_backup_report *rep);
/* The report of a backup as one JSON object (*pjson, release with
** tkv_free): every field of tkv_backup_report under its name. */
int tkv_backup_json(const tkv_backup_report *rep, char **pjson);

typedef struct tkv_segment_info {
  uint32_t id;              /* file id: NNNNNNNNNN.seg */
  int active;               /* being appended to */
  uint64_t bytes;           /* bytes of records in the file */
  uint64_t live_bytes;      /* bytes of the records live keys point at */
  uint64_t hint_bytes;      /* size of its hint file, 0 if none */
} tkv_segment_info;

/* The segments of the store, in replay order, with how much of each is
** live: *pa (release with tkv_free) gets *pn entries. */
int tkv_segments(tkv_db *db, tkv_segment_info **pa, int *pn);

typedef struct tkv_salvage_report {
  uint64_t records;         /* committed records copied into the new store */
  uint64_t keys;            /* keys in the new store */
  uint64_t damaged;         /* damaged regions skipped */
  uint64_t damaged_bytes;   /* bytes in them */
  uint64_t usec;            /* duration, microseconds */
} tkv_salvage_report;

/*
** Copy every readable committed record of the (possibly damaged, closed)
** store in `src` into a new store at `dest`, in replay order, so that each
** key gets the last value that can still be read.  Every region that
** cannot be read goes to problem_fn with its file and offset.  `src` is
** only read.  TKV_OK even when damage was skipped (see rep->damaged).
*/
int tkv_salvage(const char *src, const char *dest, tkv_problem_fn problem_fn,
                tkv_progress_fn progress_fn, void *ctx,
                tkv_salvage_report *rep);

#ifdef __cplusplus
}
#endif
#endif /* TINKV_H */
