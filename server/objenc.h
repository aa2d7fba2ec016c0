/*
** The encoding Redis would report in OBJECT ENCODING for a string key.
**
** Redis derives it from how the value was made, not only from its bytes:
** SET (and every command that stores a whole new value) gives "int" to a
** canonical 64-bit integer of up to 20 bytes, "embstr" to other values of
** up to 44 bytes and "raw" to longer ones; APPEND to an existing key,
** SETRANGE and SETBIT leave a "raw" string whatever its length, and
** INCRBYFLOAT an "embstr" one even when it reads as an integer; RENAME and
** COPY keep the source's.  tinkv stores bytes only, so the exceptions are
** remembered here, per key, for values short enough to differ from the
** derived encoding; any other write or delete of the key (store.c calls
** objenc_forget for each) drops its entry.
*/
#ifndef TKS_OBJENC_H
#define TKS_OBJENC_H

#include <stddef.h>

#define OBJENC_DERIVED 0      /* from the bytes, as after SET */
#define OBJENC_RAW     1      /* as after APPEND, SETRANGE, SETBIT */
#define OBJENC_EMBSTR  2      /* as after INCRBYFLOAT */

/* Remember that key (whose value is now n bytes) has encoding enc, just
** after the write that made it so. */
void objenc_note(const void *key, size_t klen, int enc, size_t n);
/* Forget what objenc_note remembered of key (a write or delete). */
void objenc_forget(const void *key, size_t klen);
/* What objenc_note remembered of key, or OBJENC_DERIVED. */
int objenc_get(const void *key, size_t klen);
/* "int", "embstr" or "raw" for key with value v of n bytes. */
const char *objenc_name(const void *key, size_t klen, const char *v,
                        size_t n);
/* Keys remembered now (for tests and INFO). */
size_t objenc_count(void);

#endif
