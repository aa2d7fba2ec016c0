/*
** libFuzzer target: recovery from arbitrary directory contents, which
** covers record parsing (segment scans, torn tails) and hint parsing.
**
** The input is a list of chunks, each: kind (1 byte), file id (1 byte),
** length (2 bytes, little-endian), data.  The kinds (kind % 6):
**   0  a segment file NNNN.seg holding `data` as is;
**   1  a segment with a valid header (base = id, flags from data[0]) and
**      `data` after it;
**   2  a segment with a valid header whose body is records built from
**      `data` (type, key length, value length, bytes: see build_records),
**      each with a correct CRC, so the fuzzer reaches replay quickly;
**   3  a hint file NNNN.hint holding `data` as is;
**   4  a hint with a valid header, `data` as entries and a valid trailer
**      (entry count from the data, segment size of the segment written);
**   5  a file with another name (a .tmp file, the identity file).
** A valid identity file is written first.  The store is then opened; when
** that succeeds every key and value is read, a key is written, the store is
** compacted, closed and opened again.  Any outcome is fine except a crash,
** a sanitizer report, a leak, or a read that returns a value different from
** what a second read returns.
*/
#include "tinkv.h"
#include "format.h"
#include "crc32c.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static uint32_t last_seg_size[8];

/* Write a whole file into the store directory. */
static void put(const char *name, const void *p, size_t n){
  FILE *f = fopen(tu_path(dir, name), "wb");
  if( !f ) abort();
  if( n ) fwrite(p, 1, n, f);
  fclose(f);
}

/* A 32-byte header with a correct CRC, of format version 1 (whose records
** start right after it; opening version 1 stores is part of the contract). */
static void header(uint8_t *out, const char *magic, uint32_t id,
                   uint32_t base, uint32_t flags){
  tkv_file_hdr h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, magic, 8);
  h.version = TKV_FORMAT_OLDEST;     /* records right after the header */
  h.file_id = id;
  h.base = base;
  h.flags = flags;
  tkv_file_hdr_encode(&h, out);
}

/* Records with correct CRCs from a compact description: per record a type
** byte (1..6; 6 is no record type), a key length byte (0..15), a value length byte, then the
** bytes of key and value.  Returns the bytes written to out. */
static size_t build_records(const uint8_t *p, size_t n, uint8_t *out){
  size_t i = 0, o = 0;
  while( i + 3 <= n ){
    int type = 1 + p[i] % 6;
    uint32_t klen = p[i+1] % 16, vlen = p[i+2];
    i += 3;
    if( type==TKV_REC_COMMIT ){ klen = 0; vlen = 4; }
    if( type==TKV_REC_DEL || type==TKV_REC_TXDEL ) vlen = 0;   /* 6: no such type */
    if( i + klen + vlen > n ) break;
    if( type==TKV_REC_COMMIT ){
      uint8_t cnt[4] = { (uint8_t)(p[i] % 8), 0, 0, 0 };
      tkv_rec_encode(out + o, type, NULL, 0, cnt, 4, 0);
    }else{
      tkv_rec_encode(out + o, type, p + i, klen, p + i + klen, vlen, 0);
    }
    o += tkv_rec_size(klen, vlen);
    i += klen + vlen;
  }
  return o;
}

/* Write the files the input describes. */
static void make_files(const uint8_t *data, size_t size){
  static uint8_t buf[70000 * 2];
  uint8_t id_hdr[TKV_FILE_HDR];
  char name[64];
  header(id_hdr, TKV_MAGIC_ID, 0, 0, 0);
  put("TINKV", id_hdr, sizeof id_hdr);
  memset(last_seg_size, 0, sizeof last_seg_size);
  while( size>=4 ){
    int kind = data[0] % 6;
    uint32_t id = 1 + data[1] % 8;
    size_t len = (size_t)data[2] | ((size_t)data[3] << 8), n = 0;
    data += 4; size -= 4;
    if( len>size ) len = size;
    switch( kind ){
      case 0:
        snprintf(name, sizeof name, "%010u.seg", id);
        put(name, data, len);
        last_seg_size[id-1] = (uint32_t)len;
        break;
      case 1:
      case 2: {
        uint32_t flags = len ? data[0] & 1 : 0;
        uint32_t base = (len>1 && flags) ? 1 + data[1] % id : id;
        header(buf, TKV_MAGIC_SEG, id, base, flags);
        if( kind==1 ){ memcpy(buf + TKV_FILE_HDR, data, len); n = len; }
        else n = build_records(data, len, buf + TKV_FILE_HDR);
        snprintf(name, sizeof name, "%010u.seg", id);
        put(name, buf, TKV_FILE_HDR + n);
        last_seg_size[id-1] = (uint32_t)(TKV_FILE_HDR + n);
        break;
      }
      case 3:
        snprintf(name, sizeof name, "%010u.hint", id);
        put(name, data, len);
        break;
      case 4: {
        uint64_t count = 0;
        size_t pos = 0;
        header(buf, TKV_MAGIC_HINT, id, id, 0);
        memcpy(buf + TKV_FILE_HDR, data, len);
        while( pos + TKV_HINT_ENTRY_HDR <= len ){
          pos += TKV_HINT_ENTRY_HDR + (tkv_get32(data + pos) >> 8);
          count++;
        }
        n = TKV_FILE_HDR + len;
        tkv_put64(buf + n, count);
        tkv_put32(buf + n + 8, last_seg_size[id-1]);
        tkv_put32(buf + n + 12, tkv_crc32c(0, buf, n + 12));
        snprintf(name, sizeof name, "%010u.hint", id);
        put(name, buf, n + TKV_HINT_TRAILER);
        break;
      }
      default:
        snprintf(name, sizeof name, id%2 ? "%010u.seg.tmp" : "TINKV", id);
        put(name, data, len);
        break;
    }
    data += len; size -= len;
  }
}

/* Read every key twice through a cursor and tkv_get; they must agree. */
static void read_all(tkv_db *db){
  tkv_cursor *c = NULL;
  if( tkv_cursor_open(db, &c) ) return;
  tkv_cursor_seek(c, NULL, 0);
  while( tkv_cursor_valid(c) ){
    const void *k;
    size_t klen, vlen = 0, vlen2 = 0;
    void *v = NULL, *v2 = NULL;
    int rc1, rc2;
    tkv_cursor_key(c, &k, &klen);
    rc1 = tkv_cursor_value(c, &v, &vlen);
    rc2 = tkv_get(db, k, klen, &v2, &vlen2);
    if( rc1!=rc2 || (rc1==TKV_OK && (vlen!=vlen2 || memcmp(v, v2, vlen))) ){
      abort();
    }
    tkv_free(v);
    tkv_free(v2);
    if( tkv_cursor_next(c) ) break;
  }
  tkv_cursor_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size){
  tkv_options o;
  tkv_db *db;
  if( !dir[0] ){
    const char *base = access("/dev/shm", W_OK)==0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/tinkv-fuzz-recover-%d", base, (int)getpid());
  }
  tu_rmrf(dir);
  if( mkdir(dir, 0755) ) return 0;
  make_files(data, size);
  tkv_options_init(&o);
  o.max_file_size = 4096;
  o.sync = TKV_SYNC_OFF;
  if( tkv_open(dir, &o, &db)==TKV_OK ){
    read_all(db);
    tkv_put(db, "fuzz", 4, "value", 5);
    tkv_compact(db, NULL);
    read_all(db);
    tkv_close(db);
    if( tkv_open(dir, &o, &db)==TKV_OK ){
      void *v = NULL;
      size_t vlen;
      int rc = tkv_get(db, "fuzz", 4, &v, &vlen);
      if( rc==TKV_OK && (vlen!=5 || memcmp(v, "value", 5)) ) abort();
      tkv_free(v);
      read_all(db);
      tkv_close(db);
    }
  }
  return 0;
}
