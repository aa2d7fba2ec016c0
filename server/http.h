/*
** The REST API, served by libmicrohttpd inside the server's event loop:
**
**   GET/HEAD /v1/kv/{key}    the value (application/octet-stream), or 404
**   PUT      /v1/kv/{key}    set it from the body: 201 created, 204 replaced
**   DELETE   /v1/kv/{key}    204, or 404
**   GET      /v1/kv?prefix=P&after=K&limit=N   a JSON page of keys, in order
**   GET      /v1/stats       the engine's tkv_stats as JSON
**   POST     /v1/compact     compact now; JSON with the bytes reclaimed
**
** Keys in the path and in the query are percent-encoded (any bytes).
** Errors are JSON bodies {"error": "..."} with 400, 404, 405, 413, 409 or
** 500.
*/
#ifndef TKS_HTTP_H
#define TKS_HTTP_H

#include <event2/event.h>

/* Listen on srv.cfg.bind:srv.cfg.http_port (setting srv.http_port) and
** serve from base's loop.  0, or -1 with the reason logged. */
int http_start(struct event_base *base);
/* Stop serving; requests in progress are dropped. */
void http_stop(void);

#endif
