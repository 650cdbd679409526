/*
 * preload_victim.c - a program with a heap buffer overflow, for the shim's
 * debug mode to catch (tests/test_preload.c).  Plain C: no objmem API.
 */
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char *p = malloc(10);

    memset(p, 'x', 10);
    if (argc > 1)
        p[10] = '!';            /* one byte past the end */
    /* The compiler must not drop the block: it escapes here. */
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
    return 0;
}
