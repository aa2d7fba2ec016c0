/*
** REST API on libmicrohttpd; see http.h for the endpoints.
**
** libmicrohttpd runs in "external epoll" mode: it gives one epoll
** descriptor, which the libevent loop watches, and a timeout for idle
** connections.  So HTTP requests are handled on the loop's thread like
** RESP commands, and the engine is only ever used from one thread.  Before
** touching the engine, a request commits the RESP side's group-commit
** batch and waits until it is durable, so it neither joins it nor reads what
** is not yet committed and durable; its writes are durable (store.c)
** before it replies.
**
** URL unescaping is switched off in libmicrohttpd (a key may hold any
** byte, including NUL, which a C string cannot carry); this file decodes
** the path and query itself with explicit lengths.
*/
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "server.h"
#include "store.h"

#define LIST_DEFAULT 100
#define LIST_MAX     10000
/*
** One HTTP connection, for the header deadline: libmicrohttpd's own
** timeout restarts with every byte, so a client that sends a header a byte
** at a time (slowloris) would hold its connection for ever.  A request's
** headers must instead be complete within --http-timeout of the connection
** opening or of the previous response; past it the socket is shut down
** (libmicrohttpd then closes the connection).
*/
typedef struct hconn {
  int fd;
  int in_request;                /* headers received, response pending */
  time_t since;                  /* start of the wait for headers */
  struct hconn *prev, *next;
} hconn;

static struct {
  struct MHD_Daemon *d;
  struct event *io;              /* the daemon's epoll fd is readable */
  struct event *timer;           /* the daemon's next timeout */
  struct event *sweep;           /* once a second: header deadlines */
  hconn *conns;
  char *dir_abs;                 /* the store's absolute path */
} http;

/* State of one request while its body arrives. */
typedef struct request {
  buf body;
  int too_big;
} request;

/* ------------------------------------------------------- Responses. */

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status,
                                const char *type, buf *b) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      b->len, b->data ? b->data : (void *)"", MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  if (type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* A JSON string literal of the bytes s (which must be valid UTF-8). */
static void json_str(buf *b, const char *s, size_t n) {
  buf_append(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      buf_append(b, e, 2);
    } else if (c < 0x20 || c == 0x7f) {
      buf_printf(b, "\\u%04x", c);
    } else {
      buf_append(b, &s[i], 1);
    }
  }
  buf_append(b, "\"", 1);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  const char *msg) {
  buf b = {0};
  buf_appendstr(&b, "{\"error\":");
  json_str(&b, msg, strlen(msg));
  buf_appendstr(&b, "}\n");
  enum MHD_Result ret =
      b.failed ? MHD_NO : send_buf(conn, status, "application/json", &b);
  buf_free(&b);
  return ret;
}

/* Remove every occurrence of `what` followed by a '/' from msg: error
** bodies name files relative to the store, never where it lives. */
static void strip_dir(char *msg, const char *what) {
  size_t n = what ? strlen(what) : 0;
  if (n == 0) return;
  char *p;
  while ((p = strstr(msg, what)) != NULL && p[n] == '/')
    memmove(p, p + n + 1, strlen(p + n + 1) + 1);
}

/* An engine failure as an HTTP status and message.  The log has the whole
** message; the body names store files by their name only. */
static enum MHD_Result send_engine_error(struct MHD_Connection *conn, int rc) {
  char msg[512];
  store_note(rc);
  snprintf(msg, sizeof msg, "%s: %s", tkv_strerror(rc), tkv_errmsg());
  if (rc != TKV_NOTFOUND && rc != TKV_TOOBIG && rc != TKV_INVALID)
    srv_log("http: %s", msg);
  strip_dir(msg, http.dir_abs);
  strip_dir(msg, srv.cfg.dir);
  unsigned status = rc == TKV_TOOBIG    ? MHD_HTTP_CONTENT_TOO_LARGE
                    : rc == TKV_INVALID ? MHD_HTTP_BAD_REQUEST
                    : rc == TKV_BUSY    ? MHD_HTTP_CONFLICT
                                        : MHD_HTTP_INTERNAL_SERVER_ERROR;
  return send_error(conn, status, msg);
}

static enum MHD_Result send_not_allowed(struct MHD_Connection *conn,
                                        const char *allow) {
  buf b = {0};
  buf_printf(&b, "{\"error\":\"method not allowed; use %s\"}\n", allow);
  struct MHD_Response *r = MHD_create_response_from_buffer(
      b.len, b.data, MHD_RESPMEM_MUST_COPY);
  buf_free(&b);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  enum MHD_Result ret =
      MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
  MHD_destroy_response(r);
  return ret;
}

/* A status with no body (201, 204). */
static enum MHD_Result send_empty(struct MHD_Connection *conn,
                                  unsigned status) {
  buf b = {0};
  return send_buf(conn, status, NULL, &b);
}

/* ------------------------------------------------------------ Keys. */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode s[0..n) into out; '+' is a space when `plus`.  -1 on a
** malformed escape. */
static int url_decode(const char *s, size_t n, int plus, buf *out) {
  if (buf_reserve(out, n + 1) != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (n - i < 3) return -1;
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus) {
      c = ' ';
    }
    out->data[out->len++] = c;
  }
  return 0;
}

/* Decode query argument `name` into out.  1 if present, 0 if absent, -1
** if malformed. */
static int query_arg(struct MHD_Connection *conn, const char *name, buf *out) {
  const char *v;
  size_t n;
  if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, name,
                                    strlen(name), &v, &n) != MHD_YES || !v)
    return 0;
  return url_decode(v, n, 1, out) == 0 ? 1 : -1;
}

/* Nonzero if s is valid UTF-8 (no overlong forms, no surrogates). */
static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len;
    unsigned min;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xc2 && c <= 0xdf) { len = 2; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; min = 0x10000; }
    else return 0;
    if (n - i < len) return 0;
    unsigned cp = c & (0xff >> (len + 1));
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += len;
  }
  return 1;
}

/* A key in a JSON listing: a string when it is valid UTF-8, else
** {"base64":"..."} so that no key is ever mangled. */
static void json_key(buf *b, const void *key, size_t n) {
  if (utf8_valid(key, n)) {
    json_str(b, key, n);
    return;
  }
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = key;
  buf_appendstr(b, "{\"base64\":\"");
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63],
                 i + 1 < n ? tab[(v >> 6) & 63] : '=',
                 i + 2 < n ? tab[v & 63] : '='};
    buf_append(b, q, 4);
  }
  buf_appendstr(b, "\"}");
}

/* ------------------------------------------------------- Endpoints. */

static enum MHD_Result kv_get(struct MHD_Connection *conn, const buf *key) {
  void *v;
  size_t n;
  int rc = tkv_get(store_db(), key->data, key->len, &v, &n);
  if (rc == TKV_NOTFOUND)
    return send_error(conn, MHD_HTTP_NOT_FOUND, "no such key");
  if (rc != TKV_OK) return send_engine_error(conn, rc);
  struct MHD_Response *r =
      MHD_create_response_from_buffer_with_free_callback(n, v, tkv_free);
  if (!r) {
    tkv_free(v);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/octet-stream");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result kv_put(struct MHD_Connection *conn, const buf *key,
                              const buf *body) {
  int rc = tkv_lookup(store_db(), key->data, key->len, NULL, NULL);
  if (rc != TKV_OK && rc != TKV_NOTFOUND) return send_engine_error(conn, rc);
  int existed = rc == TKV_OK;
  rc = store_write(key->data, key->len, body->data ? body->data : "",
                   body->len, 0);
  if (rc != TKV_OK) return send_engine_error(conn, rc);
  return send_empty(conn, existed ? MHD_HTTP_NO_CONTENT : MHD_HTTP_CREATED);
}

/* DELETE /v1/kv/{key}: 204, or 404 if absent. */
static enum MHD_Result kv_delete(struct MHD_Connection *conn, const buf *key) {
  int rc = store_delete(key->data, key->len);
  if (rc == TKV_NOTFOUND)
    return send_error(conn, MHD_HTTP_NOT_FOUND, "no such key");
  if (rc != TKV_OK) return send_engine_error(conn, rc);
  return send_empty(conn, MHD_HTTP_NO_CONTENT);
}

/* Compare keys in the engine's order: bytewise, a prefix first. */
static int keycmp(const buf *a, const buf *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->data, b->data, n) : 0;
  if (c) return c;
  return a->len < b->len ? -1 : a->len > b->len;
}

/* Does key start with prefix? */
static int has_prefix(const void *key, size_t klen, const buf *pre) {
  return pre->len == 0 ||
         (klen >= pre->len && memcmp(key, pre->data, pre->len) == 0);
}

/* GET /v1/kv?prefix=P&after=K&limit=N: up to N keys that start with P and
** sort after K, in order.  "next" (present when more keys follow) is the
** value to pass as `after` for the next page. */
static enum MHD_Result kv_list(struct MHD_Connection *conn) {
  buf prefix = {0}, after = {0}, lim = {0}, out = {0}, last = {0};
  long limit = LIST_DEFAULT;
  enum MHD_Result ret;
  int hp = query_arg(conn, "prefix", &prefix);
  int ha = query_arg(conn, "after", &after);
  int hl = query_arg(conn, "limit", &lim);
  if (hp < 0 || ha < 0 || hl < 0) {
    ret = send_error(conn, MHD_HTTP_BAD_REQUEST, "malformed percent-encoding");
    goto done;
  }
  if (hl > 0) {
    char *end;
    buf_append(&lim, "", 1);
    limit = lim.data ? strtol(lim.data, &end, 10) : 0;
    if (!lim.data || end != lim.data + lim.len - 1 || limit < 1 ||
        limit > LIST_MAX) {
      ret = send_error(conn, MHD_HTTP_BAD_REQUEST,
                       "limit must be an integer from 1 to 10000");
      goto done;
    }
  }
  tkv_cursor *cur;
  int rc = tkv_cursor_open(store_db(), &cur);
  if (rc != TKV_OK) {
    ret = send_engine_error(conn, rc);
    goto done;
  }
  int use_after = ha > 0 && keycmp(&after, &prefix) >= 0;
  const buf *start = use_after ? &after : &prefix;
  rc = tkv_cursor_seek(cur, start->data, start->len);
  if (rc == TKV_OK && use_after && tkv_cursor_valid(cur)) {
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    if (kl == after.len && memcmp(k, after.data, kl) == 0)
      rc = tkv_cursor_next(cur);
  }
  buf_appendstr(&out, "{\"keys\":[");
  long n = 0;
  int more = 0;
  while (rc == TKV_OK && tkv_cursor_valid(cur)) {
    const void *k;
    size_t kl;
    tkv_cursor_key(cur, &k, &kl);
    if (!has_prefix(k, kl, &prefix)) break;
    if (n == limit) {                     /* one more exists: a next page */
      more = 1;
      break;
    }
    if (n) buf_append(&out, ",", 1);
    json_key(&out, k, kl);
    last.len = 0;
    buf_append(&last, k, kl);
    n++;
    rc = tkv_cursor_next(cur);
  }
  tkv_cursor_close(cur);
  if (rc != TKV_OK) {
    ret = send_engine_error(conn, rc);
    goto done;
  }
  buf_append(&out, "]", 1);
  if (more) {
    buf_appendstr(&out, ",\"next\":");
    json_key(&out, last.data, last.len);
  }
  buf_printf(&out, ",\"count\":%ld}\n", n);
  ret = out.failed || last.failed
            ? send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory")
            : send_buf(conn, MHD_HTTP_OK, "application/json", &out);
done:
  buf_free(&prefix);
  buf_free(&after);
  buf_free(&last);
  buf_free(&lim);
  buf_free(&out);
  return ret;
}

/* GET /v1/stats: tkv_stats_json, the object SQL's tinkv_stats() returns. */
static enum MHD_Result stats(struct MHD_Connection *conn) {
  char *json = NULL;
  int rc = tkv_stats_json(store_db(), NULL, &json);
  if (rc != TKV_OK) return send_engine_error(conn, rc);
  buf b = {0};
  buf_printf(&b, "%s\n", json);
  tkv_free(json);
  enum MHD_Result ret = send_buf(conn, MHD_HTTP_OK, "application/json", &b);
  buf_free(&b);
  return ret;
}

/* POST /v1/compact: compact now (on the loop's thread); logged with its
** duration. */
static enum MHD_Result compact(struct MHD_Connection *conn) {
  uint64_t reclaimed = 0;
  int rc = store_compact_now("POST /v1/compact", &reclaimed);
  if (rc != TKV_OK) return send_engine_error(conn, rc);
  buf b = {0};
  buf_printf(&b, "{\"reclaimed\":%llu}\n", (unsigned long long)reclaimed);
  enum MHD_Result ret = send_buf(conn, MHD_HTTP_OK, "application/json", &b);
  buf_free(&b);
  return ret;
}

/* POST /v1/backup/NAME[?incremental=1]: back the store up online into
** --backup-dir/NAME (as BACKUP); the report as JSON.  Logged. */
static enum MHD_Result backup(struct MHD_Connection *conn, const buf *name) {
  char dest[4096];
  const char *why = store_backup_path(name->data ? name->data : "",
                                      name->len, dest, sizeof dest);
  if (why) return send_error(conn, MHD_HTTP_BAD_REQUEST, why);
  const char *inc = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                "incremental");
  int incremental = inc && strcmp(inc, "0") != 0;
  tkv_backup_report r;
  int rc = store_backup("POST /v1/backup", dest, incremental, &r);
  if (rc != TKV_OK) return send_engine_error(conn, rc);
  char *json;
  rc = tkv_backup_json(&r, &json);
  if (rc != TKV_OK) return send_engine_error(conn, rc);
  buf b = {0};
  buf_printf(&b, "%s\n", json);
  tkv_free(json);
  enum MHD_Result ret = send_buf(conn, MHD_HTTP_OK, "application/json", &b);
  buf_free(&b);
  return ret;
}

/* Collects the problems of POST /v1/check as a JSON array's items. */
static void check_problem(void *ctx, const char *file, uint64_t offset,
                          const char *why) {
  buf *b = ctx;
  buf_printf(b, "%s{\"file\":", b->len ? "," : "");
  json_str(b, file, strlen(file));
  buf_printf(b, ",\"offset\":%llu,\"problem\":", (unsigned long long)offset);
  json_str(b, why, strlen(why));
  buf_printf(b, "}");
}

/* POST /v1/check: check the store while it is used (as CHECK); 200 with
** "ok":true, or 500 with the problems, each with its file and offset.
** Logged with its duration. */
static enum MHD_Result check(struct MHD_Connection *conn) {
  buf probs = {0}, b = {0};
  tkv_check_report r;
  int rc = store_check("POST /v1/check", check_problem, &probs, &r);
  if (rc != TKV_OK && rc != TKV_CORRUPT) {
    buf_free(&probs);
    return send_engine_error(conn, rc);
  }
  buf_printf(&b, "{\"ok\":%s,\"files\":%llu,\"records\":%llu,"
             "\"hint_entries\":%llu,\"bytes\":%llu,\"problems\":[%.*s],"
             "\"usec\":%llu}\n", rc == TKV_OK ? "true" : "false",
             (unsigned long long)r.files, (unsigned long long)r.records,
             (unsigned long long)r.hint_entries, (unsigned long long)r.bytes,
             (int)probs.len, probs.data ? probs.data : "",
             (unsigned long long)r.usec);
  buf_free(&probs);
  enum MHD_Result ret = send_buf(conn, rc == TKV_OK ? MHD_HTTP_OK
                                       : MHD_HTTP_INTERNAL_SERVER_ERROR,
                                 "application/json", &b);
  buf_free(&b);
  return ret;
}

/* ----------------------------------------------------------- Routing. */

static int is(const char *method, const char *m) {
  return strcmp(method, m) == 0;
}

static enum MHD_Result route(struct MHD_Connection *conn, const char *url,
                             const char *method, request *req) {
  static const char kv[] = "/v1/kv/";
  if (store_settle() != TKV_OK)
    return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                      "the pending group commit failed");
  if (strncmp(url, kv, sizeof kv - 1) == 0) {
    buf key = {0};
    const char *enc = url + sizeof kv - 1;
    enum MHD_Result ret;
    if (url_decode(enc, strlen(enc), 0, &key) != 0)
      ret = send_error(conn, MHD_HTTP_BAD_REQUEST,
                       "malformed percent-encoding");
    else if (key.len == 0)
      ret = send_error(conn, MHD_HTTP_BAD_REQUEST, "empty key");
    else if (is(method, "GET") || is(method, "HEAD"))
      ret = kv_get(conn, &key);
    else if (is(method, "PUT"))
      ret = req->too_big ? send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                                      "value larger than --max-value")
                         : kv_put(conn, &key, &req->body);
    else if (is(method, "DELETE"))
      ret = kv_delete(conn, &key);
    else
      ret = send_not_allowed(conn, "GET, HEAD, PUT, DELETE");
    buf_free(&key);
    return ret;
  }
  int get = is(method, "GET") || is(method, "HEAD");
  if (strcmp(url, "/v1/kv") == 0)
    return get ? kv_list(conn) : send_not_allowed(conn, "GET, HEAD");
  if (strcmp(url, "/v1/stats") == 0)
    return get ? stats(conn) : send_not_allowed(conn, "GET, HEAD");
  if (strcmp(url, "/v1/compact") == 0)
    return is(method, "POST") ? compact(conn) : send_not_allowed(conn, "POST");
  if (strcmp(url, "/v1/check") == 0)
    return is(method, "POST") ? check(conn) : send_not_allowed(conn, "POST");
  static const char bk[] = "/v1/backup/";
  if (strncmp(url, bk, sizeof bk - 1) == 0) {
    if (!is(method, "POST")) return send_not_allowed(conn, "POST");
    buf name = {0};
    const char *enc = url + sizeof bk - 1;
    enum MHD_Result ret;
    if (url_decode(enc, strlen(enc), 0, &name) != 0)
      ret = send_error(conn, MHD_HTTP_BAD_REQUEST,
                       "malformed percent-encoding");
    else
      ret = backup(conn, &name);
    buf_free(&name);
    return ret;
  }
  return send_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

/* Counts the Content-Length headers of a request and whether they
** differ. */
typedef struct cl_check {
  const char *first;
  size_t first_len;
  int differ;
} cl_check;

static enum MHD_Result on_header(void *cls, enum MHD_ValueKind kind,
                                 const char *key, size_t key_size,
                                 const char *value, size_t value_size) {
  (void)kind;
  cl_check *c = cls;
  if (key_size != 14 || strncasecmp(key, "Content-Length", 14) != 0)
    return MHD_YES;
  if (!c->first) {
    c->first = value ? value : "";
    c->first_len = value ? value_size : 0;
  } else if (c->first_len != value_size ||
             (value_size && memcmp(c->first, value, value_size) != 0)) {
    c->differ = 1;
  }
  return MHD_YES;
}

/* The hconn of a libmicrohttpd connection (NULL if none). */
static hconn *hconn_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* A 400 that also closes the connection (its framing cannot be trusted). */
static enum MHD_Result send_bad_framing(struct MHD_Connection *conn,
                                        const char *msg) {
  buf b = {0};
  buf_appendstr(&b, "{\"error\":");
  json_str(&b, msg, strlen(msg));
  buf_appendstr(&b, "}\n");
  struct MHD_Response *r = b.failed ? NULL : MHD_create_response_from_buffer(
      b.len, b.data, MHD_RESPMEM_MUST_COPY);
  buf_free(&b);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_BAD_REQUEST, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls) {
  (void)cls; (void)version;
  request *req = *req_cls;
  if (!req) {                             /* headers are in: no body yet */
    req = calloc(1, sizeof *req);
    if (!req) return MHD_NO;
    *req_cls = req;
    srv.http_requests++;
    hconn *h = hconn_of(conn);
    if (h) h->in_request = 1;
    /* Two different lengths: the body's end is ambiguous (RFC 9112 6.3),
    ** a request-smuggling vector behind a proxy that reads the other. */
    cl_check cc = {NULL, 0, 0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, on_header, &cc);
    if (cc.differ) {
      req->too_big = 2;
      return send_bad_framing(conn, "conflicting Content-Length headers");
    }
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > srv.cfg.max_value)
      return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                        "value larger than --max-value");
    return MHD_YES;
  }
  if (req->too_big == 2) {                /* answered already */
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size) {                     /* a piece of the body */
    if (!req->too_big && *upload_size <= srv.cfg.max_value - req->body.len) {
      buf_append(&req->body, upload, *upload_size);
      if (req->body.failed) return MHD_NO;
    } else {
      req->too_big = 1;                   /* keep reading, answer 413 */
      buf_free(&req->body);
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (req->too_big == 2) return MHD_YES;
  return route(conn, url, method, req);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **req_cls, enum MHD_RequestTerminationCode why) {
  (void)cls; (void)why;
  hconn *h = hconn_of(conn);
  if (h) {                       /* the next request's headers: from now */
    h->in_request = 0;
    h->since = time(NULL);
  }
  request *req = *req_cls;
  if (!req) return;
  buf_free(&req->body);
  free(req);
  *req_cls = NULL;
}

/* A connection opened or closed: keep the list of hconns. */
static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  (void)cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    hconn *h = calloc(1, sizeof *h);
    if (!h || !ci) {
      free(h);
      return;
    }
    h->fd = ci->connect_fd;
    h->since = time(NULL);
    h->next = http.conns;
    if (http.conns) http.conns->prev = h;
    http.conns = h;
    *socket_context = h;
  } else if (*socket_context) {
    hconn *h = *socket_context;
    if (h->prev) h->prev->next = h->next;
    else http.conns = h->next;
    if (h->next) h->next->prev = h->prev;
    free(h);
    *socket_context = NULL;
  }
}

/* Once a second: shut down the connections whose request headers are
** overdue (see hconn). */
static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;
  time_t now = time(NULL);
  for (hconn *h = http.conns; h; h = h->next)
    if (!h->in_request && now - h->since >= (time_t)srv.cfg.http_timeout) {
      shutdown(h->fd, SHUT_RDWR);
      h->since = now;            /* once is enough */
    }
}

/* Leave URLs and arguments escaped: this file decodes them itself. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
  (void)cls; (void)c;
  return strlen(s);
}

/* libmicrohttpd's messages (bind failures, malformed requests) go to the
** server's log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  srv_log("http: %s", msg);
}

/* ---------------------------------------------------- Event loop glue. */

/* Arm the timer for the daemon's next timeout (connection expiry). */
static void rearm(void) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(http.d, &ms) != MHD_YES) {
    evtimer_del(http.timer);
    return;
  }
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  evtimer_add(http.timer, &tv);
}

/* The daemon has work (I/O or a timeout): run it, then re-arm. */
static void on_http_event(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;
  MHD_run(http.d);
  rearm();
}

/* Start the daemon in external-epoll mode and watch its descriptor. */
int http_start(struct event_base *base) {
  struct addrinfo *ai = srv_resolve(srv.cfg.http_port);
  if (!ai) return -1;
  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: on Linux it means SO_REUSEPORT,
  ** which lets a second server share the port and split the requests
  ** between two stores.  A port in use must be an error, as for RESP. */
  http.d = MHD_start_daemon(
      flags, (uint16_t)srv.cfg.http_port, NULL, NULL, on_request, NULL,
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, ai->ai_addr,
      MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)(srv.http_max_clients > 0 ? srv.http_max_clients : 1),
      MHD_OPTION_CONNECTION_TIMEOUT, srv.cfg.http_timeout,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
      MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
      MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!http.d) {
    srv_log("cannot serve HTTP on %s:%d", srv.cfg.bind, srv.cfg.http_port);
    return -1;
  }
  const union MHD_DaemonInfo *fdi =
      MHD_get_daemon_info(http.d, MHD_DAEMON_INFO_EPOLL_FD);
  const union MHD_DaemonInfo *pi =
      MHD_get_daemon_info(http.d, MHD_DAEMON_INFO_BIND_PORT);
  if (!fdi) {
    srv_log("libmicrohttpd gave no epoll descriptor");
    http_stop();
    return -1;
  }
  srv.http_port = pi ? pi->port : srv.cfg.http_port;
  http.io = event_new(base, fdi->epoll_fd, EV_READ | EV_PERSIST,
                      on_http_event, NULL);
  http.timer = evtimer_new(base, on_http_event, NULL);
  http.sweep = event_new(base, -1, EV_PERSIST, on_sweep, NULL);
  http.dir_abs = realpath(srv.cfg.dir, NULL);
  struct timeval second = {1, 0};
  if (!http.io || !http.timer || !http.sweep ||
      event_add(http.io, NULL) != 0 || event_add(http.sweep, &second) != 0) {
    srv_log("cannot watch the HTTP descriptor");
    http_stop();
    return -1;
  }
  rearm();
  return 0;
}

/* Stop watching and stop the daemon. */
void http_stop(void) {
  if (http.io) event_free(http.io);
  if (http.timer) event_free(http.timer);
  if (http.sweep) event_free(http.sweep);
  http.io = http.timer = http.sweep = NULL;
  if (http.d) MHD_stop_daemon(http.d);    /* closes (and unlists) all */
  http.d = NULL;
  free(http.dir_abs);
  http.dir_abs = NULL;
}
