// cxx_victim.cc - a C++ program that allocates from known functions, for
// traced runs on the shim (tests/test_preload.c): its sites must be its
// own functions, not operator new, which every C++ allocation goes
// through, and they must read as the source spells them.  With "oom": new
// past what there is, as the shim's operator new must answer it.
#include <cstdio>
#include <cstring>
#include <new>

namespace app {

struct Node {
    long fields[6];             // 48 bytes
};

__attribute__((noinline)) Node *make_node(int i)
{
    return new Node{{i, 0, 0, 0, 0, 0}};
}

__attribute__((noinline)) int *make_array(int n)
{
    return new int[n]();
}

} // namespace app

static int handler_calls;

// The new-handler: called while new finds no memory; it gives up (and
// new throws std::bad_alloc) on its second call.
static void on_no_memory()
{
    if (++handler_calls == 2)
        std::set_new_handler(nullptr);
}

// new of more than there is: the handler, then std::bad_alloc; nothrow
// new gives nullptr.  Prints what happened.
static int out_of_memory()
{
    size_t huge = (size_t)1 << 62;
    char *p;

    std::set_new_handler(on_no_memory);
    try {
        p = new char[huge];
        std::printf("no bad_alloc: %p\n", (void *)p);
    } catch (const std::bad_alloc &) {
        std::printf("bad_alloc after %d calls of the handler\n",
                    handler_calls);
    }
    p = new (std::nothrow) char[huge];
    std::printf("nothrow new: %s\n", p ? "a block" : "nullptr");
    return 0;
}

int main(int argc, char **argv)
{
    static app::Node *nodes[50];
    static int *arrays[5];

    if (argc > 1 && std::strcmp(argv[1], "oom") == 0)
        return out_of_memory();
    for (int i = 0; i < 50; i++)
        nodes[i] = app::make_node(i);
    for (int i = 0; i < 5; i++)
        arrays[i] = app::make_array(1000);
    __asm__ volatile("" : : "r"(nodes), "r"(arrays) : "memory");
    return 0;
}
