/*
** Glob matching with a single backtrack point; see glob.h.
*/
#include "glob.h"

#include <ctype.h>

/* A byte, lower-cased when matching without case. */
static unsigned char fold(unsigned char c, int nocase) {
  return nocase ? (unsigned char)tolower(c) : c;
}

/*
** Match the byte class that starts after the '[' at pat[*pi - 1]; leave *pi
** after its ']' (or at the end of an unterminated class).
*/
static int match_class(const char *pat, size_t plen, size_t *pi,
                       unsigned char c, int nocase) {
  size_t i = *pi;
  int negate = 0, hit = 0;
  if (i < plen && pat[i] == '^') { negate = 1; i++; }
  while (i < plen && pat[i] != ']') {
    unsigned char lo = (unsigned char)pat[i];
    if (lo == '\\' && i + 1 < plen) lo = (unsigned char)pat[++i];
    if (i + 2 < plen && pat[i + 1] == '-' && pat[i + 2] != ']') {
      unsigned char hi = (unsigned char)pat[i + 2];
      if (hi == '\\' && i + 3 < plen) { hi = (unsigned char)pat[i + 3]; i++; }
      unsigned char a = fold(lo, nocase), b = fold(hi, nocase);
      if (a > b) { unsigned char t = a; a = b; b = t; }
      unsigned char x = fold(c, nocase);
      if (x >= a && x <= b) hit = 1;
      i += 3;
    } else {
      if (fold(lo, nocase) == fold(c, nocase)) hit = 1;
      i++;
    }
  }
  *pi = i < plen ? i + 1 : i;
  return negate ? !hit : hit;
}

/* Match one pattern element (not '*') at pat[*pi] against byte c and move
** *pi past the element. */
static int match_one(const char *pat, size_t plen, size_t *pi,
                     unsigned char c, int nocase) {
  unsigned char p = (unsigned char)pat[(*pi)++];
  if (p == '?') return 1;
  if (p == '[') return match_class(pat, plen, pi, c, nocase);
  if (p == '\\' && *pi < plen) p = (unsigned char)pat[(*pi)++];
  return fold(p, nocase) == fold(c, nocase);
}

int glob_match(const char *pat, size_t plen, const char *s, size_t slen,
               int nocase) {
  size_t pi = 0, si = 0;
  size_t star_p = (size_t)-1, star_s = 0;
  while (si < slen) {
    if (pi < plen && pat[pi] == '*') {
      while (pi < plen && pat[pi] == '*') pi++;
      if (pi == plen) return 1;
      star_p = pi;
      star_s = si;
      continue;
    }
    if (pi < plen) {
      size_t np = pi;
      if (match_one(pat, plen, &np, (unsigned char)s[si], nocase)) {
        pi = np;
        si++;
        continue;
      }
    }
    if (star_p == (size_t)-1) return 0;
    si = ++star_s;
    pi = star_p;
  }
  while (pi < plen && pat[pi] == '*') pi++;
  return pi == plen;
}

/* Bytes before the first special character. */
size_t glob_literal_prefix(const char *pat, size_t plen) {
  size_t i = 0;
  while (i < plen && pat[i] != '*' && pat[i] != '?' && pat[i] != '[' &&
         pat[i] != '\\')
    i++;
  return i;
}
