/*
** RESP2 request parser and reply encoders; see resp.h.
*/
#include "resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strict decimal to long long, as Redis's string2ll. */
int resp_str2ll(const char *s, size_t n, long long *pv) {
  if (n == 0 || n > 20) return -1;
  size_t i = 0;
  int neg = 0;
  if (s[0] == '-') {
    neg = 1;
    if (++i == n) return -1;
  }
  if (s[i] == '0' && (n - i > 1 || neg)) return -1;   /* "01", "-0" */
  unsigned long long v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (~0ULL - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (unsigned long long)9223372036854775807LL + 1) return -1;
    *pv = v == (unsigned long long)9223372036854775807LL + 1
              ? (-9223372036854775807LL - 1)
              : -(long long)v;
  } else {
    if (v > 9223372036854775807ULL) return -1;
    *pv = (long long)v;
  }
  return 0;
}

/* Decimal digits of v, without snprintf (replies format many numbers). */
size_t resp_ll2str(char *s, long long v) {
  char tmp[24];
  size_t n = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                               : (unsigned long long)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  size_t len = 0;
  if (v < 0) s[len++] = '-';
  while (n) s[len++] = tmp[--n];
  s[len] = '\0';
  return len;
}

/* Start over for a new request; the argument arrays are kept. */
static void parser_reset(resp_parser *p) {
  p->done = 0;
  p->nargs = 0;
  p->bulklen = -1;
  p->pos = 0;
  p->total = 0;
  p->argc = 0;
}

/* Record an argument at offset `off` of the request.  0 or RESP_NOMEM. */
static int add_arg(resp_parser *p, size_t off, size_t len) {
  if (p->argc == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 8;
    size_t *o = realloc(p->off, cap * sizeof *o);
    if (!o) return RESP_NOMEM;
    p->off = o;
    resp_arg *a = realloc(p->argv, cap * sizeof *a);
    if (!a) return RESP_NOMEM;
    p->argv = a;
    p->cap = cap;
  }
  p->off[p->argc] = off;
  p->argv[p->argc].len = len;
  p->argc++;
  return 0;
}

/* A request is complete: point the arguments into data. */
static int finish(resp_parser *p, const char *data, size_t *pconsumed) {
  for (size_t i = 0; i < p->argc; i++) p->argv[i].ptr = data + p->off[i];
  *pconsumed = p->pos;
  p->done = 1;
  return RESP_DONE;
}

/* Record a protocol error message; returns RESP_ERROR. */
static int proto_error(resp_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int proto_error(resp_parser *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err, sizeof p->err, fmt, ap);
  va_end(ap);
  return RESP_ERROR;
}

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

static int hex_val(char c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Whitespace between inline words, as C's isspace() in the C locale. */
static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

/*
** Split line[0..n) into p->inl as sdssplitargs() does, recording each
** word's offset in p->off.  The line holds no NUL byte (parse_inline).
** 0, RESP_NOMEM, or RESP_ERROR (unbalanced quotes).
*/
static int split_inline(resp_parser *p, const char *line, size_t n) {
  size_t i = 0;
  p->inl.len = 0;
  p->inl.limit = 0;
  p->inl.failed = 0;
  for (;;) {
    while (i < n && is_space(line[i])) i++;
    if (i >= n) break;
    size_t start = p->inl.len;
    int inq = 0, insq = 0, done = 0;
    while (!done) {
      char c = i < n ? line[i] : '\0';
      char nx = i + 1 < n ? line[i + 1] : '\0';
      if (inq) {
        if (c == '\\' && nx == 'x' && i + 3 < n && is_hex(line[i + 2]) &&
            is_hex(line[i + 3])) {
          char b = (char)(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
          buf_append(&p->inl, &b, 1);
          i += 3;
        } else if (c == '\\' && nx) {
          i++;
          char e = nx == 'n' ? '\n' : nx == 'r' ? '\r' : nx == 't' ? '\t'
                   : nx == 'b' ? '\b' : nx == 'a' ? '\a' : nx;
          buf_append(&p->inl, &e, 1);
        } else if (c == '"') {
          if (nx && !is_space(nx)) goto unbalanced;  /* "a"b */
          done = 1;
        } else if (!c) {
          goto unbalanced;                           /* no closing " */
        } else {
          buf_append(&p->inl, &c, 1);
        }
      } else if (insq) {
        if (c == '\\' && nx == '\'') {
          i++;
          buf_append(&p->inl, "'", 1);
        } else if (c == '\'') {
          if (nx && !is_space(nx)) goto unbalanced;
          done = 1;
        } else if (!c) {
          goto unbalanced;
        } else {
          buf_append(&p->inl, &c, 1);
        }
      } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || !c) {
        done = 1;
      } else if (c == '"') {
        inq = 1;
      } else if (c == '\'') {
        insq = 1;
      } else {
        buf_append(&p->inl, &c, 1);
      }
      if (i < n) i++;
    }
    if (p->inl.failed || add_arg(p, start, p->inl.len - start) != 0)
      return RESP_NOMEM;
  }
  return 0;
unbalanced:
  return proto_error(p, "Protocol error: unbalanced quotes in request");
}

/* The first c in p[0..n) before any NUL byte, or NULL: Redis finds line
** ends with strchr() on its query buffer, so a NUL byte hides what follows
** it (the request then waits for more input, up to the inline limit). */
static const char *find_before_nul(const char *p, size_t n, char c) {
  const char *at = memchr(p, c, n);
  if (at && memchr(p, '\0', (size_t)(at - p))) return NULL;
  return at;
}

/* An inline request: one line (a CR before the LF is dropped), split into
** words.  An empty line is a request of no arguments (no reply). */
static int parse_inline(resp_parser *p, const char *data, size_t len,
                        size_t *pconsumed) {
  size_t scan = len < RESP_MAX_INLINE ? len : RESP_MAX_INLINE;
  const char *nl = find_before_nul(data, scan, '\n');
  if (!nl) {
    if (len >= RESP_MAX_INLINE)
      return proto_error(p, "Protocol error: too big inline request");
    return RESP_MORE;
  }
  size_t end = (size_t)(nl - data);
  if (end > 0 && data[end - 1] == '\r') end--;
  int rc = split_inline(p, data, end);
  if (rc != 0) return rc;
  for (size_t i = 0; i < p->argc; i++)
    p->argv[i].ptr = p->inl.data ? p->inl.data + p->off[i] : "";
  *pconsumed = (size_t)(nl - data) + 1;
  p->done = 1;
  return RESP_DONE;
}

/*
** Read a "<c><integer>\r\n" header line at data[p->pos].  RESP_DONE with
** *pv set and p->pos moved past the line, RESP_MORE, or RESP_ERROR.  As
** Redis's: the line ends at the first CR (before any NUL byte), the byte
** after the CR is skipped whatever it is, and the type byte is checked
** only once the CR is there.
*/
static int parse_header(resp_parser *p, const char *data, size_t len,
                        char c, long long *pv, const char *what) {
  size_t avail = len - p->pos;
  size_t scan = avail < RESP_MAX_INLINE ? avail : RESP_MAX_INLINE;
  const char *line = data + p->pos;
  if (avail == 0) return RESP_MORE;
  const char *cr = find_before_nul(line, scan, '\r');
  if (!cr) {
    if (avail >= RESP_MAX_INLINE)
      return proto_error(p, "Protocol error: too big %s count string", what);
    return RESP_MORE;
  }
  size_t crpos = (size_t)(cr - line);
  if (crpos + 1 >= avail) return RESP_MORE;     /* the byte after the CR */
  if (line[0] != c) {
    if (c == '$')
      return proto_error(p, "Protocol error: expected '$', got '%c'",
                         line[0] >= 32 && line[0] < 127 ? line[0] : '?');
    return proto_error(p, "Protocol error: expected '%c'", c);
  }
  if (resp_str2ll(line + 1, crpos - 1, pv) != 0)
    return proto_error(p, "Protocol error: invalid %s length", what);
  p->pos += crpos + 2;
  return RESP_DONE;
}

int resp_parse(resp_parser *p, const char *data, size_t len,
               const resp_limits *lim, size_t *pconsumed) {
  if (p->done || (p->nargs == 0 && p->pos == 0)) parser_reset(p);
  if (len == 0) return RESP_MORE;
  if (p->nargs == 0) {
    if (data[0] != '*') return parse_inline(p, data, len, pconsumed);
    long long n = 0;
    int rc = parse_header(p, data, len, '*', &n, "multibulk");
    if (rc != RESP_DONE) return rc;
    if (n > RESP_MAX_ARGS)
      return proto_error(p, "Protocol error: invalid multibulk length");
    if (n <= 0) return finish(p, data, pconsumed);   /* empty: no reply */
    p->nargs = n;
  }
  while ((long long)p->argc < p->nargs) {
    if (p->bulklen < 0) {
      long long n = 0;
      int rc = parse_header(p, data, len, '$', &n, "bulk");
      if (rc != RESP_DONE) return rc;
      if (n < 0 || (unsigned long long)n > lim->max_bulk)
        return proto_error(p, "Protocol error: invalid bulk length");
      if ((size_t)n > lim->max_request - p->total)
        return proto_error(p, "Protocol error: request larger than %zu "
                           "bytes", lim->max_request);
      p->bulklen = n;
    }
    size_t need = (size_t)p->bulklen;
    /* The two bytes after the data are skipped unread, as Redis does. */
    if (len - p->pos < need + 2) return RESP_MORE;
    if (add_arg(p, p->pos, need) != 0) return RESP_NOMEM;
    p->pos += need + 2;
    p->total += need;
    p->bulklen = -1;
  }
  return finish(p, data, pconsumed);
}

/* The number of a "<c><digits>\r\n" line at data[*pos], moving *pos past
** it; -1 when the line is incomplete, not that kind, or over 9 digits. */
static long long peek_number(const char *data, size_t len, size_t *pos,
                             char c) {
  size_t i = *pos;
  long long v = 0;
  if (i >= len || data[i] != c) return -1;
  for (i++; i < len && data[i] >= '0' && data[i] <= '9'; i++) {
    if (i - *pos > 9) return -1;
    v = v * 10 + (data[i] - '0');
  }
  if (i == *pos + 1 || len - i < 2 || data[i] != '\r' || data[i + 1] != '\n')
    return -1;
  *pos = i + 2;
  return v;
}

size_t resp_peek(const char *data, size_t len, size_t maxargs,
                 resp_arg *argv, size_t *pargc) {
  size_t pos = 0;
  long long n = peek_number(data, len, &pos, '*');
  if (n <= 0) return 0;
  *pargc = (size_t)n;
  for (long long i = 0; i < n; i++) {
    long long blen = peek_number(data, len, &pos, '$');
    if (blen < 0 || len - pos < (size_t)blen + 2) return 0;
    if ((size_t)i < maxargs) {
      argv[i].ptr = data + pos;
      argv[i].len = (size_t)blen;
    }
    pos += (size_t)blen + 2;
  }
  return pos;
}

int resp_between(const resp_parser *p) {
  return p->done || (p->nargs == 0 && p->pos == 0);
}

/* Bytes still to come for the bulk string being read. */
size_t resp_missing(const resp_parser *p, size_t len) {
  if (p->done || p->bulklen < 0) return 0;
  size_t need = p->pos + (size_t)p->bulklen + 2;
  return need > len ? need - len : 0;
}

/* Release the argument arrays. */
void resp_parser_free(resp_parser *p) {
  free(p->off);
  free(p->argv);
  buf_free(&p->inl);
  memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------- Replies. */

/* "<c><v>\r\n" */
static void prefixed_int(buf *b, char c, long long v) {
  char s[32];
  s[0] = c;
  size_t n = 1 + resp_ll2str(s + 1, v);
  s[n++] = '\r';
  s[n++] = '\n';
  buf_append(b, s, n);
}

/* +status */
void resp_status(buf *b, const char *s) {
  size_t n = strlen(s);
  if (buf_reserve(b, n + 3) != 0) return;
  b->data[b->len++] = '+';
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len++] = '\r';
  b->data[b->len++] = '\n';
}

/* -error, kept on one line. */
void resp_error(buf *b, const char *fmt, ...) {
  size_t start = b->len;
  buf_append(b, "-", 1);
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(b, fmt, ap);
  va_end(ap);
  if (b->failed) return;
  for (size_t i = start + 1; i < b->len; i++)
    if (b->data[i] == '\r' || b->data[i] == '\n') b->data[i] = ' ';
  buf_append(b, "\r\n", 2);
}

void resp_int(buf *b, long long v) { prefixed_int(b, ':', v); }

/* $len, payload, CRLF: one reservation for the whole reply. */
void resp_bulk(buf *b, const void *p, size_t n) {
  if (buf_reserve(b, n + 32) != 0) return;
  prefixed_int(b, '$', (long long)n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len++] = '\r';
  b->data[b->len++] = '\n';
}

void resp_bulkstr(buf *b, const char *s) { resp_bulk(b, s, strlen(s)); }

void resp_nil(buf *b) { buf_append(b, "$-1\r\n", 5); }

/* *n header (*-1 for a nil array). */
void resp_array(buf *b, long long n) {
  if (n < 0) buf_append(b, "*-1\r\n", 5);
  else prefixed_int(b, '*', n);
}

/* *n inserted before the items that start at mark. */
void resp_array_at(buf *b, size_t mark, long long n) {
  char s[32];
  s[0] = '*';
  size_t len = 1 + resp_ll2str(s + 1, n);
  s[len++] = '\r';
  s[len++] = '\n';
  buf_insert(b, mark, s, len);
}
