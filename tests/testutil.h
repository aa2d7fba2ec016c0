/*
** Helpers shared by the C tests: scratch directories and file pokes.
*/
#ifndef TKV_TESTUTIL_H
#define TKV_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* A new empty directory under $TMPDIR (or /tmp); the returned string is
** static storage reused by the next call. */
const char *tu_tmpdir(const char *tag);
/* Remove a directory tree (like rm -rf). */
void tu_rmrf(const char *path);
/* path/name in static storage (two alternating buffers). */
const char *tu_path(const char *dir, const char *name);
/* Size of a file, or -1. */
long long tu_file_size(const char *path);
/* Overwrite one byte of a file at offset with (old ^ mask). 0 or -1. */
int tu_flip_byte(const char *path, long long off, unsigned char mask);
/* Truncate a file to len bytes. 0 or -1. */
int tu_truncate(const char *path, long long len);
/* Append n bytes to a file. 0 or -1. */
int tu_append(const char *path, const void *p, size_t n);
/* Copy a whole file. 0 or -1. */
int tu_copy_file(const char *from, const char *to);
/* Copy all regular files of a directory into a new directory. 0 or -1. */
int tu_copy_dir(const char *from, const char *to);
/* Deterministic pseudo-random numbers (xorshift64*). */
uint64_t tu_rand(uint64_t *state);

/* ---- Files of a directory. */
/* Nonzero if something exists at path. */
int tu_exists(const char *path);
/* Create or replace a file holding n bytes. 0 or -1. */
int tu_write_file(const char *path, const void *p, size_t n);
/* A whole file in a new malloc'ed buffer (*pn receives its size), or NULL. */
void *tu_read_file(const char *path, size_t *pn);
/* Entries of dir whose names end with suffix ("" for every entry except
** . and ..), sorted by name, in a NULL-terminated malloc'ed array; *pn (may
** be NULL) receives their number.  Release with tu_free_names. */
char **tu_list_files(const char *dir, const char *suffix, int *pn);
void tu_free_names(char **names);
/* Number of entries of dir whose names end with suffix. */
int tu_count_files(const char *dir, const char *suffix);

#endif
