/*
** Power-loss simulation, for every sync mode.  A test observer on the
** engine's file-system calls (tkv_test_set_io_observer) keeps a model of
** what a power cut would leave on disk:
**   - each file has its current contents and its durable contents, which
**     become the current ones only when the file is fdatasync'ed;
**   - the directory has its current names and its durable names, which
**     become the current ones only when the directory is fsync'ed.
** The crash model is the weakest the README allows: unsynced writes may be
** lost, kept, or kept in part, in any combination and order, per file and
** per page (and per 512-byte sector within a page); a file's size may be
** anywhere between its durable and its current size; name changes not
** covered by a directory fsync may each be kept or lost, independently.
** Before every file-system call of a workload (commits across segment
** rotations, automatic and requested compactions, tkv_sync, close,
** reopen with recovery), the disk a power cut would leave at that moment is
** written out, in four variants: (a) only what was synced; (b) synced
** names plus a random subset of the later name changes, every file a
** random per-page mix of synced and current bytes; (c) synced names with
** every file's current contents; (d) every current name, files mixed as in
** (b).  Afterwards each one is opened and must hold exactly the state after
** commit j, with j at least what the sync mode promised at the cut (full:
** the last commit acknowledged; normal and off: the last one before a
** tkv_sync or tkv_close that returned) and at most one more than was
** acknowledged: nothing promised is lost, nothing partial is visible, and
** the store opens.
**
**   powerloss [-n TXNS] [-s SEED] [-m full|normal|off] [-v]
**
** Without -m, all three modes run, TXNS commits each.  Prints the crash
** points checked and "powerloss: P passed, F failed".
*/
#include "workload.h"
#include "testutil.h"
#include "testhook.h"
#include "io.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXFILE 4096     /* files (inodes) of one run */
#define MAXNAME 512      /* names in the directory */
#define MAXFD 4096

/* A file: its current and its durable contents. */
typedef struct mfile {
  uint8_t *cur; size_t ncur, ccur;
  uint8_t *dur; size_t ndur;
} mfile;

/* A directory entry: name -> file number. */
typedef struct mname {
  char name[64];
  int file;
} mname;

/* A name change not yet made durable by a directory sync. */
typedef struct mchange {
  int op;                /* TKV_IO_OPEN (create), TKV_IO_RENAME, TKV_IO_UNLINK */
  char from[64], to[64];
  int file;
} mchange;

static mfile files[MAXFILE];
static int nfiles;
static mname cur_names[MAXNAME], dur_names[MAXNAME];
static int ncur, ndur;
static mchange *pending;
static int npending, cpending;
static int fdmap[MAXFD];
static char storedir[4096], snapbase[4096];
#define NVARIANT 4
#define PAGE 4096
#define SECTOR 512

static uint32_t acked;           /* last commit acknowledged */
static uint32_t promised;        /* last commit the sync mode promises */
static long nsnap;               /* snapshots written */
static uint32_t *snap_acked;     /* acked at each snapshot */
static uint32_t *snap_promised;  /* promised at each snapshot */
static long csnap;
static uint64_t seed;
static int model_error;

/* The name part of a path in the store directory, or NULL if outside. */
static const char *base_name(const char *path){
  size_t n = strlen(storedir);
  if( strncmp(path, storedir, n) || path[n]!='/' ) return NULL;
  return path + n + 1;
}

static int find_name(mname *t, int n, const char *name){
  for(int i=0; i<n; i++) if( !strcmp(t[i].name, name) ) return i;
  return -1;
}

/* Set name -> file in table t (of *pn entries). */
static void set_name(mname *t, int *pn, const char *name, int file){
  int i = find_name(t, *pn, name);
  if( i<0 ){
    if( *pn==MAXNAME ){ model_error = 1; return; }
    i = (*pn)++;
    snprintf(t[i].name, sizeof t[i].name, "%s", name);
  }
  t[i].file = file;
}

static void del_name(mname *t, int *pn, const char *name){
  int i = find_name(t, *pn, name);
  if( i>=0 ) t[i] = t[--(*pn)];
}

/* Apply one name change to table t. */
static void apply_change(mname *t, int *pn, const mchange *c){
  if( c->op==TKV_IO_UNLINK ){
    del_name(t, pn, c->from);
  }else if( c->op==TKV_IO_RENAME ){
    del_name(t, pn, c->from);
    set_name(t, pn, c->to, c->file);
  }else{
    set_name(t, pn, c->to, c->file);
  }
}

static void add_change(int op, const char *from, const char *to, int file){
  mchange *c;
  if( npending==cpending ){
    cpending = cpending ? cpending*2 : 64;
    pending = realloc(pending, (size_t)cpending * sizeof *pending);
    if( !pending ){ perror("realloc"); abort(); }
  }
  c = &pending[npending++];
  c->op = op;
  snprintf(c->from, sizeof c->from, "%s", from ? from : "");
  snprintf(c->to, sizeof c->to, "%s", to ? to : "");
  c->file = file;
}

/* Make file f's current contents n bytes long (zero-filled growth). */
static void resize(mfile *f, size_t n){
  if( n>f->ccur ){
    size_t c = f->ccur ? f->ccur : 4096;
    while( c<n ) c *= 2;
    f->cur = realloc(f->cur, c);
    if( !f->cur ){ perror("realloc"); abort(); }
    f->ccur = c;
  }
  if( n>f->ncur ) memset(f->cur + f->ncur, 0, n - f->ncur);
  f->ncur = n;
}

/* Write one file of a snapshot. */
static void put_file(const char *dir, const char *name, const uint8_t *p,
                     size_t n){
  const char *path = tu_path(dir, name);
  FILE *fp = fopen(path, "wb");
  if( !fp || (n && fwrite(p, 1, n, fp)!=n) || fclose(fp) ){
    perror(path);
    exit(2);
  }
}

/*
** A file as a power cut may leave it: a size between its durable and its
** current size; each page its durable bytes, its current bytes, or torn
** (each sector one or the other).  Bytes past a source's length are zeros.
*/
static uint8_t *mix_file(const mfile *f, size_t *pn){
  size_t lo = f->ndur < f->ncur ? f->ndur : f->ncur;
  size_t hi = f->ndur < f->ncur ? f->ncur : f->ndur;
  size_t n;
  uint8_t *p;
  switch( tu_rand(&seed) % 4 ){
    case 0: n = f->ndur; break;
    case 1: n = f->ncur; break;
    default: n = lo + (size_t)(tu_rand(&seed) % (hi - lo + 1)); break;
  }
  p = calloc(1, n + 1);
  if( !p ){ perror("calloc"); abort(); }
  for(size_t a=0; a<n; a+=PAGE){
    int how = (int)(tu_rand(&seed) % 3);      /* durable, current, torn */
    for(size_t s=a; s<a+PAGE && s<n; s+=SECTOR){
      int cur = how==1 || (how==2 && (tu_rand(&seed) & 1));
      const uint8_t *src = cur ? f->cur : f->dur;
      size_t len = cur ? f->ncur : f->ndur;
      size_t e = s + SECTOR < n ? s + SECTOR : n;
      if( s<len ) memcpy(p + s, src + s, (e < len ? e : len) - s);
    }
  }
  *pn = n;
  return p;
}

/* Write out the disk a power cut would leave now, in NVARIANT variants. */
static void snapshot(void){
  for(int v=0; v<NVARIANT; v++){
    char dir[4200];
    mname names[MAXNAME];
    int nn = ndur;
    memcpy(names, dur_names, sizeof names[0] * (size_t)ndur);
    for(int i=0; i<npending && v!=0 && v!=2; i++){
      if( v==3 || (tu_rand(&seed) & 1) ) apply_change(names, &nn, &pending[i]);
    }
    if( nsnap==csnap ){
      csnap = csnap ? csnap*2 : 1024;
      snap_acked = realloc(snap_acked, (size_t)csnap * sizeof *snap_acked);
      snap_promised = realloc(snap_promised,
                              (size_t)csnap * sizeof *snap_promised);
      if( !snap_acked || !snap_promised ){ perror("realloc"); abort(); }
    }
    snprintf(dir, sizeof dir, "%s/%ld", snapbase, nsnap);
    if( mkdir(dir, 0755) ){ perror(dir); exit(2); }
    for(int i=0; i<nn; i++){
      mfile *f = &files[names[i].file];
      if( v==0 ){
        put_file(dir, names[i].name, f->dur, f->ndur);
      }else if( v==2 ){
        put_file(dir, names[i].name, f->cur, f->ncur);
      }else{
        size_t n;
        uint8_t *p = mix_file(f, &n);
        put_file(dir, names[i].name, p, n);
        free(p);
      }
    }
    snap_promised[nsnap] = promised;
    snap_acked[nsnap++] = acked;
  }
}

/* File calls come from the writer and from the engine's background merge
** thread: the model, the snapshots and acked/promised change under this. */
static pthread_mutex_t model_mu = PTHREAD_MUTEX_INITIALIZER;

static void observe_call(const tkv_io_event *ev);

/* The observer: snapshot, then apply the call to the model. */
static void observer(const tkv_io_event *ev, void *ctx){
  (void)ctx;
  pthread_mutex_lock(&model_mu);
  observe_call(ev);
  pthread_mutex_unlock(&model_mu);
}

/* Set what the workload has acknowledged and what it was promised. */
static void set_acked(uint32_t n){
  pthread_mutex_lock(&model_mu);
  acked = n;
  pthread_mutex_unlock(&model_mu);
}
static void set_promised(uint32_t n){
  pthread_mutex_lock(&model_mu);
  promised = n;
  pthread_mutex_unlock(&model_mu);
}

static void observe_call(const tkv_io_event *ev){
  const char *name = ev->path ? base_name(ev->path) : NULL;
  mfile *f = (ev->fd>=0 && ev->fd<MAXFD && fdmap[ev->fd]>=0)
           ? &files[fdmap[ev->fd]] : NULL;
  if( ev->op==TKV_IO_MKDIR || ev->op==TKV_IO_RMDIR ) return;
  if( ev->op==TKV_IO_OPEN ){
    int i;
    if( !name || ev->fd<0 || ev->fd>=MAXFD ){ model_error = 1; return; }
    i = find_name(cur_names, ncur, name);
    if( i<0 ){
      if( !(ev->flags & O_CREAT) || nfiles==MAXFILE ){ model_error = 1; return; }
      memset(&files[nfiles], 0, sizeof files[0]);
      set_name(cur_names, &ncur, name, nfiles);
      add_change(TKV_IO_OPEN, NULL, name, nfiles);
      fdmap[ev->fd] = nfiles++;
    }else{
      fdmap[ev->fd] = cur_names[i].file;
      if( ev->flags & O_TRUNC ) files[cur_names[i].file].ncur = 0;
    }
    return;
  }
  /* Every other call may be where the power goes. */
  snapshot();
  switch( ev->op ){
    case TKV_IO_WRITE:
      if( !f ){ model_error = 1; return; }
      if( ev->off + ev->len > f->ncur ) resize(f, (size_t)(ev->off + ev->len));
      memcpy(f->cur + ev->off, ev->buf, (size_t)ev->len);
      break;
    case TKV_IO_PREALLOC:
      if( !f ){ model_error = 1; return; }
      if( ev->off + ev->len > f->ncur ) resize(f, (size_t)(ev->off + ev->len));
      break;
    case TKV_IO_TRUNCATE:
      if( !f ){ model_error = 1; return; }
      resize(f, (size_t)ev->len);
      break;
    case TKV_IO_SYNC:
      if( !f ){ model_error = 1; return; }
      free(f->dur);
      f->dur = malloc(f->ncur + 1);
      if( !f->dur ){ perror("malloc"); abort(); }
      memcpy(f->dur, f->cur, f->ncur);
      f->ndur = f->ncur;
      break;
    case TKV_IO_RENAME: {
      const char *to = base_name(ev->to);
      int i = name ? find_name(cur_names, ncur, name) : -1;
      if( i<0 || !to ){ model_error = 1; return; }
      add_change(TKV_IO_RENAME, name, to, cur_names[i].file);
      apply_change(cur_names, &ncur, &pending[npending-1]);
      break;
    }
    case TKV_IO_UNLINK:
      if( !name ){ model_error = 1; return; }
      if( find_name(cur_names, ncur, name)<0 ) return;
      add_change(TKV_IO_UNLINK, name, NULL, -1);
      apply_change(cur_names, &ncur, &pending[npending-1]);
      break;
    case TKV_IO_DIRSYNC:
      memcpy(dur_names, cur_names, sizeof cur_names[0] * (size_t)ncur);
      ndur = ncur;
      npending = 0;
      break;
    default:
      break;
  }
}

/*
** The workload: commits 1..n1, compactions, tkv_sync every 4 commits,
** close, reopen, more commits, close.
*/
static int workload(tkv_sync_mode mode, uint32_t n1, uint32_t n2){
  tkv_options o;
  tkv_db *db;
  int rc;
  tkv_options_init(&o);
  o.sync = mode;
  o.max_file_size = 4096;
  o.compact_threshold = 6000;
  o.create = 1;
  rc = tkv_open(storedir, &o, &db);
  for(uint32_t n=1; !rc && n<=n1 + n2; n++){
    rc = wl_run_txn(db, n);
    if( rc ){ fprintf(stderr, "powerloss: commit %u: %s\n", n, wl_err); break; }
    set_acked(n);
    if( mode==TKV_SYNC_FULL ) set_promised(n);
    if( n%9==0 ) rc = tkv_compact(db, NULL);
    if( !rc && n%4==0 && mode!=TKV_SYNC_FULL ){
      rc = tkv_sync(db);
      if( !rc ) set_promised(n);
    }
    if( !rc && n==n1 ){
      rc = tkv_close(db);
      if( !rc ) set_promised(n);
      if( !rc ) rc = tkv_open(storedir, &o, &db);
    }
  }
  if( rc ){ fprintf(stderr, "powerloss: %s\n", tkv_errmsg()); return rc; }
  rc = tkv_close(db);
  if( !rc ) set_promised(acked);
  return rc;
}

/* Reset the model for a new run. */
static void model_reset(void){
  for(int i=0; i<nfiles; i++){
    free(files[i].cur);
    free(files[i].dur);
  }
  memset(files, 0, sizeof files);
  nfiles = ncur = ndur = npending = 0;
  memset(fdmap, -1, sizeof fdmap);
  acked = promised = 0;
  nsnap = 0;
}

static const char *mode_name(tkv_sync_mode m){
  return m==TKV_SYNC_FULL ? "full" : m==TKV_SYNC_NORMAL ? "normal" : "off";
}

/* One run in one sync mode: the workload under the observer, then every
** snapshot checked.  Returns the number of bad snapshots (or 1 for a
** failed workload). */
static long run_mode(tkv_sync_mode mode, uint32_t ntxn, int verbose){
  long bad = 0, lost = 0;
  wl_model m;
  char dirbuf[2048];
  model_reset();
  snprintf(dirbuf, sizeof dirbuf, "%s", tu_tmpdir("powerloss"));
  snprintf(storedir, sizeof storedir, "%s/store", dirbuf);
  snprintf(snapbase, sizeof snapbase, "%s/snap", dirbuf);
  mkdir(snapbase, 0755);
  tkv_test_set_io_observer(observer, NULL);
  if( workload(mode, ntxn - ntxn/3, ntxn/3) ){
    tkv_test_set_io_observer(NULL, NULL);
    return 1;
  }
  tkv_test_set_io_observer(NULL, NULL);
  if( model_error ) printf("powerloss: the model lost track of a file\n");
  memset(&m, 0, sizeof m);
  for(long i=0; i<nsnap; i++){
    char dir[4200], why[1024];
    tkv_options o;
    tkv_db *db;
    uint32_t j = 0;
    int rc;
    snprintf(dir, sizeof dir, "%s/%ld", snapbase, i);
    tkv_options_init(&o);
    rc = tkv_open(dir, &o, &db);
    if( rc==TKV_NOTSTORE && snap_promised[i]==0 ){ tu_rmrf(dir); continue; }
    if( rc ){
      printf("powerloss %s: cut %ld (variant %c, %u promised): open: %s\n",
             mode_name(mode), i/NVARIANT, (int)('a' + i%NVARIANT),
             snap_promised[i], tkv_errmsg());
      bad++;
      continue;
    }
    rc = wl_read_counter(db, &j);
    if( rc || j<snap_promised[i] || j>snap_acked[i] + 1 ){
      printf("powerloss %s: cut %ld (variant %c): holds commit %u, %u "
             "promised, %u acknowledged%s\n", mode_name(mode),
             i/NVARIANT, (int)('a' + i%NVARIANT), j, snap_promised[i],
             snap_acked[i], j<snap_promised[i] ? ": LOST" : "");
      if( j<snap_promised[i] ) lost += snap_promised[i] - j;
      bad++;
    }else{
      wl_model_to(&m, j);
      if( wl_check_store(db, &m, why, sizeof why) ){
        printf("powerloss %s: cut %ld (variant %c): %s\n", mode_name(mode),
               i/NVARIANT, (int)('a' + i%NVARIANT), why);
        bad++;
      }else if( verbose ){
        printf("  %s cut %ld%c: commit %u (%u promised, %u acknowledged)\n",
               mode_name(mode), i/NVARIANT, (int)('a' + i%NVARIANT), j,
               snap_promised[i], snap_acked[i]);
      }
    }
    tkv_close(db);
    if( !bad ) tu_rmrf(dir);
  }
  wl_model_clear(&m);
  printf("powerloss %s: %ld power cuts x %d variants checked, %u commits, "
         "%ld lost, %ld bad\n", mode_name(mode), nsnap/NVARIANT, NVARIANT,
         acked, lost, bad);
  if( !bad && !model_error ) tu_rmrf(dirbuf);
  else printf("powerloss: snapshots kept in %s\n", snapbase);
  return bad + (model_error ? 1 : 0);
}

int main(int argc, char **argv){
  uint32_t ntxn = 60;
  int opt, verbose = 0, nmode = 3;
  tkv_sync_mode modes[3] = { TKV_SYNC_FULL, TKV_SYNC_NORMAL, TKV_SYNC_OFF };
  long bad = 0;
  seed = (uint64_t)time(NULL);
  while( (opt = getopt(argc, argv, "n:s:m:v"))!=-1 ){
    if( opt=='n' ) ntxn = (uint32_t)atol(optarg);
    else if( opt=='s' ) seed = strtoull(optarg, NULL, 10);
    else if( opt=='m' ){
      nmode = 1;
      if( !strcmp(optarg, "full") ) modes[0] = TKV_SYNC_FULL;
      else if( !strcmp(optarg, "normal") ) modes[0] = TKV_SYNC_NORMAL;
      else if( !strcmp(optarg, "off") ) modes[0] = TKV_SYNC_OFF;
      else{ fprintf(stderr, "powerloss: bad mode %s\n", optarg); return 2; }
    }
    else if( opt=='v' ) verbose = 1;
    else{
      fprintf(stderr, "usage: powerloss [-n TXNS] [-s SEED] "
              "[-m full|normal|off] [-v]\n");
      return 2;
    }
  }
  printf("powerloss: seed %llu, %u commits per mode\n",
         (unsigned long long)seed, ntxn);
  for(int k=0; k<nmode; k++) bad += run_mode(modes[k], ntxn, verbose);
  printf("powerloss: %d passed, %d failed\n", bad ? 0 : 1, bad ? 1 : 0);
  return bad ? 1 : 0;
}
