/*
** Where the log ends, what is durable, and hostile store contents.
**
** Recovery's rule (core/FORMAT.md, "Recovery"): a transaction counts only
** when all its records and its COMMIT are intact; in the newest segment,
** past the end its sync area says was synced, the first record that is not
** intact ends the log and the rest is a torn tail; anything wrong before
** that point, or in any older segment, is corruption naming file and
** offset.  These tests build the crash images that the old rule ("a bad
** record followed by any valid record is corruption") got wrong, check the
** syncs that make the rule's premises true (sealing, tkv_sync, close, the
** cut of a torn tail), and feed open a table of crafted directory contents.
*/
#include "engine_check.h"
#include "engine.h"          /* SEG_OPEN_MAX */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A record image (header, key, value) in a new buffer. */
static uint8_t *record_image(int type, const char *key, const void *val,
                             uint32_t vlen, size_t *pn){
  uint32_t klen = (uint32_t)strlen(key);
  size_t n = (size_t)tkv_rec_size(klen, vlen);
  uint8_t *p = malloc(n);
  assert_non_null(p);
  tkv_rec_encode(p, type, key, klen, val, vlen, 0);
  *pn = n;
  return p;
}

/* Commit keys "c0".."c<n-1>" one by one. */
static void commit_keys(tkv_db *db, model *m, int n){
  for(int i=0; i<n; i++){
    char k[16], v[32];
    snprintf(k, sizeof k, "c%d", i);
    snprintf(v, sizeof v, "value of %d", i);
    put_str(db, m, k, v);
  }
}

/* Open dir and check it holds exactly m. */
static void expect_store(const char *dir, const model *m){
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(dir, &o);
  assert_store_is(db, m);
  close_ok(db);
}

/*
** A2: power loss during an uncommitted transaction.  Its records reached
** the file in two flushes; the first never got written back (zeros), the
** second did.  The intact TX records after the hole are not evidence of
** anything: they were never synced and never committed.
*/
static void test_hole_in_unsynced_transaction(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  const char *seg;
  uint8_t zeros[3000], val[1000];
  uint8_t *rec;
  size_t n;
  commit_keys(db, &m, 10);
  close_ok(db);
  seg = seg_path(f->dir, newest_seg(f->dir), ".seg");
  memset(zeros, 0, sizeof zeros);
  memset(val, 'v', sizeof val);
  assert_int_equal(tu_append(seg, zeros, sizeof zeros), 0);
  for(int i=0; i<5; i++){
    rec = record_image(TKV_REC_TXPUT, "tx-key", val, sizeof val, &n);
    assert_int_equal(tu_append(seg, rec, n), 0);
    free(rec);
  }
  expect_store(f->dir, &m);
  model_clear(&m);
}

/*
** A3 (and A4): a kill tore a large value that contains a record image.
** Recovery must not search the value's bytes: the torn record ends the log.
*/
static void test_torn_value_holding_a_record(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  const char *seg;
  size_t vlen = 200000, n, inner_n;
  uint8_t *val = calloc(1, vlen), *rec, *inner;
  long long size;
  assert_non_null(val);
  commit_keys(db, &m, 20);
  close_ok(db);
  /* The value carries a whole PUT record 50 KB in, and a COMMIT. */
  inner = record_image(TKV_REC_PUT, "c3", "from inside a value", 19, &inner_n);
  memcpy(val + 50000, inner, inner_n);
  free(inner);
  rec = record_image(TKV_REC_PUT, "big", val, (uint32_t)vlen, &n);
  seg = seg_path(f->dir, newest_seg(f->dir), ".seg");
  size = tu_file_size(seg);
  assert_int_equal(tu_append(seg, rec, n), 0);
  /* Only the first 120 KB of the record reached the file. */
  assert_int_equal(tu_truncate(seg, size + 120000), 0);
  expect_store(f->dir, &m);
  free(rec);
  free(val);
  model_clear(&m);
}

/* Counts the reads open makes of segment files. */
static long seg_reads;
static int count_reads(int op, const char *path, void *ctx){
  (void)ctx;
  if( op==TKV_IO_READ && strstr(path, ".seg") ) seg_reads++;
  return 0;
}

/*
** A4: a torn value whose bytes look like many plausible record headers
** (each claiming a large value).  Probing them costs a window read each;
** the scan must stop at the torn record and read each byte about once.
*/
static void test_torn_value_open_is_linear(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  model m = {0};
  const char *seg;
  size_t vlen = 12u << 20, n;
  uint8_t *val = malloc(vlen), *rec;
  long long size;
  assert_non_null(val);
  memset(val, 0x5a, vlen);
  /* Every 64 KB, a header: PUT, klen 0, vlen 2 MiB, wrong CRC. */
  for(size_t off=0; off + TKV_REC_HDR < vlen; off += 65536){
    uint8_t *h = val + off;
    memset(h, 0, TKV_REC_HDR);
    h[4] = TKV_REC_PUT;
    tkv_put32(h + 8, 2u << 20);
  }
  commit_keys(db, &m, 5);
  close_ok(db);
  rec = record_image(TKV_REC_PUT, "big", val, (uint32_t)vlen, &n);
  seg = seg_path(f->dir, newest_seg(f->dir), ".seg");
  size = tu_file_size(seg);
  assert_int_equal(tu_append(seg, rec, n), 0);
  assert_int_equal(tu_truncate(seg, size + (long long)(n - 4096)), 0);
  seg_reads = 0;
  tkv_test_set_io_hook(count_reads, NULL);
  expect_store(f->dir, &m);
  tkv_test_set_io_hook(NULL, NULL);
  /* 12 MiB through a window of at least 4 MiB: a handful of reads, not
  ** one per plausible header (190 of them). */
  assert_true(seg_reads < 20);
  free(rec);
  free(val);
  model_clear(&m);
}

/*
** Damage inside what was synced, in the newest segment: the last committed
** record, synced by the commit and by close.  Not a torn tail: the open
** fails naming the file and the offset, instead of dropping the commit.
*/
static void test_damage_before_synced_end_is_corruption(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  model m = {0};
  seg_rec recs[64];
  int nrec;
  char want[64];
  const char *seg;
  commit_keys(db, &m, 10);
  close_ok(db);
  seg = seg_path(f->dir, newest_seg(f->dir), ".seg");
  nrec = seg_records(seg, recs, 64, NULL);
  assert_int_equal(nrec, 10);
  assert_int_equal(tu_flip_byte(seg, (long long)recs[9].off + 14, 0x40), 0);
  assert_tkv(TKV_CORRUPT, tkv_open(f->dir, &o, &db));
  snprintf(want, sizeof want, "offset %llu", (unsigned long long)recs[9].off);
  assert_true(msg_has(tkv_errmsg(), want));
  assert_true(msg_has(tkv_errmsg(), base_name(seg)));
  model_clear(&m);
}

/*
** A6: a flush that wrote part of its bytes and then failed, then a
** rollback.  Nothing of the failed write may stay past the data end, where
** a later commit would hide it and the next open would read it.
*/
typedef struct partial_plan {
  int armed;
  int fired;
} partial_plan;

static int partial_write_hook(int op, const char *path, void *ctx){
  partial_plan *p = ctx;
  if( op!=TKV_IO_WRITE || !p->armed || !strstr(path, ".seg") ) return 0;
  if( strstr(path, ".tmp") ) return 0;
  {
    /* Put the first bytes of what is being written (TX records of the
    ** transaction) where the write goes: past the data end. */
    uint64_t end;
    uint8_t val[300];
    size_t n;
    uint8_t *rec;
    seg_records(path, NULL, 0, &end);
    memset(val, 'p', sizeof val);
    rec = record_image(TKV_REC_TXPUT, "partial", val, sizeof val, &n);
    {
      int fd = open(path, O_WRONLY);
      assert_true(fd>=0);
      for(int i=0; i<3; i++){
        assert_int_equal(pwrite(fd, rec, n, (off_t)(end + i*n)), (ssize_t)n);
      }
      close(fd);
    }
    free(rec);
  }
  p->armed = 0;
  p->fired = 1;
  return ENOSPC;
}

static void test_partial_write_then_rollback(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  partial_plan p = {1, 0};
  uint8_t val[300];
  const char *seg;
  uint64_t end;
  uint8_t *bytes;
  size_t n;
  memset(val, 'p', sizeof val);
  commit_keys(db, &m, 3);
  assert_ok(tkv_begin(db));
  assert_ok(tkv_put(db, "partial", 7, val, sizeof val));
  tkv_test_set_io_hook(partial_write_hook, &p);
  assert_tkv(TKV_IO, tkv_commit(db));
  tkv_test_set_io_hook(NULL, NULL);
  assert_true(p.fired);
  assert_ok(tkv_rollback(db));
  put_str(db, &m, "after", "x");
  close_ok(db);
  /* Past the data end: zeros or nothing. */
  seg = seg_path(f->dir, newest_seg(f->dir), ".seg");
  seg_records(seg, NULL, 0, &end);
  bytes = tu_read_file(seg, &n);
  assert_non_null(bytes);
  for(size_t i=(size_t)end; i<n; i++) assert_int_equal(bytes[i], 0);
  free(bytes);
  expect_store(f->dir, &m);
  model_clear(&m);
}

/* Tracks which files have writes no fdatasync covered yet, and whether
** the directory has names no directory fsync covered. */
typedef struct dirty_track {
  char path[64][4400];
  int dirty[64];
  int n;
  int dir_dirty;
} dirty_track;

static int track_slot(dirty_track *t, const char *path){
  for(int i=0; i<t->n; i++) if( !strcmp(t->path[i], path) ) return i;
  assert_true(t->n<64);
  snprintf(t->path[t->n], sizeof t->path[0], "%s", path);
  t->dirty[t->n] = 0;
  return t->n++;
}

static void track_io(const tkv_io_event *ev, void *ctx){
  dirty_track *t = ctx;
  const char *name = ev->path ? base_name(ev->path) : "";
  int seg = strstr(name, ".seg")!=NULL && !strstr(name, ".tmp");
  switch( ev->op ){
    case TKV_IO_OPEN:
      if( seg && (ev->flags & O_CREAT) ) t->dir_dirty = 1;
      break;
    case TKV_IO_WRITE:
      /* The sync area is written after a sync, by design: what it says
      ** is true whether or not the write lasts. */
      if( ev->off>=TKV_FILE_HDR && ev->off + ev->len<=TKV_SEG_DATA ) break;
      /* fall through */
    case TKV_IO_TRUNCATE: case TKV_IO_PREALLOC:
      if( seg ) t->dirty[track_slot(t, ev->path)] = 1;
      break;
    case TKV_IO_SYNC:
      if( seg ) t->dirty[track_slot(t, ev->path)] = 0;
      break;
    case TKV_IO_RENAME:
      if( strstr(base_name(ev->to), ".seg") ) t->dir_dirty = 1;
      break;
    case TKV_IO_UNLINK:
      if( seg ) t->dir_dirty = 1;
      break;
    case TKV_IO_DIRSYNC:
      t->dir_dirty = 0;
      break;
  }
}

static void assert_all_synced(const dirty_track *t, const char *when){
  for(int i=0; i<t->n; i++){
    if( t->dirty[i] ) fail_msg("%s: %s has unsynced writes", when, t->path[i]);
  }
  if( t->dir_dirty ) fail_msg("%s: the directory was not synced", when);
}

/*
** A7: with sync=normal and sync=off, tkv_sync() and tkv_close() are
** durability points for everything committed, across segment rotations:
** every segment written and the directory are synced when they return.
*/
static void test_sync_and_close_cover_rotations(void **state){
  fixture *f = *state;
  tkv_sync_mode modes[2] = { TKV_SYNC_NORMAL, TKV_SYNC_OFF };
  for(int k=0; k<2; k++){
    tkv_options o = store_options(modes[k], 4096, UINT64_MAX);
    dirty_track *t = calloc(1, sizeof *t);
    tkv_db *db;
    uint8_t val[1000];
    assert_non_null(t);
    tu_rmrf(f->dir);
    db = open_with(f->dir, &o);
    memset(val, 'a' + k, sizeof val);
    tkv_test_set_io_observer(track_io, t);
    for(int i=0; i<20; i++){
      char key[16];
      snprintf(key, sizeof key, "k%02d", i);
      assert_ok(tkv_put(db, key, strlen(key), val, sizeof val));
    }
    assert_true(t->n>=4);                    /* it rotated */
    assert_ok(tkv_sync(db));
    assert_all_synced(t, "after tkv_sync");
    for(int i=20; i<30; i++){
      char key[16];
      snprintf(key, sizeof key, "k%02d", i);
      assert_ok(tkv_put(db, key, strlen(key), val, sizeof val));
    }
    assert_ok(tkv_close(db));
    tkv_test_set_io_observer(NULL, NULL);
    assert_all_synced(t, "after tkv_close");
    free(t);
  }
}

/* Records, per path, whether a truncate came after the last sync. */
static void track_cut(const tkv_io_event *ev, void *ctx){
  int *cut_unsynced = ctx;
  if( !ev->path || !strstr(ev->path, ".seg") ) return;
  if( ev->op==TKV_IO_TRUNCATE ) *cut_unsynced = 1;
  if( ev->op==TKV_IO_SYNC ) *cut_unsynced = 0;
}

/*
** A13: the torn tail that open cuts off is cut durably: the truncate is
** synced before open returns (here the segment is full at reopen, so no
** later write would ever sync it).
*/
static void test_cut_tail_is_synced(void **state){
  fixture *f = *state;
  tkv_options big = store_options(TKV_SYNC_FULL, 1 << 20, UINT64_MAX);
  tkv_options small = store_options(TKV_SYNC_FULL, 4096, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &big);
  model m = {0};
  uint8_t junk[100];
  int cut_unsynced = 0;
  for(int i=0; i<40; i++){
    char k[16];
    snprintf(k, sizeof k, "key%03d", i);
    put_str(db, &m, k, "a value long enough to fill the segment quickly....");
  }
  close_ok(db);
  memset(junk, 0x77, sizeof junk);
  assert_int_equal(tu_append(seg_path(f->dir, newest_seg(f->dir), ".seg"),
                             junk, sizeof junk), 0);
  tkv_test_set_io_observer(track_cut, &cut_unsynced);
  db = open_with(f->dir, &small);
  tkv_test_set_io_observer(NULL, NULL);
  assert_false(cut_unsynced);
  put_str(db, &m, "after", "cut");
  close_ok(db);
  expect_store(f->dir, &m);
  model_clear(&m);
}

/* Write a format-2 segment file holding only its header. */
static void write_empty_segment(const char *dir, uint32_t id, uint32_t base,
                                uint32_t flags){
  uint8_t buf[TKV_SEG_DATA];
  tkv_file_hdr h;
  memset(buf, 0, sizeof buf);
  tkv_file_hdr_init(&h, TKV_MAGIC_SEG, id, base, flags);
  tkv_file_hdr_encode(&h, buf);
  assert_int_equal(tu_write_file(seg_path(dir, id, ".seg"), buf, sizeof buf), 0);
}

/*
** A8: segment ids never wrap.  A file named with id 4294967295 is refused
** at open; at the highest id tinkv may use, writes fail cleanly instead of
** going to segment 0.
*/
static void test_segment_ids_never_wrap(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  put_str(db, &m, "old", "kept");
  close_ok(db);
  write_empty_segment(f->dir, 0xffffffffu, 0xffffffffu, TKV_SEG_COMPACTED);
  assert_tkv(TKV_CORRUPT, tkv_open(f->dir, &o, &db));
  assert_true(msg_has(tkv_errmsg(), "out of range"));
  assert_int_equal(unlink(seg_path(f->dir, 0xffffffffu, ".seg")), 0);

  write_empty_segment(f->dir, TKV_SEG_ID_MAX, 1, TKV_SEG_COMPACTED);
  db = open_with(f->dir, &o);
  assert_tkv(TKV_TOOBIG, tkv_put(db, "new", 3, "x", 1));
  assert_store_is(db, &m);
  close_ok(db);
  assert_false(tu_exists(seg_path(f->dir, 0, ".seg")));
  expect_store(f->dir, &m);
  model_clear(&m);
}

/* Rebuild the hint of segment `id` in dir with its entries reordered by
** `perm` (n entries, -1 drops one), trailer and CRC made valid. */
static void craft_hint(const char *dir, unsigned id, const int *perm, int n){
  size_t size, pos = TKV_FILE_HDR, out = TKV_FILE_HDR;
  uint8_t *p = tu_read_file(seg_path(dir, id, ".hint"), &size);
  uint8_t *q = malloc(size + 64);
  size_t at[64], len[64];
  int count = 0, kept = 0;
  assert_non_null(p);
  assert_non_null(q);
  while( pos < size - TKV_HINT_TRAILER ){
    int type;
    uint32_t klen, off, vlen;
    tkv_hint_entry_decode(p + pos, &type, &klen, &off, &vlen);
    at[count] = pos;
    len[count] = TKV_HINT_ENTRY_HDR + klen;
    pos += len[count++];
  }
  assert_int_equal(count, n);
  memcpy(q, p, TKV_FILE_HDR);
  for(int i=0; i<n; i++){
    if( perm[i]<0 ) continue;
    memcpy(q + out, p + at[perm[i]], len[perm[i]]);
    out += len[perm[i]];
    kept++;
  }
  tkv_hint_trailer_encode(q, out, (uint64_t)kept,
                          tkv_get32(p + size - TKV_HINT_TRAILER + 8));
  assert_int_equal(tu_write_file(seg_path(dir, id, ".hint"), q,
                                 out + TKV_HINT_TRAILER), 0);
  free(p);
  free(q);
}

/*
** A16: a hint whose CRC is valid but whose entries do not match its
** segment's records (two puts of a key swapped, a tombstone dropped) is
** not trusted: open scans the segment and returns the true values.
*/
static void test_crafted_hint_not_trusted(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 4096, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  uint8_t pad[3000];
  unsigned first;
  static const int swap[6] = { 0, 2, 1, 3, 4, 5 };
  static const int drop[6] = { 0, 1, 2, -1, 4, 5 };
  put_str(db, &m, "gone", "x");
  put_str(db, &m, "k", "old");
  put_str(db, &m, "k", "new");
  del_str(db, &m, "gone");
  memset(pad, 'p', sizeof pad);
  assert_ok(tkv_put(db, "pad", 3, pad, sizeof pad));   /* rotate */
  assert_ok(tkv_put(db, "pad", 3, pad, sizeof pad));
  assert_ok(tkv_put(db, "pad", 3, pad, sizeof pad));
  model_put(&m, "pad", 3, pad, sizeof pad);
  close_ok(db);
  first = oldest_seg(f->dir);
  assert_true(tu_exists(seg_path(f->dir, first, ".hint")));
  crash_image(f->dir, f->copy);
  craft_hint(f->copy, first, swap, 6);
  expect_store(f->copy, &m);
  crash_image(f->dir, f->copy);
  craft_hint(f->copy, first, drop, 6);
  expect_store(f->copy, &m);
  model_clear(&m);
}

/*
** A15: open removes only temporary files of tinkv's own names; a foreign
** *.tmp file stays, untouched.
*/
static void test_foreign_tmp_files_kept(void **state){
  fixture *f = *state;
  tkv_db *db = open_store(f->dir);
  close_ok(db);
  assert_int_equal(tu_write_file(tu_path(f->dir, "notes.tmp"), "mine", 4), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "0000000007.seg.tmp"), "x", 1), 0);
  db = open_store(f->dir);
  close_ok(db);
  assert_true(tu_exists(tu_path(f->dir, "notes.tmp")));
  assert_false(tu_exists(tu_path(f->dir, "0000000007.seg.tmp")));
}

/*
** Store creation is crash-atomic: a directory holding only what an
** interrupted creation leaves (the lock file, a half-written identity
** file) opens with create as a new store.
*/
static void test_interrupted_creation(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 0, UINT64_MAX);
  tkv_db *db;
  model m = {0};
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "LOCK"), "", 0), 0);
  db = open_with(f->dir, &o);
  put_str(db, &m, "a", "b");
  close_ok(db);
  tu_rmrf(f->dir);
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "LOCK"), "123\n", 4), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "TINKV.tmp"), "tin", 3), 0);
  db = open_with(f->dir, &o);
  close_ok(db);
  /* A foreign file still makes it "not a store". */
  tu_rmrf(f->dir);
  assert_int_equal(mkdir(f->dir, 0755), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "LOCK"), "", 0), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "other"), "", 0), 0);
  assert_tkv(TKV_NOTSTORE, tkv_open(f->dir, &o, &db));
  model_clear(&m);
}

/* ------------------------------------------------ Hostile store contents. */

/* What a case may end in. */
#define ENDS_OPEN   1     /* open succeeds and the data is intact */
#define ENDS_ERROR  2     /* open fails with a clear error */

typedef struct hostile_case {
  const char *name;
  void (*plant)(const char *dir, const char *outside);
  int ends;               /* ENDS_* allowed (bit set) */
} hostile_case;

static void plant_fifo_hint(const char *dir, const char *outside){
  (void)outside;
  assert_int_equal(mkfifo(seg_path(dir, oldest_seg(dir), ".hint.x"), 0644), 0);
  assert_int_equal(rename(seg_path(dir, oldest_seg(dir), ".hint.x"),
                          seg_path(dir, oldest_seg(dir), ".hint")), 0);
}
static void plant_fifo_identity(const char *dir, const char *outside){
  (void)outside;
  assert_int_equal(unlink(tu_path(dir, "TINKV")), 0);
  assert_int_equal(mkfifo(tu_path(dir, "TINKV"), 0644), 0);
}
static void plant_fifo_segment(const char *dir, const char *outside){
  (void)outside;
  assert_int_equal(mkfifo(seg_path(dir, newest_seg(dir) + 1, ".seg"), 0644), 0);
}
static void plant_symlink_segment(const char *dir, const char *outside){
  const char *seg = seg_path(dir, newest_seg(dir), ".seg");
  char target[4400];
  snprintf(target, sizeof target, "%s/victim.seg", outside);
  assert_int_equal(tu_copy_file(seg, target), 0);
  assert_int_equal(unlink(seg), 0);
  assert_int_equal(symlink(target, seg), 0);
}
static void plant_symlink_hint(const char *dir, const char *outside){
  const char *hint = seg_path(dir, oldest_seg(dir), ".hint");
  assert_int_equal(unlink(hint), 0);
  assert_int_equal(symlink(tu_path(outside, "victim.txt"), hint), 0);
}
static void plant_symlink_hint_tmp(const char *dir, const char *outside){
  assert_int_equal(symlink(tu_path(outside, "victim.txt"),
                           seg_path(dir, newest_seg(dir), ".hint.tmp")), 0);
}
static void plant_wrapping_id(const char *dir, const char *outside){
  (void)outside;
  write_empty_segment(dir, 0xffffffffu, 0xffffffffu, TKV_SEG_COMPACTED);
}
static void plant_huge_sparse_hint(const char *dir, const char *outside){
  const char *hint = seg_path(dir, oldest_seg(dir), ".hint");
  (void)outside;
  assert_int_equal(tu_truncate(hint, 1ll << 40), 0);
}
static void plant_huge_sparse_segment(const char *dir, const char *outside){
  (void)outside;
  write_empty_segment(dir, newest_seg(dir) + 1, newest_seg(dir) + 1, 0);
  assert_int_equal(tu_truncate(seg_path(dir, newest_seg(dir), ".seg"),
                               1ll << 40), 0);
}
static void plant_foreign_files(const char *dir, const char *outside){
  (void)outside;
  assert_int_equal(tu_write_file(tu_path(dir, "README"), "hi", 2), 0);
  assert_int_equal(tu_write_file(tu_path(dir, "x.tmp"), "hi", 2), 0);
  assert_int_equal(tu_write_file(tu_path(dir, "12.seg"), "hi", 2), 0);
  assert_int_equal(mkdir(tu_path(dir, "0000000099.seg.d"), 0755), 0);
}
static void plant_directory_as_segment(const char *dir, const char *outside){
  (void)outside;
  assert_int_equal(mkdir(seg_path(dir, newest_seg(dir) + 3, ".seg"), 0755), 0);
}
static void plant_stale_hint_of_other_segment(const char *dir,
                                              const char *outside){
  (void)outside;
  assert_int_equal(tu_copy_file(seg_path(dir, oldest_seg(dir), ".hint"),
                                seg_path(dir, oldest_seg(dir) + 1, ".hint")), 0);
}

/*
** Each case plants something in a store (with a few segments and hints)
** and opens it in a child process with a time limit: the open must end
** (no hang), in a clear error or with exactly the committed data, and the
** file outside the store must be untouched.
*/
static void test_hostile_contents(void **state){
  static const hostile_case cases[] = {
    { "FIFO named like a hint",       plant_fifo_hint,        ENDS_OPEN },
    { "FIFO named TINKV",             plant_fifo_identity,    ENDS_ERROR },
    { "FIFO named like a segment",    plant_fifo_segment,     ENDS_ERROR },
    { "segment is a symlink",         plant_symlink_segment,  ENDS_ERROR },
    { "hint is a symlink",            plant_symlink_hint,     ENDS_OPEN },
    { "hint.tmp is a symlink",        plant_symlink_hint_tmp, ENDS_OPEN },
    { "segment id 4294967295",        plant_wrapping_id,      ENDS_ERROR },
    { "huge sparse hint",             plant_huge_sparse_hint, ENDS_OPEN },
    { "huge sparse newest segment",   plant_huge_sparse_segment,
                                      ENDS_OPEN|ENDS_ERROR },
    { "foreign files",                plant_foreign_files,    ENDS_OPEN },
    { "directory named like a segment", plant_directory_as_segment,
                                      ENDS_ERROR },
    { "hint copied to another segment", plant_stale_hint_of_other_segment,
                                      ENDS_OPEN },
  };
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 4096, UINT64_MAX);
  char outside[4400], base[4400];
  model m = {0};
  tkv_db *db;
  uint8_t val[700];
  snprintf(outside, sizeof outside, "%s/outside", f->root);
  snprintf(base, sizeof base, "%s/base", f->root);
  db = open_with(base, &o);
  for(int i=0; i<30; i++){
    char k[16];
    snprintf(k, sizeof k, "h%02d", i);
    memset(val, 'a' + i%26, sizeof val);
    assert_ok(tkv_put(db, k, strlen(k), val, sizeof val));
    model_put(&m, k, strlen(k), val, sizeof val);
    if( i%4==0 ) del_str(db, &m, k);
  }
  close_ok(db);
  for(size_t c=0; c<sizeof cases/sizeof cases[0]; c++){
    const hostile_case *hc = &cases[c];
    pid_t pid;
    int status = 0, waited = 0;
    size_t vn;
    char *victim;
    tu_rmrf(outside);
    assert_int_equal(mkdir(outside, 0755), 0);
    assert_int_equal(tu_write_file(tu_path(outside, "victim.txt"),
                                   "precious", 8), 0);
    crash_image(base, f->copy);
    hc->plant(f->copy, outside);
    pid = fork();
    assert_true(pid>=0);
    if( pid==0 ){
      char why[512];
      int rc;
      alarm(20);
      rc = tkv_open(f->copy, &o, &db);
      if( rc ) _exit(rc==TKV_NOMEM ? 90 : 10);
      if( store_diff(db, &m, why, sizeof why) ){
        fprintf(stderr, "%s: %s\n", hc->name, why);
        _exit(91);
      }
      _exit(tkv_close(db) ? 92 : 0);
    }
    while( waitpid(pid, &status, WNOHANG)==0 && waited<200 ){
      struct timespec ts = {0, 100000000};
      nanosleep(&ts, NULL);
      waited++;
    }
    if( waited>=200 ){
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fail_msg("%s: open did not finish in 20 s", hc->name);
    }
    if( !WIFEXITED(status) ){
      fail_msg("%s: open died with signal %d", hc->name,
               WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    }
    if( WEXITSTATUS(status)==0 ){
      if( !(hc->ends & ENDS_OPEN) ) fail_msg("%s: open succeeded", hc->name);
    }else if( WEXITSTATUS(status)==10 ){
      if( !(hc->ends & ENDS_ERROR) ) fail_msg("%s: open failed", hc->name);
    }else{
      fail_msg("%s: wrong data or failure (exit %d)", hc->name,
               WEXITSTATUS(status));
    }
    victim = tu_read_file(tu_path(outside, "victim.txt"), &vn);
    assert_non_null(victim);
    if( vn!=8 || memcmp(victim, "precious", 8) ){
      fail_msg("%s: a file outside the store was changed", hc->name);
    }
    free(victim);
  }
  model_clear(&m);
}

/* The order of segment unlinks and directory syncs during a compaction. */
typedef struct unlink_track {
  int unlinked_unsynced;   /* a segment unlink no directory sync covered */
  int violations;          /* a second one came while one was pending */
  int unlinks;
} unlink_track;

static void track_unlinks(const tkv_io_event *ev, void *ctx){
  unlink_track *t = ctx;
  if( ev->op==TKV_IO_UNLINK && strstr(base_name(ev->path), ".seg")
   && !strstr(ev->path, ".tmp") ){
    if( t->unlinked_unsynced ) t->violations++;
    t->unlinked_unsynced = 1;
    t->unlinks++;
  }
  if( ev->op==TKV_IO_DIRSYNC ) t->unlinked_unsynced = 0;
}

/*
** A14: compaction deletes the old segments oldest first and makes each
** removal durable before the next, so no order of directory updates can
** keep a tombstone's removal and lose the older value's.
*/
static void test_compaction_unlinks_are_ordered(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_FULL, 4096, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  unlink_track t;
  model m = {0};
  uint8_t val[1500];
  memset(val, 'x', sizeof val);
  assert_ok(tkv_put(db, "X", 1, val, sizeof val));
  for(int i=0; i<3; i++) assert_ok(tkv_put(db, "pad", 3, val, sizeof val));
  assert_ok(tkv_delete(db, "X", 1));
  for(int i=0; i<3; i++) assert_ok(tkv_put(db, "Y", 1, val, sizeof val));
  model_put(&m, "pad", 3, val, sizeof val);
  model_put(&m, "Y", 1, val, sizeof val);
  memset(&t, 0, sizeof t);
  tkv_test_set_io_observer(track_unlinks, &t);
  assert_ok(tkv_compact(db, NULL));
  tkv_test_set_io_observer(NULL, NULL);
  assert_true(t.unlinks>=3);
  assert_int_equal(t.violations, 0);
  assert_int_equal(t.unlinked_unsynced, 0);
  close_ok(db);
  expect_store(f->dir, &m);
  model_clear(&m);
}

/* Descriptors open in this process. */
static int open_fds(void){
  int n;
  char **names = tu_list_files("/proc/self/fd", "", &n);
  tu_free_names(names);
  return n;
}

/*
** A18: descriptors and maps are bounded per store, not one per segment.
** A child limited to 48 descriptors fills ~150 segments, compacts, closes,
** reopens and reads everything back.
*/
static void test_many_segments_few_descriptors(void **state){
  fixture *f = *state;
  pid_t pid = fork();
  int status = 0;
  assert_true(pid>=0);
  if( pid==0 ){
    tkv_options o = store_options(TKV_SYNC_NORMAL, 4096, UINT64_MAX);
    struct rlimit rl = { 48, 48 };
    tkv_db *db;
    uint8_t val[1500];
    int base, peak = 0;
    if( setrlimit(RLIMIT_NOFILE, &rl) ) _exit(20);
    base = open_fds();
    if( tkv_open(f->dir, &o, &db) ) _exit(21);
    for(int i=0; i<300; i++){
      char k[16];
      snprintf(k, sizeof k, "m%04d", i);
      memset(val, 'a' + i%26, sizeof val);
      if( tkv_put(db, k, strlen(k), val, sizeof val) ){
        fprintf(stderr, "put %d: %s\n", i, tkv_errmsg());
        _exit(22);
      }
      if( open_fds() - base > peak ) peak = open_fds() - base;
    }
    if( tkv_compact(db, NULL) ){ fprintf(stderr, "%s\n", tkv_errmsg()); _exit(23); }
    if( tkv_close(db) ) _exit(24);
    if( tkv_open(f->dir, &o, &db) ){ fprintf(stderr, "%s\n", tkv_errmsg()); _exit(25); }
    for(int i=0; i<300; i++){
      char k[16];
      void *v;
      size_t n;
      snprintf(k, sizeof k, "m%04d", i);
      if( tkv_get(db, k, strlen(k), &v, &n) || n!=sizeof val
       || ((uint8_t*)v)[0]!='a' + i%26 ){
        _exit(26);
      }
      tkv_free(v);
    }
    if( open_fds() - base > SEG_OPEN_MAX + 4 ) _exit(27);
    if( tkv_close(db) ) _exit(28);
    _exit(peak > SEG_OPEN_MAX + 4 ? 29 : 0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_true(tu_count_files(f->dir, ".seg") > 2*SEG_OPEN_MAX);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_hole_in_unsynced_transaction),
    CORE_TEST(test_torn_value_holding_a_record),
    CORE_TEST(test_torn_value_open_is_linear),
    CORE_TEST(test_damage_before_synced_end_is_corruption),
    CORE_TEST(test_partial_write_then_rollback),
    CORE_TEST(test_sync_and_close_cover_rotations),
    CORE_TEST(test_cut_tail_is_synced),
    CORE_TEST(test_segment_ids_never_wrap),
    CORE_TEST(test_crafted_hint_not_trusted),
    CORE_TEST(test_foreign_tmp_files_kept),
    CORE_TEST(test_interrupted_creation),
    CORE_TEST(test_hostile_contents),
    CORE_TEST(test_compaction_unlinks_are_ordered),
    CORE_TEST(test_many_segments_few_descriptors),
  };
  return run_core_tests(tests);
}
