/*
** The public API (tinkv.h): opening and closing stores, the process-wide
** registry that lets two opens of one directory share an engine, the lock
** and identity files, reads, writes, cursors, stats and destroy.
**
** Lifecycle rules kept here:
**   - An engine is in the registry from the end of its recovery until its
**     lock is released; while its last close runs it is marked closing,
**     and an open or destroy of the same directory waits for the close
**     (registry_cv) instead of finding the lock taken by this process.
**   - The lock is flock on LOCK, which must be a regular file (never
**     followed through a symbolic link).  A LOCK file may be unlinked by
**     its holder (tkv_destroy), so after locking, an opener checks that
**     the file it locked is still the one named LOCK, and that the store is
**     still there (TINKV), before it reads or writes anything.
**   - A child process after fork() starts with an empty registry: an open
**     there takes the lock like any other process (and gets TKV_LOCKED
**     while the parent has the store open).  The parent's handles are not
**     usable in the child (TKV_MISUSE), and the child's copies of the
**     parent's lock descriptors are closed, so that the lock goes when the
**     parent closes the store.
*/
#include "engine.h"
#include "readtxn.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDENTITY_FILE TKV_IDENTITY_NAME
#define LOCK_FILE     TKV_LOCK_NAME

/* Shared holds of an engine's rw by this thread (engine.h). */
_Thread_local int engine_rd_depth;

/* Engines open in this process, by canonical path. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t registry_cv = PTHREAD_COND_INITIALIZER; /* a close
                                                   ** finished */
static tkv_engine *registry;

/* Bumped in the child after fork(): engines of an older generation are the
** parent's.  Written only in the child's fork handler, with one thread. */
static unsigned fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* The registry must not be in the middle of a change when the process
** forks: hold its lock across the fork. */
static void atfork_prepare(void){
  pthread_mutex_lock(&registry_mu);
}

static void atfork_parent(void){
  pthread_mutex_unlock(&registry_mu);
}

/* In the child: forget the parent's engines (their memory stays: another
** thread of the parent may have been using them, so they cannot be freed
** safely), and close the child's copies of their lock descriptors, which
** would otherwise keep the parent's lock alive after the parent closes. */
static void atfork_child(void){
  for(tkv_engine *e=registry; e; e=e->next){
    if( e->lock_fd>=0 ) close(e->lock_fd);
  }
  registry = NULL;
  fork_gen++;
  pthread_cond_init(&registry_cv, NULL);
  pthread_mutex_unlock(&registry_mu);
}

static void atfork_register(void){
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Nonzero if db was opened in this process (not inherited through a
** fork).  Checked before anything of db is locked: a mutex of the
** parent's copy may have been held by a thread that is not in the child. */
static int handle_usable(const tkv_db *db){
  return db->e->gen==fork_gen;
}

static int forked_err(void){
  return tkv_err(TKV_MISUSE, "this handle was opened by the parent process "
                 "before a fork: open the store again in this process");
}

#define CHECK_HANDLE(db) do{ \
    if( !handle_usable(db) ) return forked_err(); \
  }while(0)

void tkv_options_init(tkv_options *opts){
  memset(opts, 0, sizeof *opts);
  opts->sync = TKV_SYNC_FULL;
  opts->max_file_size = TKV_DEFAULT_MAX_FILE_SIZE;
  opts->compact_threshold = TKV_DEFAULT_COMPACT_THRESHOLD;
  opts->busy_timeout = TKV_DEFAULT_BUSY_TIMEOUT;
}

const char *tkv_version(void){
#define STR2(x) #x
#define STR(x) STR2(x)
  return TINKV_VERSION " (format " STR(TKV_FORMAT_VERSION) ")";
}

void tkv_free(void *p){
  tkv_mem_free(p);
}

/* Check and complete the options. */
static int check_options(const tkv_options *in, tkv_options *out){
  if( in ) *out = *in;
  else tkv_options_init(out);
  if( out->sync!=TKV_SYNC_FULL && out->sync!=TKV_SYNC_NORMAL
   && out->sync!=TKV_SYNC_OFF ){
    return tkv_err(TKV_INVALID, "bad sync mode %d (full, normal or off)",
                   (int)out->sync);
  }
  if( out->max_file_size==0 ) out->max_file_size = TKV_DEFAULT_MAX_FILE_SIZE;
  if( out->max_file_size<TKV_FILE_SIZE_MIN
   || out->max_file_size>TKV_FILE_SIZE_MAX ){
    return tkv_err(TKV_INVALID, "max_file_size %llu out of range "
                   "(%u bytes to 2 GiB)",
                   (unsigned long long)out->max_file_size, TKV_FILE_SIZE_MIN);
  }
  if( out->compact_threshold==0 ){
    out->compact_threshold = TKV_DEFAULT_COMPACT_THRESHOLD;
  }
  if( out->busy_timeout==0 ) out->busy_timeout = TKV_DEFAULT_BUSY_TIMEOUT;
  if( out->readonly ) out->create = 0;
  return TKV_OK;
}

/* path/name into out. */
static int join(char *out, size_t n, const char *dir, const char *name){
  int len = snprintf(out, n, "%s/%s", dir, name);
  if( len<0 || (size_t)len>=n ) return tkv_err(TKV_INVALID, "path too long");
  return TKV_OK;
}

/*
** Nonzero if the directory has no entries besides . and .. and, with
** leftovers_ok, the files a creation of a store makes before its identity
** file is in place (LOCK, TINKV.tmp): a process killed while creating the
** store leaves them, and the directory must still be creatable then.
*/
static int dir_is_empty(const char *dir, int leftovers_ok){
  DIR *d = opendir(dir);
  struct dirent *de;
  int empty = 1;
  if( !d ) return 0;
  while( (de = readdir(d))!=NULL ){
    if( !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ) continue;
    if( leftovers_ok && (!strcmp(de->d_name, LOCK_FILE)
                         || !strcmp(de->d_name, IDENTITY_FILE ".tmp")) ){
      continue;
    }
    empty = 0;
    break;
  }
  closedir(d);
  return empty;
}

/* Check the identity file: TKV_OK, TKV_NOTSTORE if absent, else an error
** naming the file.  *pflags (if not NULL) receives its flags field. */
int identity_read(const char *dir, uint32_t *pflags){
  char path[PATH_MAX + 16];
  uint8_t buf[TKV_FILE_HDR];
  tkv_file_hdr h;
  const char *why;
  size_t got = 0;
  int fd, rc = join(path, sizeof path, dir, IDENTITY_FILE);
  if( rc ) return rc;
  if( access(path, F_OK) ){
    return tkv_err(TKV_NOTSTORE, "%s holds no tinkv store", dir);
  }
  rc = tkv_io_open_regular(path, O_RDONLY, &fd);
  if( rc ) return rc;
  rc = tkv_io_pread(fd, path, buf, sizeof buf, 0, &got);
  tkv_io_close(fd);
  if( rc ) return rc;
  if( got<sizeof buf ){
    return tkv_err(TKV_CORRUPT, "bad identity file %s at offset %zu: too short",
                   path, got);
  }
  if( tkv_file_hdr_decode(buf, TKV_MAGIC_ID, &h, &why) ){
    return tkv_err(TKV_CORRUPT, "bad identity file %s at offset 0: %s",
                   path, why);
  }
  if( pflags ) *pflags = h.flags;
  return TKV_OK;
}

static int identity_check(const char *dir){
  return identity_read(dir, NULL);
}

/* Write the identity file with the given flags (temporary name, sync,
** rename, directory sync): at creation, and when the recorded key/value
** encoding changes (tkv_set_encoding). */
static int identity_write(const char *dir, uint32_t flags){
  char path[PATH_MAX + 16], tmp[PATH_MAX + 16];
  uint8_t buf[TKV_FILE_HDR];
  tkv_file_hdr h;
  int fd, rc = join(path, sizeof path, dir, IDENTITY_FILE);
  if( !rc ) rc = join(tmp, sizeof tmp, dir, IDENTITY_FILE ".tmp");
  if( rc ) return rc;
  tkv_file_hdr_init(&h, TKV_MAGIC_ID, 0, 0, flags);
  tkv_file_hdr_encode(&h, buf);
  rc = tkv_io_create(tmp, O_WRONLY, &fd);
  if( rc ) return rc;
  rc = tkv_io_pwrite(fd, tmp, buf, sizeof buf, 0);
  if( !rc ) rc = tkv_io_sync(fd, tmp);
  tkv_io_close(fd);
  if( !rc ) rc = tkv_io_rename(tmp, path);
  if( !rc ) rc = tkv_io_sync_dir(dir);
  if( rc ) tkv_io_unlink(tmp);
  return rc;
}

/* The error for a LOCK that is not a regular file. */
static int bad_lock_file(const char *path, const struct stat *st){
  return tkv_err(TKV_INVALID, "%s is %s, not a lock file: remove it",
                 path, S_ISLNK(st->st_mode) ? "a symbolic link"
                                            : "not a regular file");
}

/*
** Open and lock the lock file; *pfd receives it, *pcreated whether this
** call created it.  An open engine holds it shared (other processes may
** open the store too: share.c); tkv_destroy exclusively (nobody has the
** store open).  LOCK is never followed through a symbolic link and
** must be a regular file (its start is the area share.c maps).  Whoever holds the
** lock may unlink LOCK (tkv_destroy does): so after locking, the file must
** still be the one named LOCK, else the lock is on a dead file and we
** start again.
*/
static int take_lock(const char *dir, int exclusive, int *pfd, int *pcreated){
  char path[PATH_MAX + 16];
  int fd = -1, tries, rc = join(path, sizeof path, dir, LOCK_FILE);
  if( rc ) return rc;
  for(tries=0; ; tries++){
    struct stat st, now;
    int create = 0;
    if( tries==100 ){
      return tkv_err(TKV_BUSY, "%s keeps being replaced", path);
    }
    if( lstat(path, &st) ){
      if( errno!=ENOENT ) return tkv_err_sys(errno, "cannot open", path);
      create = 1;
    }else if( !S_ISREG(st.st_mode) ){
      return bad_lock_file(path, &st);
    }
    rc = tkv_io_open(path, O_RDWR|O_NOFOLLOW|O_NONBLOCK
                           |(create ? O_CREAT|O_EXCL : 0), 0644, &fd);
    if( rc ){
      /* Gone between the lstat and the open (a destroy), or made by
      ** another process opening the new store at the same moment: look
      ** again. */
      if( !create && lstat(path, &st) && errno==ENOENT ) continue;
      if( create && !lstat(path, &st) && S_ISREG(st.st_mode) ) continue;
      if( !lstat(path, &st) && !S_ISREG(st.st_mode) ){
        return bad_lock_file(path, &st);
      }
      return rc;
    }
    if( fstat(fd, &st) ){
      rc = tkv_err_sys(errno, "cannot stat", path);
    }else if( !S_ISREG(st.st_mode) ){
      rc = bad_lock_file(path, &st);
    }else{
      rc = exclusive ? tkv_io_lock(fd, path) : tkv_io_lock_shared(fd, path);
    }
    if( rc ){ tkv_io_close(fd); return rc; }
    if( lstat(path, &now)==0 && now.st_dev==st.st_dev
     && now.st_ino==st.st_ino ){
      *pcreated = create;
      break;
    }
    tkv_io_close(fd);     /* locked a file that was unlinked meanwhile */
  }
  *pfd = fd;
  return TKV_OK;
}

/* Free what an engine holds except its lock, its directory name and
** itself (a closing engine stays in the registry until its lock goes). */
static void engine_release(tkv_engine *e){
  rtx_free_all(e);
  tkv_mem_free(e->limbo);
  e->limbo = NULL;
  e->nlimbo = e->limbo_cap = 0;
  for(int i=0; i<e->nseg; i++) seg_free(e->segs[i]);
  tkv_mem_free(e->segs);
  e->segs = NULL;
  e->nseg = 0;
  tkv_mem_free(e->buf);
  e->buf = NULL;
  exp_free(e);
  if( e->index ) kd_index_free(e->index);
  if( e->arena ) kd_arena_free(e->arena);
  e->index = NULL;
  e->arena = NULL;
  pthread_mutex_destroy(&e->mu);
  pthread_mutex_destroy(&e->fdmu);
  pthread_cond_destroy(&e->idle);
  pthread_rwlock_destroy(&e->rw);
}

static void engine_free(tkv_engine *e){
  if( !e ) return;
  engine_release(e);
  share_detach(e);
  tkv_io_close(e->lock_fd);
  tkv_mem_free(e->retired);
  tkv_mem_free(e->dir);
  tkv_mem_free(e);
}

/*
** Check that path is a store, or (with create) that it can become one:
** then *pfresh is set and the caller creates it under the lock.
*/
static int prepare_dir(const char *path, int create, char *canon, int *pfresh){
  struct stat st;
  int rc, made = 0;
  if( stat(path, &st) ){
    if( errno!=ENOENT ) return tkv_err_sys(errno, "cannot open store", path);
    if( !create ){
      return tkv_err(TKV_NOTSTORE, "no tinkv store at %s: no such directory",
                     path);
    }
    rc = tkv_io_mkdir(path);
    if( rc && !(stat(path, &st)==0 && S_ISDIR(st.st_mode)) ) return rc;
    made = rc==TKV_OK;  /* else another process made it just now */
  }else if( !S_ISDIR(st.st_mode) ){
    return tkv_err(TKV_INVALID, "%s is not a directory", path);
  }
  if( !realpath(path, canon) ) return tkv_err_sys(errno, "cannot resolve", path);
  if( access(canon, R_OK|W_OK|X_OK) ){
    return tkv_err_sys(errno, "cannot use store directory", canon);
  }
  rc = identity_check(canon);
  if( rc==TKV_NOTSTORE && create && (made || dir_is_empty(canon, 1)) ){
    *pfresh = 1;
    return TKV_OK;
  }
  if( rc==TKV_NOTSTORE && create ){
    /* Another process creating the store at the same moment may have
    ** written its identity and a first segment since we looked: what
    ** decides is the identity file, after the directory was seen. */
    rc = identity_check(canon);
    if( rc!=TKV_NOTSTORE ) return rc;
    return tkv_err(TKV_NOTSTORE, "%s is not empty and holds no tinkv store",
                   canon);
  }
  return rc;
}

/*
** Initialize the engine's rw lock as writer-preferring.  glibc's default
** prefers readers: readers that keep overlapping (each holds rw across a
** value's copy and CRC) then keep a writer out forever, and the writer
** waits holding mu, so every other write waits too.  With writer
** preference a waiting writer stops new readers; when it is done the
** readers that queued behind it go first (glibc hands a write-unlocked lock
** to waiting readers unless another writer is registered, and writers
** come one at a time, since they hold mu).
*/
static void rw_init(pthread_rwlock_t *rw){
#ifdef __GLIBC__
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(rw, &attr);
  pthread_rwlockattr_destroy(&attr);
#else
  pthread_rwlock_init(rw, NULL);
#endif
}

/* Build and recover a new engine for canonical path canon. */
static int engine_open(const char *canon, const tkv_options *opts, int fresh,
                       tkv_engine **pe){
  tkv_engine *e = tkv_mem_calloc(1, sizeof *e);
  int rc, created = 0, alone = 0;
  if( !e ) return tkv_err_nomem();
  e->lock_fd = -1;
  e->gen = fork_gen;
  e->opts = *opts;
  e->next_id = 1;
  pthread_mutex_init(&e->mu, NULL);
  pthread_mutex_init(&e->fdmu, NULL);
  pthread_cond_init(&e->idle, NULL);
  rw_init(&e->rw);
  e->opening = 1;
  e->dir = tkv_mem_dup(canon, strlen(canon));
  e->arena = kd_arena_new();
  e->index = kd_index_new();
  rc = (e->dir && e->arena && e->index) ? TKV_OK : tkv_err_nomem();
  if( !rc ) rc = take_lock(canon, 0, &e->lock_fd, &created);
  if( !rc && opts->exclusive && flock(e->lock_fd, LOCK_EX|LOCK_NB) ){
    rc = tkv_err(TKV_LOCKED, "store %s is open in another process", canon);
  }
  if( !rc ) rc = share_attach(e, opts->busy_timeout, &alone);
  if( !rc && alone ){
    /* Under the lock: the store may have been made by another process
    ** (fresh), or destroyed since prepare_dir looked (not fresh). */
    rc = identity_check(canon);
    if( rc==TKV_NOTSTORE && fresh ){
      rc = identity_write(canon, 0);
    }else if( rc==TKV_NOTSTORE ){
      rc = tkv_err(TKV_NOTSTORE, "%s holds no tinkv store any more (it was "
                   "destroyed while this open started)", canon);
      if( created ){
        /* Take back the LOCK this open made (safe while holding it:
        ** every locker checks that its LOCK is still linked). */
        char path[PATH_MAX + 16];
        if( !join(path, sizeof path, canon, LOCK_FILE) ) unlink(path);
      }
    }
  }
  if( !rc && !alone ){
    /* Others have it open: take the store as they published it, and
    ** change no file (its writer may be appending right now).  The files
    ** are listed before the position is read: the merge outputs among
    ** them were written by merges that knew no more of the log than that
    ** position (recover_apply_outputs says why that matters); log segments
    ** made in between are picked up after it. */
    uint32_t id, *ids = NULL;
    uint64_t end;
    int n = 0, how = RECOVER_NOWRITE|RECOVER_UPTO;
    rc = identity_check(canon);
    if( !rc ) rc = share_load_begin(e);
    if( !rc ) rc = recover_list(e, how, &ids, &n);
    share_position(e, &id, &end);
    if( !rc ) rc = recover_list_more(e, &ids, &n, id);
    if( !rc ) rc = recover_store(e, how, ids, n, id, end);
    else tkv_mem_free(ids);
    share_load_end(e);
  }else if( !rc ){
    uint32_t *ids = NULL;
    int n = 0, how = opts->readonly ? RECOVER_NOWRITE : 0;
    rc = recover_list(e, how, &ids, &n);
    if( !rc ) rc = recover_store(e, how, ids, n, 0, 0);
  }
  if( !rc ) rc = share_opened(e, alone, !opts->readonly);
  if( rc ){
    engine_free(e);
    return rc;
  }
  e->opening = 0;     /* published to other threads by registry_mu */
  *pe = e;
  return TKV_OK;
}

/* The engine of canonical path canon in the registry, or NULL.  Caller
** holds registry_mu. */
static tkv_engine *registry_find(const char *canon){
  tkv_engine *e;
  for(e=registry; e && strcmp(e->dir, canon); e=e->next){}
  return e;
}

int tkv_open(const char *path, const tkv_options *opts, tkv_db **pdb){
  char canon[PATH_MAX];
  tkv_options o;
  tkv_engine *e;
  tkv_db *db;
  int rc, fresh = 0;
  if( !pdb ) return tkv_err(TKV_MISUSE, "tkv_open: NULL handle pointer");
  *pdb = NULL;
  if( !path || !*path ) return tkv_err(TKV_INVALID, "empty store path");
  rc = check_options(opts, &o);
  if( rc ) return rc;
  pthread_once(&atfork_once, atfork_register);
  db = tkv_mem_calloc(1, sizeof *db);
  if( !db ) return tkv_err_nomem();
  pthread_mutex_init(&db->mu, NULL);
  pthread_mutex_lock(&registry_mu);
  for(;;){
    rc = prepare_dir(path, o.create, canon, &fresh);
    e = rc ? NULL : registry_find(canon);
    if( !e || !e->closing ) break;
    /* Its last handle is closing: wait until the lock is free. */
    pthread_cond_wait(&registry_cv, &registry_mu);
  }
  if( !rc && !e ){
    rc = engine_open(canon, &o, fresh, &e);
    if( !rc ){
      e->next = registry;
      registry = e;
    }
  }
  if( !rc ) e->refs++;
  pthread_mutex_unlock(&registry_mu);
  if( rc ){
    pthread_mutex_destroy(&db->mu);
    tkv_mem_free(db);
    return rc;
  }
  db->e = e;
  db->readonly = o.readonly;
  db->busy_ms = o.busy_timeout;
  *pdb = db;
  return TKV_OK;
}

void tkv_busy_timeout(tkv_db *db, int ms){
  if( !db || !handle_usable(db) ) return;
  pthread_mutex_lock(&db->mu);
  db->busy_ms = ms>0 ? ms : -1;
  pthread_mutex_unlock(&db->mu);
}

/*
** Flush, sync and release an engine no handle uses any more (its lock and
** memory go in tkv_close).  A broken engine
** (engine.h) may have bytes past the end of its active segment that belong
** to no commit (an undo that failed): they are cut off now if the file
** system lets us, and the result is TKV_BROKEN all the same, since the
** caller was told of a failure whose effects only the next open settles.
*/
static int engine_close(tkv_engine *e){
  tkv_segment *s;
  int rc;
  merge_stop(e);
  engine_lock(e);
  s = e->active;
  if( e->broken ){
    /* Another process may have appended past s->end since: cut only when
    ** this one is alone and wrote last (else the next writer cuts). */
    int alone = share_alone_begin(e);
    rc = seg_flush(e);
    if( !rc && s && alone ){
      rc = tkv_io_truncate(s->fd, s->path, s->end);
      if( !rc ) s->alloc = s->end;
    }
    if( !rc && s ) rc = tkv_io_sync(s->fd, s->path);
    if( alone ) share_alone_end(e);
  }else if( e->wrote || !e->sh ){
    rc = share_sync_all(e, 1);  /* every segment written, the directory */
  }else{
    rc = TKV_OK;                /* wrote nothing: nothing to sync */
  }
  if( e->broken ){
    char cause[512];
    snprintf(cause, sizeof cause, "%s", rc ? tkv_errmsg() : "");
    rc = tkv_err(TKV_BROKEN, "%s had a failure that only a reopen can "
                 "settle%s%s", e->dir, rc ? "; closing: " : "", cause);
  }
  engine_unlock(e);
  engine_release(e);
  return rc;
}

/*
** Close a handle; the last one closes the engine.  The engine stays in the
** registry, marked closing, until its lock is released: an open of the
** same store meanwhile waits for that instead of failing with TKV_LOCKED.
*/
int tkv_close(tkv_db *db){
  tkv_engine *e, **pp;
  int rc = TKV_OK, last;
  if( !db ) return TKV_OK;
  if( !handle_usable(db) ){
    /* The parent's handle, inherited through fork: its engine belongs to
    ** the parent; only the child's copy of the handle goes. */
    tkv_mem_free(db);
    return TKV_OK;
  }
  e = db->e;
  pthread_mutex_lock(&db->mu);
  if( db->txn ) rc = txn_rollback(db);
  if( db->rtx ){
    engine_lock(e);
    rtx_free(rtx_end(db));
    engine_unlock(e);
  }
  pthread_mutex_unlock(&db->mu);
  txn_free(db->spare);
  pthread_mutex_destroy(&db->mu);
  tkv_mem_free(db);
  pthread_mutex_lock(&registry_mu);
  last = --e->refs==0;
  if( last ) e->closing = 1;
  pthread_mutex_unlock(&registry_mu);
  if( !last ) return rc;
  {
    int rc2 = engine_close(e);
    pthread_mutex_lock(&registry_mu);
    for(pp=&registry; *pp && *pp!=e; pp=&(*pp)->next){}
    if( *pp ) *pp = e->next;
    share_detach(e);
    tkv_io_close(e->lock_fd);       /* the locks go here */
    pthread_cond_broadcast(&registry_cv);
    pthread_mutex_unlock(&registry_mu);
    tkv_mem_free(e->retired);
    tkv_mem_free(e->dir);
    tkv_mem_free(e);
    return rc ? rc : rc2;
  }
}

/* ------------------------------------------------------------- Reads. */

static int check_key(const void *key, size_t klen){
  if( klen && !key ) return tkv_err(TKV_INVALID, "NULL key");
  if( klen>TKV_KEY_MAX ){
    return tkv_err(TKV_TOOBIG, "key of %zu bytes is over the limit of %u",
                   klen, TKV_KEY_MAX);
  }
  return TKV_OK;
}

/*
** A reader found the record of `size` bytes at loc past what was handed
** to the OS: write the active segment's buffer out so that it can read it.
** TKV_OK means "look again".  The record may be in no buffer at all: that
** is an index pointing past the end of its segment (an undo that failed),
** and retrying would spin forever, so it is an error.
*/
static int flush_for_reader(tkv_engine *e, tkv_loc loc, uint64_t size){
  tkv_segment *s;
  int rc = TKV_OK;
  engine_lock(e);
  s = seg_find(e, loc.file);
  if( !s || loc.off + size <= atomic_load(&s->flushed) ){
    /* Gone (a compaction moved it) or flushed meanwhile: look again. */
  }else if( s==e->active && loc.off + size <= e->buf_off + e->buf_len ){
    rc = seg_flush(e);
  }else{
    rc = tkv_err(TKV_BROKEN, "the index points past the end of %s (offset "
                 "%u): an earlier failure was not undone; reopen the store",
                 s->path, loc.off);
  }
  engine_unlock(e);
  return rc;
}

/*
** Before a read, a cursor or a count: catch up with what other processes
** committed since this process last looked (share.c).  Costs one atomic
** load when nothing changed.
*/
static int follow_others(tkv_engine *e){
  int rc;
  if( !share_stale(e) ) return TKV_OK;
  engine_lock(e);
  rc = share_follow(e);
  engine_unlock(e);
  return rc;
}

/*
** Before a read of db: catch up with other processes, or, in a read
** transaction (whose view is fixed), check that it still has its view.
** Caller holds db->mu.
*/
static int read_ready(tkv_db *db){
  if( db->rtx ){
    int rc;
    engine_rdlock(db->e);
    rc = rtx_status(db->rtx);
    engine_rdunlock(db->e);
    return rc;
  }
  return follow_others(db->e);
}

/* The entry of key that db's view holds (maybe one db does not see:
** txn_visible says).  Caller holds rw or mu. */
static kd_entry *view_find(tkv_db *db, const void *key, size_t klen){
  if( db->rtx ) return rtx_find(db->e, db->rtx, key, klen);
  return kd_index_find(db->e->index, key, klen);
}

/*
** Find key as db sees it (an expired key is absent) and, when pval is
** given, read its value; its expiry time (0: none) goes to *pexpire when
** that is not NULL.  Caller holds db->mu.
*/
static int read_key_x(tkv_db *db, const void *key, size_t klen,
                      uint64_t *pid, size_t *pvlen, void **pval,
                      uint64_t *pexpire){
  tkv_engine *e = db->e;
  uint64_t now;
  int frc = read_ready(db);
  if( frc ) return frc;
  now = tkv_clock_ms();
  for(;;){
    kd_entry *en;
    tkv_loc loc;
    int rc = TKV_OK;
    engine_rdlock(e);
    en = view_find(db, key, klen);
    if( !en || !txn_live(db, en, &loc, now) ){
      engine_rdunlock(e);
      return TKV_NOTFOUND;
    }
    if( pid ) *pid = txn_id(db, en);
    if( pvlen ) *pvlen = tkv_vlen(loc.vlen);
    if( pexpire ) *pexpire = txn_expire_of(db, en, loc);
    if( pval ) rc = seg_read(e, loc, key, klen, pval);
    engine_rdunlock(e);
    if( rc!=-2 ) return rc;
    rc = flush_for_reader(e, loc, tkv_rec_size((uint32_t)klen, loc.vlen));
    if( rc ) return rc;
  }
}

/* read_key_x without the expiry time. */
static int read_key(tkv_db *db, const void *key, size_t klen, uint64_t *pid,
                    size_t *pvlen, void **pval){
  return read_key_x(db, key, klen, pid, pvlen, pval, NULL);
}

int tkv_get(tkv_db *db, const void *key, size_t klen, void **pval,
            size_t *pvlen){
  size_t vlen = 0;
  int rc = check_key(key, klen);
  if( rc ) return rc;
  if( !pval ) return tkv_err(TKV_MISUSE, "tkv_get: NULL value pointer");
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  rc = read_key(db, key, klen, NULL, &vlen, pval);
  pthread_mutex_unlock(&db->mu);
  if( pvlen ) *pvlen = rc ? 0 : vlen;
  return rc;
}

int tkv_lookup(tkv_db *db, const void *key, size_t klen, uint64_t *pid,
               size_t *pvlen){
  int rc = check_key(key, klen);
  if( rc ) return rc;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  rc = read_key(db, key, klen, pid, pvlen, NULL);
  pthread_mutex_unlock(&db->mu);
  return rc;
}

/*
** A hint ahead of several reads (a pipeline of requests, a multi-key read):
** the keys are looked up together (kd_index_find_many), so their cache
** misses overlap, and their records are asked for, so that the reads which
** follow find the keydir path, the entries and the record heads in the CPU
** cache instead of waiting for each in turn.  Only the committed keydir is
** consulted; the reads themselves still look everything up as usual, so
** nothing here can change what they return.
*/
#define PREFETCH_GROUP 64

void tkv_prefetch(tkv_db *db, size_t n, const void *const *keys,
                  const size_t *klens){
  tkv_engine *e;
  if( !db || !keys || !klens || !handle_usable(db) ) return;
  e = db->e;
  engine_rdlock(e);
  for(size_t i=0; i<n; i+=PREFETCH_GROUP){
    const void *k[PREFETCH_GROUP];
    size_t kl[PREFETCH_GROUP], m = 0;
    kd_entry *found[PREFETCH_GROUP];
    for(size_t j=i; j<n && j<i+PREFETCH_GROUP; j++){
      if( keys[j]==NULL && klens[j]>0 ) continue;     /* not a key */
      k[m] = keys[j];
      kl[m++] = klens[j];
    }
    kd_index_find_many(e->index, m, k, kl, found);
    for(size_t j=0; j<m; j++){
      if( found[j] ) seg_prefetch(e, kd_entry_loc(found[j]));
    }
  }
  engine_rdunlock(e);
}

uint64_t tkv_count(tkv_db *db){
  uint64_t n;
  if( !handle_usable(db) ) return 0;
  pthread_mutex_lock(&db->mu);
  engine_lock(db->e);
  if( db->rtx ){
    n = rtx_count(db->e, db->rtx, tkv_clock_ms());
  }else{
    (void)share_follow(db->e);   /* on failure: the count as of before */
    n = db->e->keys + (uint64_t)txn_count_delta(db);
    n -= txn_expired_count(db, tkv_clock_ms());
  }
  engine_unlock(db->e);
  pthread_mutex_unlock(&db->mu);
  return n;
}

uint64_t tkv_count_stored(tkv_db *db){
  uint64_t n;
  if( !handle_usable(db) ) return 0;
  pthread_mutex_lock(&db->mu);
  engine_lock(db->e);
  if( db->rtx ){
    n = rtx_count(db->e, db->rtx, 0);
  }else{
    (void)share_follow(db->e);   /* on failure: the count as of before */
    n = db->e->keys + (uint64_t)txn_count_delta(db);
  }
  engine_unlock(db->e);
  pthread_mutex_unlock(&db->mu);
  return n;
}

/* ------------------------------------------------------------ Writes. */

/* One write: inside the open transaction, or as its own transaction. */
static int write_one(tkv_db *db, int del, const void *key, size_t klen,
                     const void *val, size_t vlen, unsigned flags,
                     uint64_t expire, uint64_t *pid){
  uint64_t id = 1;
  int rc = check_key(key, klen);
  if( rc ) return rc;
  if( vlen>TKV_VALUE_MAX ){
    return tkv_err(TKV_TOOBIG, "value of %zu bytes is over the limit of %u",
                   vlen, TKV_VALUE_MAX);
  }
  if( vlen && !val ) return tkv_err(TKV_INVALID, "NULL value");
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  if( !pid ) pid = &id;
  if( db->txn ){
    rc = txn_write(db, del, key, klen, val, vlen, flags, expire, pid);
  }else{
    rc = txn_begin(db, 1);
    if( !rc ){
      rc = txn_write(db, del, key, klen, val, vlen, flags, expire, pid);
      if( !rc ) rc = txn_prepare(db);
      if( rc ){
        /* The record commits itself: if it cannot be taken back, the next
        ** open finds it, and the caller must hear that. */
        char cause[512];
        snprintf(cause, sizeof cause, "%s", tkv_errmsg());
        if( txn_rollback(db) && rc!=TKV_BROKEN ){
          rc = tkv_err(TKV_BROKEN, "write failed (%s); then %s", cause,
                       tkv_errmsg());
        }else{
          tkv_err_set("%s", cause);
        }
      }else{
        txn_finish(db);
      }
    }
  }
  pthread_mutex_unlock(&db->mu);
  /* A delete of an expired key wrote its tombstone; it was not there. */
  if( !rc && del && *pid==0 ) rc = TKV_NOTFOUND;
  return rc;
}

int tkv_write(tkv_db *db, const void *key, size_t klen, const void *val,
              size_t vlen, unsigned flags, uint64_t *pid){
  return write_one(db, 0, key, klen, val, vlen, flags, 0, pid);
}

int tkv_put(tkv_db *db, const void *key, size_t klen, const void *val,
            size_t vlen){
  return write_one(db, 0, key, klen, val, vlen, 0, 0, NULL);
}

int tkv_delete(tkv_db *db, const void *key, size_t klen){
  return write_one(db, 1, key, klen, NULL, 0, 0, 0, NULL);
}

/* ------------------------------------------------------------ Expiry. */

int tkv_write_expire(tkv_db *db, const void *key, size_t klen,
                     const void *val, size_t vlen, unsigned flags,
                     uint64_t expire_ms, uint64_t *pid){
  return write_one(db, 0, key, klen, val, vlen, flags, expire_ms, pid);
}

int tkv_expire_get(tkv_db *db, const void *key, size_t klen,
                   uint64_t *pexpire_ms){
  uint64_t at = 0;
  int rc = check_key(key, klen);
  if( rc ) return rc;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  rc = read_key_x(db, key, klen, NULL, NULL, NULL, &at);
  pthread_mutex_unlock(&db->mu);
  if( pexpire_ms ) *pexpire_ms = rc ? 0 : at;
  return rc;
}

/*
** Rewrite key's record with a new expiry time.  Holding the writer slot
** (its own transaction, or the handle's open one) between the read and
** the write, nobody can change the key in between.
*/
int tkv_expire_set(tkv_db *db, const void *key, size_t klen,
                   uint64_t expire_ms){
  void *val = NULL;
  size_t vlen = 0;
  int own, rc = check_key(key, klen);
  if( rc ) return rc;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  own = db->txn==NULL;
  if( own ) rc = txn_begin(db, 1);
  if( !rc ) rc = read_key(db, key, klen, NULL, &vlen, &val);
  if( !rc ) rc = txn_write(db, 0, key, klen, val, vlen, 0, expire_ms, NULL);
  tkv_mem_free(val);
  if( own && !rc ) rc = txn_prepare(db);
  if( own && !rc ){
    txn_finish(db);
  }else if( own && db->txn ){
    char cause[512];
    snprintf(cause, sizeof cause, "%s", tkv_errmsg());
    if( txn_rollback(db) && rc!=TKV_BROKEN ){
      rc = tkv_err(TKV_BROKEN, "expiry change failed (%s); then %s", cause,
                   tkv_errmsg());
    }else{
      tkv_err_set("%s", cause);
    }
  }
  pthread_mutex_unlock(&db->mu);
  return rc;
}

/* Keys whose expiry time passed, copied out of the keydir. */
typedef struct expired_keys {
  tkv_db *db;
  uint64_t now;
  unsigned max, n;
  uint8_t **key;
  size_t *klen;
} expired_keys;

static int collect_expired(void *ctx, kd_entry *en, uint64_t at){
  expired_keys *x = ctx;
  const uint8_t *key;
  size_t klen;
  (void)at;
  if( kd_entry_flags(en) & ENTRY_NEW ) return 0;    /* not committed */
  key = kd_entry_key(en, &klen);
  x->key[x->n] = tkv_mem_alloc(klen ? klen : 1);
  if( !x->key[x->n] ) return 1;
  memcpy(x->key[x->n], key, klen);
  x->klen[x->n] = klen;
  return ++x->n>=x->max;
}

int tkv_expire_step(tkv_db *db, unsigned max, unsigned *pn){
  return tkv_expire_step_keys(db, max, NULL, NULL, pn);
}

int tkv_expire_step_keys(tkv_db *db, unsigned max, tkv_key_fn fn, void *ctx,
                         unsigned *pn){
  tkv_engine *e = db->e;
  expired_keys x;
  unsigned done = 0;
  int rc = TKV_OK;
  if( pn ) *pn = 0;
  CHECK_HANDLE(db);
  if( max==0 ) return TKV_OK;
  memset(&x, 0, sizeof x);
  x.db = db;
  x.max = max;
  x.now = tkv_clock_ms();
  x.key = tkv_mem_calloc(max, sizeof *x.key);
  x.klen = tkv_mem_calloc(max, sizeof *x.klen);
  pthread_mutex_lock(&db->mu);
  if( !x.key || !x.klen ){
    rc = tkv_err_nomem();
  }else if( db->txn ){
    rc = tkv_err(TKV_BUSY, "tkv_expire_step: a transaction is open on this "
                 "handle");
  }else{
    engine_rdlock(e);
    exp_walk_expired(e, x.now - 1, collect_expired, &x);
    engine_rdunlock(e);
  }
  if( !rc && x.n ){
    rc = txn_begin(db, 0);
    for(unsigned i=0; !rc && i<x.n; i++){
      rc = txn_write(db, 1, x.key[i], x.klen[i], NULL, 0, TXN_IFEXPIRED, 0,
                     NULL);
      if( rc==TKV_NOTFOUND ){                 /* written again meanwhile */
        rc = TKV_OK;
        tkv_mem_free(x.key[i]);
        x.key[i] = NULL;
      }else if( !rc ){
        done++;
      }
    }
    if( !rc ) rc = txn_prepare(db);
    if( !rc ){
      txn_finish(db);
    }else if( db->txn ){
      char cause[512];
      snprintf(cause, sizeof cause, "%s", tkv_errmsg());
      txn_rollback(db);
      tkv_err_set("%s", cause);
      done = 0;
    }
  }
  pthread_mutex_unlock(&db->mu);
  for(unsigned i=0; x.key && i<x.n; i++){
    if( fn && done && x.key[i] ) fn(ctx, x.key[i], x.klen[i]);
    tkv_mem_free(x.key[i]);
  }
  tkv_mem_free(x.key);
  tkv_mem_free(x.klen);
  if( pn ) *pn = done;
  return rc;
}

/* ------------------------------------------------------ Transactions. */

/* Run op on db's open transaction; TKV_MISUSE when there is none. */
#define WITH_TXN(db, call) do{ \
    int rc_; \
    CHECK_HANDLE(db); \
    pthread_mutex_lock(&(db)->mu); \
    rc_ = (db)->txn ? (call) \
        : tkv_err(TKV_MISUSE, "no transaction is open on this handle"); \
    pthread_mutex_unlock(&(db)->mu); \
    return rc_; \
  }while(0)

int tkv_begin(tkv_db *db){
  int rc;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  rc = db->txn ? tkv_err(TKV_MISUSE, "a transaction is already open")
               : txn_begin(db, 0);
  pthread_mutex_unlock(&db->mu);
  return rc;
}

int tkv_savepoint(tkv_db *db, int n){ WITH_TXN(db, txn_savepoint(db, n)); }
int tkv_rollback_to(tkv_db *db, int n){ WITH_TXN(db, txn_rollback_to(db, n)); }
int tkv_release(tkv_db *db, int n){ WITH_TXN(db, txn_release(db, n)); }
int tkv_prepare(tkv_db *db){ WITH_TXN(db, txn_prepare(db)); }
int tkv_rollback(tkv_db *db){ WITH_TXN(db, txn_rollback(db)); }

int tkv_commit(tkv_db *db){
  int rc;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  if( !db->txn ){
    rc = tkv_err(TKV_MISUSE, "no transaction is open on this handle");
  }else{
    rc = txn_prepare(db);
    if( !rc ) txn_finish(db);
  }
  pthread_mutex_unlock(&db->mu);
  return rc;
}

uint64_t tkv_data_version(tkv_db *db){
  tkv_engine *e;
  uint64_t v;
  if( !handle_usable(db) ) return 0;
  e = db->e;
  engine_lock(e);
  (void)share_follow(e);      /* on failure: the version as of before */
  v = share_version(e);
  engine_unlock(e);
  return v;
}

/*
** Read transactions (readtxn.c): the handle's view stays as it is now
** until tkv_read_end.  It first catches up with other processes, as any
** read does.
*/
int tkv_read_begin(tkv_db *db){
  tkv_engine *e;
  int rc;
  CHECK_HANDLE(db);
  e = db->e;
  pthread_mutex_lock(&db->mu);
  if( db->txn || db->rtx ){
    rc = tkv_err(TKV_MISUSE, "a transaction is already open");
  }else{
    engine_lock(e);
    rc = share_follow(e);
    if( !rc ) rc = rtx_begin(db);
    engine_unlock(e);
  }
  pthread_mutex_unlock(&db->mu);
  return rc;
}

int tkv_read_end(tkv_db *db){
  int rc = TKV_OK;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  if( !db->rtx ){
    rc = tkv_err(TKV_MISUSE, "no read transaction is open on this handle");
  }else{
    tkv_rtx *r;
    engine_lock(db->e);
    r = rtx_end(db);
    engine_unlock(db->e);
    rtx_free(r);
  }
  pthread_mutex_unlock(&db->mu);
  return rc;
}

int tkv_in_read(tkv_db *db){
  int in;
  if( !handle_usable(db) ) return 0;
  pthread_mutex_lock(&db->mu);
  in = db->rtx!=NULL;
  pthread_mutex_unlock(&db->mu);
  return in;
}

int tkv_in_transaction(tkv_db *db){
  int in;
  if( !handle_usable(db) ) return 0;
  pthread_mutex_lock(&db->mu);
  in = db->txn!=NULL;
  pthread_mutex_unlock(&db->mu);
  return in;
}

/* ----------------------------------------------------------- Cursors. */

/*
** Read-ahead.  A full scan visits entries in key order, which is not the
** order they were allocated or their records written in (unless a merge
** wrote them), so each row costs a cache miss on its entry and another on
** its record, one after the other.  A scout iterator runs CURSOR_AHEAD
** entries in front of the cursor and asks for both early: the entry when
** the scout reaches it, its record CURSOR_AHEAD/2 rows later (the entry is
** in cache by then), so that the misses of many rows overlap.  It starts
** at the first step after a seek.  It is a hint only: it follows the index
** of the version the cursor is at and starts again when that changes.
*/
#define CURSOR_AHEAD 16

struct tkv_cursor {
  tkv_db *db;
  kd_iter it;         /* over the committed index */
  kd_iter scout;      /* read-ahead: `lead` entries past `it` */
  int lead;           /* < 0: the scout must start again from `it` */
  uint64_t scout_version;
  kd_entry *ring[CURSOR_AHEAD];   /* the last entries the scout reached */
  unsigned nring;     /* entries the scout reached since it started */
  kd_iter git;        /* in a read transaction: over its gone index */
  const kd_index *gx; /* the index git walks, or NULL */
  uint64_t version;   /* engine version `it` and `en` belong to */
  kd_entry *en;       /* current entry, NULL when not positioned */
  uint64_t id;
  size_t vlen;
  uint8_t *key;       /* copy of the current key */
  size_t klen, kcap;
};

int tkv_cursor_open(tkv_db *db, tkv_cursor **pcur){
  tkv_cursor *c;
  int rc;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  rc = read_ready(db);            /* a statement sees what others committed */
  pthread_mutex_unlock(&db->mu);
  if( rc ) return rc;
  c = tkv_mem_calloc(1, sizeof *c);
  if( !c ) return tkv_err_nomem();
  c->db = db;
  *pcur = c;
  return TKV_OK;
}

void tkv_cursor_close(tkv_cursor *c){
  if( !c ) return;
  tkv_mem_free(c->key);
  tkv_mem_free(c);
}

/*
** A cursor walks the committed index and, in a read transaction, the
** index of entries that left it since the transaction began (readtxn.h)
** side by side, in key order.  A key is in both only as a row created
** since (which the read transaction does not see) and its old one.
*/
static int entry_cmp(const kd_entry *a, const kd_entry *b){
  size_t na, nb;
  const uint8_t *ka = kd_entry_key(a, &na), *kb = kd_entry_key(b, &nb);
  int c = memcmp(ka, kb, na<nb ? na : nb);
  if( c ) return c;
  return na<nb ? -1 : na>nb;
}

/* The entry the cursor is at: the first of the two walks. */
static kd_entry *cursor_head(const tkv_cursor *c){
  kd_entry *a = c->it.cur, *b = c->gx ? c->git.cur : NULL;
  if( !a || !b ) return a ? a : b;
  return entry_cmp(a, b)<=0 ? a : b;
}

/* Position both walks at the first entry >= key (> key when after; key
** NULL: the first entry).  Caller holds rw. */
static kd_entry *cursor_seek_at(tkv_cursor *c, const void *key, size_t klen,
                                int after){
  kd_iter_seek(&c->it, c->db->e->index, key, klen, after);
  c->lead = -1;
  c->gx = c->db->rtx ? rtx_gone(c->db->rtx) : NULL;
  if( c->gx ) kd_iter_seek(&c->git, c->gx, key, klen, after);
  return cursor_head(c);
}

/* Step past en, the entry the cursor is at.  Caller holds rw. */
static kd_entry *cursor_step(tkv_cursor *c, kd_entry *en){
  if( c->gx && c->git.cur==en ){
    kd_iter_next(&c->git);
  }else{
    kd_iter_next(&c->it);
    c->lead--;
  }
  return cursor_head(c);
}

/*
** Keep the scout CURSOR_AHEAD entries ahead of the committed walk and
** prefetch (see CURSOR_AHEAD).  Caller holds rw; the cursor's version is
** the engine's, so every entry the ring holds is still in the index.
*/
static void cursor_read_ahead(tkv_cursor *c){
  tkv_engine *e = c->db->e;
  if( c->lead<0 || c->scout_version!=c->version ){
    if( !c->it.cur ) return;
    c->scout = c->it;
    c->lead = 0;
    c->nring = 0;
    c->scout_version = c->version;
  }
  while( c->lead<CURSOR_AHEAD && c->scout.cur ){
    kd_entry *en = kd_iter_next(&c->scout);
    if( !en ) break;
    c->lead++;
    __builtin_prefetch(en);
    c->ring[c->nring++ % CURSOR_AHEAD] = en;
    if( c->nring>CURSOR_AHEAD/2 ){
      kd_entry *half = c->ring[(c->nring - 1 - CURSOR_AHEAD/2) % CURSOR_AHEAD];
      seg_prefetch(e, kd_entry_loc(half));
    }
  }
}

/* Settle on en or the first visible entry after it.  Caller holds rw. */
static int cursor_settle(tkv_cursor *c, kd_entry *en){
  tkv_loc loc;
  uint64_t now = tkv_clock_ms();
  int rc = c->db->rtx ? rtx_status(c->db->rtx) : TKV_OK;
  assert( engine_rd_depth>0 );
  if( rc ){
    c->en = NULL;
    return rc;
  }
  while( en && !txn_live(c->db, en, &loc, now) ) en = cursor_step(c, en);
  c->en = en;
  c->version = atomic_load(&c->db->e->version);
  if( !en ) return TKV_OK;
  const uint8_t *key = kd_entry_key(en, &c->klen);
  if( c->klen>c->kcap || !c->key ){
    size_t cap = c->klen < 64 ? 64 : c->klen;
    uint8_t *p = tkv_mem_realloc(c->key, cap);
    if( !p ){ c->en = NULL; return tkv_err_nomem(); }
    c->key = p;
    c->kcap = cap;
  }
  memcpy(c->key, key, c->klen);
  c->id = txn_id(c->db, en);
  c->vlen = tkv_vlen(loc.vlen);
  return TKV_OK;
}

int tkv_cursor_seek(tkv_cursor *c, const void *key, size_t klen){
  tkv_engine *e = c->db->e;
  int rc = check_key(key, klen);
  if( rc ) return rc;
  CHECK_HANDLE(c->db);
  pthread_mutex_lock(&c->db->mu);
  engine_rdlock(e);
  rc = cursor_settle(c, cursor_seek_at(c, key, klen, 0));
  engine_rdunlock(e);
  pthread_mutex_unlock(&c->db->mu);
  return rc;
}

int tkv_cursor_seek_id(tkv_cursor *c, uint64_t id){
  tkv_engine *e = c->db->e;
  kd_entry *en;
  tkv_loc loc;
  int rc = TKV_NOTFOUND;
  CHECK_HANDLE(c->db);
  pthread_mutex_lock(&c->db->mu);
  engine_rdlock(e);
  c->en = NULL;
  en = txn_entry_of_id(c->db, kd_entry_by_id(e->arena, id));
  if( en && txn_live(c->db, en, &loc, tkv_clock_ms()) ){
    size_t klen;
    const uint8_t *key = kd_entry_key(en, &klen);
    rc = cursor_settle(c, cursor_seek_at(c, key, klen, 0));
  }
  engine_rdunlock(e);
  pthread_mutex_unlock(&c->db->mu);
  return rc;
}

/* splitmix64's finalizer: every bit of z moves every bit of the result. */
static uint64_t mix64(uint64_t z){
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* splitmix64: the next of a sequence of well-mixed 64-bit values. */
static uint64_t mix_next(uint64_t *state){
  return mix64(*state += 0x9e3779b97f4a7c15ull);
}

/*
** Uniform over the keys the handle sees, by rejection: draws pick arena
** places uniformly (kd_arena_sample); a draw is kept if its entry stands
** for a key this handle sees (txn_entry_of_id maps a transaction's
** replacement to its key and drops the entry it replaced).  Each visible
** key has exactly one such entry, so every key is equally likely, however
** the keys are spread.  After RANDOM_DRAWS misses in a row (an arena far
** emptier than its chunks) the first key at or after random bytes is
** taken instead.
*/
#define RANDOM_DRAWS 65536
int tkv_cursor_seek_random(tkv_cursor *c, uint64_t seed){
  tkv_engine *e = c->db->e;
  kd_entry *en = NULL;
  tkv_loc loc;
  int rc = TKV_NOTFOUND, i;
  CHECK_HANDLE(c->db);
  pthread_mutex_lock(&c->db->mu);
  engine_rdlock(e);
  c->en = NULL;
  seed = mix64(seed);   /* seeds in arithmetic steps start apart */
  if( e->keys + (uint64_t)txn_count_delta(c->db) > 0 ){
    for(i=0; i<RANDOM_DRAWS && !en; i++){
      en = txn_entry_of_id(c->db, kd_arena_sample(e->arena, mix_next(&seed)));
      if( en && !txn_visible(c->db, en, &loc) ) en = NULL;
    }
    if( en ){
      size_t klen;
      const uint8_t *key = kd_entry_key(en, &klen);
      rc = cursor_settle(c, cursor_seek_at(c, key, klen, 0));
    }else{
      uint8_t r[8];
      uint64_t v = mix_next(&seed);
      memcpy(r, &v, sizeof r);
      rc = cursor_settle(c, cursor_seek_at(c, r, sizeof r, 0));
      if( rc==TKV_OK && !c->en ){
        rc = cursor_settle(c, cursor_seek_at(c, NULL, 0, 0));
      }
    }
    if( rc==TKV_OK && !c->en ) rc = TKV_NOTFOUND;
  }
  engine_rdunlock(e);
  pthread_mutex_unlock(&c->db->mu);
  return rc;
}

int tkv_cursor_next(tkv_cursor *c){
  tkv_engine *e = c->db->e;
  kd_entry *en;
  int rc;
  if( !c->en ) return TKV_OK;
  CHECK_HANDLE(c->db);
  pthread_mutex_lock(&c->db->mu);
  engine_rdlock(e);
  if( c->version==atomic_load(&e->version) ){
    en = cursor_step(c, c->en);
  }else{
    en = cursor_seek_at(c, c->key, c->klen, 1);
  }
  rc = cursor_settle(c, en);
  /* Only a cursor that steps reads ahead: a seek alone (a lookup by id,
  ** the start of a short range) would fetch rows nobody reads. */
  if( rc==TKV_OK && c->en ) cursor_read_ahead(c);
  engine_rdunlock(e);
  pthread_mutex_unlock(&c->db->mu);
  return rc;
}

int tkv_cursor_valid(const tkv_cursor *c){
  return c->en!=NULL;
}

void tkv_cursor_key(const tkv_cursor *c, const void **pkey, size_t *pklen){
  *pkey = c->en ? c->key : NULL;
  *pklen = c->en ? c->klen : 0;
}

uint64_t tkv_cursor_id(const tkv_cursor *c){
  return c->en ? c->id : 0;
}

size_t tkv_cursor_value_size(const tkv_cursor *c){
  return c->en ? c->vlen : 0;
}

/*
** Read the value of the cursor's entry without a keydir lookup: valid
** while the index has not changed since the cursor reached it.  Returns
** -2 when the caller must take the general path.  Caller holds db->mu.
*/
static int cursor_value_fast(tkv_cursor *c, void **pval, size_t *pvlen){
  tkv_engine *e = c->db->e;
  tkv_loc loc;
  int rc = -2;
  engine_rdlock(e);
  if( c->version==atomic_load(&e->version)
   && txn_live(c->db, c->en, &loc, tkv_clock_ms()) ){
    rc = seg_read(e, loc, c->key, c->klen, pval);
    if( rc==TKV_OK ) *pvlen = tkv_vlen(loc.vlen);
  }
  engine_rdunlock(e);
  return rc;
}

int tkv_cursor_value(tkv_cursor *c, void **pval, size_t *pvlen){
  int rc;
  size_t vlen = 0;
  if( !c->en ) return tkv_err(TKV_MISUSE, "cursor is not on a key");
  CHECK_HANDLE(c->db);
  pthread_mutex_lock(&c->db->mu);
  rc = cursor_value_fast(c, pval, &vlen);
  if( rc==-2 ) rc = read_key(c->db, c->key, c->klen, NULL, &vlen, pval);
  pthread_mutex_unlock(&c->db->mu);
  if( pvlen ) *pvlen = rc ? 0 : vlen;
  return rc;
}

/* ------------------------------------------------- Maintenance, stats. */

int tkv_stats_get(tkv_db *db, tkv_stats *st){
  tkv_engine *e = db->e;
  memset(st, 0, sizeof *st);
  CHECK_HANDLE(db);
  engine_lock(e);
  (void)share_follow(e);
  st->keys = e->keys;
  st->expires = exp_count(e);
  st->live_bytes = e->live_bytes;
  st->stale_bytes = e->total_bytes - e->live_bytes;
  st->files = (uint64_t)e->nseg;
  st->disk_bytes = 2ull*TKV_FILE_HDR;     /* identity and lock files */
  for(int i=0; i<e->nseg; i++){
    st->disk_bytes += e->segs[i]->alloc + e->segs[i]->hint_bytes;
  }
  for(int i=0; i<e->nlimbo; i++){
    st->held_bytes += e->limbo[i]->alloc + e->limbo[i]->hint_bytes;
  }
  st->disk_bytes += st->held_bytes;
  st->read_txns = rtx_open(e);
  st->compactions = e->compactions;
  st->last_reclaimed = e->last_reclaimed;
  st->keydir_bytes = kd_arena_bytes(e->arena) + kd_index_bytes(e->index);
  st->compact_threshold = e->opts.compact_threshold;
  st->last_compact_rc = e->last_compact_rc;
  st->checks = e->checks;
  st->last_check_usec = e->last_check_usec;
  st->backups = e->backups;
  st->last_backup_usec = e->last_backup_usec;
  merge_stats(e, st);
  engine_unlock(e);
  return TKV_OK;
}

/*
** Before a compaction while other processes have the store open: seal the
** segment all writers append to, as a writer does when one is full (the
** WRITE lock, waited for as the busy timeout says), and start the next
** one, so that the compaction can take every record written so far and
** the published position names a segment no merge takes.  Alone, the
** compaction seals it itself.  Caller holds db->mu.
*/
static int seal_shared(tkv_db *db){
  tkv_engine *e = db->e;
  int rc = TKV_OK;
  engine_lock(e);
  if( share_others(e) && e->active!=NULL ){
    rc = txn_acquire_writer(db);
    if( !rc ){
      rc = seg_seal_active(e);
      if( !rc ) rc = seg_start_write(e);
      txn_release_writer(e);
    }
  }
  engine_unlock(e);
  return rc;
}

int tkv_compact(tkv_db *db, uint64_t *preclaimed){
  int rc;
  CHECK_HANDLE(db);
  pthread_mutex_lock(&db->mu);
  if( db->readonly ){
    rc = tkv_err(TKV_READONLY, "cannot compact %s: this handle opened it "
                 "read-only, and compaction rewrites the store's files",
                 db->e->dir);
  }else if( db->txn ){
    rc = tkv_err(TKV_BUSY, "cannot compact inside a transaction");
  }else{
    rc = seal_shared(db);
    if( !rc ) rc = merge_all(db->e, db->busy_ms, preclaimed);
  }
  pthread_mutex_unlock(&db->mu);
  return rc;
}

/* A failed fdatasync breaks the engine (BROKEN_SYNC in engine.h): calling
** tkv_sync again must not report success for writes the kernel dropped. */
int tkv_sync(tkv_db *db){
  tkv_engine *e = db->e;
  int rc;
  CHECK_HANDLE(db);
  engine_lock(e);
  if( e->broken ){
    rc = engine_broken_err(e);
  }else if( db->readonly || !e->wrote ){
    rc = TKV_OK;                /* this process wrote nothing */
  }else{
    rc = share_sync_all(e, 0);  /* every segment written, the directory */
    if( rc ){
      e->broken = BROKEN_SYNC;
      rc = tkv_err(rc, "%s; writes are refused until %s is reopened",
                   tkv_errmsg(), e->dir);
    }
  }
  engine_unlock(e);
  return rc;
}

/*
** tkv_sync with the fdatasync outside the engine's lock (segment.c,
** seg_sync_begin), so that a server can sync one group of commits while it
** writes and commits the next.  Only the sync area needs the WRITE lock:
** taken for a moment when no transaction of this process holds it, and
** left alone (as share_sync_all does) when another process writes.
*/
int tkv_sync_concurrent(tkv_db *db){
  tkv_engine *e = db->e;
  seg_sync_ticket t;
  int rc, here = 0;
  CHECK_HANDLE(db);
  engine_lock(e);
  if( e->broken ){
    rc = engine_broken_err(e);
    engine_unlock(e);
    return rc;
  }
  if( db->readonly || !e->wrote ){
    engine_unlock(e);
    return TKV_OK;              /* this process wrote nothing */
  }
  if( e->sh && !e->wlocked && share_write_begin(e, -1)==TKV_OK ) here = 1;
  rc = seg_sync_begin(e, !e->sh || e->wlocked, &t);
  if( here ) share_write_end(e);
  engine_unlock(e);
  if( !rc && t.fd>=0 ) rc = tkv_io_sync(t.fd, t.path);
  if( t.fd>=0 ) tkv_io_close(t.fd);
  engine_lock(e);
  if( rc ){
    seg_sync_end(e, &t, rc);
    rc = tkv_err(rc, "%s; writes are refused until %s is reopened",
                 tkv_errmsg(), e->dir);
  }else{
    rc = seg_sync_end(e, &t, TKV_OK);
    /* A failure another thread saw meanwhile may be this sync's too. */
    if( e->broken ) rc = engine_broken_err(e);
  }
  engine_unlock(e);
  return rc;
}

/*
** The key/value encoding recorded in the identity file (FORMAT.md, "The
** store directory").  The engine itself never looks at it: it lets each
** front end refuse a store whose bytes it would misread.
*/
int tkv_encoding(tkv_db *db, int *penc){
  uint32_t flags = 0;
  int rc;
  CHECK_HANDLE(db);
  engine_lock(db->e);
  rc = identity_read(db->e->dir, &flags);
  engine_unlock(db->e);
  *penc = rc ? TKV_ENCODING_UNKNOWN
             : (int)((flags & TKV_ID_ENCODING_MASK) >> TKV_ID_ENCODING_SHIFT);
  return rc;
}

int tkv_set_encoding(tkv_db *db, int enc){
  uint32_t flags = 0;
  int rc;
  CHECK_HANDLE(db);
  if( enc<TKV_ENCODING_UNKNOWN || enc>TKV_ENCODING_SQL ){
    return tkv_err(TKV_MISUSE, "unknown key/value encoding %d", enc);
  }
  engine_lock(db->e);
  rc = identity_read(db->e->dir, &flags);
  if( !rc && db->e->broken ) rc = engine_broken_err(db->e);
  if( !rc ){
    uint32_t nflags = (flags & ~(uint32_t)TKV_ID_ENCODING_MASK)
                    | ((uint32_t)enc << TKV_ID_ENCODING_SHIFT);
    if( nflags!=flags ) rc = identity_write(db->e->dir, nflags);
  }
  engine_unlock(db->e);
  return rc;
}

int tkv_is_store(const char *path){
  char canon[PATH_MAX];
  struct stat st;
  if( !path || stat(path, &st) || !S_ISDIR(st.st_mode) ) return 0;
  if( !realpath(path, canon) ) return 0;
  return identity_check(canon)==TKV_OK;
}

int tkv_destroy(const char *path){
  char canon[PATH_MAX], file[PATH_MAX + 300];
  tkv_engine *e;
  DIR *d;
  struct dirent *de;
  int fd = -1, created = 0, rc;
  if( !path || !realpath(path, canon) ){
    return tkv_err(TKV_NOTSTORE, "no tinkv store at %s", path ? path : "NULL");
  }
  pthread_once(&atfork_once, atfork_register);
  pthread_mutex_lock(&registry_mu);
  while( (e = registry_find(canon))!=NULL && e->closing ){
    pthread_cond_wait(&registry_cv, &registry_mu);
  }
  rc = e ? tkv_err(TKV_LOCKED, "store %s is open in this process", canon)
         : identity_check(canon);
  if( !rc ) rc = take_lock(canon, 1, &fd, &created);
  if( !rc ){
    /* Another destroy may have run between the check and the lock. */
    rc = identity_check(canon);
    if( rc ){
      if( created && !join(file, sizeof file, canon, LOCK_FILE) ){
        unlink(file);     /* ours, and we hold it: see take_lock */
      }
      tkv_io_close(fd);
    }
  }
  if( !rc ){
    d = opendir(canon);
    if( !d ) rc = tkv_err_sys(errno, "cannot list", canon);
    while( d && !rc && (de = readdir(d))!=NULL ){
      if( !tkv_fmt_is_store_file(de->d_name) || !strcmp(de->d_name, IDENTITY_FILE)
       || !strcmp(de->d_name, LOCK_FILE) ) continue;
      snprintf(file, sizeof file, "%s/%s", canon, de->d_name);
      rc = tkv_io_unlink(file);
    }
    if( d ) closedir(d);
    /* The identity file goes last: until then the directory is a store. */
    if( !rc ) rc = join(file, sizeof file, canon, IDENTITY_FILE);
    if( !rc ) rc = tkv_io_unlink(file);
    if( !rc ) rc = join(file, sizeof file, canon, LOCK_FILE);
    if( !rc ) rc = tkv_io_unlink(file);
    tkv_io_close(fd);
    if( !rc && dir_is_empty(canon, 0) ) rc = tkv_io_rmdir(canon);
  }
  pthread_mutex_unlock(&registry_mu);
  return rc;
}
