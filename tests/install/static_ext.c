/*
** The static build: a program that links the extension in and registers it
** for every connection with sqlite3_auto_extension, beside another
** extension.  Usage: static_ext DIR; prints the rows it read back.
*/
#include <sqlite3.h>
#include <stdio.h>

int sqlite3_tinkv_init(sqlite3*, char**, const sqlite3_api_routines*);
int sqlite3_other_init(sqlite3*, char**, const sqlite3_api_routines*);

/* Print each row as "a|b". */
static int printRow(void *p, int n, char **az, char **azCol){
  int i;
  (void)p; (void)azCol;
  for(i=0; i<n; i++) printf("%s%s", i ? "|" : "", az[i] ? az[i] : "NULL");
  printf("\n");
  return 0;
}

int main(int argc, char **argv){
  sqlite3 *db;
  char *zSql, *zErr = 0;
  int rc;
  if( argc!=2 ) return 2;
  sqlite3_auto_extension((void(*)(void))sqlite3_tinkv_init);
  sqlite3_auto_extension((void(*)(void))sqlite3_other_init);
  if( sqlite3_open(":memory:", &db) ) return 1;
  zSql = sqlite3_mprintf(
      "CREATE VIRTUAL TABLE kv USING tinkv(%Q);"
      "INSERT INTO kv VALUES('a', 1), ('b', 'two');"
      "SELECT key, value, other_answer() FROM kv ORDER BY key;", argv[1]);
  rc = sqlite3_exec(db, zSql, printRow, 0, &zErr);
  if( rc ) fprintf(stderr, "%s\n", zErr);
  sqlite3_free(zErr);
  sqlite3_free(zSql);
  sqlite3_close(db);
  return rc ? 1 : 0;
}
