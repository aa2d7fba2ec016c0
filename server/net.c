/*
** RESP connections on libevent; see net.h.
**
** Life of a request: on_read() reads what the socket has into the
** connection's input buffer and process_input() runs every complete
** request in it, appending replies to the output buffer.  Nothing is
** written to the socket there: net_before_sleep() commits the group-commit
** batch and then flushes every connection that has replies, so a reply is
** only sent once the writes it acknowledges are durable.
**
** Each reply is held until the batch its command could see is durable
** (store.h: store_visible_id against store_durable_id).  A connection keeps
** its held output as a few regions, each from an offset on, with the batch
** it waits for; ids grow along the output, so everything before the first
** region may be sent.  With durable group commit the batches' syncs run in
** another thread and end between loop turns (the batch hook then queues
** every connection with held output); without it a batch is durable when
** net_before_sleep() commits it.  If a batch fails, the held bytes from its
** first region on are replaced by one error and the connection is closed:
** no reply ever acknowledges a write that was rolled back or not synced.
**
** Flow control, as Redis does it: a connection is always read, so a
** client that writes its whole pipeline before reading any reply (most
** client libraries' pipelines do) never deadlocks against the server.
** What bounds memory instead:
**   - the input buffer holds at most QBUF_BACKLOG bytes of requests not
**     yet run, plus the request being received (bounded by the parser);
**     input is consumed through an offset, never a memmove per request;
**   - requests are run only while the client's unsent replies are under
**     OUT_PAUSE, unless the backlog is full: then they run anyway, so a
**     client that reads its replies slowly holds a small backlog, not an
**     ever-growing one;
**   - the output buffer refuses to grow past --max-output unsent bytes
**     (buf's limit), so one command (MGET, EXEC, KEYS) stops building its
**     reply there; the client is then closed, as Redis closes a client
**     past its client-output-buffer-limit.
** After the client half-closes (EOF), every request it sent is still run
** and answered; the connection closes once the replies are sent.
*/
#include "net.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "commands.h"
#include "resp.h"
#include "server.h"
#include "store.h"

#define READ_CHUNK   ((size_t)1 << 14) /* bytes asked of each read() */
#define OUT_PAUSE    ((size_t)1 << 20) /* unsent reply bytes that pause
                                     ** running a client's requests */
#define QBUF_BACKLOG ((size_t)1 << 20) /* unrun request bytes kept while
                                     ** paused; past it requests run */
#define KEEP_BUF     ((size_t)1 << 16) /* capacity an empty buffer keeps */

/* Connection flags. */
#define C_CLOSE_AFTER_REPLY 0x1      /* close once the output is sent */
#define C_PAUSED            0x2      /* requests wait: too much unsent
                                     ** output */
#define C_WANT_WRITE        0x4      /* write event armed */
#define C_PENDING           0x8      /* on the pending-write list */
#define C_EOF               0x10     /* the client sent everything */
#define C_ANSWERED          0x20     /* a sync released replies to it:
                                     ** the next sync waits for it */

#define HOLD_MAX 8                   /* held regions per connection; past
                                     ** it the last one waits longer */

/* Output from offset `at` on waits until batch `id` is durable. */
typedef struct hold {
  size_t at;
  uint64_t id;
} hold;

typedef struct conn {
  int fd;
  unsigned flags;
  struct event *rev, *wev;
  struct event *proc;          /* runs buffered requests after a pause */
  buf in;                      /* input; requests start at in_pos */
  size_t in_pos;               /* bytes of `in` already run */
  buf out;                     /* replies; out_sent bytes already sent */
  size_t out_sent;
  hold holds[HOLD_MAX];        /* held output, `at` and id ascending */
  int nholds;
  time_t since;                /* connected at */
  resp_parser parser;
  session sess;
  struct conn *prev, *next;    /* every connection */
  struct conn *pprev, *pnext;  /* pending writes */
} conn;

static struct {
  struct event_base *base;
  struct evconnlistener *listener;
  struct event *retry_accept;  /* re-enables accept after EMFILE */
  conn *all;
  conn *pending;
  uint64_t next_id;
  resp_limits limits;
} net;

/* --------------------------------------------------------- Lists. */

static void pending_add(conn *c) {
  if (c->flags & C_PENDING) return;
  c->flags |= C_PENDING;
  c->pprev = NULL;
  c->pnext = net.pending;
  if (net.pending) net.pending->pprev = c;
  net.pending = c;
}

/* Take c off the pending-write list (if on it). */
static void pending_remove(conn *c) {
  if (!(c->flags & C_PENDING)) return;
  c->flags &= ~(unsigned)C_PENDING;
  if (c->pprev) c->pprev->pnext = c->pnext;
  else net.pending = c->pnext;
  if (c->pnext) c->pnext->pprev = c->pprev;
  c->pprev = c->pnext = NULL;
}

static size_t unsent(const conn *c) { return c->out.len - c->out_sent; }

/* Bytes received and not yet run (the request being received included). */
static size_t backlog(const conn *c) { return c->in.len - c->in_pos; }

/* ------------------------------------------------------ Closing. */

static void conn_close(conn *c) {
  if (c->flags & C_ANSWERED) store_client_back();
  pending_remove(c);
  if (c->prev) c->prev->next = c->next;
  else net.all = c->next;
  if (c->next) c->next->prev = c->prev;
  event_free(c->rev);
  event_free(c->wev);
  event_free(c->proc);
  close(c->fd);
  resp_parser_free(&c->parser);
  buf_free(&c->in);
  buf_free(&c->out);
  session_free(&c->sess);
  srv.clients--;
  free(c);
}

/* Stop reading; the connection closes once its replies are sent. */
static void close_after_reply(conn *c) {
  c->flags |= C_CLOSE_AFTER_REPLY;
  event_del(c->rev);
  pending_add(c);
}

/* ------------------------------------------------------- Requests. */

/* Check the invariants of the held regions (see the top of this file). */
static void holds_check(const conn *c) {
  assert(c->nholds >= 0 && c->nholds <= HOLD_MAX);
  for (int i = 0; i < c->nholds; i++) {
    assert(c->holds[i].at >= c->out_sent && c->holds[i].at <= c->out.len);
    assert(i == 0 || (c->holds[i].at >= c->holds[i - 1].at &&
                      c->holds[i].id > c->holds[i - 1].id));
  }
}

/* Hold the output from `at` on until batch id is durable. */
static void hold_add(conn *c, size_t at, uint64_t id) {
  if (c->nholds && c->holds[c->nholds - 1].id >= id) return;  /* covered */
  if (c->nholds == HOLD_MAX) c->holds[HOLD_MAX - 1].id = id;  /* longer */
  else c->holds[c->nholds++] = (hold){at, id};
  holds_check(c);
}

/* Forget the regions whose batch is durable now. */
static void holds_release(conn *c) {
  uint64_t durable = store_durable_id();
  int n = 0;
  while (n < c->nholds && c->holds[n].id <= durable) n++;
  if (n == 0) return;
  memmove(c->holds, c->holds + n, (size_t)(c->nholds - n) * sizeof c->holds[0]);
  c->nholds -= n;
}

/* Run one request; hold its reply until the batch it could see is
** durable.  The output may grow to --max-output unsent bytes and no
** further. */
static void run_request(conn *c, size_t argc, const resp_arg *argv) {
  size_t before = c->out.len;
  if (c->flags & C_ANSWERED) {       /* back: the next sync may start */
    c->flags &= ~(unsigned)C_ANSWERED;
    store_client_back();
  }
  c->out.limit = c->out_sent + srv.cfg.max_output;
  cmd_execute(&c->sess, argc, argv);
  uint64_t id = store_visible_id();
  if (id > store_durable_id() && c->out.len > before) hold_add(c, before, id);
}

/* Drop the input already run: free the buffer when all of it was, else
** move the rest to the front once it is no longer than what was run (so
** the moves cost at most the bytes consumed: linear, not quadratic). */
static void input_compact(conn *c) {
  if (c->in_pos == 0) return;
  if (c->in_pos == c->in.len) {
    c->in_pos = 0;
    buf_reset(&c->in, KEEP_BUF);
  } else if (backlog(c) <= c->in_pos) {
    buf_consume(&c->in, c->in_pos);
    c->in_pos = 0;
  }
}

/*
** Before running requests, look at the next PREFETCH_AHEAD of them that are
** already complete in the buffer (resp_peek) and hand their keys (each
** request's second argument, the key of nearly every command) to the store
** as one prefetch, so that their lookups overlap instead of each waiting
** for memory in turn: a pipelined client's GETs ran at 0.85x redis-server's
** rate with two thirds of the time in keydir and record cache misses.  A
** lone request is not worth it.  Returns the offset in the buffer past the
** requests looked at.
*/
#define PREFETCH_AHEAD 16

static size_t prefetch_ahead(conn *c) {
  const void *keys[PREFETCH_AHEAD];
  size_t klens[PREFETCH_AHEAD], nkeys = 0, nreq = 0, at = c->in_pos;
  while (nreq < PREFETCH_AHEAD && at < c->in.len) {
    resp_arg argv[2];
    size_t argc = 0;
    size_t used = resp_peek(c->in.data + at, c->in.len - at, 2, argv, &argc);
    if (used == 0) break;
    if (argc >= 2) {
      keys[nkeys] = argv[1].ptr;
      klens[nkeys++] = argv[1].len;
    }
    nreq++;
    at += used;
  }
  if (nreq >= 2 && nkeys > 0) store_prefetch(nkeys, keys, klens);
  return at > c->in_pos ? at : c->in_pos + 1;
}

/*
** Run the complete requests in the input buffer, until none is left, the
** client must be closed, or its unsent replies pass OUT_PAUSE while the
** backlog still has room (C_PAUSED: flushing resumes it).  After EOF
** nothing more can arrive, so the pause no longer applies.  Returns -1
** when the connection must be closed at once.
*/
static int process_input(conn *c) {
  int rc = 0;
  size_t ahead = c->in_pos;      /* requests before this were prefetched */
  assert(c->in_pos <= c->in.len);
  c->flags &= ~(unsigned)C_PAUSED;
  while (!(c->flags & C_CLOSE_AFTER_REPLY) && backlog(c) > 0) {
    if (unsent(c) >= OUT_PAUSE && backlog(c) < QBUF_BACKLOG &&
        !(c->flags & C_EOF)) {
      c->flags |= C_PAUSED;
      break;
    }
    if (c->in_pos >= ahead && resp_between(&c->parser)) ahead = prefetch_ahead(c);
    size_t used = 0;
    int r = resp_parse(&c->parser, c->in.data + c->in_pos, backlog(c),
                       &net.limits, &used);
    if (r == RESP_MORE) break;
    if (r == RESP_NOMEM) { rc = -1; break; }
    if (r == RESP_ERROR) {
      srv.protocol_errors++;
      c->out.limit = 0;
      resp_error(&c->out, "ERR %s", c->parser.err);
      close_after_reply(c);
      break;
    }
    run_request(c, c->parser.argc, c->parser.argv);
    c->in_pos += used;
    if (c->out.failed) {
      srv_log("client %llu closed: its replies would pass --max-output "
              "(%zu bytes unsent)", (unsigned long long)c->sess.id,
              srv.cfg.max_output);
      rc = -1;
      break;
    }
    if (c->sess.close_after_reply) close_after_reply(c);
    if (store_batch_due()) store_batch_commit();   /* between requests */
  }
  input_compact(c);
  if (unsent(c) || (c->flags & C_CLOSE_AFTER_REPLY)) pending_add(c);
  return rc;
}

/* Run the buffered requests of a paused client from the loop (its output
** drained), as if it had sent them just now. */
static void on_process(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  conn *c = arg;
  if (process_input(c) != 0) conn_close(c);
}

/* --------------------------------------------------------- Output. */

/*
** Send what may be sent: everything before the first held region.  Returns
** -1 when the connection must be closed (write error, or done after QUIT /
** an error / EOF).
*/
static int conn_flush(conn *c) {
  holds_release(c);
  size_t end = c->nholds ? c->holds[0].at : c->out.len;
  while (c->out_sent < end) {
    ssize_t n = write(c->fd, c->out.data + c->out_sent, end - c->out_sent);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) return -1;
    c->out_sent += (size_t)n;
  }
  if (c->out_sent == c->out.len) {
    buf_reset(&c->out, KEEP_BUF);
    c->out_sent = 0;
    c->nholds = 0;                  /* only empty regions can be left */
    if (c->flags & C_WANT_WRITE) {
      event_del(c->wev);
      c->flags &= ~(unsigned)C_WANT_WRITE;
    }
    if (c->flags & C_CLOSE_AFTER_REPLY) return -1;
  } else {
    if (c->out_sent < end && !(c->flags & C_WANT_WRITE)) {
      if (event_add(c->wev, NULL) != 0) return -1;  /* the socket is full */
      c->flags |= C_WANT_WRITE;
    }
    if (c->out_sent >= OUT_PAUSE && c->out_sent * 2 >= c->out.len) {
      buf_consume(&c->out, c->out_sent);     /* keep the buffer compact */
      for (int i = 0; i < c->nholds; i++) c->holds[i].at -= c->out_sent;
      c->out_sent = 0;
      holds_check(c);
    }
  }
  if ((c->flags & C_PAUSED) && unsent(c) < OUT_PAUSE / 2)
    event_active(c->proc, EV_TIMEOUT, 0);   /* run what waits */
  return 0;
}

/*
** Batches ended.  Success: queue every connection with held output, to
** send what is durable now.  Failure of batch id and later ones: replace
** the held output from the first region waiting for one of them by an
** error, and close once the rest is sent.
*/
static void on_batch_end(int rc, uint64_t id, const char *why) {
  unsigned answered = 0;
  for (conn *c = net.all; c; c = c->next) {
    if (c->flags & C_ANSWERED) {
      c->flags &= ~(unsigned)C_ANSWERED;   /* counted afresh below */
    }
    if (!c->nholds) continue;
    if (rc == TKV_OK) {
      pending_add(c);
      if (c->holds[0].id <= id) {
        c->flags |= C_ANSWERED;
        answered++;
      }
      continue;
    }
    int i = 0;
    while (i < c->nholds && c->holds[i].id < id) i++;
    if (i == c->nholds) continue;
    buf_truncate(&c->out, c->holds[i].at);
    c->nholds = i;
    c->out.limit = 0;
    c->out.failed = 0;
    resp_error(&c->out, "ERR write failed and was rolled back or not made "
               "durable, the server closes this connection: %s",
               why ? why : "");
    if (c->flags & C_CLOSE_AFTER_REPLY) pending_add(c);
    else close_after_reply(c);
  }
  if (rc == TKV_OK) store_expect(answered);
}

/* Commit the batch, then flush every connection with replies. */
void net_before_sleep(void) {
  store_end_turn();
  conn *list = net.pending;
  net.pending = NULL;
  while (list) {
    conn *c = list;
    list = c->pnext;
    c->flags &= ~(unsigned)C_PENDING;
    c->pprev = c->pnext = NULL;
    if (conn_flush(c) != 0) conn_close(c);
  }
}

/* -------------------------------------------------------- Events. */

static void on_read(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  if (what & EV_TIMEOUT) {
    conn_close(c);                         /* idle past --timeout */
    return;
  }
  /* One chunk, or what the bulk string being received still lacks: the
  ** request being received is bounded by the parser's limits. */
  size_t want = resp_missing(&c->parser, backlog(c));
  if (want < READ_CHUNK) want = READ_CHUNK;
  if (c->in_pos && c->in.cap - c->in.len < want) {
    buf_consume(&c->in, c->in_pos);        /* make room at the front */
    c->in_pos = 0;
  }
  if (buf_reserve(&c->in, want) != 0) {
    conn_close(c);
    return;
  }
  ssize_t n = read(fd, c->in.data + c->in.len, want);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    conn_close(c);
    return;
  }
  if (n > 0) c->in.len += (size_t)n;
  if (n == 0) {              /* the client sent everything: stop reading */
    c->flags |= C_EOF;
    event_del(c->rev);
  }
  if (process_input(c) != 0) {
    conn_close(c);
    return;
  }
  if (c->flags & C_EOF) {    /* every request ran: answer, then close */
    close_after_reply(c);
    if (!unsent(c)) conn_close(c);
  }
}

/* The socket can take more: send what may be sent. */
static void on_write(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what;
  conn *c = arg;
  if (conn_flush(c) != 0) conn_close(c);
}

/* "host:port" of a peer, for CLIENT LIST. */
static void peer_name(const struct sockaddr *sa, char *out, size_t n) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  snprintf(out, n, "%s:%d", host, port);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg) {
  (void)l; (void)salen; (void)arg;
  if (srv.clients >= srv.cfg.max_clients) {
    static const char msg[] = "-ERR max number of clients reached\r\n";
    ssize_t w = write(fd, msg, sizeof msg - 1);   /* best effort */
    (void)w;
    close(fd);
    srv.rejected_connections++;
    return;
  }
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->rev = event_new(net.base, fd, EV_READ | EV_PERSIST, on_read, c);
  c->wev = event_new(net.base, fd, EV_WRITE | EV_PERSIST, on_write, c);
  c->proc = event_new(net.base, -1, 0, on_process, c);
  struct timeval tv = {(time_t)srv.cfg.timeout, 0};
  if (!c->rev || !c->wev || !c->proc ||
      event_add(c->rev, srv.cfg.timeout ? &tv : NULL) != 0) {
    if (c->rev) event_free(c->rev);
    if (c->wev) event_free(c->wev);
    if (c->proc) event_free(c->proc);
    close(fd);
    free(c);
    return;
  }
  c->since = time(NULL);
  c->sess.out = &c->out;
  c->sess.id = ++net.next_id;
  peer_name(sa, c->sess.addr, sizeof c->sess.addr);
  c->next = net.all;
  if (net.all) net.all->prev = c;
  net.all = c;
  srv.clients++;
  srv.connections_total++;
}

/* Accept again after a pause (see on_accept_error). */
static void on_retry_accept(evutil_socket_t fd, short what, void *arg) {
  (void)fd; (void)what; (void)arg;
  evconnlistener_enable(net.listener);
}

/* accept() failed (out of descriptors, say): pause accepting for 100 ms
** instead of spinning on a listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg) {
  (void)arg;
  int err = EVUTIL_SOCKET_ERROR();
  srv_log("accept: %s", evutil_socket_error_to_string(err));
  evconnlistener_disable(l);
  struct timeval tv = {0, 100000};
  event_add(net.retry_accept, &tv);
}

/* ------------------------------------------------------- Start, stop. */

int net_start(struct event_base *base) {
  net.base = base;
  net.limits.max_bulk = srv.cfg.max_value;
  net.limits.max_request = srv.cfg.max_request;
  store_set_batch_hook(on_batch_end);
  cmd_init();

  struct addrinfo *ai = srv_resolve(srv.cfg.port);
  if (!ai) return -1;
  net.listener = evconnlistener_new_bind(
      base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 511,
      ai->ai_addr, (int)ai->ai_addrlen);
  freeaddrinfo(ai);
  if (!net.listener) {
    srv_log("cannot listen on %s:%d: %s", srv.cfg.bind, srv.cfg.port,
            strerror(errno));
    return -1;
  }
  evconnlistener_set_error_cb(net.listener, on_accept_error);
  net.retry_accept = evtimer_new(base, on_retry_accept, NULL);
  if (!net.retry_accept) return -1;

  union {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
  } addr;
  memset(&addr, 0, sizeof addr);
  socklen_t sl = sizeof addr;
  if (getsockname(evconnlistener_get_fd(net.listener), &addr.sa, &sl) == 0)
    srv.resp_port = addr.sa.sa_family == AF_INET6 ? ntohs(addr.in6.sin6_port)
                                                  : ntohs(addr.in4.sin_port);
  return 0;
}

/* Shutdown: no new clients, flush what the sockets take, close all. */
void net_stop(void) {
  if (net.listener) evconnlistener_free(net.listener);
  net.listener = NULL;
  if (net.retry_accept) event_free(net.retry_accept);
  net.retry_accept = NULL;
  store_settle();                         /* commit and sync, then */
  net_before_sleep();                     /* send what fits */
  while (net.all) conn_close(net.all);
}

/* One CLIENT LIST line per connection. */
void net_client_list(buf *out) {
  time_t now = time(NULL);
  for (conn *c = net.all; c; c = c->next)
    buf_printf(out, "id=%llu addr=%s name=%s age=%lld qbuf=%zu obl=%zu "
               "multi=%zd\n", (unsigned long long)c->sess.id, c->sess.addr,
               c->sess.name ? c->sess.name : "", (long long)(now - c->since),
               backlog(c), unsent(c),
               c->sess.multi ? (ssize_t)c->sess.nqueued : (ssize_t)-1);
}
