/*
** Hint files: for a sealed segment, the list of its committed records
** without their values, so that open can rebuild the keydir without reading
** every value.  A hint is only ever a shortcut: open uses it when it checks
** out against its segment, and otherwise scans the segment.  The byte
** layout is format.c's; this module decides when a hint is written, how it
** is made whole-or-absent, and when one is trusted.
*/
#include "engine.h"
#include "err.h"
#include "io.h"
#include "mem.h"

#include <fcntl.h>
#include <stdint.h>
#include <string.h>

typedef struct hint_buf {
  uint8_t *p;
  size_t len, cap;
  uint64_t count;
} hint_buf;

/* Make room for n more bytes. */
static int hint_grow(hint_buf *hb, size_t n){
  size_t cap = hb->cap ? hb->cap : 65536;
  uint8_t *p;
  if( hb->len + n <= hb->cap ) return TKV_OK;
  while( cap < hb->len + n ) cap *= 2;
  p = tkv_mem_realloc(hb->p, cap);
  if( !p ) return tkv_err_nomem();
  hb->p = p;
  hb->cap = cap;
  return TKV_OK;
}

static int hint_add(void *ctx, int type, const uint8_t *key, uint32_t klen,
                    uint32_t off, uint32_t vlen, const uint8_t *val,
                    uint64_t expire){
  hint_buf *hb = ctx;
  size_t n = (size_t)tkv_hint_entry_size(klen, vlen);
  int rc;
  (void)val;
  rc = hint_grow(hb, n);
  if( rc ) return rc;
  tkv_hint_entry_encode(hb->p + hb->len, type, klen, off, vlen);
  memcpy(hb->p + hb->len + TKV_HINT_ENTRY_HDR, key, klen);
  if( tkv_vlen_expires(vlen) ){
    tkv_rec_expire_encode(hb->p + hb->len + TKV_HINT_ENTRY_HDR + klen, expire);
  }
  hb->len += n;
  hb->count++;
  return TKV_OK;
}

/*
** Write the hint file of sealed segment s (through a temporary name and a
** rename, so that a hint file is whole or absent).  Hints only speed up
** opening: a missing or bad one makes open scan the segment.
*/
int hint_write(tkv_engine *e, tkv_segment *s){
  char path[4096], tmp[4096];
  hint_buf hb;
  tkv_file_hdr h;
  seg_scan_result r;
  int fd = -1, rc;
  memset(&hb, 0, sizeof hb);
  rc = seg_name(path, sizeof path, e->dir, s->id, TKV_SUFFIX_HINT);
  if( !rc ) rc = seg_name(tmp, sizeof tmp, e->dir, s->id, TKV_SUFFIX_HINT_TMP);
  if( rc ) return rc;
  rc = hint_grow(&hb, TKV_FILE_HDR);
  if( rc ) goto done;
  hb.len = TKV_FILE_HDR;
  rc = seg_scan(s, s->end, hint_add, &hb, &r);
  if( !rc && r.stop!=s->end ){
    rc = seg_corrupt(s, r.stop, "segment does not scan cleanly");
  }
  if( !rc ) rc = hint_grow(&hb, TKV_HINT_TRAILER);
  if( rc ) goto done;
  tkv_file_hdr_init(&h, TKV_MAGIC_HINT, s->id, s->base, s->flags);
  tkv_file_hdr_encode(&h, hb.p);
  tkv_hint_trailer_encode(hb.p, hb.len, hb.count, (uint32_t)s->end);
  hb.len += TKV_HINT_TRAILER;
  rc = tkv_io_create(tmp, O_WRONLY, &fd);
  if( !rc ) rc = tkv_io_pwrite(fd, tmp, hb.p, hb.len, 0);
  if( !rc && e->opts.sync==TKV_SYNC_FULL ) rc = tkv_io_sync(fd, tmp);
  tkv_io_close(fd);
  if( !rc ) rc = tkv_io_rename(tmp, path);
  if( rc ) tkv_io_unlink(tmp);
  else{
    s->hint_bytes = hb.len;
    atomic_fetch_add(&e->bytes_written, hb.len);
  }
done:
  tkv_mem_free(hb.p);
  return rc;
}

/* Read a whole file of at most `limit` bytes into a new buffer of *psize
** + 1 bytes, to free with tkv_mem_free_big (a hint of a million keys is
** some 15 MB, read once at open). */
static int read_file(const char *path, uint64_t limit, uint8_t **pbuf,
                     uint64_t *psize){
  int fd, rc;
  uint64_t size;
  uint8_t *buf;
  rc = tkv_io_open_regular(path, O_RDONLY, &fd);
  if( rc ) return rc;
  rc = tkv_io_size(fd, path, &size);
  if( !rc && (size>SIZE_MAX/2 || size>limit) ){
    rc = tkv_err(TKV_CORRUPT, "%s: too large", path);
  }
  buf = rc ? NULL : tkv_mem_alloc_big((size_t)size + 1);
  if( !rc && !buf ) rc = tkv_err_nomem();
  if( !rc ) rc = tkv_io_pread(fd, path, buf, (size_t)size, 0, NULL);
  tkv_io_close(fd);
  if( rc ){ tkv_mem_free_big(buf, (size_t)size + 1); return rc; }
  *pbuf = buf;
  *psize = size;
  return TKV_OK;
}

/* Bytes [off, off+n) of segment s: from its map, else read into *pbuf
** (grown as needed).  NULL if they cannot be had. */
static const uint8_t *seg_bytes(const tkv_segment *s, uint64_t off, size_t n,
                                uint8_t **pbuf, size_t *pcap){
  if( s->map && off + n <= s->map_len ) return s->map + off;
  if( n>*pcap ){
    uint8_t *p = tkv_mem_realloc(*pbuf, n);
    if( !p ) return NULL;
    *pbuf = p;
    *pcap = n;
  }
  if( tkv_io_pread(s->fd, s->path, *pbuf, n, off, NULL) ) return NULL;
  return *pbuf;
}

/*
** Check that the hint's entries are exactly the committed records of the
** segment, in order: every entry's record is there, with its type, key,
** value length and expiry time; between entries only COMMIT records, each closing the
** TX records before it; nothing after the last.  So a hint can never say
** anything a scan of the segment would not (a stale value, a dropped
** tombstone), only say it without reading the values.  Reading record
** headers and keys is linear in the segment's records.  0 if it matches.
*/
static int hint_matches(const uint8_t *p, uint64_t end, const tkv_segment *s,
                        uint64_t segsize){
  uint8_t *buf = NULL;
  size_t cap = 0;
  uint64_t pos = TKV_FILE_HDR, at = s->start;
  uint32_t ntx = 0;
  int bad = 0;
  while( !bad && (pos<end || at<segsize) ){
    const uint8_t *r;
    tkv_rec_hdr h;
    int zero, type = 0;
    uint32_t klen = 0, off = 0, vlen = 0;
    if( pos<end ) tkv_hint_entry_decode(p + pos, &type, &klen, &off, &vlen);
    if( pos>=end || at<off ){
      /* A COMMIT record must be here. */
      r = segsize - at >= tkv_rec_size(0, TKV_COMMIT_VLEN)
        ? seg_bytes(s, at, (size_t)tkv_rec_size(0, TKV_COMMIT_VLEN), &buf, &cap)
        : NULL;
      bad = !r || tkv_rec_hdr_decode(r, &h, &zero) || h.type!=TKV_REC_COMMIT
         || tkv_rec_crc(r, NULL, 0, r + TKV_REC_HDR, TKV_COMMIT_VLEN)!=h.crc
         || tkv_rec_commit_count(r + TKV_REC_HDR)!=ntx;
      ntx = 0;
      at += tkv_rec_size(0, TKV_COMMIT_VLEN);
      continue;
    }
    r = at==off ? seg_bytes(s, at, TKV_REC_HDR + (size_t)klen, &buf, &cap)
                : NULL;
    bad = !r || tkv_rec_hdr_decode(r, &h, &zero) || h.klen!=klen
       || h.vlen!=vlen || memcmp(r + TKV_REC_HDR, p + pos + TKV_HINT_ENTRY_HDR,
                                 klen);
    if( !bad ){
      int tx = h.type==TKV_REC_TXPUT || h.type==TKV_REC_TXDEL;
      int put = h.type==TKV_REC_PUT || h.type==TKV_REC_TXPUT;
      bad = (put ? TKV_REC_PUT : TKV_REC_DEL)!=type || h.type==TKV_REC_COMMIT
         || (!tx && ntx);
      if( tx ) ntx++;
    }
    if( !bad && tkv_vlen_expires(vlen) ){
      /* The expiry time too: it is after the value. */
      r = seg_bytes(s, at + TKV_REC_HDR + klen + tkv_vlen(vlen),
                    TKV_EXPIRE_BYTES, &buf, &cap);
      bad = !r || memcmp(r, p + pos + TKV_HINT_ENTRY_HDR + klen,
                         TKV_EXPIRE_BYTES);
    }
    at += tkv_rec_size(klen, vlen);
    pos += tkv_hint_entry_size(klen, vlen);
  }
  tkv_mem_free(buf);
  return bad || ntx || at!=segsize ? -1 : 0;
}

/*
** Check a hint file whole against segment s (of `segsize` bytes).  0 if it
** can be trusted, -1 if not.
*/
static int hint_check(const uint8_t *p, uint64_t n, const tkv_segment *s,
                      uint64_t segsize){
  tkv_file_hdr h;
  const char *why;
  uint64_t pos = TKV_FILE_HDR, count = 0, want, end;
  uint32_t size;
  if( n < TKV_FILE_HDR + TKV_HINT_TRAILER ) return -1;
  if( tkv_file_hdr_decode(p, TKV_MAGIC_HINT, &h, &why) ) return -1;
  if( h.file_id!=s->id ) return -1;
  end = n - TKV_HINT_TRAILER;
  if( tkv_hint_trailer_decode(p, (size_t)n, &want, &size) ) return -1;
  if( size!=segsize ) return -1;
  while( pos<end ){
    int type;
    uint32_t klen, off, vlen;
    if( end - pos < TKV_HINT_ENTRY_HDR ) return -1;
    tkv_hint_entry_decode(p + pos, &type, &klen, &off, &vlen);
    if( (type!=TKV_REC_PUT && type!=TKV_REC_DEL) || klen>TKV_KEY_MAX ) return -1;
    if( off<s->start || off + tkv_rec_size(klen, vlen) > segsize ) return -1;
    if( tkv_vlen_expires(vlen) && type!=TKV_REC_PUT ) return -1;
    pos += tkv_hint_entry_size(klen, vlen);
    if( pos>end ) return -1;
    count++;
  }
  if( count!=want || h.base!=s->base || h.flags!=s->flags ) return -1;
  return hint_matches(p, end, s, segsize);
}

/*
** Load segment s from its hint file: fn is called for every entry, in file
** order, as seg_scan would call it.  *ploaded = 0 when there is no hint
** that can be trusted (the caller then scans the segment); a hint that
** fails its checks is removed.
*/
int hint_load(tkv_engine *e, tkv_segment *s, uint64_t segsize,
              seg_scan_fn fn, void *ctx, int *ploaded){
  char path[4096];
  uint8_t *p = NULL;
  uint64_t n, pos = TKV_FILE_HDR;
  int rc;
  *ploaded = 0;
  rc = seg_name(path, sizeof path, e->dir, s->id, TKV_SUFFIX_HINT);
  if( rc ) return rc;
  /* Absent or unreadable.  An entry is never larger than its record, so a
  ** hint larger than its segment (a huge sparse file) is not read. */
  if( read_file(path, segsize + TKV_FILE_HDR + TKV_HINT_TRAILER, &p, &n) ){
    return TKV_OK;
  }
  if( hint_check(p, n, s, segsize) ){
    tkv_mem_free_big(p, (size_t)n + 1);
    tkv_io_unlink(path);
    return TKV_OK;
  }
  while( pos < n - TKV_HINT_TRAILER ){
    int type;
    uint32_t klen, off, vlen;
    uint64_t expire = 0;
    tkv_hint_entry_decode(p + pos, &type, &klen, &off, &vlen);
    if( tkv_vlen_expires(vlen) ){
      expire = tkv_get64(p + pos + TKV_HINT_ENTRY_HDR + klen);
    }
    rc = fn(ctx, type, p + pos + TKV_HINT_ENTRY_HDR, klen, off, vlen, NULL,
            expire);
    if( rc ) break;
    pos += tkv_hint_entry_size(klen, vlen);
  }
  tkv_mem_free_big(p, (size_t)n + 1);
  if( rc ) return rc;
  s->hint_bytes = n;
  *ploaded = 1;
  return TKV_OK;
}
