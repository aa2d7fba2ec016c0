/*
** Helpers shared by the C tests (see testutil.h).
*/
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tu_tmpdir(const char *tag){
  static char buf[4096];
  const char *base = getenv("TMPDIR");
  if( !base || !*base ) base = "/tmp";
  snprintf(buf, sizeof buf, "%s/tinkv-%s-XXXXXX", base, tag);
  if( !mkdtemp(buf) ){ perror("mkdtemp"); abort(); }
  return buf;
}

void tu_rmrf(const char *path){
  struct stat st;
  if( lstat(path, &st) ) return;
  if( S_ISDIR(st.st_mode) ){
    DIR *d = opendir(path);
    struct dirent *de;
    if( d ){
      while( (de = readdir(d))!=NULL ){
        char sub[4096];
        if( !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ) continue;
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        tu_rmrf(sub);
      }
      closedir(d);
    }
    chmod(path, 0700);
    rmdir(path);
  }else{
    unlink(path);
  }
}

const char *tu_path(const char *dir, const char *name){
  static char buf[2][4096];
  static int i;
  i ^= 1;
  snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
  return buf[i];
}

long long tu_file_size(const char *path){
  struct stat st;
  return stat(path, &st) ? -1 : (long long)st.st_size;
}

int tu_flip_byte(const char *path, long long off, unsigned char mask){
  int fd = open(path, O_RDWR);
  unsigned char c;
  int rc = -1;
  if( fd<0 ) return -1;
  if( pread(fd, &c, 1, off)==1 ){
    c ^= mask;
    if( pwrite(fd, &c, 1, off)==1 ) rc = 0;
  }
  close(fd);
  return rc;
}

int tu_truncate(const char *path, long long len){
  return truncate(path, len);
}

int tu_append(const char *path, const void *p, size_t n){
  int fd = open(path, O_WRONLY|O_APPEND);
  int rc;
  if( fd<0 ) return -1;
  rc = write(fd, p, n)==(ssize_t)n ? 0 : -1;
  close(fd);
  return rc;
}

int tu_copy_file(const char *from, const char *to){
  char buf[65536];
  ssize_t n;
  int rc = 0;
  int in = open(from, O_RDONLY);
  int out = in<0 ? -1 : open(to, O_WRONLY|O_CREAT|O_TRUNC, 0644);
  if( in<0 || out<0 ){ if( in>=0 ) close(in); return -1; }
  while( (n = read(in, buf, sizeof buf))>0 ){
    if( write(out, buf, n)!=n ){ rc = -1; break; }
  }
  if( n<0 ) rc = -1;
  close(in);
  close(out);
  return rc;
}

int tu_copy_dir(const char *from, const char *to){
  DIR *d = opendir(from);
  struct dirent *de;
  int rc = 0;
  if( !d ) return -1;
  if( mkdir(to, 0755) && access(to, F_OK) ){ closedir(d); return -1; }
  while( (de = readdir(d))!=NULL ){
    char a[4096], b[4096];
    struct stat st;
    snprintf(a, sizeof a, "%s/%s", from, de->d_name);
    snprintf(b, sizeof b, "%s/%s", to, de->d_name);
    if( stat(a, &st) || !S_ISREG(st.st_mode) ) continue;
    if( tu_copy_file(a, b) ) rc = -1;
  }
  closedir(d);
  return rc;
}

uint64_t tu_rand(uint64_t *s){
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

int tu_exists(const char *path){
  struct stat st;
  return lstat(path, &st)==0;
}

int tu_write_file(const char *path, const void *p, size_t n){
  int fd = open(path, O_WRONLY|O_CREAT|O_TRUNC, 0644);
  int rc;
  if( fd<0 ) return -1;
  rc = (n==0 || write(fd, p, n)==(ssize_t)n) ? 0 : -1;
  close(fd);
  return rc;
}

void *tu_read_file(const char *path, size_t *pn){
  struct stat st;
  char *buf;
  size_t got = 0;
  int fd = open(path, O_RDONLY);
  if( fd<0 ) return NULL;
  if( fstat(fd, &st) || (buf = malloc((size_t)st.st_size + 1))==NULL ){
    close(fd);
    return NULL;
  }
  while( got<(size_t)st.st_size ){
    ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
    if( r<=0 ) break;
    got += (size_t)r;
  }
  close(fd);
  buf[got] = 0;
  if( pn ) *pn = got;
  return buf;
}

static int cmp_names(const void *a, const void *b){
  return strcmp(*(char *const*)a, *(char *const*)b);
}

char **tu_list_files(const char *dir, const char *suffix, int *pn){
  DIR *d = opendir(dir);
  struct dirent *de;
  char **names = NULL;
  size_t slen = strlen(suffix);
  int n = 0, cap = 0;
  if( pn ) *pn = 0;
  if( !d ) return NULL;
  while( (de = readdir(d))!=NULL ){
    size_t len = strlen(de->d_name);
    if( !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ) continue;
    if( len<slen || strcmp(de->d_name + len - slen, suffix) ) continue;
    if( n+1>=cap ){
      cap = cap ? cap*2 : 16;
      names = realloc(names, (size_t)cap * sizeof *names);
      if( !names ) abort();
    }
    names[n++] = strdup(de->d_name);
  }
  closedir(d);
  if( !names ){
    names = calloc(1, sizeof *names);
    if( !names ) abort();
  }
  names[n] = NULL;
  qsort(names, (size_t)n, sizeof *names, cmp_names);
  if( pn ) *pn = n;
  return names;
}

void tu_free_names(char **names){
  if( !names ) return;
  for(char **p=names; *p; p++) free(*p);
  free(names);
}

int tu_count_files(const char *dir, const char *suffix){
  int n = 0;
  tu_free_names(tu_list_files(dir, suffix, &n));
  return n;
}
