/*
 * purge.h - L2: when free pages go back to the OS.
 */
#ifndef OM_PURGE_H
#define OM_PURGE_H

#include "base.h"

enum purge_mode {
    PURGE_DEFERRED,             /* the purger thread, after the delay */
    PURGE_IMMEDIATE,            /* each heap, past its dirty trigger */
    PURGE_NEVER                 /* only om_collect */
};

/* The policy in force (reads OBJMEM_PURGE_DELAY on first use). */
enum purge_mode omi_purge_mode(void);

/* A heap made pools DIRTY: start or wake the purger if it is needed. */
void omi_purge_notify(void);

/* Stop the purger from starting new work and wait for its current work to
 * end (om_check, fork); resume undoes one pause. */
void omi_purge_pause(void);
void omi_purge_resume(void);

/* fork() child: the purger thread did not survive; start afresh. */
void omi_purge_fork_child(void);

#endif /* OM_PURGE_H */
