/*
** Encoding and checking of the on-disk structures (see format.h and
** FORMAT.md).
*/
#include "format.h"
#include "crc32c.h"
#include "tinkv.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------- Names. */

int tkv_fmt_name(char *out, size_t n, const char *dir, uint32_t id,
                 const char *suffix){
  int len = snprintf(out, n, "%s/%010u%s", dir, id, suffix);
  return (len<0 || (size_t)len>=n) ? -1 : 0;
}

int tkv_fmt_parse_name(const char *name, const char *suffix, uint32_t *pid){
  uint64_t v = 0;
  if( strlen(name)!=10 + strlen(suffix) || strcmp(name + 10, suffix) ){
    return -1;
  }
  for(int i=0; i<10; i++){
    if( name[i]<'0' || name[i]>'9' ) return -1;
    v = v*10 + (uint64_t)(name[i] - '0');
  }
  if( v==0 || v>0xffffffffull ) return -1;
  *pid = (uint32_t)v;
  return 0;
}

int tkv_fmt_is_own_tmp(const char *name){
  uint32_t id;
  return !strcmp(name, TKV_IDENTITY_NAME TKV_SUFFIX_TMP)
      || !tkv_fmt_parse_name(name, TKV_SUFFIX_SEG_TMP, &id)
      || !tkv_fmt_parse_name(name, TKV_SUFFIX_HINT_TMP, &id);
}

int tkv_fmt_is_store_file(const char *name){
  uint32_t id;
  return !strcmp(name, TKV_IDENTITY_NAME) || !strcmp(name, TKV_LOCK_NAME)
      || !tkv_fmt_parse_name(name, TKV_SUFFIX_SEG, &id)
      || !tkv_fmt_parse_name(name, TKV_SUFFIX_HINT, &id)
      || tkv_fmt_is_own_tmp(name);
}

/* ------------------------------------------------------ File headers. */

void tkv_file_hdr_init(tkv_file_hdr *h, const char *magic, uint32_t file_id,
                       uint32_t base, uint32_t flags){
  memset(h, 0, sizeof *h);
  memcpy(h->magic, magic, 8);
  h->version = TKV_FORMAT_VERSION;
  h->file_id = file_id;
  h->base = base;
  h->flags = flags;
}

void tkv_file_hdr_encode(const tkv_file_hdr *h, uint8_t out[TKV_FILE_HDR]){
  memcpy(out, h->magic, 8);
  tkv_put32(out + 8, h->version);
  tkv_put32(out + 12, h->file_id);
  tkv_put32(out + 16, h->base);
  tkv_put32(out + 20, h->flags);
  tkv_put32(out + 24, h->reserved);
  tkv_put32(out + 28, tkv_crc32c(0, out, 28));
}

int tkv_file_hdr_decode(const uint8_t in[TKV_FILE_HDR], const char *magic,
                        tkv_file_hdr *h, const char **why){
  if( memcmp(in, magic, 8) ){ *why = "bad magic"; return -1; }
  if( tkv_get32(in + 28)!=tkv_crc32c(0, in, 28) ){
    *why = "header checksum mismatch";
    return -1;
  }
  memcpy(h->magic, in, 8);
  h->version = tkv_get32(in + 8);
  h->file_id = tkv_get32(in + 12);
  h->base = tkv_get32(in + 16);
  h->flags = tkv_get32(in + 20);
  h->reserved = tkv_get32(in + 24);
  if( h->version<TKV_FORMAT_OLDEST || h->version>TKV_FORMAT_VERSION ){
    *why = "unsupported format version";
    return -1;
  }
  return 0;
}

uint32_t tkv_rec_crc(const uint8_t hdr[TKV_REC_HDR], const void *key,
                     uint32_t klen, const void *val, uint32_t vlen){
  uint32_t crc = tkv_crc32c(0, hdr + 4, TKV_REC_HDR - 4);
  crc = tkv_crc32c(crc, key, klen);
  return tkv_crc32c(crc, val, (size_t)tkv_rec_tail(vlen));
}

/* The header bytes 4..11 of a record: type, key length, value word. */
static void rec_hdr_fill(uint8_t *out, int type, uint32_t klen,
                         uint32_t vword){
  out[4] = (uint8_t)type;
  out[5] = (uint8_t)klen;
  out[6] = (uint8_t)(klen >> 8);
  out[7] = (uint8_t)(klen >> 16);
  tkv_put32(out + 8, vword);
}

void tkv_rec_encode(uint8_t *out, int type, const void *key, uint32_t klen,
                    const void *val, uint32_t vlen, uint64_t expire){
  uint32_t vword = vlen | (expire ? TKV_VLEN_EXPIRES : 0);
  rec_hdr_fill(out, type, klen, vword);
  if( klen ) memcpy(out + TKV_REC_HDR, key, klen);
  if( vlen ) memcpy(out + TKV_REC_HDR + klen, val, vlen);
  if( expire ) tkv_rec_expire_encode(out + TKV_REC_HDR + klen + vlen, expire);
  tkv_put32(out, tkv_crc32c(0, out + 4, TKV_REC_HDR - 4 + (size_t)klen
                                        + (size_t)tkv_rec_tail(vword)));
}

void tkv_rec_head_encode(uint8_t *out, int type, const void *key,
                         uint32_t klen, const void *val, uint32_t vlen,
                         uint64_t expire){
  uint8_t x[TKV_EXPIRE_BYTES];
  uint32_t crc;
  rec_hdr_fill(out, type, klen, vlen | (expire ? TKV_VLEN_EXPIRES : 0));
  if( klen ) memcpy(out + TKV_REC_HDR, key, klen);
  crc = tkv_crc32c(0, out + 4, TKV_REC_HDR - 4);
  crc = tkv_crc32c(crc, key, klen);
  crc = tkv_crc32c(crc, val, vlen);
  if( expire ){
    tkv_rec_expire_encode(x, expire);
    crc = tkv_crc32c(crc, x, sizeof x);
  }
  tkv_put32(out, crc);
}

int tkv_rec_hdr_decode(const uint8_t in[TKV_REC_HDR], tkv_rec_hdr *h,
                       int *pzero){
  static const uint8_t zeros[TKV_REC_HDR];
  *pzero = memcmp(in, zeros, TKV_REC_HDR)==0;
  if( *pzero ) return -1;
  h->crc = tkv_get32(in);
  h->type = in[4];
  h->klen = (uint32_t)in[5] | ((uint32_t)in[6] << 8) | ((uint32_t)in[7] << 16);
  h->vlen = tkv_get32(in + 8);
  switch( h->type ){
    case TKV_REC_PUT: case TKV_REC_TXPUT:
      return (h->klen<=TKV_KEY_MAX && tkv_vlen(h->vlen)<=TKV_VALUE_MAX)
             ? 0 : -1;
    case TKV_REC_DEL: case TKV_REC_TXDEL:
      return (h->klen<=TKV_KEY_MAX && h->vlen==0) ? 0 : -1;
    case TKV_REC_COMMIT:
      return (h->klen==0 && h->vlen==4) ? 0 : -1;
  }
  return -1;
}

void tkv_hint_entry_encode(uint8_t *out, int type, uint32_t klen,
                           uint32_t off, uint32_t vlen){
  out[0] = (uint8_t)type;
  out[1] = (uint8_t)klen;
  out[2] = (uint8_t)(klen >> 8);
  out[3] = (uint8_t)(klen >> 16);
  tkv_put32(out + 4, off);
  tkv_put32(out + 8, vlen);
}

void tkv_hint_entry_decode(const uint8_t *in, int *ptype, uint32_t *pklen,
                           uint32_t *poff, uint32_t *pvlen){
  *ptype = in[0];
  *pklen = (uint32_t)in[1] | ((uint32_t)in[2] << 8) | ((uint32_t)in[3] << 16);
  *poff = tkv_get32(in + 4);
  *pvlen = tkv_get32(in + 8);
}

void tkv_hint_trailer_encode(uint8_t *file, size_t len, uint64_t count,
                             uint32_t segsize){
  tkv_put64(file + len, count);
  tkv_put32(file + len + 8, segsize);
  tkv_put32(file + len + 12, tkv_crc32c(0, file, len + 12));
}

int tkv_hint_trailer_decode(const uint8_t *file, size_t n, uint64_t *pcount,
                            uint32_t *psegsize){
  const uint8_t *t;
  if( n < TKV_FILE_HDR + TKV_HINT_TRAILER ) return -1;
  t = file + n - TKV_HINT_TRAILER;
  if( tkv_get32(t + 12)!=tkv_crc32c(0, file, n - 4) ) return -1;
  *pcount = tkv_get64(t);
  *psegsize = tkv_get32(t + 8);
  return 0;
}

/* -------------------------------------------------- Segment sync area. */

void tkv_sync_slot_encode(uint8_t out[TKV_SYNC_SLOT], uint32_t durable_end,
                          uint32_t seq, uint64_t *poff){
  tkv_put32(out, durable_end);
  tkv_put32(out + 4, seq);
  tkv_put32(out + 8, 0);
  tkv_put32(out + 12, tkv_crc32c(0, out, 12));
  *poff = TKV_FILE_HDR + (uint64_t)(seq & 1) * TKV_SYNC_SLOT;
}

int tkv_sync_slot_check(const uint8_t in[TKV_SYNC_AREA], int i){
  static const uint8_t zero[TKV_SYNC_SLOT];
  const uint8_t *p = in + (size_t)i*TKV_SYNC_SLOT;
  uint32_t seq = tkv_get32(p + 4);
  if( !memcmp(p, zero, TKV_SYNC_SLOT) ) return 0;
  if( tkv_get32(p + 12)!=tkv_crc32c(0, p, 12) || tkv_get32(p + 8) ) return -1;
  return (seq==0 || (seq & 1)!=(uint32_t)i) ? -1 : 0;
}

void tkv_sync_area_decode(const uint8_t in[TKV_SYNC_AREA], uint32_t *pend,
                          uint32_t *pseq){
  *pend = 0;
  *pseq = 0;
  for(int i=0; i<2; i++){
    const uint8_t *p = in + (size_t)i*TKV_SYNC_SLOT;
    uint32_t seq = tkv_get32(p + 4);
    if( tkv_get32(p + 12)!=tkv_crc32c(0, p, 12) || tkv_get32(p + 8) ) continue;
    if( (seq & 1)!=(uint32_t)i || seq==0 ) continue;
    if( seq>*pseq ){ *pseq = seq; *pend = tkv_get32(p); }
  }
}
