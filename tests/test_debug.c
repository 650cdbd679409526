/*
 * test_debug.c - the debug hooks (src/debug.c): the block frame, the fill
 * bytes, realloc, the overflow paths, and the checks on free and realloc.
 *
 * Each bad action runs in a fork()ed child whose stderr goes to a pipe;
 * the parent waits for it and asserts that it died of SIGABRT after a
 * report naming the check, the block's address, size and domain.  The
 * parent keeps its own intact copy of the block and frees it properly.
 *
 * main() installs the hooks before anything is allocated.  Run with
 * --env-child, the program instead checks that OBJMEM_ALLOCATOR=debug
 * installed them on its own, then overflows a block (test_environment
 * runs it that way).
 *
 * The allocator option's other values: with --malloc-child KIND the
 * program checks that the MEM and OBJ domains are what KIND says (malloc:
 * the C library's; malloc_debug: the hooks over it; objmem: the pools)
 * under the environment the parent gave it (OBJMEM_ALLOCATOR, or a
 * Valgrind tool's preload in LD_PRELOAD).  Where valgrind is installed,
 * --uaf-child and --objects-child run under memcheck: it must see a use
 * after free and a leak of om_malloc blocks, and nothing wrong with a
 * workload of objects and collections.  --leak-child N runs under
 * heaptrack, memusage and glibc's mtrace: each must count its N blocks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <mcheck.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "objmem.h"
#include "domain.h"         /* omi_debug_hooks_on, omi_debug_block_size */

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#if UNDER_ASAN
/*
 * ASan reports reading a freed libc block (a double free of a block the
 * RAW domain serves) before the hooks can: make its report end in abort()
 * like ours, and let huge requests fail with NULL instead of dying.
 */
/* (default visibility: the internal headers hide what follows them) */
__attribute__((visibility("default"))) const char *
__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "abort_on_error=1:allocator_may_return_null=1";
}
#endif

#if UNDER_TSAN
/* test_realloc_failure_keeps_block asks for 1 PiB: NULL, not death. */
__attribute__((visibility("default"))) const char *
__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

#define SST sizeof(size_t)
#define CLEANBYTE 0xCD
#define FORBIDDENBYTE 0xFD

/* One domain's entry points, to run the same test on the three. */
struct api {
    char id;
    const char *name;
    void *(*malloc)(size_t size);
    void *(*calloc)(size_t nelem, size_t elsize);
    void *(*realloc)(void *p, size_t size);
    void (*free)(void *p);
};

static const struct api apis[] = {
    { 'r', "raw", om_raw_malloc, om_raw_calloc, om_raw_realloc, om_raw_free },
    { 'm', "mem", om_malloc, om_calloc, om_realloc, om_free },
    { 'o', "obj", om_obj_malloc, om_obj_calloc, om_obj_realloc, om_obj_free },
};

#define RAW (&apis[0])
#define MEM (&apis[1])
#define OBJ (&apis[2])

/* Pool-sized and RAW-served requests, and the edges between them. */
static const size_t sizes[] = { 0, 1, 7, 8, 24, 100, 488, 512, 513, 1000,
                                5000, 200000 };

/* ---- Checking a block ---- */

static size_t header_size(const unsigned char *p)
{
    size_t n = 0;

    for (size_t i = 0; i < SST; i++)
        n = (n << 8) | p[-(ptrdiff_t)(2 * SST) + (ptrdiff_t)i];
    return n;
}

/* The frame around p: big-endian size, id, pads; 16-byte alignment. */
static void assert_frame(const void *ptr, size_t size, char id)
{
    const unsigned char *p = ptr;

    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    assert_int_equal(header_size(p), size);
    assert_int_equal(omi_debug_block_size(p), size);
    assert_int_equal(p[-(ptrdiff_t)SST], (unsigned char)id);
    for (size_t i = 1; i < SST; i++)
        assert_int_equal(p[-(ptrdiff_t)i], FORBIDDENBYTE);
    for (size_t i = 0; i < SST; i++)
        assert_int_equal(p[size + i], FORBIDDENBYTE);
}

static void assert_bytes(const void *ptr, size_t from, size_t to, int v)
{
    const unsigned char *p = ptr;

    for (size_t i = from; i < to; i++)
        if (p[i] != (unsigned char)v)
            fail_msg("byte %zu of %p is 0x%02x, not 0x%02x", i, ptr, p[i],
                     v);
}

/* A recognisable content: byte i is (i * 7 + seed) & 0xff. */
static void fill_pattern(void *ptr, size_t n, unsigned seed)
{
    unsigned char *p = ptr;

    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + seed);
}

static void assert_pattern(const void *ptr, size_t n, unsigned seed)
{
    const unsigned char *p = ptr;

    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + seed))
            fail_msg("byte %zu of %p lost by realloc", i, ptr);
}

/* ---- Death tests ---- */

struct death {
    int status;                 /* from waitpid() */
    char err[32768];            /* the child's stderr, terminated */
};

/* In a child: stderr to the pipe, no core file, SIGABRT kills. */
static void become_quiet_child(int fd)
{
    struct rlimit no_core = { 0, 0 };

    dup2(fd, 2);
    close(fd);
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGABRT, SIG_DFL);
}

static void read_all(int fd, struct death *d)
{
    size_t len = 0;
    ssize_t n;

    while (len + 1 < sizeof(d->err)) {
        n = read(fd, d->err + len, sizeof(d->err) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    d->err[len] = '\0';
}

/* Run act(p) in a child: it should not come back. */
static void die_in_child(void (*act)(void *p), void *p, struct death *d)
{
    int fds[2];
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        become_quiet_child(fds[1]);
        act(p);
        _exit(0);
    }
    close(fds[1]);
    read_all(fds[0], d);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &d->status, 0), pid);
}

static void assert_said(const struct death *d, const char *text)
{
    if (strstr(d->err, text) == NULL)
        fail_msg("child stderr lacks \"%s\":\n%s", text, d->err);
}

static void assert_aborted(const struct death *d)
{
    if (!WIFSIGNALED(d->status) || WTERMSIG(d->status) != SIGABRT)
        fail_msg("child status 0x%x, not SIGABRT; stderr:\n%s", d->status,
                 d->err);
}

/* The child aborted after reporting check at p; size -1: not known. */
static void assert_report(const struct death *d, const char *check,
                          const void *p, size_t size, char api)
{
    char text[128];

    assert_aborted(d);
    snprintf(text, sizeof(text), "fatal error: %s at %p", check, p);
    assert_said(d, text);
    snprintf(text, sizeof(text), "Debug memory block at address p=%p", p);
    assert_said(d, text);
    snprintf(text, sizeof(text), "API '%c'", api);
    assert_said(d, text);
    if (size == (size_t)-1)
        return;
    snprintf(text, sizeof(text), "block of %zu bytes", size);
    assert_said(d, text);
    snprintf(text, sizeof(text), "    %zu bytes originally requested", size);
    assert_said(d, text);
}

/* The block and the domain a bad action works on. */
struct victim {
    const struct api *api;      /* allocated with */
    const struct api *other;    /* wrongly freed with */
    size_t size;                /* bytes asked for */
    unsigned char *p;
};

static void overflow_then_free(void *arg)
{
    struct victim *v = arg;

    v->p[v->size] = 'X';
    v->api->free(v->p);
}

static void overflow_then_realloc(void *arg)
{
    struct victim *v = arg;

    v->p[v->size + SST - 1] = 0;
    v->api->realloc(v->p, v->size + 100);
}

static void underflow_then_free(void *arg)
{
    struct victim *v = arg;

    v->p[-1] = 'X';
    v->api->free(v->p);
}

static void free_twice(void *arg)
{
    struct victim *v = arg;

    v->api->free(v->p);
    v->api->free(v->p);
}

static void free_elsewhere(void *arg)
{
    struct victim *v = arg;

    v->other->free(v->p);
}

static void realloc_elsewhere(void *arg)
{
    struct victim *v = arg;

    v->other->realloc(v->p, 64);
}

/* Allocate v's block here, break it in a child, free it here. */
static void run_victim(struct victim *v, void (*act)(void *), struct death *d)
{
    v->p = v->api->malloc(v->size);
    assert_non_null(v->p);
    die_in_child(act, v, d);
    assert_frame(v->p, v->size, v->api->id);
    v->api->free(v->p);
}

static void test_overflow(void **state)
{
    static struct death d;

    for (size_t a = 0; a < 3; a++) {
        struct victim v = { &apis[a], NULL, a == 1 ? 24 : 1000, NULL };

        run_victim(&v, overflow_then_free, &d);
        assert_report(&d, "bad trailing pad byte", v.p, v.size, v.api->id);
        assert_said(&d, "at tail+0: 0x58 *** OUCH");
        assert_said(&d, "buffer overflow");
    }
    assert_int_equal(om_check(), 0);
}

static void test_overflow_zero_bytes(void **state)
{
    static struct death d;
    struct victim v = { MEM, NULL, 0, NULL };

    run_victim(&v, overflow_then_free, &d);
    assert_report(&d, "bad trailing pad byte", v.p, 0, 'm');
    assert_int_equal(om_check(), 0);
}

static void test_overflow_on_realloc(void **state)
{
    static struct death d;
    struct victim v = { OBJ, NULL, 40, NULL };

    run_victim(&v, overflow_then_realloc, &d);
    assert_report(&d, "bad trailing pad byte", v.p, 40, 'o');
    assert_said(&d, "om_obj_realloc");
    assert_said(&d, "at tail+7: 0x00 *** OUCH");
    assert_int_equal(om_check(), 0);
}

static void test_underflow(void **state)
{
    static struct death d;

    for (size_t a = 0; a < 3; a++) {
        struct victim v = { &apis[a], NULL, a == 2 ? 16 : 700, NULL };

        run_victim(&v, underflow_then_free, &d);
        assert_report(&d, "bad leading pad byte", v.p, v.size, v.api->id);
        assert_said(&d, "at p-1: 0x58 *** OUCH");
        assert_said(&d, "buffer underflow");
    }
    assert_int_equal(om_check(), 0);
}

/*
 * A block freed twice.  Under ASan the second free may first read a block
 * ASan knows to be freed (where libc serves it): its own report counts.
 */
static void check_double_free(size_t size)
{
    static struct death d;
    struct victim v = { MEM, NULL, size, NULL };

    run_victim(&v, free_twice, &d);
    if (UNDER_ASAN && strstr(d.err, "AddressSanitizer") != NULL) {
        assert_aborted(&d);
        return;
    }
    assert_report(&d, "double free", v.p, (size_t)-1, 'm');
    assert_said(&d, "om_free: block of API 'm' freed twice");
}

static void test_double_free_large(void **state)
{
    check_double_free(1000);
    check_double_free(100000);
    assert_int_equal(om_check(), 0);
}

static void test_double_free_small(void **state)
{
    check_double_free(32);
    check_double_free(0);
    assert_int_equal(om_check(), 0);
}

static void test_wrong_domain_free(void **state)
{
    static struct death d;
    struct victim obj_by_mem = { OBJ, MEM, 48, NULL };
    struct victim mem_by_raw = { MEM, RAW, 48, NULL };
    struct victim big_by_raw = { MEM, RAW, 3000, NULL };

    run_victim(&obj_by_mem, free_elsewhere, &d);
    assert_report(&d, "bad ID", obj_by_mem.p, 48, 'o');
    assert_said(&d, "allocated with API 'o', freed with API 'm'");
    run_victim(&mem_by_raw, free_elsewhere, &d);
    assert_report(&d, "bad ID", mem_by_raw.p, 48, 'm');
    assert_said(&d, "allocated with API 'm', freed with API 'r'");
    run_victim(&big_by_raw, free_elsewhere, &d);
    assert_report(&d, "bad ID", big_by_raw.p, 3000, 'm');
    assert_int_equal(om_check(), 0);
}

static void test_wrong_domain_realloc(void **state)
{
    static struct death d;
    struct victim v = { MEM, OBJ, 20, NULL };

    run_victim(&v, realloc_elsewhere, &d);
    assert_report(&d, "bad ID", v.p, 20, 'm');
    assert_said(&d, "allocated with API 'm', reallocated with API 'o'");
    assert_int_equal(om_check(), 0);
}

/* ---- What the hooks must do right ---- */

static void test_installed(void **state)
{
    assert_true(omi_debug_hooks_on(OM_DOMAIN_RAW));
    assert_true(omi_debug_hooks_on(OM_DOMAIN_MEM));
    assert_true(omi_debug_hooks_on(OM_DOMAIN_OBJ));
    assert_int_equal(om_setup_debug_hooks(), -EALREADY);
    assert_int_equal(om_setup_debug_hooks(), -EALREADY);
    assert_true(omi_debug_hooks_on(OM_DOMAIN_MEM));
    assert_int_equal(om_check(), 0);
}

static void test_malloc_fills_clean(void **state)
{
    for (size_t a = 0; a < 3; a++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *p = apis[a].malloc(sizes[i]);

            assert_frame(p, sizes[i], apis[a].id);
            assert_bytes(p, 0, sizes[i], CLEANBYTE);
            apis[a].free(p);
        }
    }
    assert_int_equal(om_check(), 0);
}

static void test_calloc_zeroes(void **state)
{
    for (size_t a = 0; a < 3; a++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *p = apis[a].calloc(sizes[i], 1);

            assert_frame(p, sizes[i], apis[a].id);
            assert_bytes(p, 0, sizes[i], 0);
            apis[a].free(p);
        }
    }
    for (size_t a = 0; a < 3; a++) {
        void *p = apis[a].calloc(13, 17);

        assert_frame(p, 13 * 17, apis[a].id);
        assert_bytes(p, 0, 13 * 17, 0);
        apis[a].free(p);
    }
    assert_int_equal(om_check(), 0);
}

/* Walk one block through growing and shrinking sizes. */
static void realloc_walk(const struct api *api)
{
    static const size_t steps[] = { 10, 300, 1000, 5000, 129, 128, 200, 0,
                                    40, 100000, 600, 16 };
    size_t old = 0;
    unsigned char *p = NULL;

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        size_t kept = old < steps[i] ? old : steps[i];

        p = api->realloc(p, steps[i]);
        assert_frame(p, steps[i], api->id);
        assert_pattern(p, kept, 3);
        assert_bytes(p, kept, steps[i], CLEANBYTE);
        fill_pattern(p, steps[i], 3);
        old = steps[i];
    }
    api->free(p);
}

static void test_realloc_keeps_and_grows(void **state)
{
    for (size_t a = 0; a < 3; a++)
        realloc_walk(&apis[a]);
    assert_int_equal(om_check(), 0);
}

static void test_free_null(void **state)
{
    for (size_t a = 0; a < 3; a++)
        apis[a].free(NULL);
    assert_int_equal(om_check(), 0);
}

static void test_errno_kept(void **state)
{
    for (size_t a = 0; a < 3; a++) {
        void *p, *q;

        errno = 4321;
        p = apis[a].malloc(100);
        q = apis[a].calloc(3, 1000);
        p = apis[a].realloc(p, 2000);
        p = apis[a].realloc(p, 8);
        apis[a].free(q);
        apis[a].free(p);
        apis[a].free(NULL);
        assert_int_equal(errno, 4321);
    }
    assert_int_equal(om_check(), 0);
}

static void assert_enomem(void *p)
{
    assert_null(p);
    assert_int_equal(errno, ENOMEM);
    errno = 0;
}

static void test_size_overflow(void **state)
{
    for (size_t a = 0; a < 3; a++) {
        const struct api *api = &apis[a];

        errno = 0;
        assert_enomem(api->calloc(SIZE_MAX / 2 + 1, 4));
        assert_enomem(api->calloc(4, SIZE_MAX / 2 + 1));
        assert_enomem(api->calloc(SIZE_MAX, SIZE_MAX));
        assert_enomem(api->calloc(1, SIZE_MAX - 8));
        assert_enomem(api->malloc(SIZE_MAX));
        assert_enomem(api->malloc(SIZE_MAX - 3 * SST + 1));
        assert_enomem(api->malloc(PTRDIFF_MAX));
    }
    assert_int_equal(om_check(), 0);
}

/* A failed realloc leaves the old block valid: framed, content kept. */
static void test_realloc_failure_keeps_block(void **state)
{
    static const size_t old_sizes[] = { 24, 300, 5000 };
    static const size_t huge[] = { SIZE_MAX, SIZE_MAX - 8, (size_t)1 << 50 };

    for (size_t a = 0; a < 3; a++) {
        for (size_t i = 0; i < 3; i++) {
            unsigned char *p = apis[a].malloc(old_sizes[i]);

            fill_pattern(p, old_sizes[i], 11);
            for (size_t h = 0; h < 3; h++) {
                errno = 0;
                assert_enomem(apis[a].realloc(p, huge[h]));
                assert_frame(p, old_sizes[i], apis[a].id);
                assert_pattern(p, old_sizes[i], 11);
            }
            p = apis[a].realloc(p, old_sizes[i] * 2);
            assert_pattern(p, old_sizes[i], 11);
            apis[a].free(p);
        }
    }
    assert_int_equal(om_check(), 0);
}

/* Hooked blocks from several threads at once: frames stay intact. */
static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    unsigned char *live[16] = { NULL };
    size_t size[16] = { 0 };

    for (unsigned i = 0; i < 6000; i++) {
        unsigned slot = (i * 7 + seed) % 16;
        const struct api *api = &apis[slot % 3];
        size_t n = (i * 37 + seed * 11) % 1200;

        if (live[slot] != NULL &&
            (header_size(live[slot]) != size[slot] ||
             live[slot][size[slot]] != FORBIDDENBYTE))
            return (void *)"frame broken";
        if (i % 5 == 0)
            live[slot] = api->realloc(live[slot], n);
        else {
            api->free(live[slot]);
            live[slot] = i % 2 ? api->malloc(n) : api->calloc(n, 1);
        }
        if (live[slot] == NULL)
            return (void *)"out of memory";
        size[slot] = n;
    }
    for (unsigned slot = 0; slot < 16; slot++)
        apis[slot % 3].free(live[slot]);
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t t[4];
    void *result;

    for (uintptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)i), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], &result), 0);
        assert_null(result);
    }
    assert_int_equal(om_check(), 0);
}

/* ---- OBJMEM_ALLOCATOR=debug ---- */

/* --env-child: the constructor must have hooked; then overflow. */
static int env_child(void)
{
    unsigned char *p;

    if (!omi_debug_hooks_on(OM_DOMAIN_RAW) ||
        !omi_debug_hooks_on(OM_DOMAIN_MEM) ||
        !omi_debug_hooks_on(OM_DOMAIN_OBJ)) {
        fprintf(stderr, "env child: hooks not installed\n");
        return 3;
    }
    p = om_malloc(24);
    fprintf(stderr, "env child: block %p\n", (void *)p);
    fflush(stderr);
    p[24] = 'X';
    om_free(p);
    fprintf(stderr, "env child: overflow not caught\n");
    return 4;
}

static void exec_env_child(int fd)
{
    become_quiet_child(fd);
    setenv("OBJMEM_ALLOCATOR", "debug", 1);
    execl("/proc/self/exe", "test_debug", "--env-child", (char *)NULL);
    _exit(127);
}

static void test_environment(void **state)
{
    static struct death d;
    void *p = NULL;
    char text[128];
    const char *at;
    int fds[2];
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        exec_env_child(fds[1]);
    }
    close(fds[1]);
    read_all(fds[0], &d);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &d.status, 0), pid);
    at = strstr(d.err, "env child: block ");
    if (at == NULL || sscanf(at, "env child: block %p", &p) != 1)
        fail_msg("env child said:\n%s", d.err);
    assert_report(&d, "bad trailing pad byte", p, 24, 'm');
    snprintf(text, sizeof(text), "om_free: block of 24 bytes");
    assert_said(&d, text);
    assert_int_equal(om_check(), 0);
}

/* ---- The allocator option: malloc, malloc_debug, under Valgrind ---- */

/* In a child: MEM and OBJ are what kind says.  0: all checks passed. */
static int malloc_child(const char *kind)
{
    bool hooked = strcmp(kind, "malloc_debug") == 0;
    bool pools = strcmp(kind, "objmem") == 0;
    struct om_stats s0, s1;
    om_object *str, *list;
    unsigned char *p;
    void *q;

    if (om_stats_get(&s0) != 0 ||
        omi_debug_hooks_on(OM_DOMAIN_MEM) != hooked ||
        omi_debug_hooks_on(OM_DOMAIN_OBJ) != hooked) {
        fprintf(stderr, "malloc child: hooks %d, not %d\n",
                omi_debug_hooks_on(OM_DOMAIN_MEM), hooked);
        return 3;
    }
    p = om_malloc(24);
    str = om_str_from_utf8("a string of thirty-two bytes...", 31);
    list = om_list_new(0);
    errno = 0;
    q = om_aligned_alloc(64, 100);
    if (!p || !str || !list || om_list_append(list, str) != 0 ||
        om_usable_size(p) < 24 || (hooked && om_usable_size(p) != 24) ||
        (hooked ? q || errno != ENOTSUP : !q || (uintptr_t)q % 64)) {
        fprintf(stderr, "malloc child: bad blocks (usable %zu, aligned "
                "%p, errno %d)\n", om_usable_size(p), q, errno);
        return 4;
    }
    om_stats_get(&s1);
    /* The C library's blocks are not the pools': p, the string, the list
     * and its items (pools: at least 4 blocks more). */
    if (pools ? s1.blocks_in_use < s0.blocks_in_use + 4
              : s1.blocks_in_use != s0.blocks_in_use) {
        fprintf(stderr, "malloc child: pool blocks %zu -> %zu\n",
                s0.blocks_in_use, s1.blocks_in_use);
        return 5;
    }
    om_free(q);
    om_decref(str);
    om_decref(list);
    if (om_check() != 0)
        return 6;
    fprintf(stderr, "malloc child: %s ok\n", kind);
    fflush(stderr);
    if (hooked) {
        p[24] = 'X';                    /* the hooks see it */
        om_free(p);
        fprintf(stderr, "malloc child: overflow not caught\n");
        return 7;
    }
    om_free(p);
    return 0;
}

struct exec_args {
    const char *const *env;     /* NAME=VALUE, or NAME alone to unset */
    bool vg;                    /* under valgrind */
    const char *self, *arg1, *arg2;
};

/* In a child: the environment changed, this program exec'd with args. */
static void exec_child(void *p)
{
    const struct exec_args *a = p;

    for (const char *const *e = a->env; *e; e++) {
        const char *eq = strchr(*e, '=');
        char name[64];

        snprintf(name, sizeof(name), "%.*s",
                 (int)(eq ? eq - *e : (ptrdiff_t)strlen(*e)), *e);
        if (eq)
            setenv(name, eq + 1, 1);
        else
            unsetenv(name);
    }
    if (a->vg)
        execlp("valgrind", "valgrind", "-q", "--error-exitcode=9",
               "--leak-check=full", a->self, a->arg1, a->arg2,
               (char *)NULL);
    else
        execl(a->self, "test_debug", a->arg1, a->arg2, (char *)NULL);
    _exit(127);
}

/* Run this program with arg1 and arg2 (may be NULL) in a child, its
 * environment changed by env, under valgrind when vg is set; the child's
 * stderr and status go to *d. */
static void run_child(const char *const *env, bool vg, const char *arg1,
                      const char *arg2, struct death *d)
{
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    struct exec_args a = { env, vg, self, arg1, arg2 };

    assert_true(n > 0);
    self[n] = '\0';
    die_in_child(exec_child, &a, d);
}

static void assert_exited(const struct death *d, int code)
{
    if (!WIFEXITED(d->status) || WEXITSTATUS(d->status) != code)
        fail_msg("child status 0x%x, not exit %d; stderr:\n%s", d->status,
                 code, d->err);
}

/* A preload path as Valgrind's tools name theirs (it need not exist:
 * the dynamic linker skips it with a warning). */
#define VG_DIR "/nonexistent/valgrind/"
#define MEMCHECK VG_DIR "vgpreload_memcheck-amd64-linux.so"
#define CORE VG_DIR "vgpreload_core-amd64-linux.so"

static void test_allocator_malloc(void **state)
{
    static const char *const env[] = { "OBJMEM_ALLOCATOR=malloc", NULL };
    static struct death d;

    run_child(env, false, "--malloc-child", "malloc", &d);
    assert_exited(&d, 0);
    assert_said(&d, "malloc child: malloc ok");
}

static void test_allocator_malloc_debug(void **state)
{
    static const char *const env[] = { "OBJMEM_ALLOCATOR=malloc_debug",
                                       NULL };
    static struct death d;
    void *p = NULL;
    const char *at;

    run_child(env, false, "--malloc-child", "malloc_debug", &d);
    assert_said(&d, "malloc child: malloc_debug ok");
    at = strstr(d.err, "fatal error: bad trailing pad byte at ");
    if (!at || sscanf(at, "fatal error: bad trailing pad byte at %p",
                      &p) != 1)
        fail_msg("child said:\n%s", d.err);
    assert_report(&d, "bad trailing pad byte", p, 24, 'm');
}

/* A Valgrind tool that tracks malloc makes malloc the default; one that
 * does not (the core alone: callgrind, cachegrind) leaves objmem's pools,
 * and so does OBJMEM_ALLOCATOR=objmem, the user's word.  So do heaptrack's,
 * memusage's and glibc's malloc debugging library. */
static void test_allocator_under_valgrind(void **state)
{
    static const char *const memcheck[] = {
        "OBJMEM_ALLOCATOR", "LD_PRELOAD=" CORE ":" MEMCHECK, NULL };
    static const char *const core[] = {
        "OBJMEM_ALLOCATOR", "LD_PRELOAD=" CORE, NULL };
    static const char *const chosen[] = {
        "OBJMEM_ALLOCATOR=objmem", "LD_PRELOAD=" CORE " " MEMCHECK, NULL };
    static const char *const others[][3] = {
        { "OBJMEM_ALLOCATOR",
          "LD_PRELOAD=/nonexistent/lib/heaptrack/libheaptrack_preload.so",
          NULL },
        { "OBJMEM_ALLOCATOR", "LD_PRELOAD=/nonexistent/libmemusage.so",
          NULL },
        { "OBJMEM_ALLOCATOR", "LD_PRELOAD=libc_malloc_debug.so.0", NULL },
    };
    static struct death d;

    run_child(memcheck, false, "--malloc-child", "malloc", &d);
    assert_exited(&d, 0);
    assert_said(&d, "malloc child: malloc ok");
    run_child(core, false, "--malloc-child", "objmem", &d);
    assert_exited(&d, 0);
    assert_said(&d, "malloc child: objmem ok");
    run_child(chosen, false, "--malloc-child", "objmem", &d);
    assert_exited(&d, 0);
    assert_said(&d, "malloc child: objmem ok");
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        if ((UNDER_ASAN || UNDER_TSAN) && i == 2)
            continue;   /* a real library: ASan's runtime must come first;
                           under TSan's malloc, its free crashes glibc's */
        run_child(others[i], false, "--malloc-child", "malloc", &d);
        assert_exited(&d, 0);
        assert_said(&d, "malloc child: malloc ok");
    }
}

/* Under memcheck: a read after om_free, and an om_obj_malloc block lost. */
static int uaf_child(void)
{
    char *p = om_malloc(40), *lost = om_obj_malloc(100);
    volatile char c;

    if (!p || !lost)
        return 3;
    strcpy(p, "hello");
    om_free(p);
    c = p[1];
    (void)c;
    lost[0] = 1;
    lost = NULL;
    return 0;
}

/* Under memcheck: objects of every core type, an instance in a cycle
 * collected, its weak reference cleared; memcheck must find nothing (no
 * read of memory never written, no leak, no bad free). */
static int objects_child(void)
{
    om_object *l = om_list_new(0), *d = om_dict_new(), *t, *w;
    om_object *cls = om_class_new("C", NULL, 0, 0), *a;
    char text[32];

    if (!l || !d || !cls || !(a = om_instance_new(cls)))
        return 3;
    for (int i = 0; i < 2000; i++) {
        om_object *k, *v;

        snprintf(text, sizeof(text), "key %d", i);
        k = om_str_from_utf8(text, strlen(text));
        v = i % 2 ? om_int_from_i64((int64_t)i << 40)
                  : om_float_from_double(i * 0.5);
        t = om_tuple_pack(2, k, v);
        if (!k || !v || !t || om_dict_set(d, k, t) != 0 ||
            om_list_append(l, v) != 0)
            return 4;
        om_decref(k);
        om_decref(v);
        om_decref(t);
    }
    /* a -> l -> a, and l -> d */
    if (om_setattr(a, "items", l) != 0 || om_list_append(l, a) != 0 ||
        om_list_append(l, d) != 0 || !(w = om_weakref_new(a, NULL, NULL)))
        return 5;
    om_decref(a);
    om_decref(l);
    om_decref(d);
    if (om_gc_collect(2) < 2 || om_weakref_get(w) != NULL)
        return 6;
    om_decref(w);
    om_decref(cls);
    om_gc_collect(2);
    om_clear_freelists();               /* as a program leaving cleanly */
    if (om_check() != 0)
        return 7;
    fprintf(stderr, "objects child: ok\n");
    return 0;
}

/* program is on PATH. */
static bool found(const char *program)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", program);
    return system(cmd) == 0;
}

static void test_valgrind_sees_blocks(void **state)
{
    static const char *const env[] = { "OBJMEM_ALLOCATOR", NULL };
    static struct death d;

    if (UNDER_ASAN || UNDER_TSAN || !found("valgrind"))
        skip();                         /* a sanitizer's runtime, or none */
    run_child(env, true, "--uaf-child", NULL, &d);
    assert_exited(&d, 9);
    assert_said(&d, "Invalid read of size 1");
    assert_said(&d, "100 bytes in 1 blocks are definitely lost");
    run_child(env, true, "--objects-child", NULL, &d);
    assert_exited(&d, 0);
    assert_said(&d, "objects child: ok");
    if (strstr(d.err, "=="))
        fail_msg("memcheck said:\n%s", d.err);
}

/* ---- Other tools that watch malloc: heaptrack, memusage, mtrace ---- */

/* In a child: n blocks of om_malloc(200), never freed, traced by glibc's
 * mtrace (MALLOC_TRACE names the file) when trace is set. */
static int leak_child(long n, bool trace)
{
    if (trace)
        mtrace();
    for (long i = 0; i < n; i++) {
        char *p = om_malloc(200);

        if (!p)
            return 3;
        p[0] = 1;
    }
    return 0;
}

/* The number that follows key (and any colour codes) on the first line
 * of the shell command cmd's output that holds key; -1 when none does. */
static long number_after(const char *cmd, const char *key)
{
    FILE *f = popen(cmd, "r");
    char line[1024];
    long v = -1;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        char *at = strstr(line, key);

        if (!at || v >= 0)
            continue;                   /* read on: pclose waits */
        at += strlen(key);
        while (*at == '\033' && strchr(at, 'm'))
            at = strchr(at, 'm') + 1;
        while (*at == ' ' || *at == '\t')
            at++;
        if (isdigit((unsigned char)*at))
            v = strtol(at, NULL, 10);
    }
    pclose(f);
    return v;
}

/* What the shell line tool says of this program's --leak-child n, with
 * the allocator option alloc ("" for none).  In tool, $S is the program,
 * $N is n, $F a scratch file. */
static long tool_says(const char *tool, const char *alloc, long n,
                      const char *key)
{
    static char self[4096], cmd[16384];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

    assert_true(len > 0);
    self[len] = '\0';
    snprintf(cmd, sizeof(cmd), "unset OBJMEM_ALLOCATOR OBJMEM_CONF; "
             "S='%s' N=%ld F=/tmp/om_watch.%d; %s%s", self, n,
             (int)getpid(), alloc, tool);
    return number_after(cmd, key);
}

/* Each tool counts n blocks more for --leak-child n, from objmem's
 * default under it; OBJMEM_ALLOCATOR=objmem hides them (the pools). */
static void assert_tool_sees(const char *tool, const char *key)
{
    long a = tool_says(tool, "", 100, key);
    long b = tool_says(tool, "", 1100, key);
    long c = tool_says(tool, "OBJMEM_ALLOCATOR=objmem ", 1100, key);

    if (a < 0 || b - a != 1000 || c != a - 100)
        fail_msg("%s: %ld for 100 blocks, %ld for 1100, %ld for 1100 "
                 "in the pools", tool, a, b, c);
}

/* heaptrack (its library unsets LD_PRELOAD before main: the option reads
 * the process's first environment), glibc's memusage and its mtrace. */
static void test_tools_see_blocks(void **state)
{
    if (UNDER_ASAN || UNDER_TSAN)
        skip();                         /* their runtime replaces malloc */
    if (found("memusage"))
        assert_tool_sees("memusage \"$S\" --leak-child $N 2>&1", "malloc|");
    assert_tool_sees("LD_PRELOAD=libc_malloc_debug.so.0 MALLOC_TRACE=$F "
                     "\"$S\" --leak-child $N mtrace && "
                     "grep -c ' + ' $F; rm -f $F", "");
    if (found("heaptrack") && found("heaptrack_print"))
        assert_tool_sees("heaptrack -o $F \"$S\" --leak-child $N "
                         ">/dev/null 2>&1 && heaptrack_print $F.zst; "
                         "rm -f $F.zst", "calls to allocation functions:");
    else
        skip();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_installed),
        cmocka_unit_test(test_malloc_fills_clean),
        cmocka_unit_test(test_calloc_zeroes),
        cmocka_unit_test(test_realloc_keeps_and_grows),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_errno_kept),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_realloc_failure_keeps_block),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_overflow_zero_bytes),
        cmocka_unit_test(test_overflow_on_realloc),
        cmocka_unit_test(test_underflow),
        cmocka_unit_test(test_double_free_large),
        cmocka_unit_test(test_double_free_small),
        cmocka_unit_test(test_wrong_domain_free),
        cmocka_unit_test(test_wrong_domain_realloc),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_allocator_malloc),
        cmocka_unit_test(test_allocator_malloc_debug),
        cmocka_unit_test(test_allocator_under_valgrind),
        cmocka_unit_test(test_valgrind_sees_blocks),
        cmocka_unit_test(test_tools_see_blocks),
    };

    if (argc > 1 && strcmp(argv[1], "--env-child") == 0)
        return env_child();
    if (argc > 2 && strcmp(argv[1], "--malloc-child") == 0)
        return malloc_child(argv[2]);
    if (argc > 1 && strcmp(argv[1], "--uaf-child") == 0)
        return uaf_child();
    if (argc > 1 && strcmp(argv[1], "--objects-child") == 0)
        return objects_child();
    if (argc > 2 && strcmp(argv[1], "--leak-child") == 0)
        return leak_child(strtol(argv[2], NULL, 10), argc > 3);
    /* -EALREADY: OBJMEM_ALLOCATOR=debug is set and hooked already. */
    if (om_setup_debug_hooks() != 0 && !omi_debug_hooks_on(OM_DOMAIN_MEM)) {
        fprintf(stderr, "test_debug: the debug hooks are not on\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
