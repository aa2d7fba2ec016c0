/*
** Pinned views of a store's files (see snapshot.h).
**
** What a live view relies on (the invariant, stated once here and relied
** on by check.c and backup.c):
**
**   While e->mu is held, e->segs lists every segment a reader of the store
**   needs, each with an open descriptor (s->fd) on its file.  Segments are
**   added to and removed from the table only by holders of e->mu (writes,
**   compaction, the merge's switch), and a segment's descriptor is closed
**   only after it has left the table.  The bytes of a sealed segment below
**   its end never change; the active segment only grows past its end.
**
** So under e->mu the view copies the table, dup()s every descriptor (a dup
** keeps the file's bytes readable after a later unlink, which is what pins
** a segment against a merge deleting it) and notes each segment's end.
** Hard links that must name exactly these files are made by the caller's
** callback before the lock is released (snap_take's fn).  Everything else
** (reading, checking, copying) happens after, without the lock, while
** writers and merges go on.
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
#include <unistd.h>

const char *snap_basename(const char *p){
  const char *z = strrchr(p, '/');
  return z ? z + 1 : p;
}

/* A copy of string z, or NULL. */
static char *str_dup(const char *z){
  size_t n = strlen(z) + 1;
  char *p = tkv_mem_alloc(n);
  if( p ) memcpy(p, z, n);
  return p;
}

void snap_free(snap *s){
  for(int i=0; i<s->n; i++){
    snap_file *f = &s->a[i];
    if( f->seg_fd>=0 ) close(f->seg_fd);
    if( f->hint_fd>=0 ) close(f->hint_fd);
    tkv_mem_free(f->seg_path);
    tkv_mem_free(f->hint_path);
  }
  tkv_mem_free(s->a);
  tkv_mem_free(s->dir);
  if( s->lock_fd>=0 ) close(s->lock_fd);
  memset(s, 0, sizeof *s);
  s->lock_fd = -1;
}

/* Open the hint file of f, if there is one: it is written whole under a
** temporary name and renamed, so whatever is found is a finished file. */
static int open_hint(const char *dir, snap_file *f){
  char path[PATH_MAX + 32];
  struct stat st;
  int rc = seg_name(path, sizeof path, dir, f->id, ".hint");
  if( rc ) return rc;
  f->hint_path = str_dup(path);
  if( !f->hint_path ) return tkv_err_nomem();
  f->hint_fd = open(path, O_RDONLY|O_CLOEXEC);
  if( f->hint_fd<0 ){
    if( errno==ENOENT ) return TKV_OK;
    return tkv_err_sys(errno, "cannot open", path);
  }
  if( fstat(f->hint_fd, &st) ) return tkv_err_sys(errno, "cannot stat", path);
  f->hint_size = (uint64_t)st.st_size;
  return TKV_OK;
}

/* Copy segment s of the engine into f.  Caller holds e->mu. */
static int pin_segment(tkv_engine *e, tkv_segment *s, snap_file *f){
  struct stat st;
  f->id = s->id;
  f->active = s==e->active;
  f->sealed = s->sealed;
  f->seg_end = f->active ? txn_committed_end(e) : s->end;
  f->seg_path = str_dup(s->path);
  if( !f->seg_path ) return tkv_err_nomem();
  {
    /* Sealed segments may be closed (segment.c, seg_pin). */
    int rc = seg_pin(s);
    if( rc ) return rc;
    f->seg_fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
    seg_unpin(s);
  }
  if( f->seg_fd<0 ) return tkv_err_sys(errno, "cannot duplicate", s->path);
  if( fstat(f->seg_fd, &st) ) return tkv_err_sys(errno, "cannot stat", s->path);
  f->seg_size = (uint64_t)st.st_size;
  return open_hint(e->dir, f);
}

int snap_take(tkv_db *db, snap_locked_fn fn, void *ctx, snap *s){
  tkv_engine *e = db->e;
  int rc;
  memset(s, 0, sizeof *s);
  s->lock_fd = -1;
  s->live = 1;
  engine_lock(e);
  /* Committed records still in the write buffer go to the file first. */
  rc = seg_flush(e);
  if( !rc ){
    s->dir = str_dup(e->dir);
    s->a = tkv_mem_calloc((size_t)e->nseg + 1, sizeof *s->a);
    if( !s->dir || !s->a ) rc = tkv_err_nomem();
  }
  for(int i=0; !rc && i<e->nseg; i++){
    snap_file *f = &s->a[s->n++];
    f->seg_fd = f->hint_fd = -1;
    rc = pin_segment(e, e->segs[i], f);
  }
  if( !rc && fn ) rc = fn(ctx, s);
  engine_unlock(e);
  if( rc ) snap_free(s);
  return rc;
}

/* qsort order of snap_files: by id. */
static int cmp_file(const void *a, const void *b){
  uint32_t x = ((const snap_file*)a)->id, y = ((const snap_file*)b)->id;
  return x<y ? -1 : x>y;
}

/* Parse "%010u<suffix>"; 0 and *pid on a match. */
static int parse_name(const char *name, const char *suffix, uint32_t *pid){
  uint64_t v = 0;
  for(int i=0; i<10; i++){
    if( name[i]<'0' || name[i]>'9' ) return -1;
    v = v*10 + (uint64_t)(name[i] - '0');
  }
  if( strcmp(name + 10, suffix) || v==0 || v>UINT32_MAX ) return -1;
  *pid = (uint32_t)v;
  return 0;
}

int snap_open_dir(const char *dir, snap *s){
  char canon[PATH_MAX], path[PATH_MAX + 300];
  DIR *d;
  struct dirent *de;
  int rc = TKV_OK, cap = 0;
  memset(s, 0, sizeof *s);
  s->lock_fd = -1;
  if( !realpath(dir, canon) ) return tkv_err_sys(errno, "cannot open", dir);
  s->dir = str_dup(canon);
  if( !s->dir ) return tkv_err_nomem();
  /* A store open in a process holds LOCK shared; holding it exclusively
  ** keeps the store closed while it is read.  A store without LOCK has
  ** never been opened writable since it was copied: nothing to hold. */
  snprintf(path, sizeof path, "%s/LOCK", canon);
  s->lock_fd = open(path, O_RDONLY|O_CLOEXEC);
  if( s->lock_fd>=0 && flock(s->lock_fd, LOCK_EX|LOCK_NB) ){
    rc = errno==EWOULDBLOCK
       ? tkv_err(TKV_LOCKED, "store %s is open in a process; check it from "
                 "there (SQL: SELECT tinkv_check('table')) or close it first",
                 canon)
       : tkv_err_sys(errno, "cannot lock", path);
    snap_free(s);
    return rc;
  }
  d = opendir(canon);
  if( !d ){
    rc = tkv_err_sys(errno, "cannot list", canon);
    snap_free(s);
    return rc;
  }
  while( !rc && (de = readdir(d))!=NULL ){
    uint32_t id;
    snap_file *f;
    struct stat st;
    if( parse_name(de->d_name, ".seg", &id) ) continue;
    if( s->n==cap ){
      int ncap = cap ? cap*2 : 16;
      snap_file *p = tkv_mem_realloc(s->a, (size_t)ncap * sizeof *p);
      if( !p ){ rc = tkv_err_nomem(); break; }
      s->a = p;
      cap = ncap;
    }
    f = &s->a[s->n++];
    memset(f, 0, sizeof *f);
    f->id = id;
    f->seg_fd = f->hint_fd = -1;
    snprintf(path, sizeof path, "%s/%s", canon, de->d_name);
    f->seg_path = str_dup(path);
    if( !f->seg_path ){ rc = tkv_err_nomem(); break; }
    f->seg_fd = open(path, O_RDONLY|O_CLOEXEC);
    if( f->seg_fd<0 ){ rc = tkv_err_sys(errno, "cannot open", path); break; }
    if( fstat(f->seg_fd, &st) ){ rc = tkv_err_sys(errno, "cannot stat", path); break; }
    f->seg_size = f->seg_end = (uint64_t)st.st_size;
    f->sealed = 1;
    rc = open_hint(canon, f);
  }
  closedir(d);
  if( rc ){
    snap_free(s);
    return rc;
  }
  if( s->n ) qsort(s->a, (size_t)s->n, sizeof *s->a, cmp_file);
  return TKV_OK;
}
