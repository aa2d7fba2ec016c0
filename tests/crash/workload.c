/*
** The deterministic workload (see workload.h).
*/
#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 64-bit mix of (n, i): splitmix64's finalizer. */
static uint64_t mix(uint64_t x){
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int wl_txn(uint32_t n, wl_op *ops){
  int nop = 1 + (int)(mix(n) % (WL_MAXOPS - 1));
  for(int i=0; i<nop; i++){
    uint64_t h = mix(((uint64_t)n << 8) | (uint64_t)i);
    wl_op *o = &ops[i];
    int len, fill;
    o->key = (int)(h % WL_NKEYS);
    o->del = (h >> 20) % 7 == 0;
    if( o->del ){ o->vlen = 0; continue; }
    len = snprintf(o->val, sizeof o->val, "v%u.%d:", n, i);
    fill = (int)((h >> 32) % (WL_VALMAX - 32));
    for(int k=0; k<fill; k++) o->val[len + k] = (char)('a' + (h >> (k % 40)) % 26);
    o->vlen = (size_t)(len + fill);
  }
  return nop;
}

void wl_key(int i, char *buf){
  snprintf(buf, 8, "k%03d", i);
}

void wl_model_clear(wl_model *m){
  for(int i=0; i<WL_NKEYS; i++){ free(m->val[i]); m->val[i] = NULL; m->vlen[i] = 0; }
  m->n = 0;
}

void wl_model_to(wl_model *m, uint32_t n){
  wl_op ops[WL_MAXOPS];
  if( n<m->n ) wl_model_clear(m);
  while( m->n<n ){
    int nop = wl_txn(++m->n, ops);
    for(int i=0; i<nop; i++){
      int k = ops[i].key;
      free(m->val[k]);
      m->val[k] = NULL;
      m->vlen[k] = 0;
      if( !ops[i].del ){
        m->val[k] = malloc(ops[i].vlen + 1);
        if( !m->val[k] ){ perror("malloc"); abort(); }
        memcpy(m->val[k], ops[i].val, ops[i].vlen);
        m->vlen[k] = ops[i].vlen;
      }
    }
  }
}

int wl_model_count(const wl_model *m){
  int c = 0;
  for(int i=0; i<WL_NKEYS; i++) c += m->val[i]!=NULL;
  return c;
}

int wl_read_counter(tkv_db *db, uint32_t *pn){
  void *v = NULL;
  size_t vlen = 0;
  int rc = tkv_get(db, WL_COUNTER, strlen(WL_COUNTER), &v, &vlen);
  *pn = 0;
  if( rc==TKV_NOTFOUND ) return TKV_OK;
  if( rc ) return rc;
  if( vlen>0 && vlen<12 ){
    char buf[12];
    memcpy(buf, v, vlen);
    buf[vlen] = 0;
    *pn = (uint32_t)strtoul(buf, NULL, 10);
  }else{
    rc = TKV_CORRUPT;
  }
  tkv_free(v);
  return rc;
}

int wl_check_store(tkv_db *db, const wl_model *m, char *why, size_t nwhy){
  tkv_cursor *c = NULL;
  uint32_t n;
  int seen = 0, rc;
  rc = wl_read_counter(db, &n);
  if( rc || n!=m->n ){
    snprintf(why, nwhy, "counter: rc=%d n=%u, expected %u (%s)", rc, n, m->n,
             rc ? tkv_errmsg() : "");
    return -1;
  }
  for(int i=0; i<WL_NKEYS; i++){
    char key[8];
    void *v = NULL;
    size_t vlen = 0;
    wl_key(i, key);
    rc = tkv_get(db, key, strlen(key), &v, &vlen);
    if( rc==TKV_NOTFOUND && !m->val[i] ) continue;
    if( rc || !m->val[i] || vlen!=m->vlen[i] || memcmp(v, m->val[i], vlen) ){
      snprintf(why, nwhy, "key %s after commit %u: rc=%d len=%zu, expected "
               "%s (%zu bytes) %s", key, m->n, rc, vlen,
               m->val[i] ? "a value" : "no value", m->vlen[i],
               rc && rc!=TKV_NOTFOUND ? tkv_errmsg() : "");
      tkv_free(v);
      return -1;
    }
    tkv_free(v);
  }
  /* No other keys: walk the whole store. */
  rc = tkv_cursor_open(db, &c);
  if( !rc ) rc = tkv_cursor_seek(c, NULL, 0);
  while( !rc && tkv_cursor_valid(c) ){
    const void *k;
    size_t klen;
    tkv_cursor_key(c, &k, &klen);
    if( !(klen>=2 && memcmp(k, "__", 2)==0) ) seen++;
    rc = tkv_cursor_next(c);
  }
  tkv_cursor_close(c);
  if( rc || seen!=wl_model_count(m) ){
    snprintf(why, nwhy, "store has %d keys after commit %u, expected %d "
             "(rc=%d)", seen, m->n, wl_model_count(m), rc);
    return -1;
  }
  return 0;
}

char wl_err[512];
int wl_rollback_rc;

int wl_run_txn(tkv_db *db, uint32_t n){
  wl_op ops[WL_MAXOPS];
  char key[8], num[12];
  int nop = wl_txn(n, ops), rc;
  rc = tkv_begin(db);
  if( rc ){
    snprintf(wl_err, sizeof wl_err, "%s", tkv_errmsg());
    return rc;
  }
  for(int i=0; i<nop && !rc; i++){
    wl_key(ops[i].key, key);
    if( ops[i].del ){
      rc = tkv_delete(db, key, strlen(key));
      if( rc==TKV_NOTFOUND ) rc = TKV_OK;
    }else{
      rc = tkv_put(db, key, strlen(key), ops[i].val, ops[i].vlen);
    }
  }
  snprintf(num, sizeof num, "%u", n);
  if( !rc ) rc = tkv_put(db, WL_COUNTER, strlen(WL_COUNTER), num, strlen(num));
  wl_rollback_rc = TKV_OK;
  if( !rc ) rc = tkv_commit(db);
  if( rc ){
    snprintf(wl_err, sizeof wl_err, "%s", tkv_errmsg());
    wl_rollback_rc = tkv_in_transaction(db) ? tkv_rollback(db) : TKV_OK;
  }
  return rc;
}
