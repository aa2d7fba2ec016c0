/*
** RESP2, the Redis protocol: an incremental request parser and the reply
** encoders.
**
** Requests come either as a multibulk array of bulk strings
** ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), as every Redis client sends them, or
** as an inline line of words ("GET k\r\n"), as typed into telnet, split
** and unquoted as Redis's sdssplitargs() does ("..." with \n \r \t \b \a
** \\ \" \xHH escapes, '...' with \' only; unbalanced quotes are a
** protocol error).  The parser never copies a multibulk argument: when a
** request is complete its arguments point into the caller's input buffer
** (an inline request's point into the parser's own buffer).
*/
#ifndef TKS_RESP_H
#define TKS_RESP_H

#include <stddef.h>

#include "buf.h"

/* Limits that do not depend on configuration (Redis's own). */
#define RESP_MAX_ARGS   (1 << 20)       /* arguments in one request */
#define RESP_MAX_INLINE (1 << 16)       /* bytes of an inline request or of
                                        ** a "*N" / "$N" header line */

/* One argument of a request. */
typedef struct resp_arg {
  const char *ptr;
  size_t len;
} resp_arg;

/* Limits that come from configuration. */
typedef struct resp_limits {
  size_t max_bulk;      /* largest bulk string */
  size_t max_request;   /* largest sum of the bulk strings of one request */
} resp_limits;

/* Parser state; zero-initialise it before first use. */
typedef struct resp_parser {
  int done;             /* the last call completed a request */
  long long nargs;      /* arguments announced by "*N"; 0 before that line */
  long long bulklen;    /* length announced by the current "$N"; -1 before */
  size_t pos;           /* bytes of the current request parsed so far */
  size_t total;         /* bulk bytes of the current request so far */
  size_t argc;          /* arguments parsed so far */
  size_t cap;           /* entries allocated in off[] and argv[] */
  size_t *off;          /* offset of each argument from the request start */
  resp_arg *argv;       /* the arguments, filled in when a request is done */
  buf inl;              /* an inline request's arguments, unquoted */
  char err[160];        /* message of the last protocol error */
} resp_parser;

enum {
  RESP_MORE = 0,        /* the request is not complete yet */
  RESP_DONE = 1,        /* a request is complete */
  RESP_ERROR = -1,      /* protocol error: reply p->err and close */
  RESP_NOMEM = -2       /* out of memory */
};

/*
** Parse the request that starts at data[0] (len bytes are available).
** RESP_DONE: p->argc and p->argv hold the request (argc may be 0 for an
** empty request, which gets no reply); the pointers are valid until data
** changes; *pconsumed is the request's length.  RESP_MORE: call again when
** more bytes are appended after the same start; the parser remembers how
** far it got, so a large request is not rescanned.  RESP_ERROR: p->err says
** what is wrong, in Redis's words where Redis has them.
*/
int resp_parse(resp_parser *p, const char *data, size_t len,
               const resp_limits *lim, size_t *pconsumed);

/*
** Look ahead without parsing for real: if data[0..len) starts with a whole
** multibulk request of plain "$N" arguments, put its first maxargs
** arguments in argv (pointing into data), their count in *pargc, and
** return its length; else 0 (incomplete, inline, empty, numbers over nine
** digits, anything unusual).  No limits are checked: the answer serves
** only as a hint (the keys of pipelined requests, to prefetch them), and
** resp_parse still parses every request.
*/
size_t resp_peek(const char *data, size_t len, size_t maxargs,
                 resp_arg *argv, size_t *pargc);

/* Nonzero when p holds no part of a request (the next byte starts one). */
int resp_between(const resp_parser *p);

/* Bytes still missing of the bulk string being read (0 if none is), so a
** reader can size its next read to finish a large value in one go. */
size_t resp_missing(const resp_parser *p, size_t len);

void resp_parser_free(resp_parser *p);

/* ---------------------------------------------------------- Replies. */

void resp_status(buf *b, const char *s);             /* +s */
/* -message; fmt starts with the error code ("ERR ...").  CR and LF in
** the message become spaces so the reply stays one line. */
void resp_error(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void resp_int(buf *b, long long v);                  /* :v */
void resp_bulk(buf *b, const void *p, size_t n);     /* $n payload */
void resp_bulkstr(buf *b, const char *s);
void resp_nil(buf *b);                               /* $-1 */
void resp_array(buf *b, long long n);                /* *n (n<0: *-1) */
/* Insert an *n header at offset `mark`, where the n items already
** appended begin: for replies whose length is known only at the end
** (KEYS, SCAN), built in place so the output limit applies to them. */
void resp_array_at(buf *b, size_t mark, long long n);

/* Format v in decimal into s (at least 21 bytes); returns the length. */
size_t resp_ll2str(char *s, long long v);
/* Parse a whole string as a signed 64-bit decimal, Redis-strictly: no
** spaces, no '+', no leading zeros.  0 on success, -1 otherwise. */
int resp_str2ll(const char *s, size_t n, long long *pv);

#endif
