/* The README's example, built against an installed objmem. */
#include <objmem.h>

int main(void)
{
    char *s = om_malloc(100);            /* from a 112-byte pool */
    struct om_stats st;
    om_free(s);
    om_collect(true);                    /* give back all that is free */
    om_stats_get(&st);
    om_debug_malloc_stats(stdout);       /* as sys._debugmallocstats() */
    return om_check();                   /* 0: every invariant holds */
}
