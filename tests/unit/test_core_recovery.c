/*
** Tests of opening a store (core/recovery.c and core/FORMAT.md): segment
** rotation and hint files, the scan when a hint is missing, bad or meant
** for another segment, a torn tail of the last segment cut at every byte
** (committed data before the cut stays exact, nothing after it appears),
** garbage and zeros after the data, and damage that must be reported as
** TKV_CORRUPT naming the file and offset instead of being cut silently.
*/
#include "engine_check.h"

#include <unistd.h>

#define SMALL_SEG 4096

static tkv_options small_segments(void){
  return store_options(TKV_SYNC_NORMAL, SMALL_SEG, UINT64_MAX);
}

/* n distinct keys "key%04d" with values of 40..199 bytes; then every
** third overwritten and every seventh deleted. */
static void fill_store(tkv_db *db, model *m, int n, int churn){
  uint8_t val[200];
  char key[16];
  for(int i=0; i<n; i++){
    size_t vlen = 40 + (size_t)(i*37 % 160);
    snprintf(key, sizeof key, "key%04d", i);
    fill_value(val, vlen, (uint64_t)i);
    assert_ok(tkv_put(db, key, strlen(key), val, vlen));
    model_put(m, key, strlen(key), val, vlen);
  }
  if( !churn ) return;
  for(int i=0; i<n; i+=3){
    snprintf(key, sizeof key, "key%04d", i);
    fill_value(val, 60, (uint64_t)i + 100000);
    assert_ok(tkv_put(db, key, strlen(key), val, 60));
    model_put(m, key, strlen(key), val, 60);
  }
  for(int i=0; i<n; i+=7){
    snprintf(key, sizeof key, "key%04d", i);
    del_str(db, m, key);
  }
}

/* Open the crash image in f->copy and check it against m. */
static void check_image_only(fixture *f, const tkv_options *o,
                             const model *m){
  tkv_db *db = open_with(f->copy, o);
  assert_store_is(db, m);
  close_ok(db);
}

/* Open the crash image in f->copy, check it against m, then check that it
** takes writes and keeps them across another reopen. */
static void check_image(fixture *f, const tkv_options *o, const model *m){
  model more = {0};
  tkv_db *db = open_with(f->copy, o);
  assert_store_is(db, m);
  model_copy(&more, m);
  put_str(db, &more, "written-after-recovery", "yes");
  reopen_with(&db, f->copy, o);
  assert_store_is(db, &more);
  close_ok(db);
  model_clear(&more);
}

/* ------------------------------------------------------ Rotation, hints. */

/* Small segments: writes rotate into new files, every sealed one gets a
** hint, and a reopen (through the hints) gives the same data. */
static void test_rotation_and_hints(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  char **segs;
  int nseg;
  fill_store(db, &m, 300, 1);
  assert_store_is(db, &m);
  segs = tu_list_files(f->dir, ".seg", &nseg);
  assert_true(nseg>=5);
  assert_int_equal(tu_count_files(f->dir, ".hint"), nseg - 1);
  assert_int_equal(stats_of(db).files, nseg);
  /* A sealed segment stops at the first record that reaches the limit. */
  for(int i=0; i<nseg-1; i++){
    long long size = tu_file_size(tu_path(f->dir, segs[i]));
    assert_true(size>=SMALL_SEG && size<SMALL_SEG + 300);
  }
  tu_free_names(segs);
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  /* A second open of the reopened store (hints again) agrees. */
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* Without hint files the segments are scanned: same data, and the hints
** are written again. */
static void test_reopen_without_hints(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  char **hints;
  int nhint, nseg;
  fill_store(db, &m, 300, 1);
  close_ok(db);
  hints = tu_list_files(f->dir, ".hint", &nhint);
  assert_true(nhint>=4);
  for(int i=0; i<nhint; i++) unlink(tu_path(f->dir, hints[i]));
  tu_free_names(hints);
  assert_int_equal(tu_count_files(f->dir, ".hint"), 0);

  db = open_with(f->dir, &o);
  assert_store_is(db, &m);
  nseg = tu_count_files(f->dir, ".seg");
  assert_true(tu_count_files(f->dir, ".hint")>=nseg - 1);
  put_str(db, &m, "more", "data");
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* A damaged hint file is not trusted: open scans the segment instead and
** gives the same data, whatever byte of the hint is wrong. */
static void test_bad_hint_falls_back_to_scan(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  const char *hint;
  long long size;
  fill_store(db, &m, 300, 1);
  close_ok(db);
  hint = seg_path(f->dir, oldest_seg(f->dir), ".hint");
  size = tu_file_size(hint);
  assert_true(size > TKV_FILE_HDR + TKV_HINT_TRAILER + 20);
  {
    /* Header, first entry (type, key length, offset, value length, key),
    ** a middle entry, the trailer's count, segment size and CRC. */
    const long long offs[] = {
      0, 9, 20, 28, TKV_FILE_HDR, TKV_FILE_HDR + 1, TKV_FILE_HDR + 4,
      TKV_FILE_HDR + 8, TKV_FILE_HDR + 13, size/2, size - 16, size - 9,
      size - 5, size - 1,
    };
    for(size_t i=0; i<sizeof offs/sizeof offs[0]; i++){
      crash_image(f->dir, f->copy);
      hint = seg_path(f->copy, oldest_seg(f->copy), ".hint");
      assert_int_equal(tu_flip_byte(hint, offs[i], 0x41), 0);
      check_image(f, &o, &m);
    }
  }
  /* Cut short, empty, or a junk file. */
  crash_image(f->dir, f->copy);
  hint = seg_path(f->copy, oldest_seg(f->copy), ".hint");
  assert_int_equal(tu_truncate(hint, size - 3), 0);
  check_image(f, &o, &m);
  crash_image(f->dir, f->copy);
  hint = seg_path(f->copy, oldest_seg(f->copy), ".hint");
  assert_int_equal(tu_truncate(hint, 0), 0);
  check_image(f, &o, &m);
  crash_image(f->dir, f->copy);
  hint = seg_path(f->copy, oldest_seg(f->copy), ".hint");
  assert_int_equal(tu_write_file(hint, "not a hint file at all, nope", 28), 0);
  check_image(f, &o, &m);
  model_clear(&m);
}

/* The hint file of one segment put in place of another's is not used. */
static void test_hint_of_another_segment(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  unsigned first;
  fill_store(db, &m, 300, 0);
  close_ok(db);
  first = oldest_seg(f->dir);
  assert_true(tu_exists(seg_path(f->dir, first + 1, ".hint")));
  crash_image(f->dir, f->copy);
  assert_int_equal(tu_copy_file(seg_path(f->copy, first, ".hint"),
                                seg_path(f->copy, first + 1, ".hint")), 0);
  check_image(f, &o, &m);
  /* And the other way round. */
  crash_image(f->dir, f->copy);
  assert_int_equal(tu_copy_file(seg_path(f->copy, first + 1, ".hint"),
                                seg_path(f->copy, first, ".hint")), 0);
  check_image(f, &o, &m);
  model_clear(&m);
}

/* Leftover temporary files are removed at open, as are hints whose
** segment is gone; nothing else changes. */
static void test_leftover_files_removed(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  fill_store(db, &m, 100, 1);
  close_ok(db);
  assert_int_equal(tu_write_file(tu_path(f->dir, "0000000777.seg.tmp"),
                                 "partial", 7), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "0000000001.hint.tmp"),
                                 "partial", 7), 0);
  assert_int_equal(tu_write_file(tu_path(f->dir, "TINKV.tmp"), "x", 1), 0);
  assert_int_equal(tu_copy_file(seg_path(f->dir, 1, ".hint"),
                                seg_path(f->dir, 888, ".hint")), 0);
  db = open_with(f->dir, &o);
  assert_store_is(db, &m);
  assert_false(tu_exists(tu_path(f->dir, "0000000777.seg.tmp")));
  assert_false(tu_exists(tu_path(f->dir, "0000000001.hint.tmp")));
  assert_false(tu_exists(tu_path(f->dir, "TINKV.tmp")));
  assert_false(tu_exists(seg_path(f->dir, 888, ".hint")));
  close_ok(db);
  model_clear(&m);
}

/* ----------------------------------------------------------- Torn tails. */

#define MAX_STEPS 16

/*
** The last segment cut at every byte offset inside its last records (a
** crash while they were being written): after the cut, every operation
** whose commit ends at or before the cut is there with its exact value,
** nothing after it is, and the store then takes and keeps new writes.
** The tail mixes self-committing PUT and DEL records with a transaction
** (TXPUT, TXDEL, TXPUT, COMMIT).
*/
static void test_truncate_at_every_offset(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0}, steps[MAX_STEPS];
  uint64_t ends[MAX_STEPS], start;
  int nstep = 0;
  unsigned seg;
  memset(steps, 0, sizeof steps);

  fill_store(db, &m, 40, 1);            /* a few segments, then the tail */
  seg = newest_seg(f->dir);
  assert_true(seg>=2);
  seg_records(seg_path(f->dir, seg, ".seg"), NULL, 0, &start);
  assert_true(start > TKV_FILE_HDR);

#define STEP() do{ \
    seg_records(seg_path(f->dir, seg, ".seg"), NULL, 0, &ends[nstep]); \
    model_copy(&steps[nstep], &m); \
    nstep++; \
  }while(0)

  put_str(db, &m, "tail-a", "first value of a");
  STEP();
  del_str(db, &m, "key0001");
  STEP();
  assert_ok(tkv_begin(db));
  put_str(db, &m, "tail-b", "in the transaction");
  del_str(db, &m, "key0002");
  put_str(db, &m, "tail-a", "a, changed by the transaction");
  assert_ok(tkv_commit(db));
  STEP();
  put_str(db, &m, "tail-c", "last");
  STEP();
#undef STEP
  assert_int_equal(newest_seg(f->dir), seg);
  close_ok(db);

  for(uint64_t cut=start; cut<=ends[nstep-1]; cut++){
    const model *want = &steps[0];
    model before = {0};
    int j;
    /* The newest step whose records end at or before the cut. */
    for(j=nstep-1; j>=0 && ends[j]>cut; j--){}
    if( j<0 ){
      /* Before the first tail step: the state before the tail. */
      model_copy(&before, &steps[0]);
      model_del(&before, "tail-a", 6);
      want = &before;
    }else{
      want = &steps[j];
    }
    crash_image(f->dir, f->copy);
    /* The crash came while the tail was being written: only the data
    ** before it had been synced. */
    seg_set_durable(seg_path(f->copy, seg, ".seg"), start);
    assert_int_equal(tu_truncate(seg_path(f->copy, seg, ".seg"),
                                 (long long)cut), 0);
    /* Writes after the recovery, at a sample of the cuts and at every
    ** record boundary. */
    if( cut%5==0 || j<0 || ends[j]==cut ) check_image(f, &o, want);
    else check_image_only(f, &o, want);
    model_clear(&before);
  }
  for(int j=0; j<nstep; j++) model_clear(&steps[j]);
  model_clear(&m);
}

/* Data end of the newest segment. */
static uint64_t data_end(const char *dir){
  uint64_t end;
  seg_records(seg_path(dir, newest_seg(dir), ".seg"), NULL, 0, &end);
  return end;
}

/* Garbage after the last record (in the reserved space, after it, or with
** the reserve cut off) is a torn tail: cut, data intact. */
static void test_garbage_after_the_data(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  uint8_t junk[64];
  /* A plausible header whose record runs past the end of the file. */
  uint8_t runs_past[TKV_REC_HDR] = {1,2,3,4, TKV_REC_PUT, 5,0,0, 0,0,1,0};
  const char *seg;
  uint64_t end;
  fill_value(junk, sizeof junk, 4242);
  fill_store(db, &m, 60, 1);
  close_ok(db);
  end = data_end(f->dir);

  crash_image(f->dir, f->copy);
  seg = seg_path(f->copy, newest_seg(f->copy), ".seg");
  for(size_t i=0; i<sizeof junk; i++){
    assert_int_equal(tu_flip_byte(seg, (long long)(end + i), junk[i]), 0);
  }
  check_image(f, &o, &m);

  crash_image(f->dir, f->copy);
  seg = seg_path(f->copy, newest_seg(f->copy), ".seg");
  assert_int_equal(tu_append(seg, junk, sizeof junk), 0);
  check_image(f, &o, &m);

  crash_image(f->dir, f->copy);
  seg = seg_path(f->copy, newest_seg(f->copy), ".seg");
  assert_int_equal(tu_truncate(seg, (long long)end), 0);
  assert_int_equal(tu_append(seg, junk, 5), 0);
  check_image(f, &o, &m);

  crash_image(f->dir, f->copy);
  seg = seg_path(f->copy, newest_seg(f->copy), ".seg");
  assert_int_equal(tu_truncate(seg, (long long)end), 0);
  assert_int_equal(tu_append(seg, runs_past, sizeof runs_past), 0);
  assert_int_equal(tu_append(seg, junk, 20), 0);
  check_image(f, &o, &m);
  model_clear(&m);
}

/* Zeros after the last record (reserved space, a short zero run, a long
** one) are the end of the data. */
static void test_zero_tail(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  static const uint8_t zeros[8192];
  const char *seg;
  uint64_t end;
  fill_store(db, &m, 60, 1);
  close_ok(db);
  end = data_end(f->dir);
  for(int k=0; k<3; k++){
    size_t add = k==0 ? 0 : k==1 ? 5 : sizeof zeros;
    crash_image(f->dir, f->copy);
    seg = seg_path(f->copy, newest_seg(f->copy), ".seg");
    assert_int_equal(tu_truncate(seg, (long long)end), 0);
    assert_int_equal(tu_append(seg, zeros, add), 0);
    check_image(f, &o, &m);
  }
  model_clear(&m);
}

/* ------------------------------------------------------------- Damage. */

/* Offset of a byte inside the value of record r. */
static long long value_byte(const seg_rec *r, size_t klen){
  return (long long)(r->off + TKV_REC_HDR + klen + 2);
}

/* "offset N" for the message checks. */
static const char *offset_text(uint64_t off){
  static char buf[40];
  snprintf(buf, sizeof buf, "offset %llu", (unsigned long long)off);
  return buf;
}

/* A record that fails its checksum in the middle of a sealed segment that
** must be scanned is TKV_CORRUPT naming the file and the record's offset;
** the files are left as they were. */
static void test_corrupt_record_in_sealed_segment(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  seg_rec recs[64];
  const char *seg;
  unsigned first;
  long long size;
  int n, rc;
  fill_store(db, &m, 200, 0);
  close_ok(db);
  first = oldest_seg(f->dir);
  assert_true(newest_seg(f->dir) > first + 1);

  crash_image(f->dir, f->copy);
  seg = seg_path(f->copy, first, ".seg");
  n = seg_records(seg, recs, 64, NULL);
  assert_true(n>=5 && n<64);
  size = tu_file_size(seg);
  assert_int_equal(tu_flip_byte(seg, value_byte(&recs[n/2], 7), 0x10), 0);
  assert_int_equal(unlink(seg_path(f->copy, first, ".hint")), 0);
  db = NULL;
  rc = tkv_open(f->copy, &o, &db);
  assert_int_equal(rc, TKV_CORRUPT);
  assert_null(db);
  assert_true(msg_has(tkv_errmsg(), "0000000001.seg"));
  assert_true(msg_has(tkv_errmsg(), offset_text(recs[n/2].off)));
  assert_int_equal(tu_file_size(seg), size);
  /* A second try says the same. */
  assert_tkv(TKV_CORRUPT, tkv_open(f->copy, &o, &db));
  model_clear(&m);
}

/* With a good hint the damaged record is not read at open; reading its
** key is TKV_CORRUPT (never wrong data), the other keys are fine. */
static void test_corrupt_record_found_by_get(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  seg_rec recs[64];
  char key[16];
  void *val = NULL;
  size_t vlen = 0;
  unsigned first;
  int n;
  fill_store(db, &m, 200, 0);
  close_ok(db);
  first = oldest_seg(f->dir);
  n = seg_records(seg_path(f->dir, first, ".seg"), recs, 64, NULL);
  assert_true(n>=5);
  /* Record i of the first segment holds key%04d with i as the number. */
  assert_int_equal(tu_flip_byte(seg_path(f->dir, first, ".seg"),
                                value_byte(&recs[3], 7), 0x01), 0);
  db = open_with(f->dir, &o);
  snprintf(key, sizeof key, "key%04d", 3);
  assert_tkv(TKV_CORRUPT, tkv_get(db, key, strlen(key), &val, &vlen));
  assert_null(val);
  assert_true(msg_has(tkv_errmsg(), "0000000001.seg"));
  assert_true(msg_has(tkv_errmsg(), offset_text(recs[3].off)));
  expect_model_key(db, &m, "key0004");
  close_ok(db);
  model_clear(&m);
}

/* A value byte changed on disk while the store is open: tkv_get and the
** cursor report TKV_CORRUPT, compaction refuses rather than copy it, and
** nothing else is lost.  Small and large records take different read
** paths; both are checked. */
static void test_corrupt_value_read_while_open(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  uint8_t *big = malloc(20000);
  seg_rec recs[64];
  tkv_cursor *cur;
  void *val = NULL;
  size_t vlen;
  unsigned seg;
  int n;
  assert_non_null(big);
  fill_value(big, 20000, 5);
  assert_ok(tkv_put(db, "big", 3, big, 20000));
  model_put(&m, "big", 3, big, 20000);
  fill_store(db, &m, 100, 0);
  seg = oldest_seg(f->dir);
  n = seg_records(seg_path(f->dir, seg, ".seg"), recs, 64, NULL);
  assert_true(n>=1);
  assert_int_equal(recs[0].size, tkv_rec_size(3, 20000));
  expect_val(db, "big", 3, big, 20000);

  assert_int_equal(tu_flip_byte(seg_path(f->dir, seg, ".seg"),
                                value_byte(&recs[0], 3) + 15000, 0x80), 0);
  assert_tkv(TKV_CORRUPT, tkv_get(db, "big", 3, &val, &vlen));
  assert_true(msg_has(tkv_errmsg(), "0000000001.seg"));
  assert_true(msg_has(tkv_errmsg(), offset_text(recs[0].off)));
  assert_ok(tkv_cursor_open(db, &cur));
  assert_ok(tkv_cursor_seek(cur, "big", 3));
  assert_tkv(TKV_CORRUPT, tkv_cursor_value(cur, &val, &vlen));
  tkv_cursor_close(cur);

  /* A small record of a later segment: a value byte, then a key byte. */
  n = seg_records(seg_path(f->dir, seg + 1, ".seg"), recs, 64, NULL);
  assert_true(n>=3);
  assert_int_equal(tu_flip_byte(seg_path(f->dir, seg + 1, ".seg"),
                                value_byte(&recs[1], 7), 0x04), 0);
  assert_int_equal(tu_flip_byte(seg_path(f->dir, seg + 1, ".seg"),
                                (long long)recs[2].off + TKV_REC_HDR + 4,
                                0x04), 0);
  {
    int corrupt = 0;
    for(size_t i=0; i<m.n; i++){
      int rc = tkv_get(db, m.v[i].key, m.v[i].klen, &val, &vlen);
      if( rc==TKV_CORRUPT ){
        corrupt++;
        continue;
      }
      assert_int_equal(rc, TKV_OK);
      assert_int_equal(vlen, m.v[i].vlen);
      assert_memory_equal(val, m.v[i].val, vlen);
      tkv_free(val);
    }
    assert_int_equal(corrupt, 3);
  }
  /* Compaction goes on past the damage: it reports it (file, offset),
  ** never copies it, and every damaged value still reads as corrupt. */
  assert_ok(tkv_compact(db, NULL));
  {
    tkv_stats st;
    int corrupt = 0;
    assert_ok(tkv_stats_get(db, &st));
    assert_true(st.merge_damaged >= 2);
    assert_true(msg_has(st.merge_note, ".seg at offset "));
    for(size_t i=0; i<m.n; i++){
      int rc = tkv_get(db, m.v[i].key, m.v[i].klen, &val, &vlen);
      if( rc==TKV_CORRUPT ){
        corrupt++;
        continue;
      }
      assert_int_equal(rc, TKV_OK);
      assert_int_equal(vlen, m.v[i].vlen);
      assert_memory_equal(val, m.v[i].val, vlen);
      tkv_free(val);
    }
    assert_int_equal(corrupt, 3);
  }
  expect_model_key(db, &m, "key0050");
  close_ok(db);
  free(big);
  model_clear(&m);
}

/* In the last segment, a bad record with valid records after it is
** damage, not a torn tail: TKV_CORRUPT, and the file is not cut. */
static void test_corrupt_record_in_last_segment(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  seg_rec recs[128];
  const char *seg;
  size_t before_n, after_n;
  uint8_t *before, *after;
  int n, rc;
  fill_store(db, &m, 100, 0);
  close_ok(db);
  assert_int_equal(tu_count_files(f->dir, ".seg"), 1);
  for(int variant=0; variant<3; variant++){
    crash_image(f->dir, f->copy);
    seg = seg_path(f->copy, newest_seg(f->copy), ".seg");
    n = seg_records(seg, recs, 128, NULL);
    assert_int_equal(n, 100);
    if( variant==0 ){         /* a value byte */
      assert_int_equal(tu_flip_byte(seg, value_byte(&recs[50], 7), 1), 0);
    }else if( variant==1 ){   /* the checksum */
      assert_int_equal(tu_flip_byte(seg, (long long)recs[50].off, 1), 0);
    }else{                    /* the value length: the record runs long */
      assert_int_equal(tu_flip_byte(seg, (long long)recs[50].off + 9, 1), 0);
    }
    before = tu_read_file(seg, &before_n);
    db = NULL;
    rc = tkv_open(f->copy, &o, &db);
    if( rc!=TKV_CORRUPT ){
      fail_msg("variant %d: tkv_open gave %s (%s), expected corrupt", variant,
               tkv_strerror(rc), tkv_errmsg());
    }
    assert_true(msg_has(tkv_errmsg(), "0000000001.seg"));
    assert_true(msg_has(tkv_errmsg(), offset_text(recs[50].off)));
    after = tu_read_file(seg, &after_n);
    assert_int_equal(after_n, before_n);
    assert_memory_equal(after, before, before_n);
    free(before);
    free(after);
  }
  model_clear(&m);
}

/* A damaged, short or empty identity file is TKV_CORRUPT (naming it), with
** or without create: never "not a store", never made anew. */
static void test_bad_identity_file(void **state){
  fixture *f = *state;
  tkv_options o = store_options(TKV_SYNC_NORMAL, 0, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  fill_store(db, &m, 20, 0);
  close_ok(db);
  for(int variant=0; variant<5; variant++){
    const char *id;
    crash_image(f->dir, f->copy);
    id = tu_path(f->copy, "TINKV");
    switch( variant ){
      case 0: assert_int_equal(tu_flip_byte(id, 2, 0x20), 0); break;
      case 1: assert_int_equal(tu_flip_byte(id, 30, 0x01), 0); break;
      case 2: assert_int_equal(tu_flip_byte(id, 8, 0x01), 0); break;
      case 3: assert_int_equal(tu_truncate(id, 10), 0); break;
      case 4: assert_int_equal(tu_truncate(id, 0), 0); break;
    }
    db = NULL;
    o.create = 1;
    assert_tkv(TKV_CORRUPT, tkv_open(f->copy, &o, &db));
    assert_null(db);
    assert_true(msg_has(tkv_errmsg(), "TINKV"));
    o.create = 0;
    assert_tkv(TKV_CORRUPT, tkv_open(f->copy, &o, &db));
    assert_false(tkv_is_store(f->copy));
    assert_true(tu_exists(seg_path(f->copy, 1, ".seg")));
  }
  model_clear(&m);
}

/* A segment whose header fails its checks is TKV_CORRUPT naming the file
** and offset 0, old or newest; a segment renamed to another id too. */
static void test_bad_segment_header(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  unsigned first, last;
  fill_store(db, &m, 100, 1);
  close_ok(db);
  first = oldest_seg(f->dir);
  last = newest_seg(f->dir);
  assert_true(last > first + 1);
  for(int variant=0; variant<5; variant++){
    const char *seg;
    unsigned id = variant<3 ? first : last;
    char name[40];
    crash_image(f->dir, f->copy);
    seg = seg_path(f->copy, id, ".seg");
    switch( variant ){
      case 0: assert_int_equal(tu_flip_byte(seg, 0, 0x01), 0); break;
      case 1: assert_int_equal(tu_flip_byte(seg, 16, 0x01), 0); break;
      case 2: assert_int_equal(tu_flip_byte(seg, 29, 0x01), 0); break;
      case 3: assert_int_equal(tu_flip_byte(seg, 3, 0x01), 0); break;
      case 4: assert_int_equal(tu_flip_byte(seg, 8, 0x01), 0); break;
    }
    db = NULL;
    assert_tkv(TKV_CORRUPT, tkv_open(f->copy, &o, &db));
    snprintf(name, sizeof name, "%010u.seg", id);
    assert_true(msg_has(tkv_errmsg(), name));
    assert_true(msg_has(tkv_errmsg(), "offset 0"));
  }
  /* A segment file under another segment's name. */
  crash_image(f->dir, f->copy);
  assert_int_equal(rename(seg_path(f->copy, first, ".seg"),
                          seg_path(f->copy, last + 5, ".seg")), 0);
  assert_tkv(TKV_CORRUPT, tkv_open(f->copy, &o, &db));
  model_clear(&m);
}

/* A newest segment that is empty or shorter than its header (a crash
** right after it was created) is dropped at open; the data is intact. */
static void test_newest_segment_without_header(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  static const uint8_t zeros[TKV_FILE_HDR];
  unsigned last;
  fill_store(db, &m, 100, 1);
  close_ok(db);
  last = newest_seg(f->dir);
  for(int variant=0; variant<3; variant++){
    const char *seg;
    crash_image(f->dir, f->copy);
    seg = seg_path(f->copy, last + 1, ".seg");
    if( variant==0 ) assert_int_equal(tu_write_file(seg, "", 0), 0);
    if( variant==1 ) assert_int_equal(tu_write_file(seg, "tinkvSEG", 8), 0);
    if( variant==2 ) assert_int_equal(tu_write_file(seg, zeros, 32), 0);
    check_image(f, &o, &m);
  }
  model_clear(&m);
}

/* A newest segment whose header was zeroed while records follow it is not
** a segment that was never written: dropping it would lose committed data
** without a word, so open must report it. */
static void test_zeroed_header_with_records(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model m = {0};
  static const uint8_t zeros[TKV_FILE_HDR];
  const char *seg;
  uint8_t *p;
  size_t n;
  int rc;
  fill_store(db, &m, 100, 1);
  close_ok(db);
  crash_image(f->dir, f->copy);
  seg = seg_path(f->copy, newest_seg(f->copy), ".seg");
  assert_true(seg_records(seg, NULL, 0, NULL) > 0);
  p = tu_read_file(seg, &n);
  assert_non_null(p);
  memcpy(p, zeros, sizeof zeros);
  assert_int_equal(tu_write_file(seg, p, n), 0);
  free(p);
  db = NULL;
  rc = tkv_open(f->copy, &o, &db);
  if( rc==TKV_OK ){
    char why[600];
    int same = store_diff(db, &m, why, sizeof why)==0;
    tkv_close(db);
    if( !same ) fail_msg("open dropped committed records silently: %s", why);
  }else{
    assert_int_equal(rc, TKV_CORRUPT);
    assert_true(tu_exists(seg));
  }
  model_clear(&m);
}

/* ------------------------------------------------ Options across opens. */

/* The segment size may change between opens, both ways; the data stays
** and new writes go on. */
static void test_reopen_with_other_segment_size(void **state){
  fixture *f = *state;
  tkv_options small = small_segments();
  tkv_options large = store_options(TKV_SYNC_NORMAL, 1u << 20, UINT64_MAX);
  tkv_db *db = open_with(f->dir, &large);
  model m = {0};
  fill_store(db, &m, 100, 1);
  reopen_with(&db, f->dir, &small);
  assert_store_is(db, &m);
  put_str(db, &m, "written", "with small segments");
  fill_store(db, &m, 40, 0);
  reopen_with(&db, f->dir, &large);
  assert_store_is(db, &m);
  put_str(db, &m, "written", "with large segments");
  reopen_with(&db, f->dir, &small);
  assert_store_is(db, &m);
  close_ok(db);
  model_clear(&m);
}

/* ------------------------------------------- Replay order in a segment. */

/* The state of the keys of an order test: value (as its seed), present,
** expiry time. */
typedef struct order_key {
  int live;
  uint64_t seed;
  uint64_t expire;
} order_key;

/* The store holds exactly keys[0..n) as ks says, expiry times included,
** and its counts and live bytes are what m and the first open said. */
static void check_order_keys(tkv_db *db, const model *m, const order_key *ks,
                             int n, const tkv_stats *want){
  tkv_stats st = stats_of(db);
  assert_store_is(db, m);
  for(int i=0; i<n; i++){
    char key[16];
    uint64_t at = 0;
    snprintf(key, sizeof key, "o%05d", i);
    if( !ks[i].live ) continue;
    assert_ok(tkv_expire_get(db, key, strlen(key), &at));
    assert_int_equal(at, ks[i].expire);
  }
  assert_int_equal(st.keys, want->keys);
  assert_int_equal(st.expires, want->expires);
  assert_int_equal(st.live_bytes, want->live_bytes);
  assert_int_equal(st.stale_bytes, want->stale_bytes);
}

/* Open applies a segment's records sorted by key (recovery.c, "loading in
** key order"): records of one key written many times, deleted and written
** again, with and without expiry times, interleaved with other keys, in
** one segment of some 20,000 records, must come out as written, whether
** the segment is scanned (the active one) or loaded from its hint. */
static void test_replay_order_within_segment(void **state){
  enum { NKEYS = 3000, NOPS = 20000 };
  fixture *f = *state;
  tkv_options big = store_options(TKV_SYNC_NORMAL, 64u << 20, UINT64_MAX);
  tkv_options small = small_segments();
  tkv_db *db = open_with(f->dir, &big);
  order_key *ks = calloc(NKEYS, sizeof *ks);
  uint64_t rs = 31, far = 4102444800000ull;    /* 2100-01-01 */
  tkv_stats want;
  model m = {0};
  assert_non_null(ks);
  for(int op=0; op<NOPS; op++){
    char key[16];
    uint8_t val[64];
    /* A few hot keys written again and again, the rest now and then. */
    int i = (int)(tu_rand(&rs)%4==0 ? tu_rand(&rs)%8 : tu_rand(&rs)%NKEYS);
    unsigned what = (unsigned)(tu_rand(&rs)%10);
    size_t vlen = 1 + (size_t)(tu_rand(&rs)%60);
    snprintf(key, sizeof key, "o%05d", i);
    if( op%500==0 ) assert_ok(tkv_begin(db));
    if( what<2 && ks[i].live ){
      assert_ok(tkv_delete(db, key, strlen(key)));
      model_del(&m, key, strlen(key));
      ks[i].live = 0;
    }else{
      uint64_t at = what<5 ? far + (uint64_t)op : 0;
      fill_value(val, vlen, (uint64_t)op);
      assert_ok(tkv_write_expire(db, key, strlen(key), val, vlen, 0, at,
                                 NULL));
      model_put(&m, key, strlen(key), val, vlen);
      ks[i].live = 1;
      ks[i].seed = (uint64_t)op;
      ks[i].expire = at;
    }
    if( op%500==499 ) assert_ok(tkv_commit(db));
  }
  want = stats_of(db);
  assert_int_equal(tu_count_files(f->dir, ".seg"), 1);
  /* The active segment, scanned. */
  reopen_with(&db, f->dir, &big);
  check_order_keys(db, &m, ks, NKEYS, &want);
  /* Sealed at this open (it passes the small size) and its hint written;
  ** then loaded from the hint. */
  reopen_with(&db, f->dir, &small);
  check_order_keys(db, &m, ks, NKEYS, &want);
  assert_true(tu_count_files(f->dir, ".hint")>=1);
  reopen_with(&db, f->dir, &small);
  check_order_keys(db, &m, ks, NKEYS, &want);
  close_ok(db);
  free(ks);
  model_clear(&m);
}

/* What each sync mode promises about a crash of the process: with normal
** (and full) a commit is in the files when it returns; with off it may
** wait in the buffer until tkv_sync, which puts it there. */
static void test_sync_modes_and_crash_images(void **state){
  fixture *f = *state;
  static const tkv_sync_mode modes[] = {
    TKV_SYNC_FULL, TKV_SYNC_NORMAL, TKV_SYNC_OFF,
  };
  for(size_t i=0; i<sizeof modes/sizeof modes[0]; i++){
    tkv_options o = store_options(modes[i], 0, UINT64_MAX);
    tkv_db *db, *img;
    model m = {0};
    tu_rmrf(f->dir);
    db = open_with(f->dir, &o);
    put_str(db, &m, "single", "put");
    assert_ok(tkv_begin(db));
    put_str(db, &m, "in", "a transaction");
    assert_ok(tkv_commit(db));
    if( modes[i]!=TKV_SYNC_OFF ){
      crash_image(f->dir, f->copy);
      img = open_with(f->copy, &o);
      assert_store_is(img, &m);
      close_ok(img);
    }
    assert_ok(tkv_sync(db));
    crash_image(f->dir, f->copy);
    img = open_with(f->copy, &o);
    assert_store_is(img, &m);
    close_ok(img);
    put_str(db, &m, "before", "close");
    close_ok(db);
    db = open_with(f->dir, &o);
    assert_store_is(db, &m);
    close_ok(db);
    model_clear(&m);
  }
}

/* ---------------------------------------------------- Random crashes. */

/*
** A random run of writes, transactions (with savepoints, rollbacks to
** them, whole rollbacks), compactions and reopens on small segments, with
** a crash image taken every few steps, inside transactions too.  With
** sync=normal every commit has reached the OS when it returns, so each
** image must open with exactly the committed state of that moment.
*/
static void test_random_crash_images(void **state){
  fixture *f = *state;
  tkv_options o = small_segments();
  tkv_db *db = open_with(f->dir, &o);
  model committed = {0}, pending = {0}, saved = {0};
  uint8_t *val = malloc(1u << 21);
  uint64_t s = 2024;
  int in_txn = 0, has_sp = 0, images = 0;
  assert_non_null(val);
  for(int step=0; step<500; step++){
    model *view = in_txn ? &pending : &committed;
    unsigned r = (unsigned)(tu_rand(&s) % 100);
    char key[16];
    snprintf(key, sizeof key, "k%03d", (int)(tu_rand(&s) % 120));
    if( r<50 ){
      size_t vlen = tu_rand(&s) % 400 == 0 ? (1u << 20) + 100
                                              : 1 + (size_t)(tu_rand(&s) % 300);
      fill_value(val, vlen, tu_rand(&s));
      assert_ok(tkv_put(db, key, strlen(key), val, vlen));
      model_put(view, key, strlen(key), val, vlen);
    }else if( r<65 ){
      int rc = tkv_delete(db, key, strlen(key));
      if( model_del(view, key, strlen(key)) ) assert_int_equal(rc, TKV_OK);
      else assert_int_equal(rc, TKV_NOTFOUND);
    }else if( r<72 && !in_txn ){
      assert_ok(tkv_begin(db));
      model_copy(&pending, &committed);
      in_txn = 1;
      has_sp = 0;
    }else if( r<76 && in_txn ){
      assert_ok(tkv_savepoint(db, 0));
      model_copy(&saved, &pending);
      has_sp = 1;
    }else if( r<79 && in_txn && has_sp ){
      assert_ok(tkv_rollback_to(db, 0));
      model_copy(&pending, &saved);
    }else if( r<88 && in_txn ){
      assert_ok(tkv_commit(db));
      model_copy(&committed, &pending);
      in_txn = 0;
    }else if( r<91 && in_txn ){
      assert_ok(tkv_rollback(db));
      in_txn = 0;
    }else if( r<94 && !in_txn ){
      assert_ok(tkv_compact(db, NULL));
    }else if( r<96 && !in_txn ){
      reopen_with(&db, f->dir, &o);
    }
    if( step%15==14 ){
      tkv_db *img;
      char why[600];
      crash_image(f->dir, f->copy);
      img = open_with(f->copy, &o);
      if( store_diff(img, &committed, why, sizeof why) ){
        fail_msg("crash image after step %d%s: %s", step,
                 in_txn ? " (inside a transaction)" : "", why);
      }
      close_ok(img);
      images++;
    }
  }
  if( in_txn ){
    assert_ok(tkv_commit(db));
    model_copy(&committed, &pending);
  }
  reopen_with(&db, f->dir, &o);
  assert_store_is(db, &committed);
  close_ok(db);
  assert_true(images>=30);
  free(val);
  model_clear(&committed);
  model_clear(&pending);
  model_clear(&saved);
}

int main(void){
  const struct CMUnitTest tests[] = {
    CORE_TEST(test_rotation_and_hints),
    CORE_TEST(test_reopen_without_hints),
    CORE_TEST(test_bad_hint_falls_back_to_scan),
    CORE_TEST(test_hint_of_another_segment),
    CORE_TEST(test_leftover_files_removed),
    CORE_TEST(test_truncate_at_every_offset),
    CORE_TEST(test_garbage_after_the_data),
    CORE_TEST(test_zero_tail),
    CORE_TEST(test_corrupt_record_in_sealed_segment),
    CORE_TEST(test_corrupt_record_found_by_get),
    CORE_TEST(test_corrupt_value_read_while_open),
    CORE_TEST(test_corrupt_record_in_last_segment),
    CORE_TEST(test_bad_identity_file),
    CORE_TEST(test_bad_segment_header),
    CORE_TEST(test_newest_segment_without_header),
    CORE_TEST(test_zeroed_header_with_records),
    CORE_TEST(test_reopen_with_other_segment_size),
    CORE_TEST(test_replay_order_within_segment),
    CORE_TEST(test_sync_modes_and_crash_images),
    CORE_TEST(test_random_crash_images),
  };
  return run_core_tests(tests);
}
