/*
 * capture.c - X (cross-cutting): the capture file of a traced run.
 *
 * OBJMEM_TRACE=N (or OBJMEM_TRACE_SAMPLE=BYTES) starts tracing when the
 * library loads, as PYTHONTRACEMALLOC does, and makes the run write a
 * capture, a snapshot dump (snapshot.c), when it exits: the traces still
 * live then, which `objmem leaks` and `objmem top` read.  Long-running
 * services get captures meanwhile on SIGUSR2: the handler only raises a
 * flag (OMI_DEFER_CAPTURE, async-signal-safe), and the next traced
 * allocation writes the capture, or trace.c's ticker within a tick when
 * none comes (an idle service, a sampled one): NAME.1, NAME.2, ...  The
 * file name comes from OBJMEM_TRACE_FILE (default objmem.%e.%p.trace); a
 * forked child writes one of its own at exit when OBJMEM_TRACE_FORKS is
 * set; a process that leaves through _exit under the shim or
 * objmem-python writes it there (om_exit_early), and one that SIGTERM,
 * SIGINT or SIGHUP ends by their default action writes it first (the
 * handler defers it: OMI_DEFER_FATAL), then dies by the signal.  Both
 * write the caller's exit files after it (om_set_exit_writer).  A
 * capture carries the snapshot at the peak too (om_trace_keep_peak:
 * retaken when the traced memory falls a sixteenth below a peak
 * OBJMEM_TRACE_PEAK percent, 25 by default, above the memory last kept),
 * for `objmem peak`.
 *
 * A capture's C frames are named when it is loaded, not here (symbols.c,
 * RAW): the process keeps libdw out and writes its module table, unless
 * OBJMEM_TRACE_SYMBOLS asks for the names now, for a capture read on
 * another machine.
 *
 * The shim starts it itself (omi_capture_start), when its RAW domain is
 * objmem's; everything else, from this module's constructor.
 *
 * Invariants:
 *   1. A capture is written by a thread that holds no objmem lock and is
 *      not inside tracing (omi_capture_write_pending is called from
 *      on_alloc's deferred work after the trace is recorded, and from the
 *      ticker between its samples; the exit hook from atexit).
 *   2. The handlers are installed only for a run traced from the
 *      environment, and only over the default action.
 *   3. A process writes its capture at exit once: from atexit, or
 *      earlier from om_exit_early (the _exit of the shim and of
 *      objmem-python, which run no exit handlers) or the fatal path;
 *      the exit writer runs after it on those two paths.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "options.h"
#include "os.h"
#include "trace.h"

#define MAX_FRAMES_ENV 128

static atomic_int dumps;                /* SIGUSR2 captures written */
static atomic_flag writing = ATOMIC_FLAG_INIT;
static atomic_flag exit_written = ATOMIC_FLAG_INIT;  /* this process's */
static atomic_int fatal;                /* the fatal signal that came */
static bool forks;                      /* OBJMEM_TRACE_FORKS, at start */
static void (*_Atomic exit_writer)(void);       /* om_set_exit_writer's */
static pid_t owner;                     /* the process that started it */

/* Write a capture to the trace file (n > 0: NAME.n): 0 or -errno. */
static int capture_write(int n)
{
    char name[OMI_PATH_MAX], path[OMI_PATH_MAX + 32];
    struct om_snapshot *s = omi_trace_take_capture(
        omi_option_bool(OMI_OPT_TRACE_SYMBOLS));
    int rc;

    if (!s)
        return -errno;
    omi_report_expand(name, sizeof(name),
                      omi_option_str(OMI_OPT_TRACE_FILE));
    if (n > 0)
        snprintf(path, sizeof(path), "%s.%d", name, n);
    else
        snprintf(path, sizeof(path), "%s", name);
    rc = om_snapshot_dump(s, path);
    om_snapshot_free(s);
    return rc;
}

/* Whether this process writes a capture at exit: the one that started
 * tracing, or a forked child with OBJMEM_TRACE_FORKS (async-signal-
 * safe). */
static bool writes_at_exit(void)
{
    return getpid() == owner || forks;
}

/* Die by sig, as its default action would have had it: unblocked in
 * this thread (a handler's own signal, the ticker's), it comes at once. */
static OM_NORETURN void die_by(int sig)
{
    struct sigaction dfl;
    sigset_t set;

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    for (;;) {
        kill(getpid(), sig);
        syscall(SYS_exit_group, 128 + sig);     /* not reached */
    }
}

/* The caller's exit files, when it asked to write any. */
static void write_theirs(void)
{
    void (*fn)(void) = atomic_load(&exit_writer);

    if (fn)
        fn();
}

/* The capture SIGUSR2 asked for, if it did (writing claimed). */
static void write_asked(void)
{
    if (atomic_fetch_and(&omi_trace_deferred, ~(unsigned)OMI_DEFER_CAPTURE) &
        OMI_DEFER_CAPTURE)
        capture_write(atomic_fetch_add(&dumps, 1) + 1);
}

void omi_capture_write_pending(void)
{
    if (atomic_flag_test_and_set(&writing))
        return;                 /* another thread is at it */
    write_asked();
    if (atomic_load(&omi_trace_deferred) & OMI_DEFER_FATAL) {
        /* The capture exit would have written, then the signal's end. */
        if (writes_at_exit() && om_trace_is_tracing() &&
            !atomic_flag_test_and_set(&exit_written))
            capture_write(0);
        write_theirs();
        die_by(atomic_load(&fatal));
    }
    atomic_flag_clear(&writing);
}

/* A fork child: no thread of its own writes (the parent's ticker may have
 * been at it). */
void omi_capture_fork_child(void)
{
    atomic_flag_clear(&writing);
    atomic_flag_clear(&exit_written);
}

static void on_sigusr2(int sig)
{
    atomic_fetch_or(&omi_trace_deferred, OMI_DEFER_CAPTURE);
}

/* SIGTERM, SIGINT or SIGHUP over their default action, which ends the
 * process without its exit handlers: the ticker (or the next traced
 * allocation) writes the capture and the exit files exit would have,
 * then the process dies by the signal.  At once when that cannot be: no
 * ticker runs to do it, the process writes neither, or a fatal signal
 * came already. */
static void on_fatal(int sig)
{
    int none = 0;

    if (!omi_trace_ticking() ||
        (!writes_at_exit() && !atomic_load(&exit_writer)) ||
        !atomic_compare_exchange_strong(&fatal, &none, sig))
        die_by(sig);
    atomic_fetch_or(&omi_trace_deferred, OMI_DEFER_FATAL);
}

/* At exit: the live traces, in the process that started tracing.  A
 * forked child that exits writes nothing (a shell's subshells would each
 * leave a copy of the parent's traces), unless OBJMEM_TRACE_FORKS asks
 * for it: a pre-forking server's workers hold its memory.  An exec'd
 * program reads the environment afresh. */
static void capture_at_exit(void)
{
    int waited = 0;

    if (!writes_at_exit() || !om_trace_is_tracing() ||
        atomic_flag_test_and_set(&exit_written))
        return;
    /* The ticker may be writing a SIGUSR2 capture, which the end of the
     * process would cut short: wait for it (10 s at most), then write one
     * still asked for, and the last.  writing stays claimed. */
    while (atomic_flag_test_and_set(&writing) && waited++ < 10000)
        omi_os_sleep_ms(1);
    write_asked();
    capture_write(0);
}

bool om_exit_early(void)
{
    sigset_t blocked;

    if (!omi_os_known_process() ||
        pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0 ||
        !sigisemptyset(&blocked))
        return false;
    if (owner)
        capture_at_exit();
    write_theirs();
    return true;
}

void om_set_exit_writer(void (*fn)(void))
{
    atomic_store(&exit_writer, fn);
}

/* handler for sig, over its default action only. */
static void install_handler(int sig, void (*handler)(int))
{
    struct sigaction old, sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        sigaction(sig, &sa, NULL);
}

/* The shim defines it false: it calls omi_capture_start itself once its
 * RAW domain is set up. */
__attribute__((weak)) bool omi_capture_auto = true;

__attribute__((constructor)) static void capture_from_environment(void)
{
    if (omi_capture_auto)
        omi_capture_start();
}

void omi_capture_start(void)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    long n = omi_option_long(OMI_OPT_TRACE);
    long mean = omi_option_long(OMI_OPT_TRACE_SAMPLE);
    bool on = false;

    if (atomic_flag_test_and_set(&once))
        return;
    if (n >= 1 && n <= MAX_FRAMES_ENV)
        on = om_trace_start((int)n) == 0;
    if (mean > 0)
        on = om_trace_start_sampling((size_t)mean) == 0 || on;
    if (!on)
        return;
    owner = getpid();
    forks = omi_option_bool(OMI_OPT_TRACE_FORKS);
    if (omi_option_long(OMI_OPT_TRACE_PEAK) > 0)
        om_trace_keep_peak((unsigned)omi_option_long(OMI_OPT_TRACE_PEAK));
    install_handler(SIGUSR2, on_sigusr2);
    install_handler(SIGTERM, on_fatal);
    install_handler(SIGINT, on_fatal);
    install_handler(SIGHUP, on_fatal);
    atexit(capture_at_exit);
}
