/*
** The calling thread's last error message (tkv_errmsg), and helpers that
** set it and return the status in one step.
*/
#ifndef TKV_ERR_H
#define TKV_ERR_H

#include "tinkv.h"

#include <errno.h>

/* Set the calling thread's message (printf format). */
void tkv_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Set "<what> <path>: <strerror(errnum)>". */
void tkv_err_sys_set(int errnum, const char *what, const char *path);

/* Set the message and give rc, in one expression.  Macros, so that the
** returned status is visible where it is used (and to static analysis). */
#define tkv_err(rc, ...) (tkv_err_set(__VA_ARGS__), (rc))
/* The message for a failed system call; TKV_IO (TKV_NOMEM for ENOMEM). */
#define tkv_err_sys(errnum, what, path) \
  (tkv_err_sys_set((errnum), (what), (path)), \
   (errnum)==ENOMEM ? TKV_NOMEM : TKV_IO)
/* An allocation failure. */
#define tkv_err_nomem() (tkv_err_set("out of memory"), TKV_NOMEM)

#endif
