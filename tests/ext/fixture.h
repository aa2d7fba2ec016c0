/*
** The fixture most cmocka tests of the extension share: a scratch
** directory named after the suite and a connection to ":memory:" with the
** extension loaded, where the suite's own SQL (its tables) runs first.
**
** Include after <cmocka.h>.
*/
#ifndef TINKV_FIXTURE_H
#define TINKV_FIXTURE_H

#include "sqlhelp.h"
#include "testutil.h"

typedef struct Fixture {
  char zDir[4096];            /* scratch directory, removed at teardown */
  sqlite3 *db;                /* ":memory:" with the extension loaded */
} Fixture;

/* cmocka setup: a new Fixture in *state; zSql (NULL: none) runs with its
** %q (one at most) standing for the scratch directory. */
static inline int fx_setup(void **state, const char *zName, const char *zSql){
  Fixture *f = calloc(1, sizeof(*f));
  snprintf(f->zDir, sizeof f->zDir, "%s", tu_tmpdir(zName));
  f->db = sh_open(":memory:");
  if( zSql ) sh_exec(f->db, zSql, f->zDir);
  *state = f;
  return 0;
}

/* cmocka teardown: close the connection (a test may have done it and set
** db to NULL), remove the scratch directory. */
static inline int fx_teardown(void **state){
  Fixture *f = *state;
  if( f->db ) sqlite3_close(f->db);
  tu_rmrf(f->zDir);
  free(f);
  return 0;
}

#endif
