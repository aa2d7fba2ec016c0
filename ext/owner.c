/*
** Which tables may use, and which may remove, a store.
**
** The path of a table's store is part of the CREATE VIRTUAL TABLE statement
** kept in the database file, and a database file may come from someone
** else: its schema can name any directory, including the user's own
** stores.  So the extension keeps, inside each store it makes or is asked
** to take over, a record of the tables that did so, and trusts a schema
** only for the stores that record names:
**
**   created  CREATE VIRTUAL TABLE made the store (it did not exist).  Only
**            such a table removes the store on DROP TABLE.
**   adopted  CREATE VIRTUAL TABLE found an existing store and took it over.
**            DROP TABLE detaches it and leaves every file in place.
**
** A table is named by the absolute path of its database file and its
** table name.  When a connection opens an existing table (xConnect), the
** store is opened only if its record names that table, or if it is at the
** table's default path (derived from the database file's own name, so a
** schema cannot point it elsewhere).  Otherwise the table connects closed:
** nothing in the directory is read or written, every use of the table is
** an error saying why, and DROP TABLE removes just the table.
**
** Tables of databases without a file (":memory:", temp, the memdb VFS) have
** no lasting name; what they made or adopted is remembered by their
** connection only (TinkvConn.pSession) and ends with it.
**
** The record is the text file OWNERS_FILE in the store directory, one line
** per table: "created <db> <table>" or "adopted <db> <table>", both names
** with bytes below '!', '%' and DEL written as %XX.  It is replaced
** atomically (write, fsync, rename).  The engine ignores files it did not
** make, and this module removes the record after the engine removed its
** files (tinkvOwnerRemoveStore).
*/
#include "tinkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OWNERS_FILE "SQLITE-OWNERS"

/*
** The file name that identifies schema zSchema of db, or NULL if it has
** none that lasts: in-memory and temp databases, and the memdb VFS (whose
** names are not files).
*/
const char *tinkvOwnerDbFile(sqlite3 *db, const char *zSchema){
  const char *zFile = sqlite3_db_filename(db, zSchema);
  sqlite3_vfs *pVfs = 0;
  if( zFile==0 || zFile[0]==0 ) return 0;
  if( sqlite3_file_control(db, zSchema, SQLITE_FCNTL_VFS_POINTER, &pVfs)
        ==SQLITE_OK
   && pVfs && pVfs->zName && strcmp(pVfs->zName, "memdb")==0 ){
    return 0;
  }
  return zFile;
}

/* Append z to pStr with the bytes that would break a line escaped. */
static void appendEscaped(sqlite3_str *pStr, const char *z){
  for(; *z; z++){
    unsigned char c = (unsigned char)*z;
    if( c<'!' || c=='%' || c==0x7f ){
      sqlite3_str_appendf(pStr, "%%%02X", c);
    }else{
      sqlite3_str_appendchar(pStr, 1, (char)c);
    }
  }
}

/* The record line of table zName of database file zDb, without kind and
** newline: " <db> <table>". */
static char *recordName(const char *zDb, const char *zName){
  sqlite3_str *pStr = sqlite3_str_new(0);
  sqlite3_str_appendchar(pStr, 1, ' ');
  appendEscaped(pStr, zDb);
  sqlite3_str_appendchar(pStr, 1, ' ');
  appendEscaped(pStr, zName);
  return sqlite3_str_finish(pStr);
}

/*
** How the record of store zDir names table zName of database file zDb:
** TINKV_OWNER_CREATED, TINKV_OWNER_ADOPTED or TINKV_OWNER_NONE.  Sets
** *pbRecord when the store has a record at all.
*/
int tinkvOwnerLookup(const char *zDir, const char *zDb, const char *zName,
                     int *pbRecord){
  char *zFile = sqlite3_mprintf("%s/" OWNERS_FILE, zDir);
  char *zMe = recordName(zDb, zName);
  int eKind = TINKV_OWNER_NONE;
  FILE *in = 0;
  *pbRecord = 0;
  if( zFile && zMe ) in = fopen(zFile, "rb");
  if( in ){
    char *zLine = 0;
    size_t nLine = 0;
    ssize_t n;
    *pbRecord = 1;
    while( (n = getline(&zLine, &nLine, in))>0 ){
      if( zLine[n-1]=='\n' ) zLine[--n] = 0;
      if( strncmp(zLine, "created", 7)==0 && strcmp(zLine+7, zMe)==0 ){
        eKind = TINKV_OWNER_CREATED;
      }else if( strncmp(zLine, "adopted", 7)==0 && strcmp(zLine+7, zMe)==0
             && eKind==TINKV_OWNER_NONE ){
        eKind = TINKV_OWNER_ADOPTED;
      }
    }
    free(zLine);
    fclose(in);
  }
  sqlite3_free(zFile);
  sqlite3_free(zMe);
  return eKind;
}

/* Write the whole file zFile with z, durably: temporary file, fsync,
** rename, fsync of the directory. */
static int writeFileAtomic(const char *zDir, const char *zFile, const char *z,
                           char **pzErr){
  char *zTmp = sqlite3_mprintf("%s.tmp", zFile);
  size_t n = strlen(z), done = 0;
  int fd, rc = SQLITE_OK;
  if( zTmp==0 ) return SQLITE_NOMEM;
  fd = open(zTmp, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644);
  if( fd<0 ) rc = SQLITE_IOERR;
  while( rc==SQLITE_OK && done<n ){
    ssize_t w = write(fd, z+done, n-done);
    if( w<0 && errno==EINTR ) continue;
    if( w<=0 ) rc = SQLITE_IOERR;
    else done += (size_t)w;
  }
  if( rc==SQLITE_OK && fsync(fd) ) rc = SQLITE_IOERR;
  if( fd>=0 ) close(fd);
  if( rc==SQLITE_OK && rename(zTmp, zFile) ) rc = SQLITE_IOERR;
  if( rc==SQLITE_OK ){
    int dfd = open(zDir, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
    if( dfd>=0 ){
      (void)fsync(dfd);
      close(dfd);
    }
  }
  if( rc!=SQLITE_OK ){
    *pzErr = sqlite3_mprintf("tinkv: cannot write the owner record '%s': %s",
                             zFile, strerror(errno));
    unlink(zTmp);
  }
  sqlite3_free(zTmp);
  return rc;
}

/*
** Add "<kind> <db> <table>" to the record of store zDir (eKind is
** TINKV_OWNER_CREATED or TINKV_OWNER_ADOPTED).  Lines already there stay:
** a renamed table keeps its old line, which only its own database can use.
*/
int tinkvOwnerAdd(const char *zDir, const char *zDb, const char *zName,
                  int eKind, char **pzErr){
  char *zFile = sqlite3_mprintf("%s/" OWNERS_FILE, zDir);
  char *zMe = recordName(zDb, zName);
  sqlite3_str *pStr = sqlite3_str_new(0);
  char *zNew = 0;
  int rc = SQLITE_NOMEM;
  if( zFile && zMe ){
    FILE *in = fopen(zFile, "rb");
    if( in ){
      char buf[4096];
      size_t n;
      while( (n = fread(buf, 1, sizeof buf, in))>0 ){
        sqlite3_str_append(pStr, buf, (int)n);
      }
      fclose(in);
    }
    sqlite3_str_appendf(pStr, "%s%s\n",
        eKind==TINKV_OWNER_CREATED ? "created" : "adopted", zMe);
    zNew = sqlite3_str_finish(pStr);
    pStr = 0;
    if( zNew ) rc = writeFileAtomic(zDir, zFile, zNew, pzErr);
  }
  if( pStr ) sqlite3_free(sqlite3_str_finish(pStr));
  sqlite3_free(zNew);
  sqlite3_free(zFile);
  sqlite3_free(zMe);
  return rc;
}

/*
** Remove the closed store in zDir: the engine's files (tkv_destroy, which
** refuses a store open anywhere), then the record, then the directory if
** it is empty.
*/
int tinkvOwnerRemoveStore(const char *zDir, char **pzErr){
  char *zFile;
  int rc = tkv_destroy(zDir);
  if( rc!=TKV_OK && rc!=TKV_NOTSTORE ){
    return tinkvStatus(rc, zDir, pzErr);
  }
  zFile = sqlite3_mprintf("%s/" OWNERS_FILE, zDir);
  if( zFile==0 ) return SQLITE_NOMEM;
  if( unlink(zFile)==0 || errno==ENOENT ){
    (void)rmdir(zDir);       /* only if now empty */
  }
  sqlite3_free(zFile);
  return SQLITE_OK;
}
