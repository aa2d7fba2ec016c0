/*
** Bad SQL input: every mistake a user (or the author of a database file)
** can make is an SQLite error with a clear message, never a crash, and
** never a write outside the store's directory.
**
** The cases are tables of rows.  A row gives the SQL to run (with $D
** standing for the row's own scratch directory), the result code it must
** fail with (primary or extended; SQLITE_OK for a row that must succeed)
** and a substring of the message (for SQLITE_OK, the rows of the last
** query, exactly).  Each row runs in a forked child process with its own
** connection, its working directory and TMPDIR set to $D; the parent
** checks that the child exited normally (no signal, no sanitizer or
** valgrind report) and compares a listing of every file under the scratch
** parent directory (name, type, size, mode, mtime) before and after: only
** the row's allowed entry (a store it is meant to create or open) and the
** database file with its journal may change.
**
** The groups:
**   - bad CREATE VIRTUAL TABLE arguments (options and their values);
**   - bad store paths: a regular file, a missing parent, an empty path, a
**     non-empty directory that is not a store, an unreadable directory;
**   - oversize keys and values, NULL keys, explicit rowids;
**   - wrong arguments to tinkv_compact(), tinkv_stats(), tinkv_version()
**     and unknown tables;
**   - a database file whose schema points tinkv at a directory that is
**     missing, not a store, damaged, unreadable or not a directory
**     (xConnect reports it and never creates anything);
**   - the same database after its store moved, then was created again.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqlhelp.h"
#include "testutil.h"

/* Files made in $D before a row runs (a bit set). */
#define F_FILE      0x01   /* $D/file, a regular file */
#define F_FOREIGN   0x02   /* $D/foreign/notes.txt: a directory of someone's */
#define F_LINK      0x04   /* $D/link -> $D/file */
#define F_DANGLING  0x08   /* $D/dangling -> $D/nowhere (missing) */
#define F_NOPERM    0x10   /* $D/noperm, a directory with mode 000 */
#define F_FAKEID    0x20   /* $D/fake/TINKV holding garbage */
#define F_DBFILE    0x40   /* the row's connection is on $D/app.db */
#define F_ASUSER    0x80   /* the child drops root privileges (uid nobody) */
#define F_DEFFILE   0x100  /* $D/app.db-kv.tinkv, a regular file */
#define F_SUBDIR    0x200  /* $D/sub, an empty directory */

/* What happens to the store $D/kv after zSetup made it. */
enum {
  P_NONE = 0,
  P_REMOVE,      /* rm -r $D/kv */
  P_FOREIGN,     /* $D/kv replaced by a directory holding notes.txt */
  P_EMPTY,       /* $D/kv replaced by an empty directory */
  P_FILE,        /* $D/kv replaced by a regular file */
  P_FAKEID,      /* $D/kv replaced by a directory with a garbage TINKV */
  P_BADSEG,      /* the header of the first segment of $D/kv damaged */
  P_MOVE,        /* $D/kv renamed to $D/elsewhere */
  P_NOPERM,      /* $D/kv made mode 000 */
  P_LINK,        /* $D/kv replaced by a symbolic link to $D/foreign */
  P_REMOVE_DEFAULT, /* rm -r $D/app.db-kv.tinkv (the default store path) */
  P_REMOVE_PARENT   /* rm -r $D/sub (holding the store $D/sub/kv) */
};

typedef struct Case {
  const char *zWhat;    /* the mistake, for failure reports */
  int eFiles;           /* F_* */
  const char *zSetup;   /* SQL run first on $D/app.db by another connection */
  int ePost;            /* P_*, after zSetup */
  const char *zPrep;    /* SQL run by the row's connection; must succeed */
  const char *zSql;     /* the statements under test */
  int rc;               /* expected result code, or SQLITE_OK */
  const char *zMsg;     /* substring of the message, or the rows */
  const char *zAllow;   /* entry of $D that may change ("kv" covers kv/...) */
  int iLimit;           /* SQLITE_LIMIT_LENGTH of the connection, if not 0 */
  const char *zCheck;   /* a query run after zSql, in the same connection */
  const char *zCheckOut;/* its rows, exactly */
} Case;

/* The scratch parent directory; the rows' directories are inside. */
static char gzParent[4096];
/* The extension, as an absolute path (children chdir). */
static char gzSo[4096];
static int nSkipped;

/* ------------------------------------------------------------ Helpers. */

/* zIn with every "$D" replaced by zDir, in a string freed by sqlite3_free. */
static char *subst(const char *zIn, const char *zDir){
  sqlite3_str *p = sqlite3_str_new(0);
  const char *z;
  for(z=zIn; *z; z++){
    if( z[0]=='$' && z[1]=='D' ){
      sqlite3_str_appendall(p, zDir);
      z++;
    }else{
      sqlite3_str_appendchar(p, 1, *z);
    }
  }
  z = sqlite3_str_finish(p);
  return z ? (char*)z : sqlite3_mprintf("");
}

static void writeFile(const char *zDir, const char *zName, const char *zText){
  assert_int_equal(tu_write_file(tu_path(zDir, zName), zText, strlen(zText)),
                   0);
}

static void makeDir(const char *zDir, const char *zName){
  assert_int_equal(mkdir(tu_path(zDir, zName), 0755), 0);
}

/*
** Append to p one line per entry under zDir/zRel, recursively, sorted by
** name: "<relative path> <mode> <size> <mtime in ns>".  Symbolic links are
** listed, not followed; an unreadable directory is listed but not entered.
*/
static void listTree(sqlite3_str *p, const char *zDir, const char *zRel){
  char *zPath = sqlite3_mprintf("%s%s%s", zDir, zRel[0] ? "/" : "", zRel);
  char **az;
  int i, n = 0;
  assert_non_null(zPath);
  az = tu_list_files(zPath, "", &n);
  for(i=0; az && i<n; i++){
    char *zSub = sqlite3_mprintf("%s%s%s", zRel, zRel[0] ? "/" : "", az[i]);
    char *zFull = sqlite3_mprintf("%s/%s", zDir, zSub);
    struct stat st;
    if( zSub && zFull && lstat(zFull, &st)==0 ){
      sqlite3_str_appendf(p, "%s %o %lld %lld.%09ld\n", zSub,
                          (unsigned)st.st_mode, (long long)st.st_size,
                          (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
      if( S_ISDIR(st.st_mode) ) listTree(p, zDir, zSub);
    }
    sqlite3_free(zSub);
    sqlite3_free(zFull);
  }
  tu_free_names(az);
  sqlite3_free(zPath);
}

static char *snapshot(void){
  sqlite3_str *p = sqlite3_str_new(0);
  char *z;
  listTree(p, gzParent, "");
  z = sqlite3_str_finish(p);
  return z ? z : sqlite3_mprintf("");
}

/* True if relative path zPath (one snapshot line's name) may change in the
** row whose directory is zCase (relative to the parent). */
static int mayChange(const char *zPath, size_t nPath, const char *zCase,
                     const Case *pCase){
  size_t nCase = strlen(zCase);
  const char *zIn;
  size_t nIn;
  if( nPath<nCase || memcmp(zPath, zCase, nCase)!=0 ) return 0;
  if( nPath==nCase ){
    /* The row's directory itself: its mtime changes when an allowed entry
    ** is made or the database's journal comes and goes. */
    return pCase->zAllow!=0 || (pCase->eFiles & F_DBFILE)!=0
        || pCase->zSetup!=0;
  }
  if( zPath[nCase]!='/' ) return 0;
  zIn = zPath+nCase+1;
  nIn = nPath-nCase-1;
  if( nIn>=6 && memcmp(zIn, "app.db", 6)==0
   && ((pCase->eFiles & F_DBFILE) || pCase->zSetup) ){
    return 1;                          /* app.db, app.db-journal, ... */
  }
  if( pCase->zAllow ){
    size_t nAllow = strlen(pCase->zAllow);
    if( nIn>=nAllow && memcmp(zIn, pCase->zAllow, nAllow)==0
     && (nIn==nAllow || zIn[nAllow]=='/') ){
      return 1;
    }
  }
  return 0;
}

/* Append to pErr every line of zA missing from zB whose path may not
** change; zHow says "new or changed" or "removed or changed". */
static int diffLines(const char *zA, const char *zB, const char *zCase,
                     const Case *pCase, const char *zHow, sqlite3_str *pErr){
  int nBad = 0;
  const char *z = zA;
  while( *z ){
    const char *zEnd = strchr(z, '\n');
    size_t n = zEnd ? (size_t)(zEnd-z) : strlen(z);
    const char *zHit;
    int bFound = 0;
    for(zHit=zB; zHit && *zHit; ){          /* the whole line, in zB? */
      if( strncmp(zHit, z, n)==0 && (zHit[n]=='\n' || zHit[n]==0) ){
        bFound = 1;
        break;
      }
      zHit = strchr(zHit, '\n');
      if( zHit ) zHit++;
    }
    if( !bFound ){
      size_t nPath = (size_t)(strchr(z, ' ')-z);
      if( !mayChange(z, nPath, zCase, pCase) ){
        sqlite3_str_appendf(pErr, "\n    %s: %.*s", zHow, (int)n, z);
        nBad++;
      }
    }
    z += n;
    if( *z=='\n' ) z++;
  }
  return nBad;
}

/* ------------------------------------------------------ The child side. */

/*
** Run the statements of zSql on db.  Returns the result code of the first
** failing statement (and its extended code and message through pExt and
** pOut), or SQLITE_OK with the rows of the last statement that has result
** columns in pOut, rendered like sh_query().
*/
static int runSql(sqlite3 *db, const char *zSql, int *pExt, sqlite3_str *pOut){
  const char *zTail = zSql;
  int rc = SQLITE_OK;
  *pExt = SQLITE_OK;
  while( rc==SQLITE_OK && zTail && zTail[0] ){
    sqlite3_stmt *pStmt = 0;
    int nRow = 0;
    rc = sqlite3_prepare_v2(db, zTail, -1, &pStmt, &zTail);
    if( rc!=SQLITE_OK ){
      *pExt = sqlite3_extended_errcode(db);
      sqlite3_str_reset(pOut);
      sqlite3_str_appendall(pOut, sqlite3_errmsg(db));
      break;
    }
    if( pStmt==0 ) break;                       /* only blanks left */
    if( sqlite3_column_count(pStmt)>0 ) sqlite3_str_reset(pOut);
    while( (rc = sqlite3_step(pStmt))==SQLITE_ROW ){
      int i, nCol = sqlite3_column_count(pStmt);
      if( nRow++ ) sqlite3_str_appendchar(pOut, 1, '\n');
      for(i=0; i<nCol; i++){
        const char *z = (const char*)sqlite3_column_text(pStmt, i);
        if( i ) sqlite3_str_appendchar(pOut, 1, '|');
        sqlite3_str_appendall(pOut, z ? z : "NULL");
      }
    }
    if( rc==SQLITE_DONE ){
      rc = SQLITE_OK;
    }else{
      *pExt = sqlite3_extended_errcode(db);
      sqlite3_str_reset(pOut);
      sqlite3_str_appendall(pOut, sqlite3_errmsg(db));
    }
    sqlite3_finalize(pStmt);
  }
  return rc;
}

/* Write all of z to fd. */
static void writeAll(int fd, const char *z){
  size_t n = strlen(z);
  while( n>0 ){
    ssize_t k = write(fd, z, n);
    if( k<0 && errno==EINTR ) continue;
    if( k<=0 ) break;
    z += k;
    n -= (size_t)k;
  }
}

/*
** The child: run one row and write "<step> <rc> <extended rc>\n<text>" to
** fd, where step is the last step reached ("open", "load", "prep" or
** "sql") and text its message or rows, then an "@check" line if the row's
** check query disagrees and an "@close" line if the connection does not
** close.  Everything is released before exit, so that valgrind and
** LeakSanitizer see a clean process.
*/
static void runChild(const Case *p, const char *zCase, int fd){
  static const int aSig[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
  sqlite3 *db = 0;
  sqlite3_str *pOut = sqlite3_str_new(0);
  char *zSql = 0;
  char *zRes;
  const char *zStep = "open";
  int rc, ext = 0;
  size_t i;
  /* cmocka's handlers would resume the test runner in this process. */
  for(i=0; i<sizeof(aSig)/sizeof(aSig[0]); i++) signal(aSig[i], SIG_DFL);
  if( chdir(zCase) ) _exit(3);
  setenv("TMPDIR", zCase, 1);
  if( (p->eFiles & F_ASUSER) && geteuid()==0 ){
    /* Without the right to change user, or with a scratch directory that
    ** user cannot reach, the row is skipped. */
    char zLib[4200];
    snprintf(zLib, sizeof zLib, "%s.so", gzSo);
    if( setgid(65534) || setuid(65534) || access(zCase, W_OK|X_OK)
     || access(zLib, R_OK) ){
      writeAll(fd, "skip 0 0\n");
      close(fd);
      sqlite3_free(sqlite3_str_finish(pOut));
      return;
    }
  }
  rc = sqlite3_open(((p->eFiles & F_DBFILE) || p->zSetup) ? "app.db"
                    : ":memory:", &db);
  if( rc==SQLITE_OK ){
    zStep = "load";
    sqlite3_enable_load_extension(db, 1);
    rc = sqlite3_load_extension(db, gzSo, 0, 0);
  }
  if( rc==SQLITE_OK && p->iLimit ){
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, p->iLimit);
  }
  if( rc==SQLITE_OK && p->zPrep ){
    zStep = "prep";
    zSql = subst(p->zPrep, zCase);
    rc = runSql(db, zSql, &ext, pOut);
    sqlite3_free(zSql);
  }
  if( rc==SQLITE_OK ){
    zStep = "sql";
    zSql = subst(p->zSql, zCase);
    rc = runSql(db, zSql, &ext, pOut);
    sqlite3_free(zSql);
    if( p->zCheck ){
      /* The check runs whatever happened; its result is reported only if
      ** the statements themselves gave what the row expects. */
      sqlite3_str *pCheck = sqlite3_str_new(0);
      int extCheck = 0;
      int rcCheck = runSql(db, p->zCheck, &extCheck, pCheck);
      char *zCheck = sqlite3_str_finish(pCheck);
      if( rcCheck!=SQLITE_OK || strcmp(zCheck ? zCheck : "", p->zCheckOut) ){
        sqlite3_str_appendf(pOut, "\n@check %d %s", rcCheck,
                            zCheck ? zCheck : "");
      }
      sqlite3_free(zCheck);
    }
  }else if( rc!=SQLITE_OK && zStep[0]!='p' ){
    sqlite3_str_appendall(pOut, db ? sqlite3_errmsg(db) : "cannot open");
  }
  zRes = sqlite3_mprintf("%s %d %d\n", zStep, rc, ext);
  writeAll(fd, zRes);
  sqlite3_free(zRes);
  zRes = sqlite3_str_finish(pOut);
  writeAll(fd, zRes ? zRes : "");
  sqlite3_free(zRes);
  if( sqlite3_close(db)!=SQLITE_OK ){
    writeAll(fd, "\n@close: the connection did not close");
  }
  close(fd);
}

/* ------------------------------------------------------ The parent side. */

/* Read everything from fd into a string freed by sqlite3_free. */
static char *readAll(int fd){
  sqlite3_str *p = sqlite3_str_new(0);
  char buf[4096];
  char *z;
  for(;;){
    ssize_t n = read(fd, buf, sizeof buf);
    if( n<0 && errno==EINTR ) continue;
    if( n<=0 ) break;
    sqlite3_str_append(p, buf, (int)n);
  }
  z = sqlite3_str_finish(p);
  return z ? z : sqlite3_mprintf("");
}

/* Make the files of a row before it runs.  0, or 1 to skip the row. */
static int setupCase(const Case *p, const char *zCase){
  char zKv[4300], zOther[4300];
  snprintf(zKv, sizeof zKv, "%s/kv", zCase);
  if( (p->eFiles & F_NOPERM) || p->ePost==P_NOPERM ){
    /* Permissions mean nothing to root: the child drops to nobody, who
    ** must be able to reach $D. */
    if( geteuid()==0 && !(p->eFiles & F_ASUSER) ) return 1;
    chmod(gzParent, 0755);
    chmod(zCase, 0777);
  }
  if( p->eFiles & F_FILE ) writeFile(zCase, "file", "not a directory\n");
  if( p->eFiles & F_FOREIGN ){
    makeDir(zCase, "foreign");
    snprintf(zOther, sizeof zOther, "%s/foreign", zCase);
    writeFile(zOther, "notes.txt", "someone's notes\n");
  }
  if( p->eFiles & F_SUBDIR ) makeDir(zCase, "sub");
  if( p->eFiles & F_DEFFILE ){
    writeFile(zCase, "app.db-kv.tinkv", "not a directory\n");
  }
  if( p->eFiles & F_LINK ){
    assert_int_equal(symlink("file", tu_path(zCase, "link")), 0);
  }
  if( p->eFiles & F_DANGLING ){
    assert_int_equal(symlink("nowhere", tu_path(zCase, "dangling")), 0);
  }
  if( p->eFiles & F_NOPERM ){
    makeDir(zCase, "noperm");
    assert_int_equal(chmod(tu_path(zCase, "noperm"), 0), 0);
  }
  if( p->eFiles & F_FAKEID ){
    makeDir(zCase, "fake");
    snprintf(zOther, sizeof zOther, "%s/fake", zCase);
    writeFile(zOther, "TINKV", "this is not an identity file, just text");
  }
  if( p->zSetup ){
    char *zDb = sqlite3_mprintf("%s/app.db", zCase);
    char *zSql = subst(p->zSetup, zCase);
    sqlite3 *db = sh_open(zDb);
    sh_exec(db, "%s", zSql);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    sqlite3_free(zSql);
    sqlite3_free(zDb);
  }
  switch( p->ePost ){
    case P_REMOVE:
      tu_rmrf(zKv);
      break;
    case P_FOREIGN:
      tu_rmrf(zKv);
      makeDir(zCase, "kv");
      writeFile(zKv, "notes.txt", "someone's notes\n");
      break;
    case P_EMPTY:
      tu_rmrf(zKv);
      makeDir(zCase, "kv");
      break;
    case P_FILE:
      tu_rmrf(zKv);
      writeFile(zCase, "kv", "a file where the store was\n");
      break;
    case P_FAKEID:
      tu_rmrf(zKv);
      makeDir(zCase, "kv");
      writeFile(zKv, "TINKV", "garbage garbage garbage garbage garbage");
      break;
    case P_BADSEG: {
      char **az = tu_list_files(zKv, ".seg", 0);
      assert_non_null(az);
      assert_non_null(az[0]);
      assert_int_equal(tu_flip_byte(tu_path(zKv, az[0]), 3, 0x40), 0);
      tu_free_names(az);
      break;
    }
    case P_MOVE:
      assert_int_equal(rename(zKv, tu_path(zCase, "elsewhere")), 0);
      break;
    case P_NOPERM:
      assert_int_equal(chmod(zKv, 0), 0);
      break;
    case P_LINK:
      tu_rmrf(zKv);
      assert_int_equal(symlink("foreign", zKv), 0);
      break;
    case P_REMOVE_DEFAULT:
      tu_rmrf(tu_path(zCase, "app.db-kv.tinkv"));
      break;
    case P_REMOVE_PARENT:
      tu_rmrf(tu_path(zCase, "sub"));
      break;
  }
  if( (p->eFiles & F_ASUSER) && p->zSetup ){
    chmod(tu_path(zCase, "app.db"), 0666);
  }
  return 0;
}

/* Undo the modes that would stop the removal of a row's directory. */
static void cleanupCase(const char *zCase){
  chmod(tu_path(zCase, "noperm"), 0700);
  chmod(tu_path(zCase, "kv"), 0700);
  tu_rmrf(zCase);
}

/* Does the child's result match the row?  Appends the differences to pErr. */
static int checkResult(const Case *p, const char *zCase, const char *zRes,
                       sqlite3_str *pErr){
  char zStep[16] = "";
  int rc = -1, ext = -1, nBad = 0;
  const char *zText = strchr(zRes, '\n');
  char *zMsg = subst(p->zMsg ? p->zMsg : "", zCase);
  const char *zCheck;
  if( sscanf(zRes, "%15s %d %d", zStep, &rc, &ext)!=3 || zText==0 ){
    sqlite3_str_appendf(pErr, "\n    no result from the child: \"%s\"", zRes);
    sqlite3_free(zMsg);
    return 1;
  }
  if( strcmp(zStep, "skip")==0 ){
    nSkipped++;
    sqlite3_free(zMsg);
    return 0;
  }
  zText++;
  zCheck = strstr(zText, "\n@");
  if( strcmp(zStep, "sql")!=0 ){
    sqlite3_str_appendf(pErr, "\n    failed at step %s (%d/%d): %s", zStep,
                        rc, ext, zText);
    nBad++;
  }else if( p->rc==SQLITE_OK ){
    size_t n = zCheck ? (size_t)(zCheck-zText) : strlen(zText);
    if( rc!=SQLITE_OK ){
      sqlite3_str_appendf(pErr, "\n    expected success, got %d/%d: %.*s",
                          rc, ext, (int)n, zText);
      nBad++;
    }else if( p->zMsg && (strlen(zMsg)!=n || strncmp(zText, zMsg, n)) ){
      sqlite3_str_appendf(pErr, "\n    expected rows \"%.60s\", got \"%.*s\"",
                          zMsg, (int)(n<200 ? n : 200), zText);
      nBad++;
    }
  }else{
    if( rc==SQLITE_OK ){
      sqlite3_str_appendf(pErr, "\n    expected error %d containing \"%s\", "
                          "but it succeeded", p->rc, zMsg);
      nBad++;
    }else if( (rc!=p->rc && ext!=p->rc) || strstr(zText, zMsg)==0
           || (zCheck && strstr(zText, zMsg)>zCheck) ){
      sqlite3_str_appendf(pErr, "\n    expected error %d containing \"%s\", "
                          "got %d/%d: %s", p->rc, zMsg, rc, ext, zText);
      nBad++;
    }else if( strstr(zText, "(null)") ){
      sqlite3_str_appendf(pErr, "\n    message has \"(null)\": %s", zText);
      nBad++;
    }
  }
  if( nBad==0 && zCheck ){
    sqlite3_str_appendf(pErr, "\n    %s (expected \"%s\")", zCheck+1,
                        p->zCheckOut);
    nBad++;
  }
  sqlite3_free(zMsg);
  return nBad;
}

/*
** Run one row: set up its directory, fork, compare the result and the
** files.  Returns the number of problems (described in pErr).
*/
static int runCase(const Case *p, int iCase, sqlite3_str *pErr){
  char zCase[4200], zRel[32];
  char *zBefore, *zAfter, *zRes;
  int fds[2], status = 0, nBad = 0;
  pid_t pid;
  snprintf(zRel, sizeof zRel, "case-%03d", iCase);
  snprintf(zCase, sizeof zCase, "%s/%s", gzParent, zRel);
  assert_int_equal(mkdir(zCase, 0700), 0);
  if( setupCase(p, zCase) ){
    nSkipped++;
    cleanupCase(zCase);
    return 0;
  }
  zBefore = snapshot();
  assert_int_equal(pipe(fds), 0);
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  assert_true(pid>=0);
  if( pid==0 ){
    close(fds[0]);
    runChild(p, zCase, fds[1]);
    exit(0);
  }
  close(fds[1]);
  zRes = readAll(fds[0]);
  close(fds[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if( WIFSIGNALED(status) ){
    sqlite3_str_appendf(pErr, "\n    the process died of signal %d",
                        WTERMSIG(status));
    nBad++;
  }else if( !WIFEXITED(status) || WEXITSTATUS(status)!=0 ){
    sqlite3_str_appendf(pErr, "\n    the process exited with status %d "
                        "(a sanitizer or valgrind report is above)",
                        WEXITSTATUS(status));
    nBad++;
  }
  nBad += checkResult(p, zCase, zRes, pErr);
  zAfter = snapshot();
  nBad += diffLines(zAfter, zBefore, zRel, p, "new or changed", pErr);
  nBad += diffLines(zBefore, zAfter, zRel, p, "removed or changed", pErr);
  sqlite3_free(zBefore);
  sqlite3_free(zAfter);
  sqlite3_free(zRes);
  cleanupCase(zCase);
  return nBad;
}

/* Run every row of a table; fail the test naming each row that failed. */
static void runTable(const Case *a, int n){
  static int iNext = 0;
  int i, nFail = 0;
  for(i=0; i<n; i++){
    sqlite3_str *pErr = sqlite3_str_new(0);
    char *zErr;
    if( runCase(&a[i], iNext++, pErr) ){
      nFail++;
      zErr = sqlite3_str_finish(pErr);
      fprintf(stderr, "FAILED: %s\n  SQL: %s%s\n", a[i].zWhat, a[i].zSql,
              zErr ? zErr : "");
      sqlite3_free(zErr);
    }else{
      sqlite3_free(sqlite3_str_finish(pErr));
    }
  }
  if( nFail ) fail_msg("%d of %d rows failed", nFail, n);
}

#define RUN_TABLE(a) runTable(a, (int)(sizeof(a)/sizeof(a[0])))

/*
** The rows that drop to user nobody load the extension as nobody.  The
** checkout may live where nobody cannot read (root's home is mode 0700, and
** so is any `mktemp -d` directory), so the extension is copied to the
** scratch parent, which those rows open to everyone anyway, and loaded from
** there.  A child that still cannot read it skips its row.  0 on success.
*/
static int copyExtension(void){
  char zFrom[4200], zTo[4200];
  FILE *pIn, *pOut;
  char buf[65536];
  size_t n;
  int rc = 0;
  snprintf(zFrom, sizeof zFrom, "%s.so", gzSo);
  /* Its own directory: the entry point's name comes from the file name. */
  snprintf(zTo, sizeof zTo, "%s/lib", gzParent);
  if( mkdir(zTo, 0755) || chmod(zTo, 0755) ) return -1;
  snprintf(zTo, sizeof zTo, "%s/lib/tinkv.so", gzParent);
  pIn = fopen(zFrom, "rb");
  if( pIn==0 ) return 0;           /* loading fails and says so in each row */
  pOut = fopen(zTo, "wb");
  if( pOut==0 ){ fclose(pIn); return -1; }
  while( (n = fread(buf, 1, sizeof buf, pIn))>0 ){
    if( fwrite(buf, 1, n, pOut)!=n ){ rc = -1; break; }
  }
  if( ferror(pIn) ) rc = -1;
  fclose(pIn);
  if( fclose(pOut) ) rc = -1;
  if( rc==0 && chmod(zTo, 0644) ) rc = -1;
  if( rc==0 ){
    size_t nSo = strlen(zTo)-3;     /* sqlite3_load_extension adds ".so" */
    if( nSo>=sizeof gzSo ) return -1;
    memcpy(gzSo, zTo, nSo);
    gzSo[nSo] = 0;
  }
  return rc;
}

static int groupSetup(void **state){
  const char *zSo = getenv("TINKV_SO");
  (void)state;
  if( zSo==0 ) zSo = "build/tinkv";
  if( zSo[0]=='/' ){
    snprintf(gzSo, sizeof gzSo, "%s", zSo);
  }else{
    char zCwd[2048];
    if( getcwd(zCwd, sizeof zCwd)==0 ) return -1;
    snprintf(gzSo, sizeof gzSo, "%s/%s", zCwd, zSo);
  }
  snprintf(gzParent, sizeof gzParent, "%s", tu_tmpdir("badinput"));
  if( strchr(gzParent, '\'') ) return -1;
  if( geteuid()==0 ) return copyExtension();
  return 0;
}

static int groupTeardown(void **state){
  (void)state;
  tu_rmrf(gzParent);
  if( nSkipped ){
    printf("(%d rows skipped: permissions cannot be tested here: not root, "
           "or user nobody cannot reach %s)\n", nSkipped, gzParent);
  }
  return 0;
}

/* ------------------------------------------------------------ The cases. */

#define CREATE_T "CREATE VIRTUAL TABLE t USING tinkv"
#define NAME30 "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
#define NAME300 NAME30 NAME30 NAME30 NAME30 NAME30 \
                NAME30 NAME30 NAME30 NAME30 NAME30
#define PATH50 "./././././././././././././././././././././././././"
#define PATH500 PATH50 PATH50 PATH50 PATH50 PATH50 \
                PATH50 PATH50 PATH50 PATH50 PATH50
#define PATH5000 PATH500 PATH500 PATH500 PATH500 PATH500 \
                 PATH500 PATH500 PATH500 PATH500 PATH500

/* Every mistake in the options is refused, naming the option or value, and
** nothing is created: neither the store nor a private directory. */
static void test_create_options(void **state){
  static const Case a[] = {
    { .zWhat = "unknown option",
      .zSql = CREATE_T "(path='$D/a', colour=blue)", .rc = SQLITE_ERROR,
      .zMsg = "unknown option 'colour' (known options: path, sync, "
              "max_file_size, compact_threshold, encoding)" },
    { .zWhat = "unknown option, no path (a private in-memory store)",
      .zSql = CREATE_T "(colour=blue)", .rc = SQLITE_ERROR,
      .zMsg = "unknown option 'colour'" },
    { .zWhat = "an option with an empty name",
      .zSql = CREATE_T "(path='$D/a', =5)", .rc = SQLITE_ERROR,
      .zMsg = "unknown option ''" },
    { .zWhat = "option given twice (names compare without case)",
      .zSql = CREATE_T "(path='$D/a', sync=full, SYNC=off)",
      .rc = SQLITE_ERROR, .zMsg = "option 'sync' given more than once" },
    { .zWhat = "path given twice, bare and named",
      .zSql = CREATE_T "('$D/a', path='$D/b')", .rc = SQLITE_ERROR,
      .zMsg = "option 'path' given more than once" },
    { .zWhat = "a bare value after the first argument",
      .zSql = CREATE_T "(sync=full, '$D/a')", .rc = SQLITE_ERROR,
      .zMsg = "is not of the form name=value" },
    { .zWhat = "sync='fast'",
      .zSql = CREATE_T "(path='$D/a', sync='fast')", .rc = SQLITE_ERROR,
      .zMsg = "sync must be 'full', 'normal' or 'off', not 'fast'" },
    { .zWhat = "sync with no value",
      .zSql = CREATE_T "(path='$D/a', sync=)", .rc = SQLITE_ERROR,
      .zMsg = "sync must be 'full', 'normal' or 'off', not ''" },
    { .zWhat = "sync=1",
      .zSql = CREATE_T "(path='$D/a', sync=1)", .rc = SQLITE_ERROR,
      .zMsg = "not '1'" },
    { .zWhat = "max_file_size=0",
      .zSql = CREATE_T "(path='$D/a', max_file_size=0)", .rc = SQLITE_ERROR,
      .zMsg = "max_file_size must be a positive number of bytes" },
    { .zWhat = "max_file_size=-1",
      .zSql = CREATE_T "(path='$D/a', max_file_size=-1)", .rc = SQLITE_ERROR,
      .zMsg = "max_file_size must be a positive number of bytes (a KiB, MiB "
              "or GiB suffix is allowed), not '-1'" },
    { .zWhat = "max_file_size='abc'",
      .zSql = CREATE_T "(path='$D/a', max_file_size='abc')",
      .rc = SQLITE_ERROR, .zMsg = "not 'abc'" },
    { .zWhat = "max_file_size='10QB'",
      .zSql = CREATE_T "(path='$D/a', max_file_size='10QB')",
      .rc = SQLITE_ERROR, .zMsg = "max_file_size must be a positive" },
    { .zWhat = "max_file_size=''",
      .zSql = CREATE_T "(path='$D/a', max_file_size='')",
      .rc = SQLITE_ERROR, .zMsg = "max_file_size must be a positive" },
    { .zWhat = "max_file_size with a fraction",
      .zSql = CREATE_T "(path='$D/a', max_file_size='1.5MiB')",
      .rc = SQLITE_ERROR, .zMsg = "not '1.5MiB'" },
    { .zWhat = "max_file_size over 64 bits",
      .zSql = CREATE_T "(path='$D/a', max_file_size=99999999999999999999999)",
      .rc = SQLITE_ERROR, .zMsg = "max_file_size must be a positive" },
    { .zWhat = "max_file_size overflowing with its suffix",
      .zSql = CREATE_T "(path='$D/a', max_file_size='18446744073709551615G')",
      .rc = SQLITE_ERROR, .zMsg = "max_file_size must be a positive" },
    { .zWhat = "max_file_size=1 (too small)",
      .zSql = CREATE_T "(path='$D/a', max_file_size=1)", .rc = SQLITE_ERROR,
      .zMsg = "max_file_size must be between 4096 and 2147483648 bytes, "
              "not 1" },
    { .zWhat = "max_file_size=4095 (one under the minimum)",
      .zSql = CREATE_T "(path='$D/a', max_file_size=4095)",
      .rc = SQLITE_ERROR, .zMsg = "not 4095" },
    { .zWhat = "max_file_size=3GiB (too large)",
      .zSql = CREATE_T "(path='$D/a', max_file_size='3GiB')",
      .rc = SQLITE_ERROR, .zMsg = "between 4096 and 2147483648 bytes, "
                                  "not 3221225472" },
    { .zWhat = "max_file_size one over the maximum",
      .zSql = CREATE_T "(path='$D/a', max_file_size=2147483649)",
      .rc = SQLITE_ERROR, .zMsg = "not 2147483649" },
    { .zWhat = "max_file_size at the minimum is accepted",
      .zSql = CREATE_T "(path='$D/a', max_file_size=4096); SELECT 1",
      .rc = SQLITE_OK, .zMsg = "1", .zAllow = "a" },
    { .zWhat = "max_file_size at the maximum is accepted",
      .zSql = CREATE_T "(path='$D/a', max_file_size='2GiB'); SELECT 1",
      .rc = SQLITE_OK, .zMsg = "1", .zAllow = "a" },
    { .zWhat = "compact_threshold=0",
      .zSql = CREATE_T "(path='$D/a', compact_threshold=0)",
      .rc = SQLITE_ERROR, .zMsg = "compact_threshold must be a positive "
                                  "number of bytes" },
    { .zWhat = "compact_threshold=garbage",
      .zSql = CREATE_T "(path='$D/a', compact_threshold=garbage)",
      .rc = SQLITE_ERROR, .zMsg = "compact_threshold must be a positive "
          "number of bytes (a KiB, MiB or GiB suffix is allowed), not "
          "'garbage'" },
    { .zWhat = "compact_threshold=-10",
      .zSql = CREATE_T "(path='$D/a', compact_threshold=-10)",
      .rc = SQLITE_ERROR, .zMsg = "not '-10'" },
    { .zWhat = "compact_threshold=2^64-1",
      .zSql = CREATE_T "(path='$D/a', compact_threshold=18446744073709551615)",
      .rc = SQLITE_ERROR, .zMsg = "compact_threshold must be a positive" },
    { .zWhat = "a bad option after a good path, in an attached database",
      .zSql = "ATTACH ':memory:' AS aux; CREATE VIRTUAL TABLE aux.t USING "
              "tinkv('$D/a', sync=sometimes)",
      .rc = SQLITE_ERROR, .zMsg = "not 'sometimes'" },
    { .zWhat = "a bad option in a temp table without a path",
      .zSql = "CREATE VIRTUAL TABLE temp.t USING tinkv(max_file_size=0)",
      .rc = SQLITE_ERROR, .zMsg = "max_file_size must be a positive" },
  };
  (void)state;
  RUN_TABLE(a);
}

/* Paths that cannot be a store are refused with the path in the message,
** and nothing is written: not in a directory that is someone else's, not
** beside a missing parent. */
static void test_create_paths(void **state){
  static const Case a[] = {
    { .zWhat = "empty path option",
      .zSql = CREATE_T "(path='')", .rc = SQLITE_ERROR,
      .zMsg = "the path must not be empty" },
    { .zWhat = "empty bare path",
      .zSql = CREATE_T "('')", .rc = SQLITE_ERROR,
      .zMsg = "the path must not be empty" },
    { .zWhat = "blank path option",
      .zSql = CREATE_T "(path=  , sync=full)", .rc = SQLITE_ERROR,
      .zMsg = "the path must not be empty" },
    { .zWhat = "path to a regular file", .eFiles = F_FILE,
      .zSql = CREATE_T "(path='$D/file')", .rc = SQLITE_ERROR,
      .zMsg = "'$D/file' exists and is not a directory" },
    { .zWhat = "bare path to a regular file, relative", .eFiles = F_FILE,
      .zSql = CREATE_T "('file')", .rc = SQLITE_ERROR,
      .zMsg = "'$D/file' exists and is not a directory" },
    { .zWhat = "path below a regular file", .eFiles = F_FILE,
      .zSql = CREATE_T "('$D/file/kv')", .rc = SQLITE_ERROR,
      .zMsg = "$D/file/kv" },
    { .zWhat = "path to a symbolic link to a file", .eFiles = F_FILE|F_LINK,
      .zSql = CREATE_T "('$D/link')", .rc = SQLITE_ERROR,
      .zMsg = "is not a directory" },
    { .zWhat = "path to /dev/null",
      .zSql = CREATE_T "('/dev/null')", .rc = SQLITE_ERROR,
      .zMsg = "'/dev/null' exists and is not a directory" },
    { .zWhat = "path whose parent is missing",
      .zSql = CREATE_T "('$D/missing/kv')", .rc = SQLITE_ERROR,
      .zMsg = "cannot create store '$D/missing/kv': parent directory "
              "'$D/missing' does not exist" },
    { .zWhat = "path whose grandparent is missing",
      .zSql = CREATE_T "(path='$D/x/y/kv')", .rc = SQLITE_ERROR,
      .zMsg = "parent directory '$D/x/y' does not exist" },
    { .zWhat = "relative path whose parent is missing",
      .zSql = CREATE_T "(path='missing/kv')", .rc = SQLITE_ERROR,
      .zMsg = "parent directory '$D/missing' does not exist" },
    { .zWhat = "path to a dangling symbolic link", .eFiles = F_DANGLING,
      .zSql = CREATE_T "('$D/dangling')", .rc = SQLITE_ERROR,
      .zMsg = "$D/dangling" },
    { .zWhat = "path to a non-empty directory that is not a store",
      .eFiles = F_FOREIGN,
      .zSql = CREATE_T "('$D/foreign')", .rc = SQLITE_ERROR,
      .zMsg = "'$D/foreign' holds no tinkv store; refusing to use it" },
    { .zWhat = "the same, with a relative path and other options",
      .eFiles = F_FOREIGN,
      .zSql = CREATE_T "(path='./foreign', sync=off, max_file_size='1MiB')",
      .rc = SQLITE_ERROR, .zMsg = "'$D/foreign' holds no tinkv store" },
    { .zWhat = "path to a directory whose TINKV file is garbage",
      .eFiles = F_FAKEID,
      .zSql = CREATE_T "('$D/fake')", .rc = SQLITE_CORRUPT_VTAB,
      .zMsg = "store '$D/fake' is corrupt: bad identity file $D/fake/TINKV" },
    { .zWhat = "path to an unreadable directory",
      .eFiles = F_NOPERM|F_ASUSER,
      .zSql = CREATE_T "('$D/noperm')", .rc = SQLITE_PERM,
      .zMsg = "no permission to use directory '$D/noperm'" },
    { .zWhat = "path inside an unreadable directory",
      .eFiles = F_NOPERM|F_ASUSER,
      .zSql = CREATE_T "('$D/noperm/kv')", .rc = SQLITE_PERM,
      .zMsg = "$D/noperm/kv" },
    { .zWhat = "a file name over NAME_MAX",
      .zSql = CREATE_T "('$D/" NAME300 "')", .rc = SQLITE_ERROR,
      .zMsg = "File name too long" },
    { .zWhat = "a path over PATH_MAX",
      .zSql = CREATE_T "('$D/" PATH5000 "kv')", .rc = SQLITE_ERROR,
      .zMsg = "File name too long" },
    { .zWhat = "printf conversions in a path are text",
      .zSql = CREATE_T "('$D/%s%n%s/kv')", .rc = SQLITE_ERROR,
      .zMsg = "parent directory '$D/%s%n%s' does not exist" },
    { .zWhat = "printf conversions in a store name work",
      .zSql = CREATE_T "('$D/%s%n'); INSERT INTO t VALUES(1, 1); "
              "SELECT json_extract(tinkv_stats('t'), '$.path') = '$D/%s%n'",
      .rc = SQLITE_OK, .zMsg = "1", .zAllow = "%s%n" },
    { .zWhat = "default path: a table name with '/'", .eFiles = F_DBFILE,
      .zSql = "CREATE VIRTUAL TABLE \"a/b\" USING tinkv", .rc = SQLITE_ERROR,
      .zMsg = "table name 'a/b' contains '/'" },
    { .zWhat = "default path taken by a regular file",
      .eFiles = F_DBFILE|F_DEFFILE,
      .zSql = "CREATE VIRTUAL TABLE kv USING tinkv", .rc = SQLITE_ERROR,
      .zMsg = "'$D/app.db-kv.tinkv' exists and is not a directory" },
    { .zWhat = "a schema that does not exist",
      .zSql = "CREATE VIRTUAL TABLE nosuch.t USING tinkv('$D/a')",
      .rc = SQLITE_ERROR, .zMsg = "unknown database nosuch" },
    { .zWhat = "a table that already exists",
      .zPrep = "CREATE VIRTUAL TABLE kv USING tinkv('$D/kv')",
      .zSql = "CREATE VIRTUAL TABLE kv USING tinkv('$D/other')",
      .rc = SQLITE_ERROR, .zMsg = "table kv already exists", .zAllow = "kv" },
    { .zWhat = "a misspelt module",
      .zSql = "CREATE VIRTUAL TABLE t USING tinkvv('$D/a')",
      .rc = SQLITE_ERROR, .zMsg = "no such module: tinkvv" },
  };
  (void)state;
  RUN_TABLE(a);
}

/* Keys over 1 MiB (encoded) are SQLITE_TOOBIG from tinkv; values over
** SQLite's length limit are refused by SQLite itself; NULL keys and chosen
** rowids are refused; a refused write changes nothing. */
static void test_keys_and_values(void **state){
#define KV "CREATE VIRTUAL TABLE kv USING tinkv('$D/kv')"
#define KV1 KV "; INSERT INTO kv VALUES('a', 1)"
  static const Case a[] = {
    { .zWhat = "TEXT key of 1 MiB (1 MiB + 1 byte encoded)",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(printf('%.*c', 1048576, 'k'), 1)",
      .rc = SQLITE_TOOBIG,
      .zMsg = "tinkv: key too big (1048577 bytes encoded; the limit is "
              "1048576)",
      .zCheck = "SELECT count(*) FROM kv", .zCheckOut = "0" },
    { .zWhat = "TEXT key of 1 MiB - 1 (the largest)",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(printf('%.*c', 1048575, 'k'), 1); "
              "SELECT length(key), typeof(key) FROM kv",
      .rc = SQLITE_OK, .zMsg = "1048575|text" },
    { .zWhat = "BLOB key of 1 MiB",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(zeroblob(1048576), 1)",
      .rc = SQLITE_TOOBIG, .zMsg = "key too big" },
    { .zWhat = "BLOB key of 1 MiB - 1 (the largest)",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(zeroblob(1048575), 1); "
              "SELECT length(key), typeof(key) FROM kv",
      .rc = SQLITE_OK, .zMsg = "1048575|blob" },
    { .zWhat = "UPDATE to a key of 2 MiB",
      .zPrep = KV1, .zAllow = "kv",
      .zSql = "UPDATE kv SET key = zeroblob(2097152)",
      .rc = SQLITE_TOOBIG, .zMsg = "key too big",
      .zCheck = "SELECT key, value FROM kv", .zCheckOut = "a|1" },
    { .zWhat = "REPLACE with a key of 2 MiB",
      .zPrep = KV1, .zAllow = "kv",
      .zSql = "REPLACE INTO kv VALUES(randomblob(2097152), 2)",
      .rc = SQLITE_TOOBIG, .zMsg = "key too big" },
    { .zWhat = "INSERT OR IGNORE does not ignore a key too big",
      .zPrep = KV1, .zAllow = "kv",
      .zSql = "INSERT OR IGNORE INTO kv VALUES(zeroblob(2097152), 2)",
      .rc = SQLITE_TOOBIG, .zMsg = "key too big",
      .zCheck = "SELECT count(*) FROM kv", .zCheckOut = "1" },
    { .zWhat = "a key too big in the middle of a multi-row INSERT",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES('x', 1), (zeroblob(1048576), 2), "
              "('y', 3)",
      .rc = SQLITE_TOOBIG, .zMsg = "key too big",
      .zCheck = "SELECT count(*) FROM kv", .zCheckOut = "0" },
    { .zWhat = "looking up a key too big finds nothing",
      .zPrep = KV1, .zAllow = "kv",
      .zSql = "SELECT count(*) FROM kv WHERE key = zeroblob(2097152); "
              "DELETE FROM kv WHERE key = zeroblob(2097152); "
              "SELECT count(*) FROM kv WHERE key >= zeroblob(2097152)",
      .rc = SQLITE_OK, .zMsg = "0" },
    { .zWhat = "a value over SQLite's length limit (zeroblob)",
      .zPrep = KV, .zAllow = "kv", .iLimit = 100000,
      .zSql = "INSERT INTO kv VALUES(1, zeroblob(100001))",
      .rc = SQLITE_TOOBIG, .zMsg = "too big" },
    { .zWhat = "a value over SQLite's length limit (text)",
      .zPrep = KV1, .zAllow = "kv", .iLimit = 100000,
      .zSql = "UPDATE kv SET value = hex(zeroblob(50001))",
      .rc = SQLITE_TOOBIG, .zMsg = "too big",
      .zCheck = "SELECT key, value FROM kv", .zCheckOut = "a|1" },
    { .zWhat = "a value of 1,000,000,001 bytes (over the default limit)",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(1, zeroblob(1000000001))",
      .rc = SQLITE_TOOBIG, .zMsg = "too big" },
    { .zWhat = "a key over SQLite's length limit",
      .zPrep = KV, .zAllow = "kv", .iLimit = 1000,
      .zSql = "INSERT INTO kv VALUES(randomblob(1001), 1)",
      .rc = SQLITE_TOOBIG, .zMsg = "too big" },
    { .zWhat = "NULL key",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(NULL, 1)",
      .rc = SQLITE_CONSTRAINT_NOTNULL,
      .zMsg = "NOT NULL constraint failed: kv.key" },
    { .zWhat = "NULL key, value only",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv(value) VALUES(1)",
      .rc = SQLITE_CONSTRAINT_NOTNULL,
      .zMsg = "NOT NULL constraint failed: kv.key" },
    { .zWhat = "NULL key with OR REPLACE",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT OR REPLACE INTO kv VALUES(NULL, 1)",
      .rc = SQLITE_CONSTRAINT_NOTNULL, .zMsg = "NOT NULL constraint failed" },
    { .zWhat = "NULL key with OR IGNORE is skipped",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT OR IGNORE INTO kv VALUES(NULL, 1), ('b', 2); "
              "SELECT key FROM kv",
      .rc = SQLITE_OK, .zMsg = "b" },
    { .zWhat = "UPDATE to a NULL key",
      .zPrep = KV1, .zAllow = "kv",
      .zSql = "UPDATE kv SET key = NULL",
      .rc = SQLITE_CONSTRAINT_NOTNULL,
      .zMsg = "NOT NULL constraint failed: kv.key",
      .zCheck = "SELECT key, value FROM kv", .zCheckOut = "a|1" },
    { .zWhat = "INSERT with an explicit rowid",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv(rowid, key, value) VALUES(5, 'a', 1)",
      .rc = SQLITE_MISMATCH,
      .zMsg = "tinkv: cannot set the rowid of table 'kv'",
      .zCheck = "SELECT count(*) FROM kv", .zCheckOut = "0" },
    { .zWhat = "INSERT with a NULL rowid is a plain INSERT",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv(rowid, key, value) VALUES(NULL, 'a', 1); "
              "SELECT key, value FROM kv",
      .rc = SQLITE_OK, .zMsg = "a|1" },
    { .zWhat = "UPDATE of the rowid",
      .zPrep = KV1, .zAllow = "kv",
      .zSql = "UPDATE kv SET rowid = rowid + 1",
      .rc = SQLITE_MISMATCH, .zMsg = "cannot set the rowid",
      .zCheck = "SELECT key, value FROM kv", .zCheckOut = "a|1" },
    { .zWhat = "UPDATE of the rowid to NULL",
      .zPrep = KV1, .zAllow = "kv",
      .zSql = "UPDATE kv SET rowid = NULL",
      .rc = SQLITE_MISMATCH, .zMsg = "cannot set the rowid" },
    { .zWhat = "a duplicate key (1 and 1.0 are one key)",
      .zPrep = KV "; INSERT INTO kv VALUES(1, 1)", .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(1.0, 2)",
      .rc = SQLITE_CONSTRAINT_PRIMARYKEY,
      .zMsg = "UNIQUE constraint failed: kv.key" },
    { .zWhat = "too few values",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(1)",
      .rc = SQLITE_ERROR, .zMsg = "table kv has 2 columns but 1 values" },
    { .zWhat = "an unknown column",
      .zPrep = KV, .zAllow = "kv",
      .zSql = "INSERT INTO kv(key, colour) VALUES(1, 2)",
      .rc = SQLITE_ERROR, .zMsg = "table kv has no column named colour" },
  };
#undef KV1
#undef KV
  (void)state;
  RUN_TABLE(a);
}

/* The functions take exactly one argument naming a tinkv table; anything
** else is an error saying what is wrong. */
static void test_functions(void **state){
#define T "CREATE VIRTUAL TABLE kv USING tinkv('$D/kv'); CREATE TABLE " \
          "plain(x); CREATE VIEW v AS SELECT 1; "
  static const Case a[] = {
    { .zWhat = "tinkv_compact() without an argument",
      .zSql = "SELECT tinkv_compact()", .rc = SQLITE_ERROR,
      .zMsg = "wrong number of arguments to function tinkv_compact()" },
    { .zWhat = "tinkv_stats() without an argument",
      .zSql = "SELECT tinkv_stats()", .rc = SQLITE_ERROR,
      .zMsg = "wrong number of arguments to function tinkv_stats()" },
    { .zWhat = "tinkv_compact() with 2 arguments",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact('kv', 'kv')", .rc = SQLITE_ERROR,
      .zMsg = "wrong number of arguments to function tinkv_compact()" },
    { .zWhat = "tinkv_stats() with 2 arguments",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('kv', 1)", .rc = SQLITE_ERROR,
      .zMsg = "wrong number of arguments to function tinkv_stats()" },
    { .zWhat = "tinkv_version() with an argument",
      .zSql = "SELECT tinkv_version(1)", .rc = SQLITE_ERROR,
      .zMsg = "wrong number of arguments to function tinkv_version()" },
    { .zWhat = "tinkv_compact(NULL)",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact(NULL)", .rc = SQLITE_ERROR,
      .zMsg = "tinkv: the table name must not be NULL" },
    { .zWhat = "tinkv_stats(NULL)",
      .zSql = "SELECT tinkv_stats(NULL)", .rc = SQLITE_ERROR,
      .zMsg = "tinkv: the table name must not be NULL" },
    { .zWhat = "tinkv_compact(integer)",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact(5)", .rc = SQLITE_ERROR,
      .zMsg = "tinkv:" },
    { .zWhat = "tinkv_stats(real)",
      .zSql = "SELECT tinkv_stats(1.5)", .rc = SQLITE_ERROR,
      .zMsg = "tinkv:" },
    { .zWhat = "tinkv_stats(blob that spells a tinkv table's name)",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats(x'6b76')", .rc = SQLITE_ERROR,
      .zMsg = "tinkv:" },
    { .zWhat = "tinkv_compact(blob that spells a tinkv table's name)",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact(CAST('kv' AS BLOB))", .rc = SQLITE_ERROR,
      .zMsg = "tinkv:" },
    { .zWhat = "tinkv_stats(x'')",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats(x'')", .rc = SQLITE_ERROR,
      .zMsg = "tinkv:" },
    { .zWhat = "tinkv_stats(x'00ff')",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats(x'00ff')", .rc = SQLITE_ERROR,
      .zMsg = "tinkv:" },
    { .zWhat = "tinkv_compact('')",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact('')", .rc = SQLITE_ERROR,
      .zMsg = "no such table" },
    { .zWhat = "an unknown table",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact('nope')", .rc = SQLITE_ERROR,
      .zMsg = "tinkv: no such table: nope" },
    { .zWhat = "a native table",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('plain')", .rc = SQLITE_ERROR,
      .zMsg = "tinkv: 'plain' is not a tinkv table" },
    { .zWhat = "a native table, qualified",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact('main.plain')", .rc = SQLITE_ERROR,
      .zMsg = "'main.plain' is not a tinkv table" },
    { .zWhat = "a view",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact('v')", .rc = SQLITE_ERROR,
      .zMsg = "tinkv: 'v' is not a tinkv table" },
    { .zWhat = "a virtual table of another module",
      .zPrep = T "CREATE VIRTUAL TABLE f USING fts5(x)", .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('f')", .rc = SQLITE_ERROR,
      .zMsg = "'f' is not a tinkv table" },
    { .zWhat = "the schema table",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('sqlite_schema')", .rc = SQLITE_ERROR,
      .zMsg = "sqlite_schema" },
    { .zWhat = "an eponymous virtual table",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('json_each')", .rc = SQLITE_ERROR,
      .zMsg = "json_each" },
    { .zWhat = "an unknown schema",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('nosuchschema.kv')", .rc = SQLITE_ERROR,
      .zMsg = "tinkv: no such table: nosuchschema.kv" },
    { .zWhat = "the wrong schema",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_compact('temp.kv')", .rc = SQLITE_ERROR,
      .zMsg = "no such table: temp.kv" },
    { .zWhat = "a name with two dots",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('main.kv.x')", .rc = SQLITE_ERROR,
      .zMsg = "no such table: main.kv.x" },
    { .zWhat = "a quoted name (the argument is a name, not SQL)",
      .zPrep = T, .zAllow = "kv",
      .zSql = "SELECT tinkv_stats('\"kv\"')", .rc = SQLITE_ERROR,
      .zMsg = "no such table: \"kv\"" },
    { .zWhat = "'main.kv' works",
      .zPrep = T "INSERT INTO kv VALUES(1, 1)", .zAllow = "kv",
      .zSql = "SELECT json_extract(tinkv_stats('main.kv'), '$.keys'), "
              "tinkv_compact('main.kv') >= 0, "
              "json_extract(tinkv_stats('MAIN.KV'), '$.keys')",
      .rc = SQLITE_OK, .zMsg = "1|1|1" },
  };
#undef T
  (void)state;
  RUN_TABLE(a);
}

/* Unknown tables are SQLite's own errors; tinkv adds nothing. */
static void test_unknown_tables(void **state){
  static const Case a[] = {
    { .zWhat = "SELECT from an unknown table",
      .zSql = "SELECT * FROM kv", .rc = SQLITE_ERROR,
      .zMsg = "no such table: kv" },
    { .zWhat = "INSERT into an unknown table in an attached database",
      .zSql = "ATTACH ':memory:' AS aux; INSERT INTO aux.kv VALUES(1, 1)",
      .rc = SQLITE_ERROR, .zMsg = "no such table: aux.kv" },
    { .zWhat = "DROP of an unknown table",
      .zSql = "DROP TABLE kv", .rc = SQLITE_ERROR,
      .zMsg = "no such table: kv" },
    { .zWhat = "DROP of a dropped table; the store is gone",
      .zPrep = "CREATE VIRTUAL TABLE kv USING tinkv('$D/kv'); DROP TABLE kv",
      .zSql = "DROP TABLE kv", .rc = SQLITE_ERROR,
      .zMsg = "no such table: kv", .zAllow = "kv",
      .zCheck = "SELECT count(*) FROM pragma_table_list WHERE name='kv'",
      .zCheckOut = "0" },
  };
  (void)state;
  RUN_TABLE(a);
}

/*
** A database file whose schema names a store that is gone, moved, replaced
** by something else or damaged: every use of the table is an error naming
** the directory, other tables still work, and xConnect creates nothing (not
** the store, not its parent) and writes nothing into what it finds.
*/
static void test_schema_points_elsewhere(void **state){
#define MK "CREATE VIRTUAL TABLE kv USING tinkv('$D/kv'); " \
           "INSERT INTO kv VALUES(1, 'one'); CREATE TABLE plain(x); " \
           "INSERT INTO plain VALUES(42)"
  static const Case a[] = {
    { .zWhat = "store removed: SELECT", .zSetup = MK, .ePost = P_REMOVE,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "tinkv: no store at '$D/kv' (No such file or directory; was "
              "it moved or deleted?)" },
    { .zWhat = "store removed: INSERT", .zSetup = MK, .ePost = P_REMOVE,
      .zSql = "INSERT INTO kv VALUES(2, 'two')", .rc = SQLITE_CANTOPEN,
      .zMsg = "no store at '$D/kv'" },
    { .zWhat = "store removed: tinkv_stats", .zSetup = MK, .ePost = P_REMOVE,
      .zSql = "SELECT tinkv_stats('kv')", .rc = SQLITE_CANTOPEN,
      .zMsg = "no store at '$D/kv'" },
    { .zWhat = "store removed: tinkv_compact", .zSetup = MK,
      .ePost = P_REMOVE,
      .zSql = "SELECT tinkv_compact('main.kv')", .rc = SQLITE_CANTOPEN,
      .zMsg = "no store at '$D/kv'" },
    { .zWhat = "store removed: DROP TABLE still drops the table",
      .zSetup = MK, .ePost = P_REMOVE,
      .zSql = "DROP TABLE kv; SELECT count(*) FROM sqlite_schema "
              "WHERE name='kv'", .rc = SQLITE_OK, .zMsg = "0" },
    { .zWhat = "store removed: the other tables still work",
      .zSetup = MK, .ePost = P_REMOVE,
      .zSql = "SELECT x FROM plain; SELECT name FROM sqlite_schema "
              "WHERE name='kv'",
      .rc = SQLITE_OK, .zMsg = "kv" },
    { .zWhat = "store's parent removed: nothing is created",
      .zSetup = "CREATE VIRTUAL TABLE kv USING tinkv('$D/sub/kv')",
      .eFiles = F_SUBDIR, .ePost = P_REMOVE_PARENT,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "no store at '$D/sub/kv'" },
    { .zWhat = "store replaced by a directory of someone else's",
      .zSetup = MK, .ePost = P_FOREIGN,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "tinkv: '$D/kv' holds no tinkv store; refusing to use it" },
    { .zWhat = "store replaced by an empty directory",
      .zSetup = MK, .ePost = P_EMPTY,
      .zSql = "INSERT INTO kv VALUES(2, 2)", .rc = SQLITE_CANTOPEN,
      .zMsg = "'$D/kv' holds no tinkv store" },
    { .zWhat = "store replaced by a regular file",
      .zSetup = MK, .ePost = P_FILE,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "tinkv: '$D/kv' is not a directory" },
    { .zWhat = "store replaced by a directory with a garbage TINKV",
      .zSetup = MK, .ePost = P_FAKEID,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "'$D/kv' holds no tinkv store" },
    { .zWhat = "store replaced by a link to someone's directory",
      .zSetup = MK, .eFiles = F_FOREIGN, .ePost = P_LINK,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "'$D/kv' holds no tinkv store" },
    { .zWhat = "store moved elsewhere", .zSetup = MK, .ePost = P_MOVE,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "no store at '$D/kv'" },
    { .zWhat = "store with a damaged segment header",
      .zSetup = MK, .ePost = P_BADSEG, .zAllow = "kv",
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CORRUPT_VTAB,
      .zMsg = "tinkv: store '$D/kv' is corrupt" },
    { .zWhat = "store made unreadable",
      .zSetup = MK, .ePost = P_NOPERM, .eFiles = F_ASUSER,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_PERM,
      .zMsg = "permission" },
    { .zWhat = "default-path store removed",
      .zSetup = "CREATE VIRTUAL TABLE kv USING tinkv; "
                "INSERT INTO kv VALUES(1, 1)",
      .ePost = P_REMOVE_DEFAULT,
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "no store at '$D/app.db-kv.tinkv'" },
    { .zWhat = "schema edited to point at someone's directory",
      .eFiles = F_FOREIGN,
      .zSetup = MK "; PRAGMA writable_schema=ON; UPDATE sqlite_schema SET "
                "sql='CREATE VIRTUAL TABLE kv USING tinkv(''$D/foreign'')' "
                "WHERE name='kv'",
      .zAllow = "kv",
      .zSql = "SELECT * FROM kv", .rc = SQLITE_CANTOPEN,
      .zMsg = "'$D/foreign' holds no tinkv store" },
    { .zWhat = "schema edited to point at a missing directory",
      .zSetup = MK "; PRAGMA writable_schema=ON; UPDATE sqlite_schema SET "
                "sql='CREATE VIRTUAL TABLE kv USING tinkv(''$D/none/kv'')' "
                "WHERE name='kv'",
      .zAllow = "kv",
      .zSql = "INSERT INTO kv VALUES(5, 5)", .rc = SQLITE_CANTOPEN,
      .zMsg = "no store at '$D/none/kv'" },
    { .zWhat = "schema edited to an empty path",
      .zSetup = MK "; PRAGMA writable_schema=ON; UPDATE sqlite_schema SET "
                "sql='CREATE VIRTUAL TABLE kv USING tinkv(path='''')' "
                "WHERE name='kv'",
      .zAllow = "kv",
      .zSql = "SELECT * FROM kv", .rc = SQLITE_ERROR,
      .zMsg = "the path must not be empty" },
    { .zWhat = "schema edited to a bad option",
      .zSetup = MK "; PRAGMA writable_schema=ON; UPDATE sqlite_schema SET "
                "sql='CREATE VIRTUAL TABLE kv USING tinkv(''$D/kv'', "
                "max_file_size=1)' WHERE name='kv'",
      .zAllow = "kv",
      .zSql = "SELECT * FROM kv", .rc = SQLITE_ERROR,
      .zMsg = "max_file_size must be between" },
  };
#undef MK
  (void)state;
  RUN_TABLE(a);
}

/* The listing of store zDir without its LOCK file (whose content, the
** owner's pid, is rewritten by every open), freed with sqlite3_free. */
static char *listingOfData(const char *zDir){
  sqlite3_str *p = sqlite3_str_new(0);
  char **az;
  int i, n = 0;
  az = tu_list_files(zDir, "", &n);
  assert_non_null(az);
  for(i=0; i<n; i++){
    if( strcmp(az[i], "LOCK")==0 ) continue;
    sqlite3_str_appendf(p, "%s %lld\n", az[i],
                        tu_file_size(tu_path(zDir, az[i])));
  }
  tu_free_names(az);
  return sqlite3_str_finish(p);
}

/* The rows of a query on zDb through a new connection, or the error. */
static const char *queryDb(const char *zDb, const char *zSql){
  static char zOut[512];
  sqlite3 *db = sh_open(zDb);
  snprintf(zOut, sizeof zOut, "%s", sh_query(db, "%s", zSql));
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  return zOut;
}

/*
** The store of a database's table is moved away, then created again at
** its old place by someone else: meanwhile the table is an error and
** nothing appears at the old place; afterwards the table opens the new
** store, and the moved one is untouched.
*/
static void test_store_moved_then_recreated(void **state){
  char zDir[4200], zDb[4300], zKv[4300], zMoved[4300];
  char *zBefore, *zAfter;
  sqlite3 *db;
  (void)state;
  snprintf(zDir, sizeof zDir, "%s/moved-then-recreated", gzParent);
  assert_int_equal(mkdir(zDir, 0700), 0);
  snprintf(zDb, sizeof zDb, "%s/app.db", zDir);
  snprintf(zKv, sizeof zKv, "%s/kv", zDir);
  snprintf(zMoved, sizeof zMoved, "%s/moved", zDir);
  db = sh_open(zDb);
  sh_exec(db, "CREATE VIRTUAL TABLE kv USING tinkv('%q'); "
          "INSERT INTO kv VALUES(1, 'one'), (2, 'two')", zKv);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  assert_int_equal(rename(zKv, zMoved), 0);

  /* Gone: an error, twice, and nothing is created at the old place. */
  assert_non_null(strstr(queryDb(zDb, "SELECT count(*) FROM kv"),
                         "no store at"));
  db = sh_open(zDb);
  sh_fails(db, SQLITE_CANTOPEN, "was it moved or deleted?",
           "INSERT INTO kv VALUES(3, 'three')");
  sh_fails(db, SQLITE_CANTOPEN, "no store at", "SELECT * FROM kv");
  /* The moved store can be used by a new table of the same database. */
  sh_exec(db, "CREATE VIRTUAL TABLE kv2 USING tinkv('%q')", zMoved);
  sh_assert_query(db, "1|one\n2|two", "SELECT * FROM kv2");
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  assert_false(tu_exists(zKv));

  /* Someone creates a store at the old place: it is not the table's (the
  ** table neither created nor adopted it), so the table does not open it
  ** and nothing there changes. */
  db = sh_open(":memory:");
  sh_exec(db, "CREATE VIRTUAL TABLE other USING tinkv('%q'); "
          "INSERT INTO other VALUES('new', 1)", zKv);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  zBefore = listingOfData(zKv);
  assert_non_null(strstr(queryDb(zDb, "SELECT * FROM kv"),
                         "did not create or adopt the store"));
  assert_string_equal(queryDb(zDb, "SELECT * FROM kv2"), "1|one\n2|two");
  zAfter = listingOfData(zKv);
  assert_string_equal(zBefore, zAfter);
  sqlite3_free(zBefore);
  sqlite3_free(zAfter);
  /* Adopted by a CREATE in that database, it opens. */
  db = sh_open(zDb);
  sh_exec(db, "DROP TABLE kv; CREATE VIRTUAL TABLE kv USING tinkv('%q')",
          zKv);
  sh_assert_query(db, "new|1", "SELECT * FROM kv");
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  zBefore = listingOfData(zMoved);
  assert_string_equal(queryDb(zDb, "SELECT * FROM kv2"), "1|one\n2|two");
  zAfter = listingOfData(zMoved);
  assert_string_equal(zBefore, zAfter);
  sqlite3_free(zBefore);
  sqlite3_free(zAfter);
  tu_rmrf(zDir);
}

int main(void){
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_create_options),
    cmocka_unit_test(test_create_paths),
    cmocka_unit_test(test_keys_and_values),
    cmocka_unit_test(test_functions),
    cmocka_unit_test(test_unknown_tables),
    cmocka_unit_test(test_schema_points_elsewhere),
    cmocka_unit_test(test_store_moved_then_recreated),
  };
  return cmocka_run_group_tests(tests, groupSetup, groupTeardown);
}
