/*
** The RESP side of the server: the listening socket and the client
** connections, on a libevent loop.
**
** Each connection reads into its own input buffer, runs every complete
** request it finds (pipelining), and appends the replies to its own output
** buffer.  Replies are sent by net_before_sleep(), which the main loop
** calls after each loop iteration, once the group-commit batch of that
** iteration is committed, as Redis sends replies in beforeSleep().  With
** durable group commit a reply that depends on a batch not yet durable
** (its sync runs in another thread) waits for the turn in which that sync
** ends.
*/
#ifndef TKS_NET_H
#define TKS_NET_H

#include <event2/event.h>

#include "buf.h"

/* Bind the RESP listener on srv.cfg.bind:srv.cfg.port (setting
** srv.resp_port).  0, or -1 with the reason logged. */
int net_start(struct event_base *base);
/* Commit the batch and send what can be sent of every pending reply. */
void net_before_sleep(void);
/* Stop accepting, send what can still be sent, close every client. */
void net_stop(void);
/* CLIENT LIST: one line per connection. */
void net_client_list(buf *out);

#endif
