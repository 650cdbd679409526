/*
 * cli.h - the verbs of the objmem command (tools/objmem.c dispatches).
 */
#ifndef OM_CLI_H
#define OM_CLI_H

#include <stdbool.h>

/* tour.c: the guided tour (make demo). */
int objmem_tour(void);

/* run.c: run a program on the shim and summarise its report; re-read a
 * saved report.  argv[0] is the verb.  Return the exit status. */
int objmem_run(int argc, char **argv);
int objmem_stats(int argc, char **argv);

/* run.c: --trace[=N] / --sample=BYTES (false: arg is neither), their
 * environment, and the message naming a traced run's capture. */
bool objmem_trace_option(const char *arg, const char **trace,
                         const char **sample);
void objmem_trace_environment(const char *trace, const char *sample);
void objmem_trace_found(long pid);

/* reports.c: the verbs that read capture files, and the loader they
 * share (NULL after a message on stderr). */
struct om_snapshot;
struct om_snapshot *objmem_capture_load(const char *path);
int objmem_top(int argc, char **argv);
int objmem_leaks(int argc, char **argv);
int objmem_diff(int argc, char **argv);

/* export.c: captures in other tools' formats (folded stacks, an HTML
 * flame graph, pprof's profile.proto). */
int objmem_flamegraph(int argc, char **argv);
int objmem_pprof(int argc, char **argv);

#endif /* OM_CLI_H */
