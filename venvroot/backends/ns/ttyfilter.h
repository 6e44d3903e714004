/* The terminal filter, shared by the ns starter (join.c) and the docker agent (agent_serve.c). */
#ifndef VENVROOT_TTYFILTER_H
#define VENVROOT_TTYFILTER_H
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>

/* No program inside may push keystrokes into the caller's terminal (TIOCSTI: they would run in the
 * user's shell after the shim exits) or drive the console (TIOCLINUX): ioctl with either fails
 * with EPERM, native and 32-bit. The same filter as venvroot/ns/seccomp.py's, instruction for
 * instruction (tests check both paths). Other architectures: no filter. */
static inline int deny_tty_injection(void) {
#if defined(__x86_64__)
    enum { ARCH = AUDIT_ARCH_X86_64, NR = 16, NR_X32 = 0x40000000 | 514, ARCH32 = AUDIT_ARCH_I386, NR32 = 54 };
#elif defined(__aarch64__)
    enum { ARCH = AUDIT_ARCH_AARCH64, NR = 29, NR_X32 = 29, ARCH32 = AUDIT_ARCH_ARM, NR32 = 54 };
#else
    return 0;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH32, 0, 8),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR32, 3, 6),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NR_X32, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])), /* low half */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x5412 /* TIOCSTI */, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x541C /* TIOCLINUX */, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog prog = {sizeof code / sizeof code[0], code};
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
#endif
}

#endif
