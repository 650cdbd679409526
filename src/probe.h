/*
 * probe.h - X (cross-cutting): static probes, for tools that trace a
 * running program without rebuilding it (gdb, perf, bpftrace, SystemTap),
 * as CPython's gc__start and gc__done markers (--with-dtrace).
 *
 * A probe is one nop in the code and a note that names it: provider
 * "objmem", the probe's name, the nop's address and where its arguments
 * lie at the nop (SystemTap's SDT note, version 3: section
 * .note.stapsdt, type 3, owner "stapsdt"; its description: the nop's
 * address, the address of .stapsdt.base, a semaphore address (0: none),
 * then the provider, the name and the arguments as NUL-terminated
 * strings; each argument "-8@LOCATION", a signed 8-byte value in a
 * register, in memory or an immediate, as the compiler chose).  Nothing
 * runs at a probe unless a tool puts a breakpoint or uprobe on its nop;
 * every argument here is converted to int64_t (pointers too).
 *
 * The probes (docs/design.md, section 9b):
 *   objmem:gc__start (generation, increment)    gc.c, before "start"
 *   objmem:gc__done (collected, uncollectable)  gc.c, after "stop"
 *   objmem:arena__new (arena)                   arena.c, mapped
 *   objmem:arena__release (arena)               arena.c, before unmap
 *   objmem:purge (address, bytes)               arena.c, pages given back
 *
 * x86-64 and AArch64 only (the note's 8-byte words; the operands' syntax
 * is the assembler's); elsewhere, or with OM_NO_PROBES defined, a probe
 * is nothing.
 */
#ifndef OM_PROBE_H
#define OM_PROBE_H

#include <stdint.h>

#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(OM_NO_PROBES)

#define OMI_PROBE_NOTE(name, args)                                          \
    "990: nop\n"                                                            \
    ".pushsection .note.stapsdt,\"?\",\"note\"\n"                           \
    ".balign 4\n"                                                           \
    ".4byte 992f-991f, 994f-993f, 3\n"                                      \
    "991: .asciz \"stapsdt\"\n"                                             \
    "992: .balign 4\n"                                                      \
    "993: .8byte 990b\n"                                                    \
    ".8byte _.stapsdt.base\n"                                               \
    ".8byte 0\n"                                                            \
    ".asciz \"objmem\"\n"                                                   \
    ".asciz \"" name "\"\n"                                                 \
    ".asciz \"" args "\"\n"                                                 \
    "994: .balign 4\n"                                                      \
    ".popsection\n"                                                         \
    ".ifndef _.stapsdt.base\n"                                              \
    ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n" \
    ".weak _.stapsdt.base\n"                                                \
    ".hidden _.stapsdt.base\n"                                              \
    "_.stapsdt.base: .space 1\n"                                            \
    ".size _.stapsdt.base, 1\n"                                             \
    ".popsection\n"                                                         \
    ".endif\n"

#define OMI_PROBE1(name, a)                                                 \
    __asm__ __volatile__(OMI_PROBE_NOTE(#name, "-8@%[a0]")                  \
                         : : [a0] "nor"((int64_t)(a)))
#define OMI_PROBE2(name, a, b)                                              \
    __asm__ __volatile__(OMI_PROBE_NOTE(#name, "-8@%[a0] -8@%[a1]")         \
                         : : [a0] "nor"((int64_t)(a)),                      \
                             [a1] "nor"((int64_t)(b)))

#else

#define OMI_PROBE1(name, a) ((void)(a))
#define OMI_PROBE2(name, a, b) ((void)(a), (void)(b))

#endif

#endif /* OM_PROBE_H */
