/* --join: a program into a running env's namespaces (starter.c's and the compiled shim's way in). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#include "join.h"
#include "steps.h"
#include "ttyfilter.h"
#include "dieof.h"

void close_from(int low) {
    if (syscall(SYS_close_range, low, ~0U, 0) == 0) return;
    for (int fd = low; fd < 65536; fd++) close(fd);
}

/* A holder in a PID namespace of its own (--pid, pidns.py): only a child enters it. This process
 * stays outside as the relay (as venvroot/ns/relay.py does): signals sent to it go to the program,
 * signals from the terminal (SI_KERNEL) reach both already, a terminal stop stops both, and it ends
 * as the program did. The program dies with it (PR_SET_PDEATHSIG, set after its ids are final). */
static void relay(pid_t child, const sigset_t *watched) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && null >= 0; fd++) dup2(null, fd); /* no reader waits for us */
    close_from(3);
    for (;;) {
        siginfo_t si;
        int s = sigwaitinfo(watched, &si);
        if (s < 0) continue;
        if (s == SIGCHLD) {
            int status;
            if (waitpid(child, &status, WNOHANG) != child) continue;
            if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
            s = WTERMSIG(status);
            prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* the program's core, not ours */
            die_of(s);
            _exit(128 + s);
        }
        if (si.si_code != SI_KERNEL) kill(child, s);
        if (s == SIGTSTP || s == SIGTTIN || s == SIGTTOU) kill(getpid(), SIGSTOP);
    }
}

static const int relayed[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
                              SIGALRM, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGCHLD};

/* Fork into the PID namespace joined: returns in the child; the parent relays and never returns. */
static void fork_in(void) {
    sigset_t watched, before;
    sigemptyset(&watched);
    for (size_t i = 0; i < sizeof relayed / sizeof relayed[0]; i++) sigaddset(&watched, relayed[i]);
    sigprocmask(SIG_BLOCK, &watched, &before);
    pid_t child = fork();
    if (child < 0) _exit(fail("cannot fork into the PID namespace", NULL));
    if (child > 0) relay(child, &watched);
    sigprocmask(SIG_SETMASK, &before, NULL);
}

/* --join PID DIR IDS [--again SHIM] PROGRAM [ARG...]: replace this process with PROGRAM in the namespaces of
 * PID (rootless, its user namespace too), in DIR; IDS "UID:GID" (as root with --user: the
 * supplementary groups dropped) or "-". What `nsenter -t PID [-U --preserve-credentials] -m -u -i
 * [-S UID -G GID] -W DIR` does, without loading a dynamically linked program. When PID has ended
 * since the shim saw it alive (killed, or its env just ended), the shim SHIM runs again with the
 * ARGs: it starts the env afresh or takes the Python path, instead of failing. */
int join(char **argv) {
    const char *again = strcmp(argv[3], "--again") == 0 && argv[4] && argv[5] ? argv[4] : NULL;
    char **program = argv + (again ? 5 : 3);
    static const struct { const char *name; int flag; } order[] = {
        {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS}, {"uts", CLONE_NEWUTS}, {"ipc", CLONE_NEWIPC},
        {"pid", CLONE_NEWPID}};
    int fds[5];
    char path[64];
    struct stat theirs, ours;
    for (int i = 0; i < 5; i++) { /* all opened first: the mount namespace hides /proc/PID */
        snprintf(path, sizeof path, "/proc/%s/ns/%s", argv[0], order[i].name);
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0 && again && (errno == ENOENT || errno == ESRCH)) { /* ended meanwhile */
            program[0] = (char *)again;
            execv(again, program);
        }
        if (fds[i] < 0) return fail("cannot open", path);
    }
    /* Root stays in its own user namespace (whatever a holder's is): it may take any ids here. */
    int skip_user = geteuid() == 0 || (fstat(fds[0], &theirs) == 0 && stat("/proc/self/ns/user", &ours) == 0 &&
                                       theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev);
    int own_pid = fstat(fds[4], &theirs) == 0 && stat("/proc/self/ns/pid_for_children", &ours) == 0 &&
                  theirs.st_ino != ours.st_ino;
    for (int i = skip_user; i < 4 + own_pid; i++)
        if (setns(fds[i], order[i].flag) < 0) return fail("cannot join the namespace", order[i].name);
    for (int i = 0; i < 5; i++) close(fds[i]);
    if (own_pid) fork_in();
    /* Rootless, as the Python starter: no program gains privileges through exec (setuid, file
     * capabilities) beyond what the user has. */
    if (!skip_user && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail("cannot set no_new_privs", NULL);
    if (deny_tty_injection() < 0) return fail("cannot install the terminal filter", NULL);
    if (chdir(argv[1]) < 0) return fail("cannot change directory to", argv[1]);
    unsigned uid, gid;
    if (strcmp(argv[2], "-") != 0) {
        if (sscanf(argv[2], "%u:%u", &uid, &gid) != 2) return errno = EINVAL, fail("bad ids", argv[2]);
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) return fail("cannot take the ids", argv[2]);
    }
    if (own_pid && (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != 0)) /* 0: the relay, outside */
        return FAILED;
    execv(program[0], program);
    int missing = errno == ENOENT || errno == ENOTDIR;
    fprintf(stderr, "venvroot: cannot run '%s' inside the environment: %s\n", program[0], strerror(errno));
    return missing ? 127 : 126;
}
