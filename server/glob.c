/*
** Glob matching, with Redis's stringmatchlen() semantics; see glob.h.
**
** Every pattern element but '*' matches exactly one byte, so a pattern is
** a sequence of fixed-length segments separated by stars.  The first
** segment must match at the start of the string, the last at its end, and
** each middle one anywhere after the previous; taking the leftmost place
** for each middle segment is always right (a later place leaves less room
** for the rest).  A segment of literal bytes is found with memmem() (glibc's
** two-way search: linear), so KEYS or SCAN MATCH with a long pattern
** against a long key costs about their length, not their product as with
** a backtracking matcher.  Segments with '?' or classes are tried at each
** place in turn.
**
** Redis's details, kept on purpose so that KEYS and SCAN answer as Redis
** does: inside a class '\' escapes the next byte (and that byte is never a
** range start), "a-]" is the range a..] and a range end is taken as is; an
** unterminated class takes the rest of the pattern; range bounds compare
** as signed chars; a trailing '\' is a literal '\'; and a pattern does not
** match the empty string unless it is empty (Redis's KEYS and SCAN treat
** the pattern "*" alone as "everything" before matching; callers do the
** same).
*/
#include "glob.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A byte compared as Redis compares pattern bytes (char is signed). */
static int sbyte(unsigned char c) { return (int)(signed char)c; }

/* ASCII lower case of a signed byte (others unchanged, as in C locale). */
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Length in the pattern of the element at pat[i] (not '*'). */
static size_t elem_len(const char *pat, size_t plen, size_t i) {
  if (pat[i] == '\\') return i + 1 < plen ? 2 : 1;
  if (pat[i] != '[') return 1;
  size_t j = i + 1;
  if (j < plen && pat[j] == '^') j++;
  for (;;) {
    if (j >= plen) return plen - i;             /* unterminated */
    if (pat[j] == '\\' && plen - j >= 2) j += 2;
    else if (pat[j] == ']') return j + 1 - i;
    else if (plen - j >= 3 && pat[j + 1] == '-') j += 3;
    else j++;
  }
}

/* Does the class element at pat[i..i+n) match byte c? */
static int class_match(const char *pat, size_t i, size_t n, unsigned char c,
                       int nocase) {
  size_t j = i + 1, end = i + n;
  int neg = 0, hit = 0;
  if (j < end && pat[j] == '^') { neg = 1; j++; }
  while (j < end) {
    if (pat[j] == '\\' && end - j >= 2) {
      if ((unsigned char)pat[j + 1] == c) hit = 1;
      j += 2;
    } else if (pat[j] == ']') {
      break;
    } else if (end - j >= 3 && pat[j + 1] == '-') {
      int lo = sbyte((unsigned char)pat[j]), hi = sbyte((unsigned char)pat[j + 2]);
      int x = sbyte(c);
      if (lo > hi) { int t = lo; lo = hi; hi = t; }
      if (nocase) { lo = lower(lo); hi = lower(hi); x = lower(x); }
      if (x >= lo && x <= hi) hit = 1;
      j += 3;
    } else {
      int a = sbyte((unsigned char)pat[j]), b = sbyte(c);
      if (nocase ? lower(a) == lower(b) : a == b) hit = 1;
      j++;
    }
  }
  return neg ? !hit : hit;
}

/* Does the element at pat[i..i+n) match byte c? */
static int elem_match(const char *pat, size_t i, size_t n, unsigned char c,
                      int nocase) {
  unsigned char p = (unsigned char)pat[i];
  if (p == '?') return 1;
  if (p == '[') return class_match(pat, i, n, c, nocase);
  if (p == '\\' && n == 2) p = (unsigned char)pat[i + 1];
  return nocase ? lower(sbyte(p)) == lower(sbyte(c)) : p == c;
}

/* A segment: pattern bytes [ps, pe), matching `width` string bytes. */
typedef struct seg {
  size_t ps, pe, width;
  int literal;                  /* plain bytes only: width == pe - ps */
} seg;

/* The segment that starts at pat[i] (up to the next '*' or the end). */
static seg seg_at(const char *pat, size_t plen, size_t i) {
  seg g = {i, i, 0, 1};
  while (g.pe < plen && pat[g.pe] != '*') {
    size_t n = elem_len(pat, plen, g.pe);
    if (pat[g.pe] == '?' || pat[g.pe] == '[' || pat[g.pe] == '\\')
      g.literal = 0;
    g.pe += n;
    g.width++;
  }
  return g;
}

/* Does segment g match s at s[0..g.width)? */
static int seg_match_at(const char *pat, const seg *g, const char *s,
                        int nocase) {
  size_t i = g->ps, k = 0;
  while (i < g->pe) {
    size_t n = elem_len(pat, g->pe, i);
    if (!elem_match(pat, i, n, (unsigned char)s[k], nocase)) return 0;
    i += n;
    k++;
  }
  return 1;
}

/* Leftmost place of segment g in s[from..to) (the whole segment inside),
** or (size_t)-1. */
static size_t seg_find(const char *pat, const seg *g, const char *s,
                       size_t from, size_t to, int nocase) {
  if (to < from || to - from < g->width) return (size_t)-1;
  if (g->width == 0) return from;
  if (g->literal && !nocase) {
    const char *p = memmem(s + from, to - from, pat + g->ps, g->width);
    return p ? (size_t)(p - s) : (size_t)-1;
  }
  for (size_t at = from; at + g->width <= to; at++)
    if (seg_match_at(pat, g, s + at, nocase)) return at;
  return (size_t)-1;
}

int glob_match(const char *pat, size_t plen, const char *s, size_t slen,
               int nocase) {
  if (slen == 0) return plen == 0;
  seg first = seg_at(pat, plen, 0);
  if (first.pe == plen)                          /* no star */
    return first.width == slen && seg_match_at(pat, &first, s, nocase);
  if (first.width > slen || !seg_match_at(pat, &first, s, nocase)) return 0;
  /* The last segment: after the last star. */
  size_t last_star = plen;
  for (size_t i = first.pe; i < plen; i += pat[i] == '*' ? 1
                                           : elem_len(pat, plen, i))
    if (pat[i] == '*') last_star = i;
  seg last = seg_at(pat, plen, last_star + 1);
  if (first.width + last.width > slen) return 0;
  size_t tail = slen - last.width;
  if (!seg_match_at(pat, &last, s + tail, nocase)) return 0;
  /* The middle segments, leftmost first, in s[first.width, tail). */
  size_t pos = first.width, i = first.pe;
  while (i < last_star) {
    if (pat[i] == '*') { i++; continue; }
    seg g = seg_at(pat, plen, i);
    size_t at = seg_find(pat, &g, s, pos, tail, nocase);
    if (at == (size_t)-1) return 0;
    pos = at + g.width;
    i = g.pe;
  }
  return 1;
}

/* Bytes before the first special character. */
size_t glob_literal_prefix(const char *pat, size_t plen) {
  size_t i = 0;
  while (i < plen && pat[i] != '*' && pat[i] != '?' && pat[i] != '[' &&
         pat[i] != '\\')
    i++;
  return i;
}
