/*
** tkv_segments: each segment of an open store with how many of its bytes
** are still live, which is what an operator (tinkvctl stat) needs to see
** before deciding to compact, and what no other call reports per file.
**
** Live bytes are counted by walking the keydir once holding e->mu (a holder
** of mu reads the keydir and the segment table without rw, engine.h):
** writers wait for that walk, readers do not.  Each committed entry's
** record is attributed to its segment.
*/
#include "engine.h"
#include "err.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

/* For bsearch: segment ids with their index in the answer. */
typedef struct id_ix { uint32_t id; int ix; } id_ix;

static int cmp_id(const void *a, const void *b){
  uint32_t x = ((const id_ix*)a)->id, y = ((const id_ix*)b)->id;
  return x<y ? -1 : x>y;
}

int tkv_segments(tkv_db *db, tkv_segment_info **pa, int *pn){
  tkv_engine *e = db->e;
  tkv_segment_info *a;
  id_ix *ix;
  kd_iter it;
  kd_entry *en;
  int n;
  *pa = NULL;
  *pn = 0;
  engine_lock(e);
  n = e->nseg;
  a = tkv_mem_calloc((size_t)n + 1, sizeof *a);
  ix = tkv_mem_calloc((size_t)n + 1, sizeof *ix);
  if( !a || !ix ){
    engine_unlock(e);
    tkv_mem_free(a);
    tkv_mem_free(ix);
    return tkv_err_nomem();
  }
  for(int i=0; i<n; i++){
    tkv_segment *s = e->segs[i];
    a[i].id = s->id;
    a[i].active = s==e->active;
    a[i].bytes = s->end > s->start ? s->end - s->start : 0;
    a[i].hint_bytes = s->hint_bytes;
    ix[i].id = s->id;
    ix[i].ix = i;
  }
  qsort(ix, (size_t)n, sizeof *ix, cmp_id);
  for(en = kd_iter_seek(&it, e->index, NULL, 0, 0); en; en = kd_iter_next(&it)){
    tkv_loc loc;
    id_ix key = {0, 0}, *hit;
    if( kd_entry_flags(en) & ENTRY_NEW ) continue;    /* not committed */
    loc = kd_entry_loc(en);
    key.id = loc.file;
    hit = bsearch(&key, ix, (size_t)n, sizeof *ix, cmp_id);
    if( hit ) a[hit->ix].live_bytes += entry_rec_size(en, loc);
  }
  engine_unlock(e);
  tkv_mem_free(ix);
  *pa = a;
  *pn = n;
  return TKV_OK;
}
