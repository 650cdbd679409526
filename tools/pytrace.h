/*
 * pytrace.h - objmem-python's frame source (pytrace.c).
 */
#ifndef OM_PYTRACE_H
#define OM_PYTRACE_H

/* Make tracebacks name Python files and lines: 1, or 0 when this CPython
 * is one whose frames pytrace.c cannot read (C frames then). */
int pytrace_install(void);

#endif /* OM_PYTRACE_H */
