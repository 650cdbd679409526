/*
 * test_threads.c - the allocator under threads: cross-thread frees
 * (producers allocate, consumers free), heaps of exited threads given
 * back and adopted, and fork() while other threads allocate.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "testutil.h"

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

static void test_fork(void **state)
{
    size_t before = blocks_in_use();
    pthread_t t[3];

    atomic_store(&stop_churn, false);
    for (uintptr_t i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, churn, (void *)(i + 7));
    for (int n = 0; n < 20; n++) {
        int status;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_work());
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    atomic_store(&stop_churn, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_heap_clean(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_consumer),
        cmocka_unit_test(test_thread_exit),
        cmocka_unit_test(test_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
