/*
 * symbols.c - X (cross-cutting): C frames to function, file and line,
 * when a snapshot is taken (never when a block is allocated).
 *
 * With elfutils' libdw, loaded on demand (dlopen of libdw.so.1: no build
 * or link dependency, and nothing loaded into a program that never takes
 * a snapshot), a return address gets its function from the symbol table
 * (static functions too) and its file and line from the DWARF line
 * table, when the module has debug information.  Without libdw, or for a
 * module it cannot read, dladdr gives the module and the exported symbol.
 *
 * libdw allocates with malloc: the caller (trace.c) holds its reentrant
 * flag, so those blocks are not traced.  Its strings live until
 * omi_symbols_close; the snapshot interns them before that.
 *
 * The few libdw declarations below are its stable ABI (libdwfl.h); the
 * handles are opaque.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "trace.h"

typedef struct Dwfl Dwfl;
typedef struct Dwfl_Module Dwfl_Module;
typedef struct Dwfl_Line Dwfl_Line;
typedef uint64_t Dwarf_Addr;

typedef int find_fn(void);              /* called through libdw only */

struct dwfl_callbacks {                 /* Dwfl_Callbacks */
    find_fn *find_elf;
    find_fn *find_debuginfo;
    find_fn *section_address;
    char **debuginfo_path;
};

struct dw {
    Dwfl *(*begin)(const struct dwfl_callbacks *);
    int (*proc_report)(Dwfl *, pid_t);
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
    find_fn *standard_find_debuginfo;
};

struct omi_symbols {
    struct dw *dw;
    Dwfl *dwfl;
};

static struct dw dw;
static int dw_state;                    /* 0 untried, 1 loaded, -1 none */
static struct omi_symbols session;      /* one at a time: under ctl_lock */
static char *debuginfo_path;

/* Load libdw's functions once: false when it is not there. */
static bool dw_load(void)
{
    void *h;

    if (dw_state)
        return dw_state > 0;
    dw_state = -1;
    h = dlopen("libdw.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!h)
        return false;
#define SYM(field, name)                                                    \
    if (!(*(void **)&dw.field = dlsym(h, name)))                            \
        return false
    SYM(begin, "dwfl_begin");
    SYM(proc_report, "dwfl_linux_proc_report");
    SYM(report_end, "dwfl_report_end");
    SYM(addrmodule, "dwfl_addrmodule");
    SYM(addrname, "dwfl_module_addrname");
    SYM(getsrc, "dwfl_module_getsrc");
    SYM(lineinfo, "dwfl_lineinfo");
    SYM(module_info, "dwfl_module_info");
    SYM(end, "dwfl_end");
    SYM(proc_find_elf, "dwfl_linux_proc_find_elf");
    SYM(standard_find_debuginfo, "dwfl_standard_find_debuginfo");
#undef SYM
    dw_state = 1;
    return true;
}

struct omi_symbols *omi_symbols_open(void)
{
    static struct dwfl_callbacks callbacks;

    session.dwfl = NULL;
    if (!dw_load())
        return &session;
    callbacks = (struct dwfl_callbacks){ dw.proc_find_elf,
                                         dw.standard_find_debuginfo, NULL,
                                         &debuginfo_path };
    session.dwfl = dw.begin(&callbacks);
    if (session.dwfl && (dw.proc_report(session.dwfl, getpid()) != 0 ||
                         dw.report_end(session.dwfl, NULL, NULL) != 0)) {
        dw.end(session.dwfl);
        session.dwfl = NULL;
    }
    return &session;
}

void omi_symbols_close(struct omi_symbols *s)
{
    if (s && s->dwfl)
        dw.end(s->dwfl);
    if (s)
        s->dwfl = NULL;
}

/* dladdr's answer: the module, and the exported symbol if any. */
static struct om_frame frame_dladdr(uintptr_t pc)
{
    Dl_info info;

    if (dladdr((void *)pc, &info) && info.dli_fname)
        return (struct om_frame){ info.dli_fname, info.dli_sname, 0,
                                  (const void *)pc };
    return (struct om_frame){ NULL, NULL, 0, (const void *)pc };
}

struct om_frame omi_symbols_frame(struct omi_symbols *s, uintptr_t pc)
{
    struct om_frame f = frame_dladdr(pc);
    Dwfl_Module *m;
    Dwfl_Line *line;
    const char *name, *main_file = NULL, *src;
    int lineno = 0;

    if (!s || !s->dwfl || !(m = dw.addrmodule(s->dwfl, pc)))
        return f;
    name = dw.addrname(m, pc);
    if (name)
        f.function = name;
    dw.module_info(m, NULL, NULL, NULL, NULL, NULL, &main_file, NULL);
    if (main_file && !f.filename)
        f.filename = main_file;
    line = dw.getsrc(m, pc);
    src = line ? dw.lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
    if (src && lineno > 0) {
        f.filename = src;
        f.lineno = (unsigned)lineno;
    }
    return f;
}
