/*
 * cow.h - the copy-on-write experiment of the Instagram story, shared by
 * the tour (objmem tour) and test_rss: a heap of [int, str] lists, and
 * what a forked worker dirties by reading every object the way CPython
 * code does (incref, decref) and collecting.
 */
#ifndef OM_COW_H
#define OM_COW_H

#include <objmem.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long cow_private_dirty_kb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kb = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Private_Dirty: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* A list of n lists [int, str]: 3n + 1 objects. */
static om_object *cow_build_heap(size_t n)
{
    om_object *root = om_list_new(0);
    char text[32];

    for (size_t i = 0; i < n; i++) {
        om_object *item = om_list_new(0), *x = om_int_from_i64(1000 + i);
        snprintf(text, sizeof(text), "value %zu", i);
        om_object *str = om_str_from_utf8(text, strlen(text));
        om_list_append(item, x);
        om_list_append(item, str);
        om_list_append(root, item);
        om_decref(x);
        om_decref(str);
        om_decref(item);
    }
    return root;
}

/* What a forked worker dirties (kB) by reading every object the way
 * CPython code does (incref, decref) and running a full collection. */
static long cow_child_dirties(om_object *root)
{
    int fds[2];
    long kb = -1;
    pid_t pid;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        long d0 = cow_private_dirty_kb(), d;
        for (size_t i = 0; i < om_list_len(root); i++) {
            om_object *item = om_list_get(root, i);
            om_incref(item);
            for (size_t j = 0; j < om_list_len(item); j++) {
                om_incref(om_list_get(item, j));
                om_decref(om_list_get(item, j));
            }
            om_decref(item);
        }
        om_gc_collect(2);
        d = cow_private_dirty_kb() - d0;
        if (write(fds[1], &d, sizeof(d)) != sizeof(d))
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &kb, sizeof(kb)) != sizeof(kb))
        kb = -1;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return kb;
}

#endif /* OM_COW_H */
