/*
** Bit commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, with
** Redis's bit order (bit 0 is the most significant bit of the first byte),
** its range rules (BYTE or BIT units, negative offsets from the end) and
** its error texts.  A bit offset may reach the largest value tinkv stores
** (--max-value bytes), as Redis's reaches proto-max-bulk-len.
*/
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#include "objenc.h"

/* Bit `pos` of v (pos < n * 8). */
static int bit_at(const unsigned char *v, long long pos) {
  return (v[pos >> 3] >> (7 - (pos & 7))) & 1;
}

/* A bit offset argument.  0, or -1 with Redis's error replied. */
static int bit_offset(session *s, const resp_arg *a, long long *pv) {
  long long v;
  if (resp_str2ll(a->ptr, a->len, &v) != 0 || v < 0 ||
      (unsigned long long)(v >> 3) >= srv.cfg.max_value) {
    resp_error(s->out, "ERR bit offset is not an integer or out of range");
    return -1;
  }
  *pv = v;
  return 0;
}

/* SETBIT key offset 0|1: the bit's old value; the string grows with zero
** bytes to reach the offset. */
void setbit_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  long long off, on;
  if (bit_offset(s, &argv[2], &off) != 0) return;
  if (resp_str2ll(argv[3].ptr, argv[3].len, &on) != 0 || (on & ~1LL)) {
    resp_error(s->out, "ERR bit is not an integer or out of range");
    return;
  }
  void *v = NULL;
  size_t n = 0;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return;
  size_t byte = (size_t)(off >> 3);
  int old = byte < n ? bit_at(v, off) : 0;
  if (rc == TKV_OK && byte < n && old == on) {   /* nothing changes */
    tkv_free(v);
    objenc_note(argv[1].ptr, argv[1].len, OBJENC_RAW, n);  /* as Redis */
    resp_int(s->out, old);
    return;
  }
  size_t len = byte + 1 > n ? byte + 1 : n;
  unsigned char *nv = calloc(len, 1);
  if (!nv) {
    tkv_free(v);
    resp_error(s->out, "ERR out of memory");
    return;
  }
  if (n) memcpy(nv, v, n);
  tkv_free(v);
  unsigned char mask = (unsigned char)(1u << (7 - (off & 7)));
  if (on) nv[byte] |= mask;
  else nv[byte] &= (unsigned char)~mask;
  rc = store_write(argv[1].ptr, argv[1].len, nv, len, TKV_KEEPEXPIRE);
  free(nv);
  if (rc == TKV_OK) objenc_note(argv[1].ptr, argv[1].len, OBJENC_RAW, len);
  if (rc == TKV_OK) resp_int(s->out, old);
  else reply_engine_error(s, rc);
}

/* GETBIT key offset: 0 past the end or for a missing key. */
void getbit_command(session *s, size_t argc, const resp_arg *argv) {
  (void)argc;
  long long off;
  if (bit_offset(s, &argv[2], &off) != 0) return;
  void *v;
  size_t n;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) {
    resp_int(s->out, 0);
    return;
  }
  if (rc != TKV_OK) return;
  resp_int(s->out, (size_t)(off >> 3) < n ? bit_at(v, off) : 0);
  tkv_free(v);
}

/* Clamp [*start, *end] to a string of `total` units as Redis does
** (negative counts from the end).  0 if the range is empty. */
static int clamp(long long *start, long long *end, long long total) {
  if (*start < 0) *start += total;
  if (*end < 0) *end += total;
  if (*start < 0) *start = 0;
  if (*end < 0) *end = 0;
  if (*end >= total) *end = total - 1;
  return *start <= *end;
}

/* BYTE or BIT.  1 for BIT, 0 for BYTE, -1 (syntax error replied). */
static int unit_arg(session *s, const resp_arg *a) {
  if (arg_is(a, "bit")) return 1;
  if (arg_is(a, "byte")) return 0;
  reply_syntax_error(s);
  return -1;
}

/* BITCOUNT key [start end [BYTE|BIT]]: the set bits in the range. */
void bitcount_command(session *s, size_t argc, const resp_arg *argv) {
  void *v;
  size_t n;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) {                 /* as Redis: before the args */
    resp_int(s->out, 0);
    return;
  }
  if (rc != TKV_OK) return;
  long long start = 0, end = (long long)n - 1, total = (long long)n;
  int isbit = 0;
  if (argc == 4 || argc == 5) {
    if (resp_str2ll(argv[2].ptr, argv[2].len, &start) != 0 ||
        resp_str2ll(argv[3].ptr, argv[3].len, &end) != 0) {
      reply_not_integer(s);
      goto done;
    }
    if (argc == 5 && (isbit = unit_arg(s, &argv[4])) < 0) goto done;
    if (isbit) total *= 8;
    if (start < 0 && end < 0 && start > end) {
      resp_int(s->out, 0);
      goto done;
    }
    clamp(&start, &end, total);
  } else if (argc != 2) {
    reply_syntax_error(s);
    goto done;
  }
  long long count = 0;
  if (start <= end) {
    if (!isbit) {
      start *= 8;
      end = end * 8 + 7;
    }
    const unsigned char *p = v;
    long long pos = start;
    for (; pos <= end && (pos & 7); pos++) count += bit_at(p, pos);
    for (; pos + 7 <= end; pos += 8) count += __builtin_popcount(p[pos >> 3]);
    for (; pos <= end; pos++) count += bit_at(p, pos);
  }
  resp_int(s->out, count);
done:
  tkv_free(v);
}

/*
** BITPOS key 0|1 [start [end [BYTE|BIT]]]: the first bit with that value
** in the range, or -1.  As in Redis, a missing key is all zero bits, and
** looking for a 0 without an explicit end finds the first bit past the
** string when the range has none.
*/
void bitpos_command(session *s, size_t argc, const resp_arg *argv) {
  long long bit;
  if (resp_str2ll(argv[2].ptr, argv[2].len, &bit) != 0) {
    reply_not_integer(s);
    return;
  }
  if (bit != 0 && bit != 1) {
    resp_error(s->out, "ERR The bit argument must be 1 or 0.");
    return;
  }
  void *v;
  size_t n;
  int rc = fetch_value(s, &argv[1], &v, &n);
  if (rc == TKV_NOTFOUND) {
    resp_int(s->out, bit ? -1 : 0);
    return;
  }
  if (rc != TKV_OK) return;
  long long start = 0, end = (long long)n - 1, total = (long long)n;
  int isbit = 0, end_given = 0;
  if (argc >= 4 && argc <= 6) {
    if (resp_str2ll(argv[3].ptr, argv[3].len, &start) != 0) {
      reply_not_integer(s);
      goto done;
    }
    if (argc == 6 && (isbit = unit_arg(s, &argv[5])) < 0) goto done;
    if (argc >= 5) {
      if (resp_str2ll(argv[4].ptr, argv[4].len, &end) != 0) {
        reply_not_integer(s);
        goto done;
      }
      end_given = 1;
    }
    if (isbit) total *= 8;
    clamp(&start, &end, total);
  } else if (argc != 3) {
    reply_syntax_error(s);
    goto done;
  }
  if (start > end) {
    resp_int(s->out, -1);
    goto done;
  }
  if (!isbit) {
    start *= 8;
    end = end * 8 + 7;
  }
  const unsigned char *p = v;
  long long pos = start;
  unsigned char skip = bit ? 0x00 : 0xff;   /* bytes with no such bit */
  while (pos <= end && (pos & 7) && bit_at(p, pos) != bit) pos++;
  if (pos <= end && !(pos & 7))
    while (pos + 7 <= end && p[pos >> 3] == skip) pos += 8;
  while (pos <= end && bit_at(p, pos) != bit) pos++;
  if (pos <= end) resp_int(s->out, pos);
  else if (bit == 0 && !end_given && !isbit) resp_int(s->out, end + 1);
  else resp_int(s->out, -1);
done:
  tkv_free(v);
}
