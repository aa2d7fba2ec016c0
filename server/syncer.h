/*
** The sync thread of durable group commit.
**
** At --sync full with group commit, a batch's records are written to the
** OS when it commits, and this thread makes them durable
** (tkv_sync_concurrent) while the event loop goes on reading, running and
** committing the next commands.  One sync runs at a time.  The loop learns
** that one ended through a pipe that libevent watches, and then hears the
** outcome on its own thread, so that everything but the fdatasync itself
** stays single-threaded (server.h).
*/
#ifndef TKS_SYNCER_H
#define TKS_SYNCER_H

#include <event2/event.h>
#include <stdint.h>

#include "tinkv.h"

/* Told, on the loop's thread, how the sync of job `id` ended and how long
** it took; why is the engine's message when rc is not TKV_OK. */
typedef void (*syncer_done_fn)(int rc, uint64_t id, uint64_t usec,
                               const char *why);

/* Start the thread; its results go to fn on base's loop.  0, or -1 with
** the reason logged. */
int syncer_start(struct event_base *base, syncer_done_fn fn);
/* Nonzero once started (and not stopped). */
int syncer_running(void);
/* Nonzero while a job was submitted and its outcome not yet delivered. */
int syncer_busy(void);
/* Sync db for job id (nonzero) in the thread.  Not while busy. */
void syncer_submit(tkv_db *db, uint64_t id);
/* Block until the running job (if any) ends and deliver its outcome. */
void syncer_wait(void);
/* Wait for the running job, then end the thread. */
void syncer_stop(void);

#endif
