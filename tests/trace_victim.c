/*
 * trace_victim.c - a program that leaks from known functions, for traced
 * runs on the shim (tests/test_preload.c).  Plain C: no objmem API.  It
 * is linked with -rdynamic, so that its functions have names in a
 * traceback.  With an argument, it asks for a capture by SIGUSR2 first.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *victim_leak_big(void), *victim_leak_small(int i), *victim_temp(int i);
void victim_ask_capture(void);
#define BIG3(k) (k[0] = victim_leak_big(), k[1] = victim_leak_big(), \
                 k[2] = victim_leak_big())
/* Three blocks of 5000 bytes, never freed. */
__attribute__((noinline)) void *victim_leak_big(void)
{
    void *p = malloc(5000);

    memset(p, 1, 5000);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

/* 100 blocks of 40 bytes, never freed. */
__attribute__((noinline)) void *victim_leak_small(int i)
{
    char *p = malloc(40);

    memset(p, i, 40);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

int main(int argc, char **argv)
{
    static void *keep[103];

    if (argc > 1)
        victim_ask_capture();
    /* three calls on one line: three return addresses in any build */
    BIG3(keep);
    for (int i = 0; i < 100; i++)
        keep[3 + i] = victim_leak_small(i);
    for (int i = 0; i < 50; i++)
        free(victim_temp(i));   /* freed: not in the capture */
    __asm__ volatile("" : : "r"(keep) : "memory");
    return 0;
}

/* 50 blocks of 100 bytes, each freed by main at once: in the allocations
 * of the run only.  (The tests know the lines above: add below only.) */
__attribute__((noinline)) void *victim_temp(int i)
{
    char *p = malloc(100);

    memset(p, i, 100);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

/* SIGUSR2, then a wait without allocating until the capture is there
 * (OBJMEM_TRACE_FILE's NAME.1; 5 s at most): tracing's ticker writes it
 * within a tick, so it holds none of the blocks made after this.  Not a
 * next allocation's: the ticker could claim the capture and take its
 * snapshot only after some of them. */
void victim_ask_capture(void)
{
    const char *name = getenv("OBJMEM_TRACE_FILE");
    char path[4096];
    size_t n = name ? strlen(name) : 0;

    raise(SIGUSR2);
    if (!name || n + 3 > sizeof(path))
        return;
    memcpy(path, name, n);
    memcpy(path + n, ".1", 3);
    for (int waited = 0; access(path, F_OK) != 0 && waited < 5000; waited++)
        usleep(1000);
}
