/*
** The deterministic workload shared by the crash, power-loss and fault
** suites.  Transaction n (n >= 1) is a fixed list of puts and deletes over
** WL_NKEYS keys, plus the put of the counter key "__n" = n, so a store's
** whole state after commits 1..j is a function of j alone: wl_model
** replays it, and reading "__n" says which commit a store ends with.
*/
#ifndef TKV_WORKLOAD_H
#define TKV_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_NKEYS 97         /* keys "k000".."k096" */
#define WL_MAXOPS 6         /* operations of one transaction */
#define WL_VALMAX 400       /* bytes of the longest value */
#define WL_COUNTER "__n"    /* the counter key */

typedef struct wl_op {
  int key;                  /* key index */
  int del;                  /* nonzero: delete */
  char val[WL_VALMAX];      /* value of a put */
  size_t vlen;
} wl_op;

/* The state after some commits: one value (or none) per key. */
typedef struct wl_model {
  uint32_t n;               /* commits applied */
  char *val[WL_NKEYS];
  size_t vlen[WL_NKEYS];
} wl_model;

/* Fill ops with transaction n; returns the number of operations. */
int wl_txn(uint32_t n, wl_op *ops);
/* Name of key i ("k%03d") into buf (at least 8 bytes). */
void wl_key(int i, char *buf);
/* Bring m to the state after commits 1..n (replays from 0 when n < m->n). */
void wl_model_to(wl_model *m, uint32_t n);
/* Release m's values and reset it to the empty state. */
void wl_model_clear(wl_model *m);
/* Number of live keys of m (the counter key not included). */
int wl_model_count(const wl_model *m);

#endif

#include "tinkv.h"

/*
** Read the counter of an open store into *pn (0 when absent).  TKV_* code.
*/
int wl_read_counter(tkv_db *db, uint32_t *pn);
/*
** Compare every key of the open store with m (the counter must read m->n;
** other keys starting with "__" are ignored).  0 if equal; else -1 with a
** description in why.
*/
int wl_check_store(tkv_db *db, const wl_model *m, char *why, size_t nwhy);
/*
** Run transaction n on db (begin, operations, commit).  TKV_* code; on
** failure the transaction is rolled back, wl_err holds the message of the
** failure and wl_rollback_rc the status of the rollback.
*/
extern char wl_err[512];
extern int wl_rollback_rc;
int wl_run_txn(tkv_db *db, uint32_t n);
