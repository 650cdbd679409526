/*
 * serve_victim.c - a pre-forking server in miniature, for `objmem run`
 * on services (tests/test_preload.c).  Plain C: no objmem API; linked
 * with -rdynamic, so that its functions have names in a traceback.
 *
 * It moves to / as a daemon does, forks one worker, says "ready" on
 * stdout and waits for SIGTERM (SIGUSR2 asks for a capture meanwhile:
 * the shim's handler).  On SIGTERM it stops the worker the same way,
 * waits for it and exits through exit(), as servers do.  The worker
 * allocates 20 blocks of 3000 bytes in worker_block, the master 10 of
 * 1000 in master_block, none freed.  `serve_victim idle` forks no worker
 * and, once ready, allocates nothing until SIGTERM: an idle service.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *worker_block(void);
void *master_block(void);

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

__attribute__((noinline)) void *worker_block(void)
{
    void *p = malloc(3000);

    memset(p, 2, 3000);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

__attribute__((noinline)) void *master_block(void)
{
    void *p = malloc(1000);

    memset(p, 3, 1000);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

/* Until SIGTERM, a malloc a millisecond (a SIGUSR2 capture is written
 * at the next one). */
static void serve(void)
{
    while (!stop) {
        free(malloc(64));
        usleep(1000);
    }
}

int main(int argc, char **argv)
{
    static void *keep[30];
    struct sigaction sa;
    pid_t worker;
    int status;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    if (chdir("/") != 0)
        return 2;
    for (int i = 0; i < 10; i++)
        keep[i] = master_block();
    if (argc > 1 && strcmp(argv[1], "idle") == 0) {
        printf("ready\n");
        fflush(stdout);
        while (!stop)
            usleep(100000);     /* no allocation; a signal cuts it short */
        __asm__ volatile("" : : "r"(keep) : "memory");
        return 0;
    }
    worker = fork();
    if (worker < 0)
        return 2;
    if (worker == 0) {
        for (int i = 0; i < 20; i++)
            keep[10 + i] = worker_block();
        serve();
        __asm__ volatile("" : : "r"(keep) : "memory");
        exit(0);
    }
    printf("ready\n");
    fflush(stdout);
    serve();
    kill(worker, SIGTERM);
    if (waitpid(worker, &status, 0) != worker || !WIFEXITED(status))
        return 3;
    __asm__ volatile("" : : "r"(keep) : "memory");
    printf("stopped\n");
    exit(0);
}
