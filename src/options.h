/*
 * options.h - X (cross-cutting): run-time options from the environment
 * (options.c): OBJMEM_<KEY> variables and OBJMEM_CONF="key:value,...".
 */
#ifndef OM_OPTIONS_H
#define OM_OPTIONS_H

#include "base.h"

enum omi_opt {
    OMI_OPT_SHOW_STATS,
    OMI_OPT_OUTPUT,
    OMI_OPT_ALLOCATOR,
    OMI_OPT_VERBOSE,
    OMI_OPT_PURGE_DELAY,
    OMI_OPT_CHILDREN,
    OMI_OPT_TRACE,
    OMI_OPT_TRACE_SAMPLE,
    OMI_OPT_TRACE_FILE,
    OMI_OPT_TRACE_PEAK,
    OMI_OPT_TRACE_FORKS,
    OMI_OPT_TRACE_SYMBOLS,
    OMI_OPT_RUN,
    OMI_OPT_GC_TORTURE,
    OMI_OPT_COUNT
};

#define OMI_OPTION_MAX 1024     /* bytes of a value, with its NUL */
/* A file name from a pattern option, expanded (omi_report_expand): the
 * start directory (PATH_MAX), the value, a pid and a program's name. */
#define OMI_PATH_MAX (4096 + OMI_OPTION_MAX + 512)

/* Read the environment (once; later calls return at once). */
void omi_options_load(void);

/* An option's value (loading them if need be). */
const char *omi_option_str(enum omi_opt opt);
long omi_option_long(enum omi_opt opt);
bool omi_option_bool(enum omi_opt opt);

/* report.c: expand a file name pattern (%p the pid, %e the program's
 * name, %% a %) into out, a relative one from the directory the program
 * started in.  Uses snprintf: not on allocation paths. */
void omi_report_expand(char *out, size_t size, const char *pattern);

/* om_option_get and om_option_warning (objmem.h) list them all. */

#endif /* OM_OPTIONS_H */
