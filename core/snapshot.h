/*
** A pinned view of a store's files, for the tools that read a store while
** it may be written: check (check.c) and backup (backup.c).
**
** Taken from an open engine (snap_take), the view is the segment table as
** of one moment under the engine's lock, each segment held by a file
** descriptor of its own, so a merge that deletes a segment afterwards does
** not take its bytes away from the reader.  Taken from a directory
** (snap_open_dir), it is every segment and hint file there, with the store's
** LOCK held shared so that no process opens the store meanwhile.
*/
#ifndef TKV_SNAPSHOT_H
#define TKV_SNAPSHOT_H

#include "tinkv.h"
#include <stdint.h>

typedef struct snap_file {
  uint32_t id;            /* segment id (the name is %010u.seg) */
  char *seg_path;         /* the segment's path in the store */
  int seg_fd;             /* open on it: pins its bytes; -1 if none */
  uint64_t seg_size;      /* size of the file when the view was taken */
  uint64_t seg_end;       /* bytes the view covers: live, the end of the
                          ** whole records (for the active segment, of its
                          ** committed ones); from a directory, seg_size */
  int active;             /* live: the segment being appended to */
  int sealed;             /* live: never appended to again */
  char *hint_path;        /* its hint file's path */
  int hint_fd;            /* open on the hint, or -1 if there is none */
  uint64_t hint_size;
} snap_file;

typedef struct snap {
  char *dir;              /* canonical path of the store */
  snap_file *a;           /* segments, by id */
  int n;
  int live;               /* taken from an open engine */
  int lock_fd;            /* directory view: LOCK held shared, or -1 */
} snap;

/* Called by snap_take while the engine's lock is still held, with the view
** complete: the place to make hard links that must name exactly the files
** of the view.  Returns a TKV_* code; an error ends snap_take with it. */
typedef int (*snap_locked_fn)(void *ctx, snap *s);

int snap_take(tkv_db *db, snap_locked_fn fn, void *ctx, snap *s);
int snap_open_dir(const char *dir, snap *s);
void snap_free(snap *s);

/* The last path component of p. */
const char *snap_basename(const char *p);

#endif
