/*
 * mallinfo_child.c - glibc's statistics functions (mallinfo2, mallinfo,
 * malloc_stats, malloc_info) as a plain C program sees them, run under
 * the shim by tests/test_preload.c.  No objmem API.  Single-threaded, and
 * nothing allocates between two readings that are compared (stdio only
 * once the figures are taken).
 *
 * "mallinfo_child" prints "name value" lines (the figures and what it
 * worked out from them), malloc_stats's text between "--- stats" and
 * "--- end", and malloc_info's XML between "--- info" and "--- end".
 * "mallinfo_child libc" (for allocator=malloc) prints only the rise of
 * uordblks over 1000 mallocs of 100 bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBLOCKS 1000
#define BIG ((size_t)1 << 20)

static void *blocks[NBLOCKS];
static char text[1 << 16];

/* Keep the compiler from dropping a malloc/free pair. */
static void keep(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

static void alloc_blocks(void)
{
    for (int i = 0; i < NBLOCKS; i++) {
        blocks[i] = malloc(100);
        keep(blocks[i]);
    }
}

static void free_blocks(void)
{
    for (int i = 0; i < NBLOCKS; i++)
        free(blocks[i]);
}

static void print_mi(const char *name, const struct mallinfo2 *m)
{
    printf("%s.arena %zu\n%s.ordblks %zu\n%s.uordblks %zu\n"
           "%s.fordblks %zu\n%s.hblks %zu\n%s.hblkhd %zu\n"
           "%s.keepcost %zu\n%s.balanced %d\n", name, m->arena, name,
           m->ordblks, name, m->uordblks, name, m->fordblks, name, m->hblks,
           name, m->hblkhd, name, m->keepcost, name,
           m->uordblks + m->fordblks == m->arena);
}

/* mallinfo's ints agree with mallinfo2's figures (read just after). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int mallinfo_agrees(void)
{
    struct mallinfo m = mallinfo();
    struct mallinfo2 m2 = mallinfo2();

    return (size_t)m.arena == m2.arena && (size_t)m.ordblks == m2.ordblks &&
           (size_t)m.smblks == m2.smblks && (size_t)m.hblks == m2.hblks &&
           (size_t)m.hblkhd == m2.hblkhd &&
           (size_t)m.usmblks == m2.usmblks &&
           (size_t)m.fsmblks == m2.fsmblks &&
           (size_t)m.uordblks == m2.uordblks &&
           (size_t)m.fordblks == m2.fordblks &&
           (size_t)m.keepcost == m2.keepcost;
}
#pragma GCC diagnostic pop

/* Read fd from its start into text; its length. */
static size_t read_back(int fd)
{
    ssize_t n = 0, r;

    lseek(fd, 0, SEEK_SET);
    while ((r = read(fd, text + n, sizeof(text) - 1 - (size_t)n)) > 0)
        n += r;
    text[n] = '\0';
    return (size_t)n;
}

/* malloc_stats with fd 2 on a file: its text in `text`; the mallinfo2
 * figures read just before in *m. */
static int capture_stats(struct mallinfo2 *m)
{
    int fd = open("stats.txt", O_RDWR | O_CREAT | O_TRUNC, 0600);
    int saved = dup(2);

    if (fd < 0 || saved < 0)
        return -1;
    dup2(fd, 2);
    *m = mallinfo2();
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    read_back(fd);
    close(fd);
    return 0;
}

/* The figure after label in the part of `text` from `from` on. */
static size_t figure(const char *from, const char *label)
{
    const char *p = strstr(from, label);

    return p ? strtoull(p + strlen(label), NULL, 10) : (size_t)-1;
}

/* malloc_stats while a large block is live. */
static void report_stats(void)
{
    void *big = malloc(BIG);
    struct mallinfo2 m;
    const char *total;

    keep(big);
    if (!big || capture_stats(&m) != 0) {
        printf("stats.error %d\n", errno);
        return;
    }
    free(big);
    total = strstr(text, "Total (incl. mmap):\n");
    printf("stats.arena %zu\nstats.uordblks %zu\nstats.hblkhd %zu\n",
           m.arena, m.uordblks, m.hblkhd);
    printf("stats.arena_in_use %zu\n", figure(text, "in use bytes     = "));
    printf("stats.total_in_use %zu\n",
           total ? figure(total, "in use bytes     = ") : (size_t)-1);
    printf("stats.max_regions %zu\n", figure(text, "max mmap regions = "));
    printf("stats.max_bytes %zu\n", figure(text, "max mmap bytes   = "));
    printf("--- stats\n%s--- end\n", text);
}

/* malloc_info to a temporary file while a large block is live. */
static void report_info(void)
{
    FILE *f = tmpfile();
    void *big = malloc(BIG);
    struct mallinfo2 m;
    const char *mmap;
    int rc;

    keep(big);
    if (!f || !big) {
        printf("info.error %d\n", errno);
        return;
    }
    m = mallinfo2();
    rc = malloc_info(0, f);
    fflush(f);
    read_back(fileno(f));
    mmap = strstr(text, "<total type=\"mmap\" count=\"");
    printf("info.rc %d\ninfo.hblks %zu\ninfo.hblkhd %zu\n", rc, m.hblks,
           m.hblkhd);
    printf("info.mmap_count %zu\n", mmap ? figure(mmap, "count=\"")
                                         : (size_t)-1);
    printf("info.mmap_size %zu\n", mmap ? figure(mmap, "size=\"")
                                        : (size_t)-1);
    errno = 0;
    rc = malloc_info(1, f);
    printf("info.bad_rc %d\ninfo.bad_errno %d\n", rc, errno);
    printf("--- info\n%s--- end\n", text);
    free(big);
    fclose(f);
}

/* allocator=malloc: glibc's figures, which count its own chunks. */
static int libc_mode(void)
{
    struct mallinfo2 a = mallinfo2(), b;

    alloc_blocks();
    b = mallinfo2();
    free_blocks();
    printf("libc.rise %zu\n", b.uordblks - a.uordblks);
    return 0;
}

int main(int argc, char **argv)
{
    struct mallinfo2 a, b, c, d, e, t;
    size_t usable, big_usable;
    void *big;
    int agrees;

    if (argc > 1 && strcmp(argv[1], "libc") == 0)
        return libc_mode();
    /* Blocks freed empty pools, which starts the purger thread, whose
     * thread-local storage the C library allocates with malloc: start it
     * before the first figures, so that they count it too. */
    alloc_blocks();
    free_blocks();
    a = mallinfo2();
    alloc_blocks();
    b = mallinfo2();
    usable = malloc_usable_size(blocks[0]);
    free_blocks();
    c = mallinfo2();
    big = malloc(BIG);
    keep(big);
    d = mallinfo2();
    big_usable = malloc_usable_size(big);
    free(big);
    e = mallinfo2();
    agrees = mallinfo_agrees();
    malloc_trim(0);
    t = mallinfo2();
    printf("usable %zu\nbig_usable %zu\nmallinfo_agrees %d\n", usable,
           big_usable, agrees);
    print_mi("a", &a);
    print_mi("b", &b);
    print_mi("c", &c);
    print_mi("d", &d);
    print_mi("e", &e);
    print_mi("t", &t);
    report_stats();
    report_info();
    return 0;
}
