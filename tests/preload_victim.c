/*
 * preload_victim.c - a program with a heap buffer overflow, for the shim's
 * debug mode to catch (tests/test_preload.c).  Plain C: no objmem API.
 * "victim mlockall" locks all its memory, now and future, and allocates
 * small, medium and large blocks: it prints whether the lock was granted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int lock_all(void)
{
    int rc = mlockall(MCL_CURRENT | MCL_FUTURE);
    void *small = malloc(100), *medium = malloc(20000), *large = malloc(300000);

    printf("mlockall: %s\n", rc == 0 ? "ok" : strerror(errno));
    if (!small || !medium || !large)
        return 1;
    memset(large, 1, 300000);
    free(small);
    free(medium);
    free(large);
    return rc != 0;
}

int main(int argc, char **argv)
{
    char *p;

    if (argc > 1 && strcmp(argv[1], "mlockall") == 0)
        return lock_all();
    p = malloc(10);

    memset(p, 'x', 10);
    if (argc > 1)
        p[10] = '!';            /* one byte past the end */
    /* The compiler must not drop the block: it escapes here. */
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
    return 0;
}
