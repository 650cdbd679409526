/*
 * preload_victim.c - a program with a heap buffer overflow, for the shim's
 * debug mode to catch (tests/test_preload.c).  Plain C: no objmem API.
 * "victim mlockall" locks all its memory, now and future, and allocates
 * small, medium and large blocks: it prints whether the lock was granted.
 * "victim exit N" and "victim Exit N" leave by _exit(N) and _Exit(N)
 * with blocks still allocated; "victim blocked N" the same with every
 * signal blocked; "victim vfork" has a child of vfork leave by _exit(9),
 * then returns 0; "victim wait" allocates, says "ready" and waits for a
 * signal to end it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Leave by _exit, _Exit or, with every signal blocked, _exit. */
static void leave(const char *how, int status)
{
    static void *keep[10];
    sigset_t all;

    for (int i = 0; i < 10; i++)
        keep[i] = malloc(1000);
    __asm__ volatile("" : : "r"(keep) : "memory");
    if (strcmp(how, "Exit") == 0)
        _Exit(status);
    if (strcmp(how, "blocked") == 0) {
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
    }
    _exit(status);
}

/* A child of vfork shares this process's memory: its _exit must leave
 * the heap and the report to the parent. */
static int vfork_child(void)
{
    int status = -1;
    pid_t pid = vfork();

    if (pid == 0)
        _exit(9);
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 1;
    printf("child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(malloc(100));
    return 0;
}

int main(int argc, char **argv)
{
    char *p;

    if (argc > 1 && strcmp(argv[1], "mlockall") == 0)
        return lock_all();
    if (argc > 2 && (strcmp(argv[1], "exit") == 0 ||
                     strcmp(argv[1], "Exit") == 0 ||
                     strcmp(argv[1], "blocked") == 0))
        leave(argv[1], atoi(argv[2]));
    if (argc > 1 && strcmp(argv[1], "vfork") == 0)
        return vfork_child();
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        static void *keep[10];

        for (int i = 0; i < 10; i++)
            keep[i] = malloc(1000);
        __asm__ volatile("" : : "r"(keep) : "memory");
        printf("ready\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    p = malloc(10);

    memset(p, 'x', 10);
    if (argc > 1)
        p[10] = '!';            /* one byte past the end */
    /* The compiler must not drop the block: it escapes here. */
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
    return 0;
}
