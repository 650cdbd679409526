/*
 * stackwalk.h - X (cross-cutting): a fast walk of the C stack for tracing
 * (stackwalk.c): each return address and its frame's CFA, from rules of
 * .eh_frame cached by address.
 */
#ifndef OM_STACKWALK_H
#define OM_STACKWALK_H

#include "base.h"

/* Called for each frame from the walker's caller out, as libgcc's
 * backtrace gives them: pc is the frame's return address (the walker's
 * caller's: where the walker returns), sp its stack pointer (the CFA of
 * the frame it called).  false stops the walk. */
typedef bool (*omi_stackwalk_fn)(void *ctx, uintptr_t pc, uintptr_t sp);

/* Walk the calling thread's stack: 0 at its end or when fn stopped it;
 * -1 when a frame's rule is not one the walk knows (a signal frame, a
 * CFA by expression, no x86-64): the caller walks again another way
 * (fn has seen the frames before that one). */
int omi_stackwalk_walk(omi_stackwalk_fn fn, void *ctx);

/* The code range [*lo, *hi) of the function that holds pc, from its
 * unwind table; false when it has none. */
bool omi_stackwalk_function(uintptr_t pc, uintptr_t *lo, uintptr_t *hi);

/* Invariant 1 of stackwalk.c: 0, or omi_check_fail's code. */
int omi_stackwalk_check(void);

/* Around fork (trace.c's handlers): the lock of the look for unloaded
 * objects. */
void omi_stackwalk_fork_prepare(void);
void omi_stackwalk_fork_parent(void);
void omi_stackwalk_fork_child(void);

/* Bytes of the rule cache (0 until a walk made it). */
size_t omi_stackwalk_memory(void);

#endif /* OM_STACKWALK_H */
