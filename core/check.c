/*
** tkv_check and tkv_check_db: read every byte of a store and report every
** problem with its file and offset, like SQLite's PRAGMA integrity_check
** or LMDB's mdb_stat -e: the identity file, each segment's header, every
** record's checksum and framing (walk.c), the transactions (a COMMIT must
** count the records before it), the bytes after the data, and every hint
** file against its segment (header, trailer checksum, the segment size it
** describes, and each entry against the record at its offset: the hint
** must list exactly the segment's committed records, in order).
**
** A check never changes a file.  tkv_check reads a closed store (holding
** its LOCK shared, so nobody opens it meanwhile).  tkv_check_db reads the
** store of an open handle through a pinned view (snapshot.c) while writers
** and merges go on: the active segment is read up to its last commit.
*/
#include "snapshot.h"
#include "walk.h"
#include "engine.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A committed record, as its hint entry must describe it. */
typedef struct crec {
  uint8_t type;             /* TKV_REC_PUT or TKV_REC_DEL */
  uint32_t off, klen, vlen;
  const uint8_t *key;       /* into the segment's map */
} crec;

typedef struct checker {
  tkv_problem_fn problem;
  tkv_progress_fn progress;
  void *ctx;
  tkv_check_report *rep;
  const char *file;         /* file being read, for reports */
  uint64_t done, total;     /* progress, bytes */
  uint64_t base_done;       /* bytes done before the current file */
  crec *recs;               /* committed records of the current segment */
  size_t nrec, nrec_alloc;
  int nomem;
  char first[1024];         /* the first problem, for the error message */
} checker;

static uint64_t now_usec(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec*1000000u + (uint64_t)ts.tv_nsec/1000u;
}

/* Report one problem. */
static void problem(checker *c, const char *file, uint64_t off,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void problem(checker *c, const char *file, uint64_t off,
                    const char *fmt, ...){
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if( c->rep->problems++==0 ){
    snprintf(c->first, sizeof c->first, "%s at offset %llu: %s", file,
             (unsigned long long)off, what);
  }
  if( c->problem ) c->problem(c->ctx, file, off, what);
}

static void progress(checker *c, uint64_t done){
  c->done = done;
  if( c->progress ) c->progress(c->ctx, done, c->total);
}

/* walk.c callbacks. */
static int on_committed(void *ctx, const walk_rec *r){
  checker *c = ctx;
  crec *p;
  if( c->nrec==c->nrec_alloc ){
    size_t n = c->nrec_alloc ? c->nrec_alloc*2 : 1024;
    p = tkv_mem_realloc(c->recs, n * sizeof *p);
    if( !p ){ c->nomem = 1; return TKV_NOMEM; }
    c->recs = p;
    c->nrec_alloc = n;
  }
  p = &c->recs[c->nrec++];
  p->type = (r->type==TKV_REC_PUT || r->type==TKV_REC_TXPUT)
          ? TKV_REC_PUT : TKV_REC_DEL;
  p->off = (uint32_t)r->off;
  p->klen = r->klen;
  p->vlen = r->vlen;
  p->key = r->key;
  return 0;
}
static void on_damage(void *ctx, uint64_t off, uint64_t len, const char *why){
  checker *c = ctx;
  problem(c, c->file, off, "%s (%llu bytes)", why, (unsigned long long)len);
}
static void on_progress(void *ctx, uint64_t done){
  checker *c = ctx;
  progress(c, c->base_done + done);
}

/* Read n bytes at off of fd into a new buffer. */
static int read_all(int fd, const char *path, uint64_t n, uint8_t **pbuf){
  uint8_t *buf;
  int rc;
  if( n>SIZE_MAX/2 ) return tkv_err(TKV_CORRUPT, "%s: too large", path);
  buf = tkv_mem_alloc((size_t)n + 1);
  if( !buf ) return tkv_err_nomem();
  rc = tkv_io_pread(fd, path, buf, (size_t)n, 0, NULL);
  if( rc ){ tkv_mem_free(buf); return rc; }
  *pbuf = buf;
  return TKV_OK;
}

/* The identity file: exactly one valid header. */
static int check_identity(checker *c, const char *dir){
  char path[PATH_MAX + 16];
  uint8_t buf[TKV_FILE_HDR + 1];
  tkv_file_hdr h;
  const char *why;
  ssize_t got;
  int fd;
  snprintf(path, sizeof path, "%s/TINKV", dir);
  fd = open(path, O_RDONLY|O_CLOEXEC);
  if( fd<0 ){
    problem(c, path, 0, "the identity file cannot be opened: %s",
            strerror(errno));
    return TKV_OK;
  }
  got = pread(fd, buf, sizeof buf, 0);
  close(fd);
  c->rep->files++;
  if( got<0 ) return tkv_err_sys(errno, "cannot read", path);
  if( got<TKV_FILE_HDR ){
    problem(c, path, (uint64_t)got, "the identity file is cut short");
  }else if( tkv_file_hdr_decode(buf, TKV_MAGIC_ID, &h, &why) ){
    problem(c, path, 0, "bad identity file: %s", why);
  }else if( got>TKV_FILE_HDR ){
    problem(c, path, TKV_FILE_HDR, "bytes after the identity header");
  }
  return TKV_OK;
}

/* Compare hint file f->hint against the committed records in c->recs. */
static int check_hint(checker *c, const snap_file *f, uint64_t segsize){
  const char *path = f->hint_path;
  uint8_t *p = NULL;
  tkv_file_hdr h;
  const char *why;
  uint64_t count, pos = TKV_FILE_HDR, end, i = 0;
  uint32_t hsegsize;
  int rc = read_all(f->hint_fd, path, f->hint_size, &p);
  if( rc ) return rc;
  c->rep->files++;
  c->rep->bytes += f->hint_size;
  if( f->hint_size < TKV_FILE_HDR ){
    problem(c, path, f->hint_size, "hint file cut short");
    goto done;
  }
  if( tkv_file_hdr_decode(p, TKV_MAGIC_HINT, &h, &why) ){
    problem(c, path, 0, "bad hint header: %s", why);
    goto done;
  }
  if( h.file_id!=f->id ){
    problem(c, path, 12, "hint names segment %u, not %u", h.file_id, f->id);
  }
  if( tkv_hint_trailer_decode(p, (size_t)f->hint_size, &count, &hsegsize) ){
    problem(c, path, f->hint_size<TKV_HINT_TRAILER ? 0
                     : f->hint_size - TKV_HINT_TRAILER,
            "hint trailer checksum mismatch (the file is damaged or cut)");
    goto done;
  }
  if( hsegsize!=segsize ){
    problem(c, path, f->hint_size - TKV_HINT_TRAILER + 8,
            "hint describes a segment of %u bytes; %s has %llu", hsegsize,
            snap_basename(f->seg_path), (unsigned long long)segsize);
  }
  end = f->hint_size - TKV_HINT_TRAILER;
  while( pos<end ){
    int type;
    uint32_t klen, off, vlen;
    const crec *r = i<c->nrec ? &c->recs[i] : NULL;
    if( end - pos < TKV_HINT_ENTRY_HDR ){
      problem(c, path, pos, "hint entry cut short");
      break;
    }
    tkv_hint_entry_decode(p + pos, &type, &klen, &off, &vlen);
    if( end - pos < tkv_hint_entry_size(klen, vlen) ){
      problem(c, path, pos, "hint entry runs past the entries");
      break;
    }
    c->rep->hint_entries++;
    if( !r ){
      problem(c, path, pos, "hint entry for offset %u of %s: no such "
              "committed record", off, snap_basename(f->seg_path));
      break;                    /* the rest would all differ */
    }else if( r->type!=type || r->off!=off || r->klen!=klen || r->vlen!=vlen
           || memcmp(r->key, p + pos + TKV_HINT_ENTRY_HDR, klen) ){
      problem(c, path, pos, "hint entry does not match the record at offset "
              "%u of %s", r->off, snap_basename(f->seg_path));
      break;                    /* the rest would all differ */
    }
    pos += tkv_hint_entry_size(klen, vlen);
    i++;
  }
  if( pos>=end && i<c->nrec ){
    problem(c, path, end, "hint lists %llu records; %s has %llu committed",
            (unsigned long long)i, snap_basename(f->seg_path),
            (unsigned long long)c->nrec);
  }
  if( pos>=end && count!=i ){
    problem(c, path, end, "hint trailer counts %llu entries; it has %llu",
            (unsigned long long)count, (unsigned long long)i);
  }
done:
  tkv_mem_free(p);
  return TKV_OK;
}

/* Header of segment f: 0 with *ph, or -1 after reporting the problem. */
static int seg_header(checker *c, const snap_file *f, tkv_file_hdr *ph){
  uint8_t buf[TKV_FILE_HDR];
  const char *why;
  ssize_t got = pread(f->seg_fd, buf, sizeof buf, 0);
  if( got<(ssize_t)sizeof buf ){
    problem(c, f->seg_path, got<0 ? 0 : (uint64_t)got,
            "segment header cut short");
    return -1;
  }
  if( tkv_file_hdr_decode(buf, TKV_MAGIC_SEG, ph, &why) ){
    problem(c, f->seg_path, 0, "bad segment header: %s", why);
    return -1;
  }
  if( ph->file_id!=f->id ){
    problem(c, f->seg_path, 12, "header names segment %u", ph->file_id);
    return -1;
  }
  return 0;
}

/* Check segment f and its hint. */
static int check_segment(checker *c, const snap_file *f, int live){
  tkv_file_hdr h;
  walk_result res;
  walk_cb cb;
  uint64_t len = (live && f->active) ? f->seg_end : f->seg_size;
  uint8_t *map = NULL;
  uint64_t start;
  int rc = TKV_OK;
  c->rep->files++;
  c->file = f->seg_path;
  c->nrec = 0;
  if( seg_header(c, f, &h) ){
    /* Records may still be sound; walk them to report what else is wrong. */
    start = walk_data_start(NULL);
  }else{
    start = walk_data_start(&h);
    if( h.version>=2 ){
      /* The sync area: a slot failing its checks is what a crash during
      ** its write leaves, or damage; open ignores it either way. */
      uint8_t area[TKV_SYNC_AREA];
      uint32_t dend, seq;
      if( pread(f->seg_fd, area, sizeof area, TKV_FILE_HDR)==(ssize_t)sizeof area ){
        for(int i=0; i<2; i++){
          if( tkv_sync_slot_check(area, i) ){
            problem(c, f->seg_path, TKV_FILE_HDR + (uint64_t)i*TKV_SYNC_SLOT,
                    "sync slot %d fails its checks", i);
          }
        }
        tkv_sync_area_decode(area, &dend, &seq);
        if( dend>f->seg_size ){
          problem(c, f->seg_path, f->seg_size, "the file ends before its "
                  "synced end %u", dend);
        }
      }else{
        problem(c, f->seg_path, f->seg_size, "sync area cut short");
      }
    }
  }
  if( len>start ){
    map = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, f->seg_fd, 0);
    if( map==MAP_FAILED ) return tkv_err_sys(errno, "cannot map", f->seg_path);
  }
  memset(&cb, 0, sizeof cb);
  cb.committed = on_committed;
  cb.damage = on_damage;
  cb.progress = on_progress;
  cb.ctx = c;
  memset(&res, 0, sizeof res);
  if( map ){
    rc = walk_image(map, len, start, live && f->active, &cb, &res);
  }
  if( rc ) rc = c->nomem ? tkv_err_nomem() : rc;
  c->rep->records += res.records;
  c->rep->bytes += len;
  /* Zero bytes after the data are preallocated space: normal in the newest
  ** segment, and harmless in a sealed one (a crash before it was cut),
  ** where its hint, if any, reports the size it does not describe. */
  if( !rc && f->hint_fd>=0 ) rc = check_hint(c, f, f->seg_size);
  if( map ) munmap(map, (size_t)len);
  c->base_done += len + (f->hint_fd>=0 ? f->hint_size : 0);
  progress(c, c->base_done);
  return rc;
}

/* Check the files of view s. */
static int check_snap(snap *s, tkv_problem_fn pf, tkv_progress_fn gf,
                      void *ctx, tkv_check_report *rep){
  checker c;
  uint64_t t0 = now_usec();
  int rc;
  memset(&c, 0, sizeof c);
  memset(rep, 0, sizeof *rep);
  c.problem = pf;
  c.progress = gf;
  c.ctx = ctx;
  c.rep = rep;
  for(int i=0; i<s->n; i++){
    c.total += s->a[i].seg_size + s->a[i].hint_size;
  }
  rc = check_identity(&c, s->dir);
  for(int i=0; !rc && i<s->n; i++){
    rc = check_segment(&c, &s->a[i], s->live);
  }
  tkv_mem_free(c.recs);
  rep->usec = now_usec() - t0;
  if( rc ) return rc;
  if( rep->problems ){
    return tkv_err(TKV_CORRUPT, "%llu problem%s in %s; the first: %s",
                   (unsigned long long)rep->problems,
                   rep->problems==1 ? "" : "s", s->dir, c.first);
  }
  return TKV_OK;
}

int tkv_check(const char *path, tkv_problem_fn problem_fn,
              tkv_progress_fn progress_fn, void *ctx,
              tkv_check_report *rep){
  snap s;
  tkv_check_report dummy;
  int rc;
  if( !rep ) rep = &dummy;
  memset(rep, 0, sizeof *rep);
  if( !path ) return tkv_err(TKV_INVALID, "no path");
  rc = snap_open_dir(path, &s);
  if( rc ) return rc;
  if( s.n==0 && !tkv_is_store(path) ){
    snap_free(&s);
    return tkv_err(TKV_NOTSTORE, "%s holds no tinkv store", path);
  }
  rc = check_snap(&s, problem_fn, progress_fn, ctx, rep);
  snap_free(&s);
  return rc;
}

int tkv_check_db(tkv_db *db, tkv_problem_fn problem_fn,
                 tkv_progress_fn progress_fn, void *ctx,
                 tkv_check_report *rep){
  snap s;
  tkv_check_report dummy;
  int rc;
  if( !rep ) rep = &dummy;
  memset(rep, 0, sizeof *rep);
  rc = snap_take(db, NULL, NULL, &s);
  if( rc ) return rc;
  rc = check_snap(&s, problem_fn, progress_fn, ctx, rep);
  snap_free(&s);
  engine_lock(db->e);
  db->e->checks++;
  db->e->last_check_usec = rep->usec;
  engine_unlock(db->e);
  return rc;
}
