/*
** A program built the way a user builds one against an installed tinkv:
**   cc use_api.c $(pkg-config --cflags --libs tinkv)
** It writes a key, reads it back and prints the library's version.
** Usage: use_api DIR.  Exit status 0 when the value reads back.
*/
#include <stdio.h>
#include <string.h>
#include <tinkv.h>

int main(int argc, char **argv){
  tkv_options opts;
  tkv_db *db;
  void *val = 0;
  size_t n = 0;
  int rc;
  if( argc!=2 ) return 2;
  tkv_options_init(&opts);
  opts.create = 1;
  rc = tkv_open(argv[1], &opts, &db);
  if( rc ){ fprintf(stderr, "open: %s\n", tkv_errmsg()); return 1; }
  rc = tkv_put(db, "k", 1, "value", 5);
  if( rc==TKV_OK ) rc = tkv_get(db, "k", 1, &val, &n);
  if( rc==TKV_OK && (n!=5 || memcmp(val, "value", 5)) ) rc = TKV_CORRUPT;
  if( rc ) fprintf(stderr, "put/get: %s\n", tkv_errmsg());
  tkv_free(val);
  if( tkv_close(db) && rc==TKV_OK ) rc = TKV_IO;
  if( rc==TKV_OK ) printf("%s\n", tkv_version());
  return rc ? 1 : 0;
}
