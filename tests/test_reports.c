/*
 * test_reports.c - the objmem verbs that read a capture (tools/:
 * reports.c, export.c, pins.c, filters.c, timeline.c), run in-process
 * on captures built here through the builder (src/trace.h) and dumped,
 * their standard output caught in a file and checked line by line.
 *
 * Data: dir, a fresh directory for the captures and the outputs; out, the
 * file a verb's stdout goes to while it runs (run_verb).
 *
 * Invariants (each test asserts them):
 *   1. A verb's output is exactly what its header comment (in tools/)
 *      says, byte for byte where the test states it.
 *   2. Every test ends with every snapshot freed and om_check() == 0.
 */
#include <fcntl.h>
#include <limits.h>

#include "testutil.h"
#include "trace.h"
#include "cli.h"

#define NAME_MAX_BYTES 4096     /* export.c's: a frame's name cut there */

static char dir[64];

/* dir/name into buf (PATH_MAX bytes). */
static const char *path_of(char *buf, const char *name)
{
    snprintf(buf, PATH_MAX, "%s/%s", dir, name);
    return buf;
}

/* Run verb(argc, argv) with its stdout in the file at path; its exit
 * status. */
static int run_verb(int (*verb)(int, char **), const char *path, int argc,
                    char **argv)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int saved = dup(1), rc;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stdout);
    assert_int_equal(dup2(fd, 1), 1);
    rc = verb(argc, argv);
    fflush(stdout);
    assert_int_equal(dup2(saved, 1), 1);
    close(saved);
    close(fd);
    return rc;
}

/* The whole file at path, NUL-terminated (malloc'd); its size in *n. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    long size;
    char *b;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    rewind(f);
    b = malloc((size_t)size + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)size, f), (size_t)size);
    b[size] = '\0';
    fclose(f);
    *n = (size_t)size;
    return b;
}

/* A capture at path: n traces of 16 bytes, each on a traceback of one
 * frame at line i + 1 whose file and function are one string of len
 * bytes ('a's). */
static void long_name_capture(const char *path, size_t len, unsigned n)
{
    struct om_snapshot *s = omi_snapshot_new(4, 0);
    char *name = malloc(len + 1);

    assert_non_null(s);
    assert_non_null(name);
    memset(name, 'a', len);
    name[len] = '\0';
    for (unsigned i = 0; i < n; i++) {
        struct om_frame f = { name, name, i + 1, NULL };
        long tb = omi_snapshot_add_traceback(s, &f, 1, 1);

        assert_true(tb >= 0);
        assert_int_equal(omi_snapshot_add_trace(s, (uint32_t)tb, 0, 16, 1),
                         0);
    }
    assert_int_equal(om_snapshot_dump(s, path), 0);
    om_snapshot_free(s);
    free(name);
}

/* A frame's name of a megabyte, shared by every frame, is cut in the
 * folded stacks and in the page at 4096 bytes, marked "...[cut]": whole,
 * 14000 frames naming an 800 KB string made 11 GB of stacks from a
 * 1.6 MB capture. */
static void test_flamegraph_long_names(void **state)
{
    const size_t len = 1 << 17;
    const unsigned n = 64;
    char capture[PATH_MAX], out[PATH_MAX], html[PATH_MAX];
    char *folded[] = { "flamegraph", capture };
    char *page[] = { "flamegraph", capture, "--html", html };
    char cut[NAME_MAX_BYTES + 16], want[3 * NAME_MAX_BYTES];
    char *text, *line;
    size_t size;

    long_name_capture(path_of(capture, "long.omt"), len, n);
    assert_int_equal(run_verb(objmem_flamegraph, path_of(out, "folded"), 2,
                              folded), 0);
    memset(cut, 'a', NAME_MAX_BYTES);
    strcpy(cut + NAME_MAX_BYTES, "...[cut]");
    text = slurp(out, &size);
    line = text;
    /* one line a traceback, sorted as text: lines 1, 10, 11, ... */
    snprintf(want, sizeof(want), "%s (%s:1) 16\n", cut, cut);
    assert_memory_equal(line, want, strlen(want));
    for (unsigned i = 0; i < n; i++) {
        char *end = strchr(line, '\n');

        assert_non_null(end);
        assert_true((size_t)(end - line) < 2 * NAME_MAX_BYTES + 40);
        line = end + 1;
    }
    assert_string_equal(line, "");
    free(text);
    path_of(html, "page.html");
    assert_int_equal(run_verb(objmem_flamegraph, out, 4, page), 0);
    text = slurp(html, &size);
    assert_non_null(strstr(text, cut));
    assert_true(size < n * (2 * NAME_MAX_BYTES + 64) + (64 << 10));
    assert_string_equal(text + size - 8, "</html>\n");
    free(text);
    unlink(html);
    unlink(out);
    unlink(capture);
    assert_int_equal(om_check(), 0);
}

static int make_dir(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/om_reports.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flamegraph_long_names),
    };

    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
