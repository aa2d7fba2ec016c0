/*
** A main() for the fuzz targets without libFuzzer: runs
** LLVMFuzzerTestOneInput on every file named (or every file of every
** directory named), e.g. the seed corpus or a crash reproduction, so the
** targets build with gcc and run under valgrind.
**
**   fuzz_xxx_replay FILE|DIR...
*/
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run the target on one file; 0 if it could be read. */
static int run_file(const char *path){
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;
  if( !f ) return -1;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(n>0 ? (size_t)n : 1);
  if( !buf || (n>0 && fread(buf, 1, (size_t)n, f)!=(size_t)n) ){
    fclose(f);
    free(buf);
    return -1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  return 0;
}

int main(int argc, char **argv){
  long runs = 0;
  for(int i=1; i<argc; i++){
    struct stat st;
    if( stat(argv[i], &st) ){ perror(argv[i]); return 2; }
    if( S_ISDIR(st.st_mode) ){
      DIR *d = opendir(argv[i]);
      struct dirent *de;
      while( d && (de = readdir(d))!=NULL ){
        char path[4096];
        if( de->d_name[0]=='.' ) continue;
        snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
        if( run_file(path)==0 ) runs++;
      }
      if( d ) closedir(d);
    }else if( run_file(argv[i])==0 ){
      runs++;
    }
  }
  printf("replay: %ld inputs run\n", runs);
  return 0;
}
