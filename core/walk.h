/*
** Walking the records of a segment image that may be damaged: every valid
** record in file order, every committed one marked as such, and every run
** of bytes that is not a valid record reported with its offset, after which
** the walk resumes at the next valid record.  check.c (report everything)
** and salvage.c (save everything readable) are built on it; recovery and
** merge have scanners of their own that stop at the first bad record.
** Records are decoded only with format.c's functions.
*/
#ifndef TKV_WALK_H
#define TKV_WALK_H

#include <stdint.h>
#include "format.h"

/* Where the records of a segment whose header is h begin (h NULL: a
** header that cannot be read, assumed the current format's).  Format 1:
** right after the header; format 2: after the sync area.  The one place
** check and salvage learn it. */
static inline uint64_t walk_data_start(const tkv_file_hdr *h){
  return tkv_seg_data_start(h ? h->version : TKV_FORMAT_VERSION);
}

typedef struct walk_rec {
  int type;                 /* enum tkv_rec_type */
  uint64_t off;             /* offset of the record in the file */
  const uint8_t *key;       /* into the image */
  uint32_t klen;
  const uint8_t *val;
  uint32_t vlen;            /* the value word (format.h) */
  uint64_t expire;          /* expiry time, 0 if none */
} walk_rec;

typedef struct walk_cb {
  /* A record of a committed group: PUT, DEL, or a TXPUT/TXDEL whose COMMIT
  ** was found; called when its commit is seen, in file order.  Non-zero
  ** stops the walk with that code. */
  int (*committed)(void *ctx, const walk_rec *r);
  /* Bytes [off, off+len) are not what they should be; why says how. */
  void (*damage)(void *ctx, uint64_t off, uint64_t len, const char *why);
  /* Progress: bytes of the image walked so far. */
  void (*progress)(void *ctx, uint64_t done);
  void *ctx;
} walk_cb;

/* What a walk found. */
typedef struct walk_result {
  uint64_t records;         /* valid records (checksums verified) */
  uint64_t committed_end;   /* end of the last record that ended a group */
  uint64_t data_end;        /* end of the last valid record */
  uint64_t damaged;         /* damage reports made */
  int zero_tail;            /* the data ended at zero bytes (preallocated
                            ** space), not at the end of the image */
} walk_result;

/*
** Walk img[start, size).  A run of zero bytes up to the end is the
** preallocated tail of a segment and not damage.  Transactions (TXPUT and
** TXDEL records then a COMMIT counting them) are reported committed only
** with their COMMIT; a group cut short is reported as damage, as the open
** of the store would discard it (when tail_txn_ok is set, a group still
** open at the end is not damage: a transaction in progress).
*/
int walk_image(const uint8_t *img, uint64_t size, uint64_t start,
               int tail_txn_ok, const walk_cb *cb, walk_result *res);

#endif
