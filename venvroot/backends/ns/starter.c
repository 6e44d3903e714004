/* venvroot's compiled starter: starts an ns environment's namespaces without starting Python.
 *
 *     starter START_FILE
 *     starter --join PID DIR IDS [--again SHIM] PROGRAM [ARG...]
 *     ENV/bin/NAME [ARG...]      (a link to ENV/bin/.venvroot-shim, a copy of this: the compiled shim, shim.c)
 *
 * A shim whose environment is not running would otherwise start Python just to build the
 * namespaces, which alone costs more than a whole bubblewrap run. The Python starter
 * (coldstart.py) writes down what it builds, as a list of steps (startfile.py) that it carries
 * out itself as well (replay.py); this program replays that list when nothing it depends on has
 * changed, and exits non-zero, having changed nothing, whenever it cannot: the shim then takes
 * the Python path, which says what is wrong.
 *
 * Processes:
 *
 *     starter ─ B (setsid) ─ K: unshare, mount, pivot_root, marker; then only waits
 *        │       └── once K has built and the first program has ended (or run 50 ms), execs
 *        │           the brain (Python, outside the namespaces): lingering, activated shells,
 *        │           hooks; ends K when the env may end
 *        └── waits for K's word, records K as the env's holder under the env's lock, exits
 *
 * Rootless with subordinate ids, K first joins the user namespace its user's keeper holds, or maps
 * one and leaves its keeper for the next starts (userns.c): no setuid helper on most cold starts.
 *
 * K anchors the namespaces: it is what the record names, and what shims join (--join). It
 * ends when the brain closes the pipe it waits on (or is killed by `venvroot` stopping the env).
 * The brain is K's parent, so K is reaped the moment it ends.
 *
 * The start file: NUL-terminated tokens; each step is NAME COUNT ARG... (COUNT decimal).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#include "join.h"
#include "replay.h"
#include "shim.h"
#include "steps.h"

static void default_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
}

/* K: say who it is on `word`, build, say "ok" (and end `settled`), then wait until the brain
 * lets go (`anchor`). */
static void anchor(int word, int settled, int anchor, const char *token) {
    default_signals();
    char text[32];
    int n = snprintf(text, sizeof text, "K %d\n", (int)getpid());
    if (write(word, text, n) != n || build(token) != OK || write(word, "ok\n", 3) != 3) _exit(FAILED);
    close(settled);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; fd++) dup2(null >= 0 ? null : anchor, fd);
    if (anchor != 3) dup2(anchor, 3);
    close_from(4);
    for (;;) { /* until the brain lets go: end of file */
        ssize_t got = read(3, text, sizeof text);
        if (got == 0 || (got < 0 && errno != EINTR)) _exit(OK);
    }
}

/* How long the brain's start waits for the first program to end: a Python start takes the CPU the
 * program needs (on two CPUs, a third of a cold `true`), and nothing the brain does is due sooner. */
#define BRAIN_DELAY_MS 50

/* B: fork K, then become the brain (Python), K's parent, once K has built (the brain's start
 * would otherwise take the CPU the build needs) and the first program (`user`, the starter's
 * caller: the shim, which runs it) has ended or run BRAIN_DELAY_MS. */
static void brain(int word, int anchor_r, int anchor_w, const char *token, pid_t user) {
    int settled[2];
    if (pipe2(settled, O_CLOEXEC) < 0) _exit(FAILED);
    pid_t k = fork();
    if (k == 0) {
        close(anchor_w);
        close(settled[0]);
        anchor(word, settled[1], anchor_r, token);
    }
    close(word);
    close(anchor_r);
    close(settled[1]);
    char byte;
    while (read(settled[0], &byte, 1) < 0 && errno == EINTR) continue;
    if (k < 0 || waitpid(k, NULL, WNOHANG) != 0) _exit(FAILED); /* K failed: nothing to watch */
    const struct step *b = NULL;
    for (int i = 0; i < nsteps; i++)
        if (strcmp(steps[i].name, "brain") == 0) b = &steps[i];
    if (k < 0 || !b || b->argc < 1) _exit(FAILED);
    char pid[16], fd[16];
    snprintf(pid, sizeof pid, "%d", (int)k);
    snprintf(fd, sizeof fd, "%d", 3);
    char **argv = calloc(b->argc + 4, sizeof *argv);
    memcpy(argv, b->argv, b->argc * sizeof *argv);
    argv[b->argc] = pid;
    argv[b->argc + 1] = (char *)token;
    argv[b->argc + 2] = fd;
    int dir = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int log = dir < 0 ? -1 : openat(dir, "holder.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(null, 0);
    dup2(log >= 0 ? log : null, 1);
    dup2(log >= 0 ? log : null, 2);
    dup2(anchor_w, 3);
    close_from(4);
    default_signals();
    signal(SIGHUP, SIG_IGN);
    if (chdir("/") < 0) _exit(FAILED); /* the caller's directory may be removed meanwhile */
    int first = user > 1 ? (int)syscall(SYS_pidfd_open, user, 0) : -1;
    if (first >= 0) { /* readable once it has ended */
        struct pollfd p = {first, POLLIN, 0};
        while (poll(&p, 1, BRAIN_DELAY_MS) < 0 && errno == EINTR) continue;
        close(first);
    }
    execv(argv[0], argv);
    _exit(127); /* K sees the pipe close and ends: the namespaces end with the program */
}

/* -- the starter ------------------------------------------------------------------------------- */

/* Wait until the process `pid` (not a child) has ended, its namespaces and mounts with it. */
static void gone(pid_t pid) {
    int fd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (fd < 0) return; /* no such process: gone already */
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 5000) < 0 && errno == EINTR) continue;
    close(fd);
}

static int live(const char *record) { return live_at(record, hidden_dir, NULL); }

/* Write "PID TOKEN" to `record` atomically (through `tmp`). */
static int put_record(const char *tmp, const char *record, int pid, const char *token) {
    char text[96];
    int n = snprintf(text, sizeof text, "%d %s\n", pid, token);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (write(fd, text, n) != n) return close(fd), -1;
    if (close(fd) < 0) return -1;
    return rename(tmp, record);
}

int main(int argc, char **argv) {
    if (is_shim()) return shim(argc, argv);
    if (argc >= 6 && strcmp(argv[1], "--join") == 0) return join(argv + 2);
    if (argc != 2) return fprintf(stderr, "usage: starter START_FILE | --join PID DIR IDS [--again SHIM] PROGRAM [ARG...]\n"), FAILED;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    while (null >= 0 && null < 3) null = open("/dev/null", O_RDWR | O_CLOEXEC); /* no pipe of ours on 0-2 */
    close(null);
    if (load(argv[1]) != OK || !fresh()) return STALE;
    char lock[4096], record[4096], tmp[4096];
    snprintf(lock, sizeof lock, "%s/lock", state_dir);
    snprintf(record, sizeof record, "%s/holder", state_dir);
    snprintf(tmp, sizeof tmp, "%s/holder.tmp", state_dir);
    int lock_fd = open(lock, O_RDWR | O_CLOEXEC);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX) < 0) return fail("cannot lock", lock);
    if (live(record)) return OK; /* started meanwhile */
    /* A record without its holder: the holder was killed, and its programs may still run with the
     * env's layers mounted. Mounting them again would put two overlays on one upper directory; the
     * Python path adopts or ends them first (survivors.py). */
    if (access(record, F_OK) == 0) return STALE;
    unsigned char raw[8];
    char token[17];
    if (getrandom(raw, sizeof raw, 0) != sizeof raw) return fail("no random token", NULL);
    for (int i = 0; i < 8; i++) sprintf(token + 2 * i, "%02x", raw[i]);
    /* Recorded before anything is mounted (under this starter's pid until K is known): killed
     * from here on, this start leaves a record, so the next start looks for what it mounted. */
    if (put_record(tmp, record, getpid(), token) < 0) return fail("cannot record the start in", record);
    pid_t user = getppid(); /* the shim, which runs the program once this start is done */
    int word[2], hold[2];
    if (pipe2(word, O_CLOEXEC) < 0 || pipe(hold) < 0) return fail("cannot make pipes", NULL);
    pid_t b = fork(); /* never waited for: it outlives this process, an orphan once it exits */
    if (b == 0) {
        close(lock_fd); /* a copy would keep the env locked for as long as K lives */
        close(word[0]);
        setsid(); /* a session of its own: the caller's terminal and its signals are not its */
        brain(word[1], hold[0], hold[1], token, user);
    }
    close(word[1]);
    close(hold[0]);
    close(hold[1]);
    if (b < 0) return fail("cannot fork", NULL);
    char said[64] = "";
    size_t got = 0;
    ssize_t n;
    while (got < sizeof said - 1 && !strstr(said, "ok\n")) {
        if ((n = read(word[0], said + got, sizeof said - 1 - got)) > 0)
            got += n;
        else if (n == 0 || errno != EINTR)
            break; /* K has ended */
    }
    int k = 0;
    if (sscanf(said, "K %d", &k) != 1 || !strstr(said, "ok\n")) {
        gone(k); /* K said why, on stderr; its mounts must be gone before the Python start mounts */
        unlink(record);
        return FAILED;
    }
    if (put_record(tmp, record, k, token) < 0) {
        fail("cannot record the holder in", record);
        kill(k, SIGKILL); /* unrecorded, it would let another start mount the same layers */
        gone(k);
        return FAILED;
    }
    return OK;
}
