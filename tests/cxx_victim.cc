// cxx_victim.cc - a C++ program that allocates from known functions, for
// traced runs on the shim (tests/test_preload.c): its sites must be its
// own functions, not operator new, which every C++ allocation goes
// through, and they must read as the source spells them.
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

int main()
{
    static app::Node *nodes[50];
    static int *arrays[5];

    for (int i = 0; i < 50; i++)
        nodes[i] = app::make_node(i);
    for (int i = 0; i < 5; i++)
        arrays[i] = app::make_array(1000);
    __asm__ volatile("" : : "r"(nodes), "r"(arrays) : "memory");
    return 0;
}
