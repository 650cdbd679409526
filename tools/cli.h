/*
 * cli.h - the verbs of the objmem command (tools/objmem.c dispatches).
 */
#ifndef OM_CLI_H
#define OM_CLI_H

/* tour.c: the guided tour (make demo). */
int objmem_tour(void);

/* run.c: run a program on the shim and summarise its report; re-read a
 * saved report.  argv[0] is the verb.  Return the exit status. */
int objmem_run(int argc, char **argv);
int objmem_stats(int argc, char **argv);

#endif /* OM_CLI_H */
