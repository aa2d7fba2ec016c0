/*
** The on-disk format: byte layouts of file headers, records and hint
** entries, and their checks.  core/FORMAT.md describes the same in prose;
** keep the two in step.  Everything is little-endian.
*/
#ifndef TKV_FORMAT_H
#define TKV_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define TKV_FORMAT_VERSION 3     /* written; versions 1 and 2 are read */
#define TKV_FORMAT_OLDEST  1

/* ---- File names.  A store directory holds only these names (FORMAT.md,
** "The store directory"); tinkv creates, reads and deletes no other. */
#define TKV_IDENTITY_NAME "TINKV"
#define TKV_LOCK_NAME     "LOCK"
#define TKV_SUFFIX_SEG      ".seg"
#define TKV_SUFFIX_HINT     ".hint"
#define TKV_SUFFIX_SEG_TMP  ".seg.tmp"
#define TKV_SUFFIX_HINT_TMP ".hint.tmp"
#define TKV_SUFFIX_TMP      ".tmp"

/* dir + "/" + ten-digit id + suffix into out (n bytes).  0, or -1 when it
** does not fit. */
int tkv_fmt_name(char *out, size_t n, const char *dir, uint32_t id,
                 const char *suffix);
/* Parse a directory entry named "%010u<suffix>".  0 and *pid set if name
** is one, else -1. */
int tkv_fmt_parse_name(const char *name, const char *suffix, uint32_t *pid);
/* Nonzero if name is one tinkv itself creates in a store directory. */
int tkv_fmt_is_store_file(const char *name);
/* Nonzero if name is a temporary file of tinkv's own (a compaction output,
** a hint or an identity file being written), the only files open removes
** without being asked. */
int tkv_fmt_is_own_tmp(const char *name);

/* Every file starts with a 32-byte header. */
#define TKV_FILE_HDR   32
#define TKV_MAGIC_SEG  "tinkvSEG"     /* segment (data) file */
#define TKV_MAGIC_HINT "tinkvHNT"     /* hint file */
#define TKV_MAGIC_ID   "tinkvID\0"    /* identity file of a store */

#define TKV_SEG_COMPACTED 0x1         /* header flag: compaction output */
/* Identity file flags, bits 1-2: the store's key/value encoding, one of
** TKV_ENCODING_* (tinkv.h); 0 when not recorded. */
#define TKV_ID_ENCODING_SHIFT 1
#define TKV_ID_ENCODING_MASK  0x6u

/* Segment ids run from 1 to TKV_SEG_ID_MAX: the next id after the highest
** is always representable, so it can never wrap to an older one. */
#define TKV_SEG_ID_MAX 0xfffffffeu

/* Offsets in a segment are 32-bit: no segment file is larger. */
#define TKV_SEG_SIZE_LIMIT 0xffffffffull

/*
** A version 2 segment has a sync area after its header: two 16-byte slots,
** each {durable end (u32), sequence (u32), 0 (u32), CRC-32C of the first
** 12 bytes (u32)}.  A slot is written only after an fdatasync made the
** segment's bytes [0, durable end) durable and that end closes a
** committed record, so whatever slot survives a crash states a truth.
** The valid slot with the higher sequence wins.  Records start after it.
*/
#define TKV_SYNC_AREA      32
#define TKV_SYNC_SLOT      16
#define TKV_SEG_DATA_V1    TKV_FILE_HDR                  /* version 1 */
#define TKV_SEG_DATA       (TKV_FILE_HDR + TKV_SYNC_AREA) /* version 2 */

/* Where the records of a segment of this format version start. */
static inline uint32_t tkv_seg_data_start(uint32_t version){
  return version>=2 ? TKV_SEG_DATA : TKV_SEG_DATA_V1;
}
/* Encode sync slot number seq&1: out receives its 16 bytes; *poff the
** file offset to write them at. */
void tkv_sync_slot_encode(uint8_t out[TKV_SYNC_SLOT], uint32_t durable_end,
                          uint32_t seq, uint64_t *poff);
/* Decode the sync area (TKV_SYNC_AREA bytes at offset TKV_FILE_HDR): the
** durable end and sequence of the newer valid slot; 0,0 if none is. */
void tkv_sync_area_decode(const uint8_t in[TKV_SYNC_AREA], uint32_t *pend,
                          uint32_t *pseq);
/* 0 if slot i (0 or 1) of a sync area is unused (zeros) or valid, else -1
** (for checks: open just ignores such a slot). */
int tkv_sync_slot_check(const uint8_t in[TKV_SYNC_AREA], int i);

typedef struct tkv_file_hdr {
  char magic[8];
  uint32_t version;
  uint32_t file_id;    /* segment id (hint: of its segment) */
  uint32_t base;       /* replay position: own id, or for a compaction's
                       ** output the highest id the compaction replaced */
  uint32_t flags;
  uint32_t reserved;
} tkv_file_hdr;

/* Fill h for a new file of this format version. */
void tkv_file_hdr_init(tkv_file_hdr *h, const char *magic, uint32_t file_id,
                       uint32_t base, uint32_t flags);
/* Encode h into 32 bytes (with its CRC). */
void tkv_file_hdr_encode(const tkv_file_hdr *h, uint8_t out[TKV_FILE_HDR]);
/* Decode and check 32 bytes against the expected magic.  0 if good; else -1
** and *why says what is wrong. */
int tkv_file_hdr_decode(const uint8_t in[TKV_FILE_HDR], const char *magic,
                        tkv_file_hdr *h, const char **why);

/* Records: a 12-byte header, then the key, then the value. */
#define TKV_REC_HDR 12
enum tkv_rec_type {
  TKV_REC_PUT = 1,     /* set a key (commits itself) */
  TKV_REC_DEL = 2,     /* delete a key (commits itself) */
  TKV_REC_TXPUT = 3,   /* set, part of a transaction */
  TKV_REC_TXDEL = 4,   /* delete, part of a transaction */
  TKV_REC_COMMIT = 5   /* ends a transaction; value: u32 record count */
};
#define TKV_REC_KEY_LIMIT (1u << 24)  /* key length field is 24 bits */

/*
** Expiry (format 3).  Bit 31 of a PUT's value-length field says that the
** record ends with 8 more bytes: the key's expiry time, milliseconds since
** the Unix epoch.  The low 31 bits are the value's length.  The same 32-bit
** word (the "value word") travels through the keydir and hint entries, so
** tkv_rec_size() of it is always the whole record.  Bytes after the key
** (the value, then the expiry) are the record's "tail".
*/
#define TKV_VLEN_EXPIRES 0x80000000u
#define TKV_VLEN_MASK    0x7fffffffu
#define TKV_EXPIRE_BYTES 8

/* The value's length of a value word. */
static inline uint32_t tkv_vlen(uint32_t vword){ return vword & TKV_VLEN_MASK; }
/* Nonzero if a value word says the record carries an expiry time. */
static inline int tkv_vlen_expires(uint32_t vword){
  return (vword & TKV_VLEN_EXPIRES)!=0;
}
/* Bytes after the key: the value, and the expiry time when there is one. */
static inline uint64_t tkv_rec_tail(uint32_t vword){
  return (uint64_t)tkv_vlen(vword)
       + (tkv_vlen_expires(vword) ? TKV_EXPIRE_BYTES : 0);
}

typedef struct tkv_rec_hdr {
  uint32_t crc;     /* CRC-32C of header bytes 4..11, key and value */
  uint8_t type;
  uint32_t klen;
  uint32_t vlen;
} tkv_rec_hdr;

/* Bytes of a whole record (vlen: its value word). */
static inline uint64_t tkv_rec_size(uint32_t klen, uint32_t vlen){
  return (uint64_t)TKV_REC_HDR + klen + tkv_rec_tail(vlen);
}

/* Write a whole record (header with CRC, key, value, and the expiry time
** when `expire` is not 0) into out, which has room for tkv_rec_size(klen,
** vlen | (expire ? TKV_VLEN_EXPIRES : 0)) bytes.  vlen is the value's
** length (no flag). */
void tkv_rec_encode(uint8_t *out, int type, const void *key, uint32_t klen,
                    const void *val, uint32_t vlen, uint64_t expire);
/* Write a record's header and key (not its value) into out, which has room
** for TKV_REC_HDR + klen bytes; the CRC covers val and the expiry time,
** written separately (after the value: tkv_rec_expire_encode). */
void tkv_rec_head_encode(uint8_t *out, int type, const void *key,
                         uint32_t klen, const void *val, uint32_t vlen,
                         uint64_t expire);
/* The 8 bytes of an expiry time at the end of a record. */
static inline void tkv_rec_expire_encode(uint8_t out[TKV_EXPIRE_BYTES],
                                         uint64_t expire);
/* The expiry time of a record whose tail (value word vlen) is at tail; 0
** when it has none. */
static inline uint64_t tkv_rec_expire(const uint8_t *tail, uint32_t vlen);
/* The 4-byte value of a COMMIT record: the number of records it commits. */
#define TKV_COMMIT_VLEN 4
static inline void tkv_rec_commit_value(uint8_t out[TKV_COMMIT_VLEN],
                                        uint32_t nrec);
static inline uint32_t tkv_rec_commit_count(const uint8_t v[TKV_COMMIT_VLEN]);
/* Decode a record header (no CRC check).  0 if the type and lengths are
** plausible, -1 if not; a header of all zeros (preallocated space) gives -1
** with *pzero set. */
int tkv_rec_hdr_decode(const uint8_t in[TKV_REC_HDR], tkv_rec_hdr *h,
                       int *pzero);
/* CRC a record would have: over header bytes 4..11, key, and the tail
** (tkv_rec_tail(vlen) bytes at val: the value, then any expiry time). */
uint32_t tkv_rec_crc(const uint8_t hdr[TKV_REC_HDR], const void *key,
                     uint32_t klen, const void *val, uint32_t vlen);

/* Hint entries: type(1) klen(3) offset(4) vlen(4) key, then (format 3)
** the 8-byte expiry time when vlen has TKV_VLEN_EXPIRES.  The hint file ends
** with a 16-byte trailer: entry count (u64), data size of the segment it
** describes (u32, bytes 0..N of the segment), CRC-32C (u32) of every byte
** before the CRC. */
#define TKV_HINT_ENTRY_HDR 12
#define TKV_HINT_TRAILER 16

void tkv_hint_entry_encode(uint8_t *out, int type, uint32_t klen,
                           uint32_t off, uint32_t vlen);
void tkv_hint_entry_decode(const uint8_t *in, int *ptype, uint32_t *pklen,
                           uint32_t *poff, uint32_t *pvlen);
/* Bytes of a whole hint entry. */
static inline uint64_t tkv_hint_entry_size(uint32_t klen, uint32_t vlen){
  return (uint64_t)TKV_HINT_ENTRY_HDR + klen
       + (tkv_vlen_expires(vlen) ? TKV_EXPIRE_BYTES : 0);
}
/* Append the trailer to a hint image of len bytes (header and entries);
** room for TKV_HINT_TRAILER more bytes must be there. */
void tkv_hint_trailer_encode(uint8_t *file, size_t len, uint64_t count,
                             uint32_t segsize);
/* Check the trailer of a whole hint image of n bytes: 0 and the fields
** if its CRC is good, else -1. */
int tkv_hint_trailer_decode(const uint8_t *file, size_t n, uint64_t *pcount,
                            uint32_t *psegsize);

/* Little-endian helpers. */
static inline void tkv_put32(uint8_t *p, uint32_t v){
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t tkv_get32(const uint8_t *p){
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
       | ((uint32_t)p[3] << 24);
}
static inline void tkv_put64(uint8_t *p, uint64_t v){
  tkv_put32(p, (uint32_t)v);
  tkv_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t tkv_get64(const uint8_t *p){
  return (uint64_t)tkv_get32(p) | ((uint64_t)tkv_get32(p + 4) << 32);
}

static inline void tkv_rec_commit_value(uint8_t out[TKV_COMMIT_VLEN],
                                        uint32_t nrec){
  tkv_put32(out, nrec);
}
static inline uint32_t tkv_rec_commit_count(const uint8_t v[TKV_COMMIT_VLEN]){
  return tkv_get32(v);
}
static inline void tkv_rec_expire_encode(uint8_t out[TKV_EXPIRE_BYTES],
                                         uint64_t expire){
  tkv_put64(out, expire);
}
static inline uint64_t tkv_rec_expire(const uint8_t *tail, uint32_t vlen){
  return tkv_vlen_expires(vlen) ? tkv_get64(tail + tkv_vlen(vlen)) : 0;
}

#endif
