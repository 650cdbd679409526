/*
 * debuglink_lib.c - a module whose debug information lives in a file of
 * its own, named by the module's .gnu_debuglink: the build splits it off
 * (tests/CMakeLists.txt).  test_trace's test_symbols_debuglink checks that
 * a snapshot finds it (symbols.c) and that a wrong CRC is refused.
 */
#include <stddef.h>
#include <string.h>

void *debuglink_alloc(void *(*alloc)(size_t), size_t size);
extern const unsigned debuglink_line;

const unsigned debuglink_line = __LINE__ + 4;   /* alloc's call below */

void *debuglink_alloc(void *(*alloc)(size_t), size_t size)
{
    char *p = alloc(size);

    if (p)
        memset(p, 0, size);
    return p;
}
