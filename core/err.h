/*
** The calling thread's last error message (tkv_errmsg), and helpers that
** set it and return the status in one step.
*/
#ifndef TKV_ERR_H
#define TKV_ERR_H

#include "tinkv.h"

/* Set the message (printf format) and return rc. */
int tkv_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set "<what> <path>: <strerror(errnum)>" and return TKV_IO (TKV_NOMEM for
** ENOMEM). */
int tkv_err_sys(int errnum, const char *what, const char *path);
/* Record an allocation failure. */
int tkv_err_nomem(void);

#endif
