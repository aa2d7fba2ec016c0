/*
** Merge policy.  The rule, and why:
**
** WHEN.  Nothing happens while the store's stale bytes (overwritten and
** deleted records, tombstones, commit records) are below compact_threshold
** (10 MiB by default): small stores never pay for merging.  Past it, a merge
** is due when some sealed segment is at least MP_DEAD_RATIO dead, or when
** the record bytes of the segments exceed MP_SPACE_LIMIT times the live
** record bytes (not the bytes on disk: see WHAT THAT BOUNDS below).
**
** WHICH.  Greedy, by dead fraction, as the log-structured file system
** papers (Rosenblum and Ousterhout) and basho's bitcask (frag_threshold)
** do: reclaiming a segment whose live fraction is u costs u bytes copied
** per (1-u) bytes freed, so the emptiest segments are the cheapest.  The
** inputs are the segments at least MP_DEAD_RATIO dead, emptiest first, up
** to MP_MAX_COPY live bytes per merge (bounding a merge's time, memory and
** the work it may throw away).  If none is that dead but the space limit
** is passed, the emptiest segments down to MP_FLOOR_RATIO are taken until
** the projected disk use is back under the limit.
**
** The cost therefore follows the dead data, not the store size: a merge
** copies at most u/(1-u) bytes per byte it frees, with u <= 1 -
** MP_DEAD_RATIO in the normal case.  Under an endless stream of uniform
** random updates a segment's live fraction decays as exp(-w/L) (w bytes
** written since, L live bytes), so segments are taken at u = 0.4 and the
** steady state keeps about L * ln(1/u)/(1-u) = 1.53 L of segments on disk,
** with 1/(1-u) = 1.67 bytes of records written per byte updated.  A
** skewed stream that leaves every segment just under MP_DEAD_RATIO is
** caught by MP_SPACE_LIMIT.
**
** WHAT THAT BOUNDS, AND WHAT IT DOES NOT.  Both figures count record bytes
** (header, key and value) of segments, active one included, as seen when a
** merge is picked: they are what the policy controls, not what du shows.
** Measured with tests/bench/bench_update.c (BENCH_UPDATE_DISKLOG: 1M keys
** of 16 bytes, 100-byte values, 64 MiB segments, 3M uniform updates in
** transactions of 100), the files at their peak hold, in units of the key
** and value bytes (116 MB), besides the segments the policy counts:
**  - record headers: a 116-byte pair is a 128-byte record (x1.10);
**  - hint files, one per sealed segment, 28 bytes per record here (22% of
**    the record bytes): 0.35 to 0.45 at the peak;
**  - the active segment, up to max_file_size plus a preallocation step of
**    at most 8 MiB (segment.c): up to 0.58 at this size;
**  - each merge's output, written whole with its hint file before any of
**    its inputs is deleted (merge.c, steps 3 to 6): a second copy of the
**    live part of the inputs.  MP_MAX_COPY bounds it, but the first input
**    is always taken, so a 64 MiB segment 40% live still gives 26 MB (0.22);
**  - after a bulk load, the loaded segments are all live: nothing is worth
**    merging until about L more bytes are written, so the first merges
**    start with the loaded data, about one segment of updates, the active
**    segment and their hints on disk, then add their output;
**  - lag: commits never wait for merges, and one thread merges.  At 350k
**    to 500k updates/s on two shared cores that thread was busy 70 to 90%
**    of the time, and with 8 MiB segments and a 1.7 limit the record bytes
**    reached 1.9 L; a writer faster than the merge thread grows the files
**    without bound until it slows down.
** So MP_SPACE_LIMIT 2.0 alone already allows 2.2x the key and value bytes,
** 2.7x with the hint files, before any merge is under way.
** With MP_MAX_COPY at 16 MiB (one 64 MiB input per merge) the peak there
** is about 3.1x the key and value bytes at 1.85 bytes written per byte
** updated; at 64 MiB, where the first merge took both loaded segments at
** once, it was 3.8x.  With 64 MiB segments no setting of these constants
** reached 2.5x within 2.0 (MP_SPACE_LIMIT 1.7: 3.0x at 2.0; 1.5: 2.9x at
** 2.15).  Smaller segments do better, because the greedy choice is finer
** and each merge's output smaller: with max_file_size 8 MiB, MP_MAX_COPY
** 8 MiB and MP_SPACE_LIMIT 1.5 to 1.7, 2.4x to 2.7x at 1.8 to 2.0, but
** merging took about twice as long and the updates ran 1.1 to 1.7x
** LevelDB's rate instead of 1.9x (README, "Sustained updates").  Tried and
** not kept: sealing the active segment early at 1/8 or 1/16 of the live
** data through mp_rotate_active (asked only when nothing else is due; the
** loaded segments stay 64 MiB), 2.9x.  Not tried, each outside this file:
** counting hint bytes in `total`, deleting each input as soon as nothing
** live is left in it, and holding writers back when merging falls behind.
**
** TOMBSTONES.  A tombstone can be dropped only when no older segment that
** survives the merge may still hold a put of its key, that is, when every
** segment before it in replay order is an input too.  So the tombstone
** bytes of a segment count as reclaimable only for the oldest segment;
** elsewhere they would be copied.  Full compaction (tkv_compact) takes
** every segment and drops them all.
**
** SMALL STORES.  Only sealed segments are merged.  When none qualifies
** but the active segment alone holds the threshold's worth of stale bytes
** and is MP_DEAD_RATIO dead, it is sealed early (while no transaction is
** open) and merged, so a small store overwritten in place does not grow
** to max_file_size first.
**
** QUARANTINE.  A segment with a record a merge could not read keeps the
** keys that point there; merging it again would copy the same live records
** over and over, so it is skipped (except as the oldest segment with
** nothing live left, where it can go).
*/
#include "mergepolicy.h"

/* Fraction of segment s that a merge taking it would free. */
static double reclaim_ratio(const mp_seg *s, int oldest){
  uint64_t dead, gain;
  if( s->size==0 ) return 1.0;
  dead = s->size > s->live ? s->size - s->live : 0;
  gain = oldest ? dead : (dead > s->tomb ? dead - s->tomb : 0);
  return (double)gain / (double)s->size;
}

/* May segment i be an input at all? */
static int eligible(const mp_seg *segs, int i){
  if( !segs[i].quarantined ) return 1;
  return i==0 && segs[i].live==0;
}

/* The best unselected eligible segment with ratio >= floor, or -1. */
static int best(const mp_seg *segs, int n, const uint8_t *sel, double floor,
                double *pratio){
  int bi = -1;
  double br = -1.0;
  for(int i=0; i<n; i++){
    double r;
    if( sel[i] || !eligible(segs, i) ) continue;
    r = reclaim_ratio(&segs[i], i==0);
    if( r>=floor && r>br ){     /* ties: the older one (lower i) */
      br = r;
      bi = i;
    }
  }
  *pratio = br;
  return bi;
}

int mp_rotate_active(const mp_seg *a, const mp_store *st){
  uint64_t dead = a->size > a->live ? a->size - a->live : 0;
  return dead>=st->threshold && dead>0
      && (double)dead >= MP_DEAD_RATIO * (double)a->size;
}

int mp_pick(const mp_seg *segs, int n, const mp_store *st, uint8_t *sel){
  uint64_t stale, copy = 0, freed = 0;
  int k = 0;
  double r;
  for(int i=0; i<n; i++) sel[i] = 0;
  stale = st->total > st->live ? st->total - st->live : 0;
  if( n==0 || stale<st->threshold ) return 0;

  /* Segments dead enough to be worth it, emptiest first. */
  for(;;){
    int i = best(segs, n, sel, MP_DEAD_RATIO, &r);
    if( i<0 ) break;
    if( k>0 && copy + segs[i].live > MP_MAX_COPY ) break;
    sel[i] = 1;
    k++;
    copy += segs[i].live;
    freed += (uint64_t)(r * (double)segs[i].size);
  }
  if( k>0 ) return k;

  /* Nothing that dead: hold the space limit. */
  while( (double)(st->total - freed) > MP_SPACE_LIMIT * (double)st->live ){
    int i = best(segs, n, sel, MP_FLOOR_RATIO, &r);
    if( i<0 ) break;
    if( k>0 && copy + segs[i].live > MP_MAX_COPY ) break;
    sel[i] = 1;
    k++;
    copy += segs[i].live;
    freed += (uint64_t)(r * (double)segs[i].size);
  }
  return k;
}
