/*
 * replay.c - the fuzz targets' main outside libFuzzer (every build but
 * OM_MODE=fuzz): runs a target over its seed corpus, then over inputs
 * made from those seeds by a fixed-seed mutator, so that `make test` runs
 * every target under gcc, ASan+UBSan and TSan without clang.
 *
 *   fuzz_NAME [-n MUTANTS] [-s SEED] PATH...
 *
 * A PATH is an input file or a directory of them (read in name order).
 * Each input is copied into a buffer of exactly its size, so a read past
 * its end is a sanitizer's report.  Each mutant is written to
 * ./NAME.mutant before it runs (removed at the end), and a crash says so:
 * `fuzz_NAME NAME.mutant` replays it.  Exit status 1 when a path cannot
 * be read or no input was found: a replay of nothing must not pass.
 *
 * Invariants:
 *   1. Every input is handed to LLVMFuzzerTestOneInput in a buffer of
 *      its own length (malloc'd, never a view into a larger one).
 *   2. The mutants depend only on the seeds and -s: a failure repeats.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

struct input {
    uint8_t *data;
    size_t size;
};

static struct input *inputs;
static size_t ninputs, inputs_cap;

static void keep(uint8_t *data, size_t size)
{
    if (ninputs == inputs_cap) {
        inputs_cap = inputs_cap ? inputs_cap * 2 : 64;
        inputs = realloc(inputs, inputs_cap * sizeof(*inputs));
        if (!inputs) {
            perror("replay");
            exit(2);
        }
    }
    inputs[ninputs++] = (struct input){ data, size };
}

/* Read the file at path whole: 0, or -1 with a message. */
static int read_input(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t size = 0, cap = 0, n;

    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    do {
        if (size == cap) {
            cap = cap ? cap * 2 : 4096;
            data = realloc(data, cap);
            if (!data) {
                perror("replay");
                exit(2);
            }
        }
        n = fread(data + size, 1, cap - size, f);
        size += n;
    } while (n > 0);
    fclose(f);
    keep(data, size);
    return 0;
}

static int read_path(const char *path)
{
    struct dirent **names;
    struct stat st;
    int n, err = 0;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return read_input(path);
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char file[4096];

        if (names[i]->d_name[0] != '.') {
            snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
            if (stat(file, &st) == 0 && S_ISREG(st.st_mode) && !err)
                err = read_input(file);
        }
        free(names[i]);
    }
    free(names);
    return err;
}

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s += 0x9e3779b97f4a7c15ull;

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static char mutant_path[256];

/* A crash: say where the input is, then die of the signal. */
static void on_crash(int sig)
{
    static const char msg[] = "replay: the failing input is in ";

    if (write(2, msg, sizeof(msg) - 1) < 0 ||
        write(2, mutant_path, strlen(mutant_path)) < 0 ||
        write(2, "\n", 1) < 0)
        _exit(128 + sig);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Keep the mutant in mutant_path before it runs. */
static void save(const uint8_t *data, size_t size)
{
    FILE *f = fopen(mutant_path, "wb");

    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "replay: cannot write %s\n", mutant_path);
        exit(2);
    }
}

/* Run one input from a copy of exactly its size (invariant 1). */
static void run(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);

    if (!copy) {
        perror("replay");
        exit(2);
    }
    if (size)
        memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

/* A seed changed a few times over: bytes overwritten, a run of it copied
 * elsewhere, its end cut off or grown (invariant 2: rng from -s only). */
static void run_mutant(const struct input *seed, uint64_t *rng)
{
    size_t size = seed->size, cap = size + 256;
    uint8_t *m = malloc(cap);
    unsigned edits = 1 + (unsigned)(next(rng) % 8);

    if (!m) {
        perror("replay");
        exit(2);
    }
    memcpy(m, seed->data, size);
    for (unsigned e = 0; e < edits; e++) {
        uint64_t r = next(rng);

        switch (r % 4) {
        case 0:                                 /* a byte */
        case 1:
            if (size)
                m[(r >> 8) % size] = (uint8_t)(next(rng));
            break;
        case 2:                                 /* a run copied */
            if (size > 1) {
                size_t from = (r >> 8) % size, to = (r >> 32) % size;
                size_t len = 1 + next(rng) % 16;

                if (len > size - from)
                    len = size - from;
                if (len > size - to)
                    len = size - to;
                memmove(m + to, m + from, len);
            }
            break;
        default:                                /* the end moved */
            if (size && (r & 256))
                size -= 1 + (r >> 16) % (size < 64 ? size : 64);
            else if (size < cap)
                m[size++] = (uint8_t)(r >> 16);
        }
    }
    save(m, size);
    run(m, size);
    free(m);
}

int main(int argc, char **argv)
{
    unsigned long mutants = 256;
    uint64_t rng = 1;
    int err = 0, i;

    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            mutants = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            rng = strtoull(argv[++i], NULL, 0);
        else if (read_path(argv[i]) != 0)
            err = 1;
    }
    if (err)
        return 1;
    if (!ninputs) {
        fprintf(stderr, "replay: no input (usage: %s [-n MUTANTS] [-s SEED] "
                "PATH...)\n", argv[0]);
        return 1;
    }
    for (size_t k = 0; k < ninputs; k++)
        run(inputs[k].data, inputs[k].size);
    snprintf(mutant_path, sizeof(mutant_path), "%s.mutant",
             strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]);
    signal(SIGABRT, on_crash);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGFPE, on_crash);
    for (unsigned long k = 0; k < mutants; k++)
        run_mutant(&inputs[next(&rng) % ninputs], &rng);
    unlink(mutant_path);
    printf("replay: %zu inputs and %lu mutants, no failure\n", ninputs,
           mutants);
    for (size_t k = 0; k < ninputs; k++)
        free(inputs[k].data);
    free(inputs);
    return 0;
}
