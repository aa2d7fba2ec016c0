/*
** The sync thread; see syncer.h.  The thread and the loop share only the
** job and result fields below, under `mu`; the result reaches the loop
** through a pipe (one byte per ended job), so the loop never waits for the
** thread unless it asks to (syncer_wait).
*/
#include "syncer.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

static struct {
  pthread_t thread;
  int running;              /* loop side: started, not stopped */
  int busy;                 /* loop side: submitted, outcome not delivered */
  int pipe[2];
  struct event *ev;
  syncer_done_fn fn;
  pthread_mutex_t mu;
  pthread_cond_t wake;      /* a job or stop for the thread */
  pthread_cond_t ended;     /* a job ended, for syncer_wait */
  /* Under mu. */
  tkv_db *db;
  uint64_t job;             /* id to sync, 0: none */
  int stop;
  int done;                 /* a result waits */
  uint64_t done_id;
  int done_rc;
  uint64_t done_usec;
  char why[512];
} sy = {.pipe = {-1, -1}};

static uint64_t now_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The thread: run each job, post its result, ring the loop. */
static void *sync_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&sy.mu);
  for (;;) {
    while (!sy.stop && !sy.job) pthread_cond_wait(&sy.wake, &sy.mu);
    if (!sy.job) break;                 /* stop, nothing left to do */
    tkv_db *db = sy.db;
    uint64_t id = sy.job;
    sy.job = 0;
    pthread_mutex_unlock(&sy.mu);
    uint64_t t0 = now_usec();
    int rc = tkv_sync_concurrent(db);
    uint64_t usec = now_usec() - t0;
    pthread_mutex_lock(&sy.mu);
    assert(!sy.done);                   /* one job at a time */
    sy.done = 1;
    sy.done_id = id;
    sy.done_rc = rc;
    sy.done_usec = usec;
    snprintf(sy.why, sizeof sy.why, "%s", rc ? tkv_errmsg() : "");
    pthread_cond_broadcast(&sy.ended);
    ssize_t w;
    do w = write(sy.pipe[1], "s", 1);
    while (w < 0 && errno == EINTR);  /* full: a byte already waits */
  }
  pthread_mutex_unlock(&sy.mu);
  return NULL;
}

/* Hand a posted result (if any) to the callback, outside mu. */
static void deliver(void) {
  pthread_mutex_lock(&sy.mu);
  int have = sy.done, rc = sy.done_rc;
  uint64_t id = sy.done_id, usec = sy.done_usec;
  char why[sizeof sy.why];
  memcpy(why, sy.why, sizeof why);
  sy.done = 0;
  pthread_mutex_unlock(&sy.mu);
  if (!have) return;
  assert(sy.busy);
  sy.busy = 0;
  sy.fn(rc, id, usec, why);
}

/* The pipe rang: drain it, deliver. */
static void on_ring(evutil_socket_t fd, short what, void *arg) {
  (void)what; (void)arg;
  char b[64];
  while (read(fd, b, sizeof b) > 0) {}
  deliver();
}

int syncer_start(struct event_base *base, syncer_done_fn fn) {
  assert(!sy.running);
  sy.fn = fn;
  if (pipe(sy.pipe) != 0 || fcntl(sy.pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
      fcntl(sy.pipe[1], F_SETFL, O_NONBLOCK) != 0) {
    srv_log("sync thread: pipe: %s", strerror(errno));
    return -1;
  }
  sy.ev = event_new(base, sy.pipe[0], EV_READ | EV_PERSIST, on_ring, NULL);
  if (!sy.ev || event_add(sy.ev, NULL) != 0) {
    srv_log("sync thread: cannot watch its pipe");
    return -1;
  }
  pthread_mutex_init(&sy.mu, NULL);
  pthread_cond_init(&sy.wake, NULL);
  pthread_cond_init(&sy.ended, NULL);
  sy.stop = 0;
  int err = pthread_create(&sy.thread, NULL, sync_main, NULL);
  if (err) {
    srv_log("sync thread: %s", strerror(err));
    return -1;
  }
  sy.running = 1;
  return 0;
}

int syncer_running(void) { return sy.running; }

int syncer_busy(void) { return sy.busy; }

void syncer_submit(tkv_db *db, uint64_t id) {
  assert(sy.running && !sy.busy && id);
  pthread_mutex_lock(&sy.mu);
  sy.db = db;
  sy.job = id;
  pthread_cond_signal(&sy.wake);
  pthread_mutex_unlock(&sy.mu);
  sy.busy = 1;
}

void syncer_wait(void) {
  if (!sy.busy) return;
  pthread_mutex_lock(&sy.mu);
  while (!sy.done) pthread_cond_wait(&sy.ended, &sy.mu);
  pthread_mutex_unlock(&sy.mu);
  deliver();
}

void syncer_stop(void) {
  if (!sy.running) return;
  syncer_wait();
  pthread_mutex_lock(&sy.mu);
  sy.stop = 1;
  pthread_cond_signal(&sy.wake);
  pthread_mutex_unlock(&sy.mu);
  pthread_join(sy.thread, NULL);
  event_free(sy.ev);
  sy.ev = NULL;
  close(sy.pipe[0]);
  close(sy.pipe[1]);
  sy.pipe[0] = sy.pipe[1] = -1;
  pthread_mutex_destroy(&sy.mu);
  pthread_cond_destroy(&sy.wake);
  pthread_cond_destroy(&sy.ended);
  sy.running = 0;
}
