/*
** Read transactions: a handle's view of the keydir fixed at one moment
** (tkv_read_begin), while other handles and processes go on committing
** and merges go on running.
**
** The keydir holds only the latest state of each key.  A read transaction
** keeps what it needs of the past beside it: before a commit (of any
** handle, or one this process follows from another process) changes the
** committed state of an entry, the entry's state at that moment is
** recorded in every read transaction that has not recorded one for it yet
** (its before-image: a location and expiry time, or "absent" for an entry
** the commit creates).  An entry that leaves the index (a deleted key, or
** a key deleted and written again, whose old row dies) also joins an
** ordered index of each such read transaction ("gone"), so that its scans
** still find it in key order, and it is freed only when the last read
** transaction that may see it ends.
**
** So a read transaction sees: an entry of the committed index at its
** before-image when it has one, else as it is now (unchanged since it
** began); and the entries of its gone index at their before-images.
** Merges only move records and never change a value: they record nothing.
** The files holding what before-images point at stay readable until the
** read transactions that began before they left the table end: merge.c
** holds back deleting its inputs (rtx_holds), and share.c holds back
** acknowledging other processes' merges (rtx_any).
**
** Locking: the list of read transactions is changed holding mu; records
** are added holding mu and rw exclusively (where the keydir changes), and
** read by the owner holding rw shared.
*/
#ifndef TKV_READTXN_H
#define TKV_READTXN_H

#include "engine.h"

typedef struct tkv_rtx tkv_rtx;

/* Begin a read transaction on db (which has none, and no transaction).
** Caller holds db->mu and mu, and has caught up with other processes. */
int rtx_begin(tkv_db *db);
/* End db's read transaction, if any.  Caller holds db->mu and mu.
** Returns it, out of every list, for rtx_free (which needs no lock: the
** caller frees it after letting mu go, so that nobody waits for that). */
tkv_rtx *rtx_end(tkv_db *db);
void rtx_free(tkv_rtx *r);
/* Nonzero while a read transaction is open on the engine.  Caller holds
** mu. */
int rtx_any(tkv_engine *e);
/* How many are open.  Caller holds mu. */
uint64_t rtx_open(tkv_engine *e);
/* A stamp for something leaving the table now; rtx_holds(e, stamp) is
** nonzero while a read transaction that began before it is open.  Caller
** holds mu. */
uint64_t rtx_stamp(tkv_engine *e);
int rtx_holds(tkv_engine *e, uint64_t stamp);

/* Hooks of the writers, caller holding mu and rw exclusively.  No-ops
** while no read transaction is open. */
/* en's committed state is about to change (absent: en is being created). */
void rtx_note(tkv_engine *e, kd_entry *en, int absent);
/* en left the committed index for good, after rtx_note: free it now, or
** keep it for the read transactions that still see it. */
void rtx_drop(tkv_engine *e, kd_entry *en);
/* Nonzero if en left the committed index and is only kept for read
** transactions (so its id names no row of the store any more).  Caller
** holds rw or mu. */
int rtx_kept(tkv_engine *e, kd_entry *en);
/* Free what the engine kept for read transactions (the last close). */
void rtx_free_all(tkv_engine *e);

/* Reading through a read transaction; caller holds rw shared or mu. */
/* Does r see en (from the committed index or r's gone index)?  Its
** location and expiry time (0: none) go to *ploc and *pexpire. */
int rtx_visible(tkv_engine *e, const tkv_rtx *r, kd_entry *en, tkv_loc *ploc,
                uint64_t *pexpire);
/* The entry r sees for key (maybe invisible: check rtx_visible), or NULL. */
kd_entry *rtx_find(tkv_engine *e, const tkv_rtx *r, const void *key,
                   size_t klen);
/* r's index of entries that left the committed index since it began. */
const kd_index *rtx_gone(const tkv_rtx *r);
/* The entry of an id (from kd_entry_by_id, may be NULL) if r sees it. */
kd_entry *rtx_entry_of_id(tkv_engine *e, const tkv_rtx *r, kd_entry *en);
/* Live keys r sees at `now` (expired keys not counted; now 0: counted).
** Caller holds mu. */
uint64_t rtx_count(tkv_engine *e, tkv_rtx *r, uint64_t now);
/* TKV_OK, or the error that made r lose its view (out of memory). */
int rtx_status(const tkv_rtx *r);
/* Nonzero if anything r sees changed since it began (a commit recorded a
** before-image), or r lost its view. */
int rtx_changed(const tkv_rtx *r);

#endif
