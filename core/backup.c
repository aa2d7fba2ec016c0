/*
** tkv_backup: an online, consistent copy of a store, as SQLite's backup API
** or LMDB's mdb_copy give one, made of the store's own files.
**
** Consistency comes from the pinned view (snapshot.c): under the engine's
** lock the segment table is read, every segment's descriptor duplicated,
** the active segment's end of committed records noted, and the sealed
** segments and their hints hard-linked into the target.  What a restore
** replays is then exactly the store as of that moment: sealed segments
** never change, the active one is copied up to its last commit, and a
** merge that deletes segments afterwards cannot take them away (the links
** and descriptors hold them).  Where a link cannot be made (another file
** system) the file is copied from its pinned descriptor after the lock is
** released, while writers go on.
**
** The target is a store only once it is whole: each file arrives under a
** temporary name and is renamed, the identity file (TINKV) is written last
** in a new backup, and everything is synced.  An incremental backup keeps
** the files the target already has (sealed segments are immutable, so the
** same name and size is the same file), adds the new ones, then removes
** those no longer part of the store, oldest first; at every step the
** target replays to an earlier or to the new state, as a store does after a
** crash during a merge (FORMAT.md, "Replay order").
*/
#include "snapshot.h"
#include "engine.h"
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
#include <time.h>
#include <unistd.h>

/* A file already in the target (incremental). */
typedef struct have {
  char name[32];
  uint64_t size;
  int keep;                 /* part of the new backup */
} have;

/* What to do with one file of the view. */
enum { F_SKIP = 0, F_KEPT, F_LINKED, F_COPY };

typedef struct backup {
  char dest[PATH_MAX];
  unsigned flags;
  tkv_backup_report *rep;
  have *have;               /* target's files before the backup */
  int nhave;
  int *seg_do, *hint_do;    /* F_* per file of the view */
  tkv_progress_fn progress;
  void *ctx;
  uint64_t done, total;
} backup;

static uint64_t now_usec(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec*1000000u + (uint64_t)ts.tv_nsec/1000u;
}

/* Is name one tinkv makes in a store directory? */
static int is_store_name(const char *name){
  size_t n = strlen(name);
  if( !strcmp(name, "TINKV") || !strcmp(name, "LOCK")
   || !strcmp(name, "TINKV.tmp") ) return 1;
  if( n<11 ) return 0;
  for(int i=0; i<10; i++) if( name[i]<'0' || name[i]>'9' ) return 0;
  name += 10;
  return !strcmp(name, ".seg") || !strcmp(name, ".hint")
      || !strcmp(name, ".seg.tmp") || !strcmp(name, ".hint.tmp");
}

/* The target's file `name`, or NULL. */
static have *find_have(backup *b, const char *name){
  for(int i=0; i<b->nhave; i++){
    if( !strcmp(b->have[i].name, name) ) return &b->have[i];
  }
  return NULL;
}

/* qsort order of have: by name, which for segments is by id. */
static int cmp_have(const void *a, const void *b){
  return strcmp(((const have*)a)->name, ((const have*)b)->name);
}

/*
** Make the target directory ready: created if missing, else empty, or
** (incremental) holding only a store's files, which are listed.
*/
static int prepare_dest(backup *b, const char *dest, const char *storedir){
  char canon[PATH_MAX];
  DIR *d;
  struct dirent *de;
  int rc = TKV_OK, cap = 0;
  if( mkdir(dest, 0755) && errno!=EEXIST ){
    return tkv_err_sys(errno, "cannot create the backup directory", dest);
  }
  if( !realpath(dest, canon) ) return tkv_err_sys(errno, "cannot open", dest);
  if( !strcmp(canon, storedir) ){
    return tkv_err(TKV_INVALID, "the backup target %s is the store itself",
                   dest);
  }
  snprintf(b->dest, sizeof b->dest, "%s", canon);
  d = opendir(canon);
  if( !d ) return tkv_err_sys(errno, "cannot list", canon);
  while( (de = readdir(d))!=NULL ){
    char path[PATH_MAX + 300];
    struct stat st;
    if( !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ) continue;
    if( !(b->flags & TKV_BACKUP_INCREMENTAL) ){
      rc = tkv_err(TKV_INVALID, "the backup target %s is not empty (an "
                   "incremental backup updates an earlier one)", canon);
      break;
    }
    if( !is_store_name(de->d_name) ){
      rc = tkv_err(TKV_INVALID, "the backup target %s holds %s, which is not "
                   "a file of a tinkv store: not overwriting it", canon,
                   de->d_name);
      break;
    }
    if( b->nhave==cap ){
      int ncap = cap ? cap*2 : 32;
      have *p = tkv_mem_realloc(b->have, (size_t)ncap * sizeof *p);
      if( !p ){ rc = tkv_err_nomem(); break; }
      b->have = p;
      cap = ncap;
    }
    snprintf(path, sizeof path, "%s/%s", canon, de->d_name);
    if( stat(path, &st) ){ rc = tkv_err_sys(errno, "cannot stat", path); break; }
    {
      size_t nlen = strlen(de->d_name);     /* is_store_name: < 20 bytes */
      if( nlen>=sizeof b->have[0].name ) continue;
      memcpy(b->have[b->nhave].name, de->d_name, nlen + 1);
    }
    b->have[b->nhave].size = (uint64_t)st.st_size;
    b->have[b->nhave].keep = 0;
    b->nhave++;
  }
  closedir(d);
  if( !rc && b->nhave ) qsort(b->have, (size_t)b->nhave, sizeof *b->have, cmp_have);
  return rc;
}

/* Hard-link src to the target as name (through a temporary name, so that
** an existing file of that name is replaced at once).  0 on success, -1
** if the file must be copied instead. */
static int link_in(backup *b, const char *src, const char *name){
  char tmp[PATH_MAX + 64], to[PATH_MAX + 64];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", b->dest, name);
  snprintf(to, sizeof to, "%s/%s", b->dest, name);
  unlink(tmp);
  if( link(src, tmp) ) return -1;
  if( rename(tmp, to) ){ unlink(tmp); return -1; }
  return 0;
}

/* Decide, under the engine's lock, what becomes of each file of the view,
** making the hard links there (see the header comment). */
static int plan_locked(void *ctx, snap *s){
  backup *b = ctx;
  b->seg_do = tkv_mem_calloc((size_t)s->n + 1, sizeof *b->seg_do);
  b->hint_do = tkv_mem_calloc((size_t)s->n + 1, sizeof *b->hint_do);
  if( !b->seg_do || !b->hint_do ) return tkv_err_nomem();
  for(int i=0; i<s->n; i++){
    snap_file *f = &s->a[i];
    const char *seg = snap_basename(f->seg_path);
    have *h = find_have(b, seg);
    if( f->active ){
      b->seg_do[i] = F_COPY;               /* up to the last commit */
    }else if( h && h->size==f->seg_size ){
      b->seg_do[i] = F_KEPT;               /* immutable: the same file */
    }else{
      b->seg_do[i] = link_in(b, f->seg_path, seg) ? F_COPY : F_LINKED;
    }
    if( h ) h->keep = 1;
    if( f->hint_fd>=0 ){
      const char *hint = snap_basename(f->hint_path);
      have *hh = find_have(b, hint);
      if( hh && hh->size==f->hint_size && b->seg_do[i]==F_KEPT ){
        b->hint_do[i] = F_KEPT;
      }else{
        b->hint_do[i] = link_in(b, f->hint_path, hint) ? F_COPY : F_LINKED;
      }
      if( hh ) hh->keep = 1;
    }
  }
  return TKV_OK;
}

/* Copy len bytes of fd (path) to the target as name, synced, through a
** temporary name. */
static int copy_in(backup *b, int fd, const char *path, uint64_t len,
                   const char *name){
  char tmp[PATH_MAX + 64], to[PATH_MAX + 64];
  uint8_t *buf = tkv_mem_alloc(1u << 20);
  uint64_t off = 0;
  int out = -1, rc;
  if( !buf ) return tkv_err_nomem();
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", b->dest, name);
  snprintf(to, sizeof to, "%s/%s", b->dest, name);
  rc = tkv_io_open(tmp, O_WRONLY|O_CREAT|O_TRUNC, 0644, &out);
  while( !rc && off<len ){
    size_t n = len - off < (1u << 20) ? (size_t)(len - off) : (1u << 20);
    rc = tkv_io_pread(fd, path, buf, n, off, NULL);
    if( !rc ) rc = tkv_io_pwrite(out, tmp, buf, n, off);
    off += n;
    b->done += n;
    if( b->progress ) b->progress(b->ctx, b->done, b->total);
  }
  if( !rc ) rc = tkv_io_sync(out, tmp);
  tkv_io_close(out);
  if( !rc ) rc = tkv_io_rename(tmp, to);
  if( rc ) unlink(tmp);
  tkv_mem_free(buf);
  if( !rc ){
    b->rep->copied++;
    b->rep->bytes_copied += len;
  }
  return rc;
}

/* Nonzero if the files a and b hold the same bytes (both small). */
static int same_small_file(const char *a, const char *b){
  uint8_t x[256], y[256];
  ssize_t nx = -1, ny = -2;
  int fa = open(a, O_RDONLY|O_CLOEXEC), fb = open(b, O_RDONLY|O_CLOEXEC);
  if( fa>=0 ) nx = read(fa, x, sizeof x);
  if( fb>=0 ) ny = read(fb, y, sizeof y);
  if( fa>=0 ) close(fa);
  if( fb>=0 ) close(fb);
  return nx==ny && nx>=0 && nx<(ssize_t)sizeof x
      && memcmp(x, y, (size_t)nx)==0;
}

/* Copy the store's identity file, last: from then on the target is a
** store.  An incremental target keeps its own when it holds the same
** bytes; one that differs (the store's recorded key/value encoding
** changed since) is replaced, through a temporary name like every file. */
static int copy_identity(backup *b, const char *storedir){
  char path[PATH_MAX + 16], have_path[PATH_MAX + 16];
  int fd, rc;
  uint64_t size;
  snprintf(path, sizeof path, "%s/TINKV", storedir);
  if( find_have(b, "TINKV") ){
    find_have(b, "TINKV")->keep = 1;
    snprintf(have_path, sizeof have_path, "%s/TINKV", b->dest);
    if( same_small_file(path, have_path) ) return TKV_OK;
  }
  rc = tkv_io_open(path, O_RDONLY, 0, &fd);
  if( rc ) return rc;
  rc = tkv_io_size(fd, path, &size);
  if( !rc ) rc = copy_in(b, fd, path, size, "TINKV");
  tkv_io_close(fd);
  return rc;
}

int tkv_backup(tkv_db *db, const char *dest, unsigned flags,
               tkv_progress_fn progress_fn, void *ctx,
               tkv_backup_report *rep){
  tkv_backup_report dummy;
  backup b;
  snap s;
  char lockpath[PATH_MAX + 16];
  uint64_t t0 = now_usec();
  int rc, lock_fd = -1;
  if( !rep ) rep = &dummy;
  memset(rep, 0, sizeof *rep);
  memset(&b, 0, sizeof b);
  memset(&s, 0, sizeof s);
  s.lock_fd = -1;
  b.flags = flags;
  b.rep = rep;
  b.progress = progress_fn;
  b.ctx = ctx;
  if( !db || !dest || !*dest ) return tkv_err(TKV_INVALID, "no backup target");
  if( flags & ~(unsigned)TKV_BACKUP_INCREMENTAL ){
    return tkv_err(TKV_INVALID, "unknown backup flags 0x%x", flags);
  }
  rc = prepare_dest(&b, dest, db->e->dir);
  /* Hold the target's LOCK: nobody opens it as a store while it changes. */
  if( !rc ){
    snprintf(lockpath, sizeof lockpath, "%s/LOCK", b.dest);
    rc = tkv_io_open(lockpath, O_RDWR|O_CREAT, 0644, &lock_fd);
    if( !rc ) rc = tkv_io_lock(lock_fd, lockpath);
    if( find_have(&b, "LOCK") ) find_have(&b, "LOCK")->keep = 1;
  }
  if( !rc ) rc = snap_take(db, plan_locked, &b, &s);
  if( !rc ){
    for(int i=0; i<s.n; i++){
      if( b.seg_do[i]==F_COPY ){
        b.total += s.a[i].active ? s.a[i].seg_end : s.a[i].seg_size;
      }
      if( b.hint_do[i]==F_COPY ) b.total += s.a[i].hint_size;
    }
  }
  for(int i=0; !rc && i<s.n; i++){
    snap_file *f = &s.a[i];
    rep->files++;
    if( b.seg_do[i]==F_KEPT ) rep->kept++;
    if( b.seg_do[i]==F_LINKED ) rep->linked++;
    if( b.seg_do[i]==F_COPY ){
      rc = copy_in(&b, f->seg_fd, f->seg_path,
                   f->active ? f->seg_end : f->seg_size,
                   snap_basename(f->seg_path));
    }
    if( rc || f->hint_fd<0 ) continue;
    rep->files++;
    if( b.hint_do[i]==F_KEPT ) rep->kept++;
    if( b.hint_do[i]==F_LINKED ) rep->linked++;
    if( b.hint_do[i]==F_COPY ){
      rc = copy_in(&b, f->hint_fd, f->hint_path, f->hint_size,
                   snap_basename(f->hint_path));
    }
  }
  if( !rc ){
    rc = copy_identity(&b, s.dir);
    rep->files++;
  }
  /* Files of the earlier backup that the store no longer has, oldest
  ** first (their names sort by id). */
  if( !rc && b.nhave ){
    for(int pass=0; pass<2 && !rc; pass++){
      for(int i=0; i<b.nhave && !rc; i++){
        char path[PATH_MAX + 64];
        const char *n = b.have[i].name;
        int is_seg = strstr(n, ".seg")!=NULL;
        if( b.have[i].keep || (pass==0)!=is_seg ) continue;
        snprintf(path, sizeof path, "%s/%s", b.dest, n);
        rc = tkv_io_unlink(path);
        if( !rc ) rep->removed++;
      }
    }
  }
  if( !rc ) rc = tkv_io_sync_dir(b.dest);
  if( lock_fd>=0 ) tkv_io_close(lock_fd);
  if( s.dir ) snap_free(&s);
  tkv_mem_free(b.seg_do);
  tkv_mem_free(b.hint_do);
  tkv_mem_free(b.have);
  rep->usec = now_usec() - t0;
  if( rc==TKV_OK ){
    engine_lock(db->e);
    db->e->backups++;
    db->e->last_backup_usec = rep->usec;
    engine_unlock(db->e);
  }
  return rc;
}
