/*
** Merge policy: which sealed segments a merge takes, and when.
**
** Kept apart from the mechanism (merge.c) so that the rule can be read,
** tested and tuned by itself: it sees numbers (bytes per segment), never
** files, locks or the keydir.  See mergepolicy.c for the rule and why.
*/
#ifndef TKV_MERGEPOLICY_H
#define TKV_MERGEPOLICY_H

#include <stdint.h>

/* What the policy knows of one sealed segment. */
typedef struct mp_seg {
  uint64_t size;       /* record bytes in the file (header excluded) */
  uint64_t live;       /* bytes of records the keydir points at */
  uint64_t tomb;       /* bytes of tombstones in it (an estimate) */
  int quarantined;     /* holds a record a merge could not read */
} mp_seg;

/* The store as a whole. */
typedef struct mp_store {
  uint64_t live;       /* live record bytes of the whole store */
  uint64_t total;      /* record bytes of every segment, active included */
  uint64_t threshold;  /* compact_threshold: stale bytes below which
                       ** nothing is merged */
} mp_store;

/* Tunables, with the values chosen by measurement (mergepolicy.c). */
#define MP_DEAD_RATIO   0.60   /* a segment this dead is worth merging */
#define MP_SPACE_LIMIT  2.0    /* record bytes / live record bytes: hint
                               ** files and a merge's output not counted */
#define MP_FLOOR_RATIO  0.10   /* never merge a segment less dead than this */
#define MP_MAX_COPY     (16ull << 20)  /* live bytes copied by one merge */

/*
** Choose the inputs of the next merge among the n sealed segments `segs`,
** given in replay order (oldest first).  Sets sel[i] to 1 for each chosen
** segment, 0 otherwise, and returns how many were chosen (0: no merge is
** due).  Pure: no side effects, no locking.
*/
int mp_pick(const mp_seg *segs, int n, const mp_store *st, uint8_t *sel);

/*
** When no sealed segment is worth merging: should the active segment be
** sealed early so that it can be merged?  Nonzero when it alone holds at
** least the threshold's worth of stale bytes and is MP_DEAD_RATIO dead
** (a small store overwritten in place would otherwise wait for its
** segment to fill, up to max_file_size, before any space came back).
*/
int mp_rotate_active(const mp_seg *active, const mp_store *st);

#endif
