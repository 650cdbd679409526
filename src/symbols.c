/*
 * symbols.c - X (cross-cutting): C frames to function, file and line,
 * when a snapshot is taken or a capture loaded (never when a block is
 * allocated).
 *
 * With elfutils' libdw, loaded on demand (dlopen of libdw.so.1: no build
 * or link dependency, and nothing loaded into a program that never takes
 * a snapshot), a return address gets its function from the symbol table
 * (static functions too) and its file and line from the DWARF line
 * table, when the module has debug information.  Without libdw, or for a
 * module it cannot read, dladdr gives the module and the exported symbol.
 *
 * A function's name comes from a table of the module's symbols sorted by
 * address, made at the module's first frame (a binary search): libdw's
 * own lookup and dladdr each walk every symbol of the module, and cc1
 * and node export 29,000 and 75,000, so a capture at exit took seconds
 * (see mod_syms).  dladdr is asked once per module, for its file name.
 *
 * libdw allocates with malloc: the caller (trace.c) holds its reentrant
 * flag, so those blocks are not traced.  Its strings live until
 * omi_symbols_close; the snapshot interns them before that.
 *
 * Three kinds of session.  LIVE (omi_symbols_open) names the frames of
 * this process, as om_trace_take_snapshot gives them.  LIVE and RAW take
 * a table of the loaded modules (dl_iterate_phdr: file, load bias,
 * address range, build ID), which the snapshot keeps, so that a frame
 * left unnamed still has its module and its address in the file.  RAW
 * (omi_symbols_open_raw) loads no libdw: a frame gets only its module,
 * from that table, which the capture keeps (its MODS section) for
 * OFFLINE (omi_symbols_open_offline) to name the frames
 * when the capture is loaded: libdw reports each module's file at the
 * bias it had, so a frame's address is its return address still, and a
 * module whose file's build ID is not the one recorded (rebuilt since)
 * keeps its frames unnamed.  Naming costs tens of milliseconds and of
 * megabytes in a process that has debug information (libdw inflates
 * libc's compressed DWARF: 45 ms and 12 MB for `uname`): a raw capture
 * costs neither, in each process of a build and in a service at each
 * SIGUSR2, and the loader pays once.
 *
 * Separate debug files are looked for on this machine only (find_debug):
 * by build ID under the debug directories, then by the module's debug
 * link beside it, in .debug/ beside it and under /usr/lib/debug, checked
 * by the module's build ID, or the link's CRC when it has none.  libdw's
 * standard callback would then ask debuginfod, whose client (Debian's
 * libdw loads it whether or not DEBUGINFOD_URLS is set) starts libcurl,
 * libssh2 and OpenSSL inside the traced program: a program that had
 * cleaned OpenSSL up before the capture at exit (openssl and ssh-keygen
 * under `objmem run --trace`) crashed in it, and with a server named the
 * snapshot would wait on the network.
 *
 * The few libdw declarations below are its stable ABI (libdwfl.h); the
 * handles are opaque.
 *
 * Data: a session holds libdw's handle and up to MAX_MODS modules'
 * tables (struct mod_syms), and the module table (struct omi_module,
 * sorted by address), in a region of its own released
 * when the session closes.  LIVE and RAW use one static session (under
 * tracing's ctl_lock); OFFLINE maps its own (a loader needs no lock).
 *
 * Invariants (a session lives only while a snapshot is taken or a
 * capture loaded, so om_check never sees one; sym_at and module_at rely
 * on them):
 *   1. A module is in mods[] at most once.
 *   2. A table is sorted by address, the best ranked first at one
 *      address.
 *   3. The module table is sorted by lo (RAW's ranges, the process's,
 *      are disjoint); OFFLINE reports to libdw no module that overlaps
 *      the one before it, only regular files, each file once (a
 *      capture's paths may name anything), and asks libdw only of a
 *      module it trusts.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"
#include "region.h"
#include "trace.h"

typedef struct Dwfl Dwfl;
typedef struct Dwfl_Module Dwfl_Module;
typedef struct Dwfl_Line Dwfl_Line;
typedef uint64_t Dwarf_Addr;
typedef struct Elf Elf;

typedef int find_fn(void);              /* called through libdw only */
typedef int debuginfo_fn(Dwfl_Module *, void **, const char *, Dwarf_Addr,
                         const char *, const char *, uint32_t, char **);

struct dwfl_callbacks {                 /* Dwfl_Callbacks */
    find_fn *find_elf;
    debuginfo_fn *find_debuginfo;
    find_fn *section_address;
    char **debuginfo_path;
};

struct dw {
    Dwfl *(*begin)(const struct dwfl_callbacks *);
    int (*proc_report)(Dwfl *, pid_t);
    Dwfl_Module *(*report_elf)(Dwfl *, const char *, const char *, int,
                               Dwarf_Addr, bool);
    int (*report_end)(Dwfl *, void *, void *);
    Dwfl_Module *(*addrmodule)(Dwfl *, Dwarf_Addr);
    const char *(*addrname)(Dwfl_Module *, Dwarf_Addr);
    Dwfl_Line *(*getsrc)(Dwfl_Module *, Dwarf_Addr);
    const char *(*lineinfo)(Dwfl_Line *, Dwarf_Addr *, int *, int *,
                            uint64_t *, uint64_t *);
    const char *(*module_info)(Dwfl_Module *, void ***, Dwarf_Addr *,
                               Dwarf_Addr *, Dwarf_Addr *, Dwarf_Addr *,
                               const char **, const char **);
    void (*end)(Dwfl *);
    find_fn *proc_find_elf;
    debuginfo_fn *build_id_find_debuginfo;
    int (*build_id)(Dwfl_Module *, const unsigned char **, Dwarf_Addr *);
    int (*getsymtab)(Dwfl_Module *);
    const char *(*getsym_info)(Dwfl_Module *, int, Elf64_Sym *, Dwarf_Addr *,
                               uint32_t *, Elf **, Dwarf_Addr *);
};

/* A symbol of a module's table: where it starts, its size, its rank
 * among symbols at one address (global 3, weak 2, local 1). */
struct sym {
    uint64_t addr;
    uint64_t size;
    const char *name;
    unsigned rank;
};

/* A module's sorted table (n symbols) and its file name as dladdr
 * gives it. */
struct mod_syms {
    Dwfl_Module *m;
    struct sym *v;
    size_t n;
    const char *file;
};

#define MAX_MODS 512

enum mode { LIVE, RAW, OFFLINE };

struct omi_symbols {
    enum mode mode;
    Dwfl *dwfl;
    struct omi_region region;           /* the tables */
    struct mod_syms mods[MAX_MODS];
    size_t nmods;
    size_t last;                        /* the module asked last */
    struct omi_module *loaded;          /* the modules, sorted by lo */
    bool *trusted;                      /* OFFLINE: libdw may name it */
    size_t nloaded;
};

static struct dw dw;
static int dw_state;                    /* 1 loaded, -1 none */
static pthread_once_t dw_once = PTHREAD_ONCE_INIT;
static struct omi_symbols session;      /* LIVE, RAW: under ctl_lock */
static char *debuginfo_path;

static void dw_load_once(void)
{
    void *h;

    dw_state = -1;
    h = dlopen("libdw.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!h)
        return;
#define SYM(field, name)                                                    \
    if (!(*(void **)&dw.field = dlsym(h, name)))                            \
        return
    SYM(begin, "dwfl_begin");
    SYM(proc_report, "dwfl_linux_proc_report");
    SYM(report_elf, "dwfl_report_elf");
    SYM(report_end, "dwfl_report_end");
    SYM(addrmodule, "dwfl_addrmodule");
    SYM(addrname, "dwfl_module_addrname");
    SYM(getsrc, "dwfl_module_getsrc");
    SYM(lineinfo, "dwfl_lineinfo");
    SYM(module_info, "dwfl_module_info");
    SYM(end, "dwfl_end");
    SYM(proc_find_elf, "dwfl_linux_proc_find_elf");
    SYM(build_id_find_debuginfo, "dwfl_build_id_find_debuginfo");
    SYM(build_id, "dwfl_module_build_id");
    SYM(getsymtab, "dwfl_module_getsymtab");
    SYM(getsym_info, "dwfl_module_getsym_info");
#undef SYM
    dw_state = 1;
}

/* Load libdw's functions once: false when it is not there. */
static bool dw_load(void)
{
    pthread_once(&dw_once, dw_load_once);
    return dw_state > 0;
}

/* What a module's debug file must match (open_link). */
struct want {
    struct stat module;         /* not the module itself */
    const unsigned char *id;    /* its build ID, id_len bytes (or 0) */
    size_t id_len;
    uint32_t crc;               /* else the debug link's CRC */
};

/* The CRC-32 of .gnu_debuglink (ISO 3309, reflected) of fd's contents. */
static uint32_t file_crc(int fd)
{
    static uint32_t table[256];
    unsigned char buf[16384];
    uint32_t crc = 0xffffffffu;
    ssize_t n;

    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

/* The build ID in notes[0..len) (ELF notes): its length, the ID in out
 * (up to max bytes); 0 when there is none. */
static size_t note_build_id(const unsigned char *notes, size_t len,
                            unsigned char *out, size_t max)
{
    for (size_t off = 0; len >= sizeof(Elf64_Nhdr) &&
                         off <= len - sizeof(Elf64_Nhdr);) {
        Elf64_Nhdr nh;
        size_t name, desc;

        memcpy(&nh, notes + off, sizeof(nh));
        name = off + sizeof(nh);
        desc = name + ((nh.n_namesz + 3) & ~(size_t)3);
        if (desc > len || nh.n_descsz > len - desc)
            break;
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp(notes + name, "GNU", 4) == 0 && nh.n_descsz <= max) {
            memcpy(out, notes + desc, nh.n_descsz);
            return nh.n_descsz;
        }
        off = desc + ((nh.n_descsz + 3) & ~(size_t)3);
    }
    return 0;
}

/* The build ID note of ELF file fd (64-bit, this machine's byte order):
 * its length, the ID in out (up to max bytes); 0 when it has none. */
static size_t file_build_id(int fd, unsigned char *out, size_t max)
{
    Elf64_Ehdr eh;
    Elf64_Shdr sh;
    unsigned char notes[1024];

    if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(sh))
        return 0;
    for (unsigned i = 0; i < eh.e_shnum; i++) {
        size_t n;

        if (pread(fd, &sh, sizeof(sh), (off_t)(eh.e_shoff + i * sizeof(sh))) !=
                sizeof(sh) || sh.sh_type != SHT_NOTE ||
            sh.sh_size > sizeof(notes) ||
            pread(fd, notes, sh.sh_size, (off_t)sh.sh_offset) !=
                (ssize_t)sh.sh_size)
            continue;
        if ((n = note_build_id(notes, sh.sh_size, out, max)) > 0)
            return n;
    }
    return 0;
}

/* The debug link's file in dir: its descriptor, its name in *out; -1
 * when there is none that fits.  It fits when it is a file, not the
 * module itself, with the module's build ID when the module has one (as
 * libdw checks), else with the link's CRC. */
static int open_link(const char *dir, const char *sub, const char *link,
                     const struct want *w, char **out)
{
    char path[4096];
    unsigned char id[64];
    struct stat st;
    int fd, n = snprintf(path, sizeof(path), "%s%s/%s", dir, sub, link);
    bool fits;

    if (n < 0 || (size_t)n >= sizeof(path) ||
        (fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
        return -1;                      /* (not blocking: a FIFO's open) */
    fits = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
           (st.st_dev != w->module.st_dev || st.st_ino != w->module.st_ino);
    if (fits && w->id_len > 0)
        fits = file_build_id(fd, id, sizeof(id)) == w->id_len &&
               memcmp(id, w->id, w->id_len) == 0;
    else if (fits)
        fits = file_crc(fd) == w->crc && lseek(fd, 0, SEEK_SET) == 0;
    if (!fits || !(*out = strdup(path))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* libdw's find_debuginfo, this machine's files only (see the top). */
static int find_debug(Dwfl_Module *m, void **user, const char *name,
                      Dwarf_Addr base, const char *file, const char *link,
                      uint32_t crc, char **out)
{
    char dir[4096];
    struct want w = { .crc = crc };
    const unsigned char *bits;
    Dwarf_Addr vaddr;
    const char *slash;
    int n, fd = dw.build_id_find_debuginfo(m, user, name, base, file, link,
                                           crc, out);

    if (fd >= 0 || !file || !link || !*link || strchr(link, '/') ||
        !(slash = strrchr(file, '/')) ||
        (size_t)(slash - file) >= sizeof(dir) || stat(file, &w.module) != 0)
        return fd;
    memcpy(dir, file, (size_t)(slash - file));
    dir[slash - file] = '\0';
    n = dw.build_id(m, &bits, &vaddr);
    if (n > 0) {
        w.id = bits;
        w.id_len = (size_t)n;
    }
    if ((fd = open_link(dir, "", link, &w, out)) < 0 &&
        (fd = open_link(dir, "/.debug", link, &w, out)) < 0 &&
        (fd = open_link("/usr/lib/debug", dir, link, &w, out)) < 0)
        return -1;
    return fd;
}

/* A libdw session with this file's callbacks, or NULL. */
static Dwfl *dw_begin(void)
{
    static struct dwfl_callbacks callbacks;

    if (!dw_load())
        return NULL;
    callbacks = (struct dwfl_callbacks){ dw.proc_find_elf,
                                         find_debug, NULL,
                                         &debuginfo_path };
    return dw.begin(&callbacks);
}

static char exe_path[4096];             /* the program's file, once read */

/* The program's own file ("" when /proc/self/exe cannot be read). */
static const char *exe_file(void)
{
    if (!exe_path[0]) {
        ssize_t n = readlink("/proc/self/exe", exe_path,
                             sizeof(exe_path) - 1);
        exe_path[n > 0 ? n : 0] = '\0';
    }
    return exe_path;
}

/* Put m into s's module table, kept sorted by lo (insertion: a few
 * hundred modules at most, and qsort may allocate). */
static void insert_module(struct omi_symbols *s, const struct omi_module *m)
{
    size_t i = s->nloaded++;

    for (; i > 0 && s->loaded[i - 1].lo > m->lo; i--)
        s->loaded[i] = s->loaded[i - 1];
    s->loaded[i] = *m;
}

/* dl_iterate_phdr's callback: one loaded module into the table,
 * its name copied (a module unloaded later frees its own). */
static int collect_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct omi_symbols *s = arg;
    struct omi_module m = { .bias = info->dlpi_addr, .lo = UINT64_MAX };
    const char *name = info->dlpi_name;
    char *copy;
    size_t len;

    (void)size;
    if (s->nloaded == MAX_MODS)
        return 1;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        if (ph->p_type != PT_LOAD)
            continue;
        if (m.bias + ph->p_vaddr < m.lo)
            m.lo = m.bias + ph->p_vaddr;
        if (m.bias + ph->p_vaddr + ph->p_memsz > m.hi)
            m.hi = m.bias + ph->p_vaddr + ph->p_memsz;
    }
    if (m.lo >= m.hi)
        return 0;
    for (unsigned i = 0; i < info->dlpi_phnum && !m.id_len; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uint64_t at = m.bias + ph->p_vaddr;

        if (ph->p_type == PT_NOTE && at >= m.lo && at < m.hi &&
            ph->p_filesz <= m.hi - at)
            m.id_len = (uint32_t)note_build_id(
                (const unsigned char *)(uintptr_t)at, ph->p_filesz, m.id,
                sizeof(m.id));
    }
    if (!name || !*name)
        name = exe_file()[0] ? exe_path : "<the program>";
    len = strlen(name) + 1;
    if (!(copy = omi_region_alloc(&s->region, len)))
        return 1;
    memcpy(copy, name, len);
    m.path = copy;
    insert_module(s, &m);
    return 0;
}

/* The static session, in mode, with the table of this process's modules
 * (left empty for want of memory). */
static struct omi_symbols *open_session(enum mode mode)
{
    session.mode = mode;
    session.dwfl = NULL;
    session.loaded = omi_region_alloc(&session.region,
                                      MAX_MODS * sizeof(*session.loaded));
    if (session.loaded)
        dl_iterate_phdr(collect_module, &session);
    return &session;
}

struct omi_symbols *omi_symbols_open(void)
{
    open_session(LIVE);
    session.dwfl = dw_begin();
    if (session.dwfl && (dw.proc_report(session.dwfl, getpid()) != 0 ||
                         dw.report_end(session.dwfl, NULL, NULL) != 0)) {
        dw.end(session.dwfl);
        session.dwfl = NULL;
    }
    return &session;
}

struct omi_symbols *omi_symbols_open_raw(void)
{
    return open_session(RAW);
}

size_t omi_symbols_modules(const struct omi_symbols *s,
                           const struct omi_module **out)
{
    *out = s ? s->loaded : NULL;
    return s ? s->nloaded : 0;
}

/* m's file, as libdw reads it, has the build ID the capture recorded
 * (or neither has one). */
static bool same_build(Dwfl_Module *dm, const struct omi_module *m)
{
    const unsigned char *bits;
    Dwarf_Addr vaddr;
    int n = dw.build_id(dm, &bits, &vaddr);

    if (n <= 0)
        return m->id_len == 0;
    return (uint32_t)n == m->id_len && memcmp(bits, m->id, m->id_len) == 0;
}

/* A file, as fstat names it. */
struct file_id {
    dev_t dev;
    ino_t ino;
};

/* Whether st's file is one of seen[0..n). */
static bool is_seen(const struct stat *st, const struct file_id *seen,
                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (seen[i].dev == st->st_dev && seen[i].ino == st->st_ino)
            return true;
    return false;
}

/*
 * The file at path (a capture's module), opened for libdw: its
 * descriptor, or -1 when it is not a regular file or is one of
 * seen[0..*n); else it joins them.  Opened without blocking, since a
 * FIFO's open waits for a writer (a crafted capture hung its reader);
 * a device or a /proc file has no end (O_NONBLOCK means nothing to a
 * regular file's reads).  A file is reported once: libdw reads its
 * DWARF anew for each module, and 64 copies of libc, 8 KiB of
 * capture, took 4 s and 1 GiB.
 */
static int open_module(const char *path, struct file_id *seen, size_t *n)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        is_seen(&st, seen, *n)) {
        close(fd);
        return -1;
    }
    seen[(*n)++] = (struct file_id){ st.st_dev, st.st_ino };
    return fd;
}

struct omi_symbols *omi_symbols_open_offline(const struct omi_module *mods,
                                             size_t n)
{
    struct omi_symbols *s = omi_os_map(sizeof(*s), 0);
    struct file_id *seen;
    size_t nseen = 0;

    if (!s)
        return NULL;
    s->mode = OFFLINE;
    n = n < MAX_MODS ? n : MAX_MODS;
    s->loaded = omi_region_alloc(&s->region, n * sizeof(*s->loaded) + 1);
    s->trusted = omi_region_alloc(&s->region, n * sizeof(*s->trusted) + 1);
    seen = omi_region_alloc(&s->region, n * sizeof(*seen) + 1);
    if (!s->loaded || !s->trusted || !seen)
        return s;               /* every frame keeps its module only */
    for (size_t i = 0; i < n; i++)
        insert_module(s, &mods[i]);
    for (size_t i = 0; i < s->nloaded; i++) {
        const struct omi_module *m = &s->loaded[i];
        Dwfl_Module *dm;
        int fd;

        if (m->path[0] != '/' || (i > 0 && m->lo < s->loaded[i - 1].hi) ||
            (fd = open_module(m->path, seen, &nseen)) < 0)
            continue;           /* the vdso, an overlap, no file, a copy */
        if (!s->dwfl && !(s->dwfl = dw_begin())) {
            close(fd);
            return s;           /* libdw loaded for a file only */
        }
        /* libdw keeps fd when it reports the module, else it is ours */
        dm = dw.report_elf(s->dwfl, m->path, m->path, fd, m->bias, true);
        if (!dm)
            close(fd);
        s->trusted[i] = dm && same_build(dm, m);
    }
    if (s->dwfl)
        dw.report_end(s->dwfl, NULL, NULL);
    return s;
}

void omi_symbols_close(struct omi_symbols *s)
{
    if (!s)
        return;
    if (s->dwfl)
        dw.end(s->dwfl);
    s->dwfl = NULL;
    omi_region_release(&s->region);
    s->nmods = s->last = s->nloaded = 0;
    s->loaded = NULL;
    s->trusted = NULL;
    if (s->mode == OFFLINE)
        omi_os_unmap(s, sizeof(*s));
}

/* The module of s's table that holds pc, or NULL. */
static const struct omi_module *module_at(const struct omi_symbols *s,
                                          uintptr_t pc)
{
    size_t lo = 0, hi = s->nloaded;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->loaded[mid].lo <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && pc < s->loaded[lo - 1].hi ? &s->loaded[lo - 1] : NULL;
}

/* dladdr for pc, with the module's file name made right for the program
 * itself: dladdr names it by argv[0], which a program may have rewritten
 * as its title (nginx's "nginx: worker process", PostgreSQL's), or which
 * may be relative; /proc/self/exe has its file.  False when pc is in no
 * module. */
static bool module_of(uintptr_t pc, Dl_info *info)
{
    struct link_map *lm = NULL;

    if (!dladdr1((void *)pc, info, (void **)&lm, RTLD_DL_LINKMAP) ||
        !info->dli_fname)
        return false;
    if (lm && lm->l_name && lm->l_name[0] == '\0' && exe_file()[0])
        info->dli_fname = exe_path;
    return true;
}

/* dladdr's answer: the module, and the exported symbol if any. */
static struct om_frame frame_dladdr(uintptr_t pc)
{
    Dl_info info;

    if (module_of(pc, &info))
        return (struct om_frame){ info.dli_fname, info.dli_sname, 0,
                                  (const void *)pc };
    return (struct om_frame){ NULL, NULL, 0, (const void *)pc };
}

static int sym_order(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;

    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return (int)y->rank - (int)x->rank;         /* best first */
}

/* Module m's table, made on its first frame (NULL: no room, or no
 * symbols, and libdw's own lookup answers), named by e (OFFLINE) or by
 * dladdr.  Kept: defined symbols that name code or data (not sections,
 * files or TLS), at their addresses in this process (not absolute ones:
 * a version's name, LIBSELINUX_1.0, is one, at address 0). */
static struct mod_syms *mod_syms(struct omi_symbols *s, Dwfl_Module *m,
                                 uintptr_t pc, const struct omi_module *e)
{
    struct mod_syms *ms;
    Dl_info info;
    int n;

    if (s->nmods > 0 && s->mods[s->last].m == m)
        return &s->mods[s->last];
    for (size_t i = 0; i < s->nmods; i++)
        if (s->mods[i].m == m)
            return &s->mods[s->last = i];
    if (s->nmods == MAX_MODS)
        return NULL;
    ms = &s->mods[s->last = s->nmods++];
    *ms = (struct mod_syms){ m, NULL, 0,
                             e                     ? e->path
                             : module_of(pc, &info) ? info.dli_fname
                                                   : NULL };
    n = dw.getsymtab(m);
    if (n > 0)
        ms->v = omi_region_alloc(&s->region, (size_t)n * sizeof(*ms->v));
    for (int i = 0; ms->v && i < n; i++) {
        Elf64_Sym sym;
        Dwarf_Addr addr;
        unsigned type, bind;
        const char *name = dw.getsym_info(m, i, &sym, &addr, NULL, NULL,
                                          NULL);

        type = ELF64_ST_TYPE(sym.st_info);
        bind = ELF64_ST_BIND(sym.st_info);
        if (!name || !*name || sym.st_shndx == SHN_UNDEF ||
            sym.st_shndx == SHN_ABS || type == STT_SECTION ||
            type == STT_FILE || type == STT_TLS)
            continue;
        ms->v[ms->n++] = (struct sym){ addr, sym.st_size, name,
                                       bind == STB_GLOBAL ? 3u
                                       : bind == STB_WEAK ? 2u : 1u };
    }
    if (ms->n > 1)
        qsort(ms->v, ms->n, sizeof(*ms->v), sym_order);
    return ms;
}

/* The symbol of ms that holds pc: of the nearest below it whose size
 * covers it (within 64 symbols), the best ranked; else, when the nearest
 * symbol of all is sizeless, the best ranked there; NULL when neither. */
static const char *sym_at(const struct mod_syms *ms, uintptr_t pc)
{
    size_t lo = 0, hi = ms->n, first;

    while (lo < hi) {                   /* the first symbol above pc */
        size_t mid = lo + (hi - lo) / 2;
        if (ms->v[mid].addr <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i-- > 0 && lo - i <= 64;) {
        const struct sym *y = &ms->v[i];
        const char *best;

        if (pc - y->addr >= y->size)
            continue;
        best = y->name;             /* better ranks come first: go down */
        while (i-- > 0 && ms->v[i].addr == y->addr)
            if (pc - ms->v[i].addr < ms->v[i].size)
                best = ms->v[i].name;
        return best;
    }
    if (lo == 0 || ms->v[lo - 1].size != 0)
        return NULL;
    for (first = lo - 1; first > 0 && ms->v[first - 1].addr ==
                                      ms->v[lo - 1].addr; first--)
        ;
    return ms->v[first].name;
}

struct om_frame omi_symbols_frame(struct omi_symbols *s, uintptr_t pc)
{
    struct om_frame f = { NULL, NULL, 0, (const void *)pc };
    const struct omi_module *e = NULL;
    struct mod_syms *ms;
    Dwfl_Module *m;
    Dwfl_Line *line;
    const char *main_file = NULL, *src;
    int lineno = 0;

    if (s && s->mode != LIVE) {         /* the module, from the table */
        e = module_at(s, pc);
        f.filename = e ? e->path : NULL;
        if (s->mode == RAW || !e || !s->trusted[e - s->loaded] ||
            !s->dwfl || !(m = dw.addrmodule(s->dwfl, pc)))
            return f;
    } else if (!s || !s->dwfl || !(m = dw.addrmodule(s->dwfl, pc))) {
        return frame_dladdr(pc);
    }
    ms = mod_syms(s, m, pc, e);
    f.filename = ms ? ms->file : f.filename;
    /* dladdr names only an exported symbol that holds pc: with the
     * module's table, sym_at has looked through those already. */
    f.function = ms && ms->v ? sym_at(ms, pc) : dw.addrname(m, pc);
    if (!e && (!ms || (!f.function && !ms->v))) {
        struct om_frame d = frame_dladdr(pc);
        if (!f.function)
            f.function = d.function;
        if (!ms)
            f.filename = d.filename;
    }
    if (!f.filename) {
        dw.module_info(m, NULL, NULL, NULL, NULL, NULL, &main_file, NULL);
        f.filename = main_file;
    }
    line = dw.getsrc(m, pc);
    src = line ? dw.lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
    if (src && lineno > 0) {
        f.filename = src;
        f.lineno = (unsigned)lineno;
    }
    return f;
}

/* A C frame in C++'s operator new or new[] (any of their overloads):
 * the allocator's entry as C++ code calls it, above the caller. */
static bool in_operator_new(const struct om_frame *f)
{
    return f->function && (strncmp(f->function, "_Znwm", 5) == 0 ||
                           strncmp(f->function, "_Znam", 5) == 0);
}

unsigned omi_symbols_trim_new(struct om_frame *f, unsigned n)
{
    unsigned k = 0;

    while (k + 1 < n && in_operator_new(&f[k]))
        k++;
    if (k)
        memmove(f, f + k, (n - k) * sizeof(*f));
    return k;
}
