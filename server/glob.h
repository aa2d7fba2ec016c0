/*
** Glob-style patterns as Redis's KEYS, SCAN MATCH and CONFIG GET take them:
** '*' any run of bytes, '?' any one byte, '[abc]' '[^abc]' '[a-z]' a byte
** class, '\' makes the next byte literal.  Binary-safe.
*/
#ifndef TKS_GLOB_H
#define TKS_GLOB_H

#include <stddef.h>

/* Nonzero if s matches the whole pattern, exactly as Redis's
** stringmatchlen().  Linear in plen + slen for patterns whose parts between
** stars are literal; O(plen * slen) at worst otherwise (no recursion). */
int glob_match(const char *pat, size_t plen, const char *s, size_t slen,
               int nocase);

/* Length of the literal prefix of the pattern: every key that matches
** starts with those bytes, so a scan can seek to it and stop after it. */
size_t glob_literal_prefix(const char *pat, size_t plen);

#endif
