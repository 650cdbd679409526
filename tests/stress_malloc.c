/*
 * stress_malloc.c - a threaded malloc stress program that knows nothing of
 * objmem: run as it is and under LD_PRELOAD=libobjmem-preload.so, it must
 * print the same lines.  Four generations of 8 threads (threads exit and
 * new ones start); each allocates every kind of size (small, medium,
 * large) with every function of the malloc family, checks what it gets,
 * and passes half its blocks to the other threads through a shared ring,
 * so that most blocks are freed by a thread that did not allocate them.
 * The main thread forks while the workers run; the child allocates and
 * checks on its own.  A block malloc'ed by the C library itself (found
 * with dlopen) is freed and reallocated through the process's malloc.
 *
 * Output: a checksum of the sizes each thread asked for (the same in
 * every run: each thread has its own seed) and the count of errors.
 *
 * --main-exits: one generation, and the main thread leaves by pthread_exit
 * at once; a thread of its own joins the workers and prints.  The C
 * library ends the process with exit(0) when that thread is done, so
 * the atexit handler prints too: a helper thread of the allocator must
 * not keep the process alive.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 8
#define GENERATIONS 4
#define ROUNDS 20000
#define RING 4096

struct block {
    unsigned char *p;
    size_t size;
    unsigned char seed;
};

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block ring[RING];
static size_t ring_n;
static long errors;
static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;

static void error(const char *what, size_t size)
{
    pthread_mutex_lock(&errors_lock);
    if (errors++ < 10)
        fprintf(stderr, "stress_malloc: %s (size %zu)\n", what, size);
    pthread_mutex_unlock(&errors_lock);
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Small most of the time, medium often, large now and then. */
static size_t pick_size(uint64_t *s)
{
    uint64_t r = next(s) % 1000;

    if (r < 700)
        return next(s) % 513;
    if (r < 990)
        return 513 + next(s) % (64 * 1024);
    return 64 * 1024 + next(s) % (2 << 20);
}

/* Write a pattern at both ends and in the middle; check it. */
static void stamp(struct block *b)
{
    size_t n = b->size / 2 < 64 ? b->size / 2 : 64;

    for (size_t i = 0; i < n; i++) {
        b->p[i] = (unsigned char)(b->seed + i);
        b->p[b->size - 1 - i] = (unsigned char)(b->seed ^ i);
    }
}

static int stamped(const struct block *b)
{
    size_t n = b->size / 2 < 64 ? b->size / 2 : 64;

    for (size_t i = 0; i < n; i++)
        if (b->p[i] != (unsigned char)(b->seed + i) ||
            b->p[b->size - 1 - i] != (unsigned char)(b->seed ^ i))
            return 0;
    return 1;
}

static void release(struct block *b)
{
    if (!stamped(b))
        error("block contents changed", b->size);
    free(b->p);
}

/* One allocation through a function of the family chosen at random. */
static int make(struct block *b, uint64_t *s)
{
    size_t align;
    void *p = NULL;

    b->size = pick_size(s);
    b->seed = (unsigned char)next(s);
    switch (next(s) % 6) {
    case 0:
        b->p = calloc(1, b->size);
        for (size_t i = 0; b->p && i < b->size; i += 97)
            if (b->p[i] != 0)
                error("calloc gave a non-zero byte", b->size);
        break;
    case 1:
        align = (size_t)16 << (next(s) % 9);
        if (posix_memalign(&p, align, b->size) != 0)
            p = NULL;
        b->p = p;
        if (p && (uintptr_t)p % align)
            error("posix_memalign misaligned", b->size);
        break;
    case 2:
        align = (size_t)32 << (next(s) % 6);
        b->p = aligned_alloc(align, b->size);
        if (b->p && (uintptr_t)b->p % align)
            error("aligned_alloc misaligned", b->size);
        break;
    case 3:
        b->p = malloc(b->size / 2 + 1);
        if (b->p)
            b->p = realloc(b->p, b->size ? b->size : 1);
        break;
    default:
        b->p = malloc(b->size);
        break;
    }
    if (!b->p) {
        error("allocation failed", b->size);
        return 0;
    }
    /* max_align_t's 16 for a block that can hold one; 8 below (C17:
     * aligned for the objects that fit; jemalloc and mimalloc do so). */
    if ((uintptr_t)b->p % (b->size >= 16 ? 16 : 8))
        error("block misaligned", b->size);
    if (malloc_usable_size(b->p) < b->size)
        error("usable size below the request", b->size);
    stamp(b);
    return 1;
}

static void *worker(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg, *sum = malloc(sizeof(*sum));
    struct block mine[64];
    size_t n = 0;

    *sum = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct block b;
        if (!make(&b, &s))
            continue;
        *sum += b.size;
        if (next(&s) % 2 && n < 64) {
            mine[n++] = b;              /* kept a while by this thread */
        } else {
            struct block out = { NULL, 0, 0 };
            uint64_t r = next(&s);      /* drawn whatever the ring holds */
            pthread_mutex_lock(&ring_lock);
            if (ring_n > 0 && (ring_n == RING || r % 2)) {
                size_t k = (size_t)(r >> 1) % ring_n;
                out = ring[k];
                ring[k] = ring[--ring_n];
            }
            ring[ring_n++] = b;         /* for another thread to free */
            pthread_mutex_unlock(&ring_lock);
            if (out.p)
                release(&out);
        }
        if (n == 64)
            while (n > 0)
                release(&mine[--n]);
    }
    while (n > 0)
        release(&mine[--n]);
    return sum;
}

/* The child of a fork taken while the workers run: alone now. */
static int child_work(void)
{
    uint64_t s = 99;
    struct block b[200];

    for (int i = 0; i < 200; i++)
        if (!make(&b[i], &s))
            return 1;
    for (int i = 0; i < 200; i++)
        if (!stamped(&b[i]))
            return 2;
    for (int i = 0; i < 200; i++)
        free(b[i].p);
    return 0;
}

/* A block from the C library's own malloc, given to the process's. */
static void foreign_pointer(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void *(*libc_malloc)(size_t) = libc ? (void *(*)(size_t))dlsym(libc,
                                                                  "malloc")
                                        : NULL;
    char *p, *q;

    if (!libc_malloc) {
        error("cannot find the C library's malloc", 0);
        return;
    }
    p = libc_malloc(100);
    q = libc_malloc(200);
    strcpy(p, "made by the C library");
    strcpy(q, "this one is reallocated");
    if (malloc_usable_size(p) < 100)
        error("usable size of a foreign block", 100);
    free(p);
    q = realloc(q, 5000);
    if (!q || strcmp(q, "this one is reallocated") != 0)
        error("realloc of a foreign block", 5000);
    free(q);
    dlclose(libc);
}

static pthread_t gen_threads[THREADS];

/* Start a generation of workers (seeds from first). */
static void start_generation(pthread_t *t, int first)
{
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(first + i));
}

/* Join a generation: the sum of its checksums. */
static uint64_t join_generation(pthread_t *t)
{
    uint64_t checksum = 0;

    for (int i = 0; i < THREADS; i++) {
        uint64_t *sum;
        pthread_join(t[i], (void **)&sum);
        checksum += *sum;
        free(sum);
    }
    return checksum;
}

static void exit_handler(void)
{
    printf("exit handlers: ran\n");
}

/* --main-exits: the last thread of the process. */
static void *closer(void *arg)
{
    uint64_t checksum = join_generation(gen_threads);

    (void)arg;
    while (ring_n > 0)
        release(&ring[--ring_n]);
    printf("main exited; checksum: %llu\n", (unsigned long long)checksum);
    printf("errors: %ld\n", errors);
    return NULL;
}

static void main_exits(void)
{
    pthread_t t;

    atexit(exit_handler);
    start_generation(gen_threads, 1);
    pthread_create(&t, NULL, closer, NULL);
    pthread_exit(NULL);
}

int main(int argc, char **argv)
{
    uint64_t checksum = 0;
    int status = -1;
    pid_t child = -1;

    /* --no-foreign: skip the foreign pointer (for allocators that cannot
     * take one, as Debian's mimalloc: bench_shim runs it under them). */
    if (argc > 1 && strcmp(argv[1], "--main-exits") == 0)
        main_exits();
    if (argc < 2 || strcmp(argv[1], "--no-foreign") != 0)
        foreign_pointer();
    for (int g = 0; g < GENERATIONS; g++) {
        pthread_t t[THREADS];
        start_generation(t, g * THREADS + 1);
        if (g == 1) {
            fflush(stdout);
            child = fork();
            if (child == 0)
                _exit(child_work());
        }
        checksum += join_generation(t);
    }
    while (ring_n > 0)
        release(&ring[--ring_n]);
    waitpid(child, &status, 0);
    printf("fork child: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0
                               ? "ok" : "failed");
    printf("checksum: %llu\n", (unsigned long long)checksum);
    printf("errors: %ld\n", errors);
    return errors != 0;
}
