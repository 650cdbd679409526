/*
 * test_threads.c - the allocator under threads: cross-thread frees
 * (producers allocate, consumers free), heaps of exited threads given
 * back and adopted, and fork() while other threads allocate: while the
 * purger gives pages and large mappings back, and while they are traced;
 * a program whose main thread leaves by pthread_exit still ends.
 */
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include "arena.h"
#include "pool.h"

/* ---- Producer/consumer ---- */

enum { QUEUE_SIZE = 4096, PRODUCERS = 4, CONSUMERS = 4,
       PER_PRODUCER = 200000 };

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    void *items[QUEUE_SIZE];
    size_t head, count, done_producers;
};

static struct queue q = { PTHREAD_MUTEX_INITIALIZER,
                          PTHREAD_COND_INITIALIZER, { 0 }, 0, 0, 0 };

static void queue_put(void *p)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == QUEUE_SIZE)
        pthread_cond_wait(&q.changed, &q.lock);
    q.items[(q.head + q.count++) % QUEUE_SIZE] = p;
    pthread_cond_broadcast(&q.changed);
    pthread_mutex_unlock(&q.lock);
}

/* The next block, or NULL when every producer is done and q is empty. */
static void *queue_get(void)
{
    void *p = NULL;

    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.done_producers < PRODUCERS)
        pthread_cond_wait(&q.changed, &q.lock);
    if (q.count > 0) {
        p = q.items[q.head];
        q.head = (q.head + 1) % QUEUE_SIZE;
        q.count--;
        pthread_cond_broadcast(&q.changed);
    }
    pthread_mutex_unlock(&q.lock);
    return p;
}

/* Each block carries its size in its first word and a fill after it. */
static void *producer(void *arg)
{
    uint64_t r = (uintptr_t)arg;

    for (int i = 0; i < PER_PRODUCER; i++) {
        size_t size = 16 + (size_t)(rnd_next(&r) % 497);
        unsigned char *p = om_malloc(size);
        assert_non_null(p);
        memcpy(p, &size, sizeof(size));
        memset(p + sizeof(size), (int)(size & 0xff), size - sizeof(size));
        queue_put(p);
    }
    pthread_mutex_lock(&q.lock);
    q.done_producers++;
    pthread_cond_broadcast(&q.changed);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void *consumer(void *arg)
{
    unsigned char *p;
    long bad = 0;

    while ((p = queue_get()) != NULL) {
        size_t size;
        memcpy(&size, p, sizeof(size));
        for (size_t i = sizeof(size); i < size; i++)
            bad += p[i] != (unsigned char)(size & 0xff);
        om_free(p);
    }
    return (void *)bad;
}

static void test_producer_consumer(void **state)
{
    size_t before = blocks_in_use();
    pthread_t prod[PRODUCERS], cons[CONSUMERS];

    for (uintptr_t i = 0; i < PRODUCERS; i++)
        pthread_create(&prod[i], NULL, producer, (void *)(i + 1));
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&cons[i], NULL, consumer, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(prod[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) {
        void *bad;
        pthread_join(cons[i], &bad);
        assert_int_equal((long)bad, 0);
    }
    /* Every block went back, even those freed after their heap's thread
     * exited: no call needed. */
    assert_heap_clean(before);
}

/* ---- Thread exit ---- */

enum { KEPT = 50000 };
static void *kept[KEPT];

static void *allocate_and_exit(void *arg)
{
    for (int i = 0; i < KEPT; i++)
        kept[i] = om_malloc(32 + (size_t)(i % 8) * 16);
    return NULL;
}

static void *allocate_little(void *arg)
{
    void *p = om_malloc(48);
    om_free(p);
    return NULL;
}

static void run_thread(void *(*fn)(void *))
{
    pthread_t t;

    pthread_create(&t, NULL, fn, NULL);
    pthread_join(t, NULL);
}

/* The heap of an exited thread: its blocks can be freed by others, and
 * the next thread adopts it instead of making a new one. */
static void test_thread_exit(void **state)
{
    size_t before = blocks_in_use();
    struct om_stats s1, s2, s3;

    run_thread(allocate_and_exit);
    assert_int_equal(om_stats_get(&s1), 0);
    assert_true(s1.heaps_abandoned >= 1);
    assert_int_equal(s1.blocks_in_use, before + KEPT);
    for (int i = 0; i < KEPT; i++)
        om_free(kept[i]);
    assert_int_equal(om_stats_get(&s2), 0);
    assert_int_equal(s2.blocks_in_use, before);
    /* The abandoned heap gave its emptied arenas back at once. */
    assert_true(s2.arenas_current < s1.arenas_current);
    run_thread(allocate_little);
    assert_int_equal(om_stats_get(&s3), 0);
    assert_int_equal(s3.heaps_active + s3.heaps_abandoned,
                     s2.heaps_active + s2.heaps_abandoned);
    assert_heap_clean(before);
}

/* ---- fork() while other threads allocate ---- */

static atomic_bool stop_churn;

static void *churn(void *arg)
{
    void *v[64] = { 0 };
    uint64_t r = (uintptr_t)arg;

    while (!atomic_load(&stop_churn)) {
        unsigned i = (unsigned)(rnd_next(&r) % 64);
        om_free(v[i]);
        v[i] = om_malloc(1 + (size_t)(rnd_next(&r) % 600));
    }
    for (int i = 0; i < 64; i++)
        om_free(v[i]);
    return NULL;
}

/* In the child: allocate, free, check; exit 0 when all went well. */
static int child_work(void)
{
    static void *blocks[20000];

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20000; i++)
            if (!(blocks[i] = om_malloc(1 + (size_t)(i % 512))))
                return 2;
        for (int i = 0; i < 20000; i++)
            om_free(blocks[i]);
    }
    return om_check() == 0 ? 0 : 3;
}

/* Forks in a row while 3 threads churn; each child allocates, checks and
 * exits.  A fork that deadlocks ends the test by the alarm (SIGALRM). */
static void forks_under_churn(void *(*fn)(void *), uintptr_t seed,
                              int forks)
{
    pthread_t t[3];

    atomic_store(&stop_churn, false);
    for (uintptr_t i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, fn, (void *)(i + seed));
    alarm(120);
    for (int n = 0; n < forks; n++) {
        int status;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_work());
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    alarm(0);
    atomic_store(&stop_churn, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
}

static void test_fork(void **state)
{
    size_t before = blocks_in_use();

    forks_under_churn(churn, 7, 20);
    assert_heap_clean(before);
}

/* ---- The stats of a fork child ---- */

static atomic_int holder_phase;
static void *held_medium;

/* Make blocks (small ones and a medium one), then wait while the main
 * thread forks; free them at phase 2. */
static void *hold_blocks(void *arg)
{
    struct timespec ts = { 0, 1000000 };

    (void)arg;
    for (int i = 0; i < KEPT; i++)
        kept[i] = om_malloc(32 + (size_t)(i % 8) * 16);
    held_medium = om_gp_malloc(20000);
    atomic_store(&holder_phase, 1);
    while (atomic_load(&holder_phase) != 2)
        nanosleep(&ts, NULL);
    for (int i = 0; i < KEPT; i++)
        om_free(kept[i]);
    om_gp_free(held_medium);
    return NULL;
}

/* The child: the holder's heap is orphaned.  Its span's first tail is
 * made to read DIRTY, as a span taken but not yet marked reads when its
 * thread is cut off by the fork (a child of stress_malloc's report said
 * "totals do not balance", 21 pools counted twice).  The stats leave
 * the orphaned arenas' blocks out, and the report balances. */
static int orphan_child(size_t before)
{
    static char buf[1 << 16];
    struct pool *head = omi_pool_head(
        omi_arena_pool_of(omi_arena_of(held_medium), held_medium));
    struct om_stats s;
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

    if (!f || omi_pool_state(head + 1) != POOL_TAIL)
        return 2;
    omi_pool_set_state(head + 1, POOL_DIRTY);
    if (om_stats_get(&s) != 0 || s.blocks_in_use != before)
        return 3;
    om_debug_malloc_stats(f);
    fclose(f);
    if (strstr(buf, "do not balance") ||
        !strstr(buf, "# bytes in arenas orphaned by fork"))
        return 4;
    return om_check() == 0 ? 0 : 5;
}

static void test_fork_child_stats(void **state)
{
    size_t before = blocks_in_use();
    pthread_t t;
    int status;
    pid_t pid;

    atomic_store(&holder_phase, 0);
    pthread_create(&t, NULL, hold_blocks, NULL);
    while (atomic_load(&holder_phase) != 1)
        sched_yield();
    assert_int_equal(blocks_in_use(), before + KEPT + 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(orphan_child(before));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    atomic_store(&holder_phase, 2);
    pthread_join(t, NULL);
    assert_heap_clean(before);
}

/* ---- fork() while the purger works, and while tracing ---- */

/* The purger's madvise, slowed while slow_madvise is set: the window in
 * which a fork finds the purger at work grows from microseconds to most
 * of each tick.  (This definition takes the place of the C library's.) */
static atomic_bool slow_madvise;

int madvise(void *addr, size_t len, int advice)
{
    if (atomic_load(&slow_madvise)) {
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
    return (int)syscall(SYS_madvise, addr, len, advice);
}

/* Churn through om_gp (the shim's allocator) of small and large blocks,
 * now and then a batch of small ones freed at once: the purger finds
 * dirty pools and cached large mappings at every tick.  A small om_malloc
 * on the side: the block tracing sees. */
static void *churn_large(void *arg)
{
    static _Thread_local void *batch[3000];
    void *v[32] = { 0 };
    uint64_t r = (uintptr_t)arg;

    while (!atomic_load(&stop_churn)) {
        unsigned i = (unsigned)(rnd_next(&r) % 32);
        size_t size = rnd_next(&r) % 4 == 0
                      ? 40000 + (size_t)(rnd_next(&r) % 300000)
                      : 1 + (size_t)(rnd_next(&r) % 512);
        om_free(om_malloc(size % 2048 + 1));
        om_gp_free(v[i]);
        v[i] = om_gp_malloc(size);
        if (i != 0)
            continue;
        for (int k = 0; k < 3000; k++)
            batch[k] = om_gp_malloc(300);
        for (int k = 0; k < 3000; k++)
            om_gp_free(batch[k]);
    }
    for (int i = 0; i < 32; i++)
        om_gp_free(v[i]);
    return NULL;
}

/* The purger holds no lock the fork handlers want while they wait for it
 * (a large block made the large cache's handler run first: it held the
 * cache's lock while the heap's waited for the purger, which waited for
 * that lock). */
static void test_fork_while_purging(void **state)
{
    size_t before = blocks_in_use();
    long delay = om_get_purge_delay();

    om_gp_free(om_gp_malloc(100000));
    om_set_purge_delay(1);
    atomic_store(&slow_madvise, true);
    forks_under_churn(churn_large, 11, 300);
    atomic_store(&slow_madvise, false);
    om_set_purge_delay(delay);
    assert_heap_clean(before);
}

/* Tracing's locks are taken around fork too: the child traces on. */
static void test_fork_while_tracing(void **state)
{
    size_t before = blocks_in_use();

    assert_int_equal(om_trace_start(4), 0);
    forks_under_churn(churn_large, 11, 100);
    om_trace_stop();
    assert_heap_clean(before);
}

/* ---- The main thread leaves first: the helpers must not keep the
 * process alive ---- */

static int report_fd = -1;
static bool expect_ticker;      /* the child started tracing: wait for it */

/* The child's exit handler: it ran, and the child goes now (LeakSanitizer's
 * check at exit would see the parent's blocks, held by its lost main
 * thread's stack, as leaks). */
static void report_exit(void)
{
    (void)!write(report_fd, "x", 1);
    _exit(0);
}

/* True when a thread of this process is named name (os.c names helpers). */
static bool thread_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    bool found = false;

    while (d && !found && (e = readdir(d)) != NULL) {
        char path[300], comm[32] = "";
        FILE *f;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        if ((f = fopen(path, "r")) != NULL) {
            found = fgets(comm, sizeof(comm), f) &&
                    strncmp(comm, name, strlen(name)) == 0;
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* The last thread of the child: makes pools dirty (the purger starts),
 * reports which helpers run, and returns. */
static void *last_thread(void *arg)
{
    static void *v[20000];

    (void)arg;
    for (int i = 0; i < 20000; i++)
        v[i] = om_malloc(100);
    for (int i = 0; i < 20000; i++)
        om_free(v[i]);
    /* Up to 10 s: a loaded machine (CI, make -j) starts them late, and
     * each names itself only once it runs. */
    for (int i = 0; i < 1000 && !(thread_named("objmem-purger") &&
                                  (!expect_ticker ||
                                   thread_named("objmem-ticker"))); i++)
        usleep(10000);
    (void)!write(report_fd, thread_named("objmem-purger") ? "P" : "-", 1);
    (void)!write(report_fd, thread_named("objmem-ticker") ? "T" : "-", 1);
    return NULL;
}

/* A child whose main thread calls pthread_exit while last_thread runs,
 * tracing as asked (-1: never started, 0: started then stopped, so the
 * ticker waits, 1: on).  The C library ends a process with exit(0) when
 * its last thread exits; a helper that never ends stopped that, and the
 * child lived on with no thread that took signals.  Returns what the
 * child wrote: the helpers it saw, then "x" from its atexit handler. */
static void main_leaves_first(int tracing, char *got, size_t size)
{
    int fds[2], status;
    size_t n = 0;
    pid_t pid, reaped = 0;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pthread_t t;
        close(fds[0]);
        report_fd = fds[1];
        expect_ticker = tracing >= 0;
        atexit(report_exit);
        if (tracing >= 0 && om_trace_start(1) != 0)
            _exit(2);
        if (tracing == 0)
            om_trace_stop();
        if (pthread_create(&t, NULL, last_thread, NULL) != 0)
            _exit(3);
        pthread_exit(NULL);
    }
    close(fds[1]);
    for (int waited = 0; n + 1 < size && waited < 30000; ) {
        struct pollfd p = { fds[0], POLLIN, 0 };
        ssize_t r;
        if (poll(&p, 1, 100) == 0) {
            waited += 100;
            continue;
        }
        if ((r = read(fds[0], got + n, size - 1 - n)) <= 0)
            break;                          /* EOF: the child has ended */
        n += (size_t)r;
    }
    got[n] = 0;
    close(fds[0]);
    /* Its pipe closes a moment before it can be waited for. */
    for (int i = 0; i < 500 && (reaped = waitpid(pid, &status, WNOHANG)) == 0;
         i++)
        usleep(10000);
    if (reaped != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child outlived its threads (it wrote \"%s\")", got);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_main_thread_exit(void **state)
{
    size_t before = blocks_in_use();
    char got[16];

    main_leaves_first(-1, got, sizeof(got));
    assert_string_equal(got, "P-x");
    main_leaves_first(0, got, sizeof(got));
    assert_string_equal(got, "PTx");
    main_leaves_first(1, got, sizeof(got));
    assert_string_equal(got, "PTx");
    assert_heap_clean(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_consumer),
        cmocka_unit_test(test_thread_exit),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_fork_child_stats),
        cmocka_unit_test(test_fork_while_purging),
        cmocka_unit_test(test_fork_while_tracing),
        cmocka_unit_test(test_main_thread_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
