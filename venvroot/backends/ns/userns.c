/* The user namespace a rootless start enters with subordinate ids: the user's kept one, or a new one.
 *
 * newuidmap and newgidmap are dynamically linked setuid programs: together ~2.5 ms, a quarter of a
 * cold host view's start. The maps depend only on the user and its ids inside, so one namespace per
 * map serves every env's start, as podman's pause process does: a keeper process that only keeps it,
 * named in the file KEEP ("PID\n") and trusted only while its maps are the ones wanted. Each start
 * still makes its own mount, UTS and IPC namespaces in it. The keeper ends once it has been alone in
 * its namespace for IDLE seconds, or at once when the start that made it died before naming it.
 *
 *     idmap NEWUIDMAP NEWGIDMAP UIDS GIDS KEEP IDLE      (KEEP "": nothing kept, a namespace per start)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "join.h"
#include "userns.h"

/* Start `tool PID LINES...`; its pid, or -1. */
static pid_t spawn_map(const char *tool, pid_t target, const char *lines) {
    pid_t p = fork();
    if (p != 0) return p;
    char *argv[40], pid[16], buf[512];
    int n = 0;
    snprintf(pid, sizeof pid, "%d", (int)target);
    snprintf(buf, sizeof buf, "%s", lines);
    argv[n++] = (char *)tool;
    argv[n++] = pid;
    for (char *t = strtok(buf, " "); t && n < 39; t = strtok(NULL, " ")) argv[n++] = t;
    argv[n] = NULL;
    execv(tool, argv);
    _exit(127);
}

static int map_done(pid_t p) {
    int status;
    return p > 0 && waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* newuidmap and newgidmap at once on `target` (they must run outside its namespace). */
static int run_maps(const struct step *m, pid_t target) {
    pid_t u = spawn_map(m->argv[0], target, m->argv[2]), g = spawn_map(m->argv[1], target, m->argv[3]);
    int uids = map_done(u), gids = map_done(g); /* both waited for, whatever the first did */
    return uids && gids ? 0 : -1;
}

/* Whether `name` in the process directory `proc` holds the numbers of `want`, in order. */
static int same_numbers(int proc, const char *name, const char *want) {
    char text[1024];
    int fd = openat(proc, name, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    if (fd >= 0) close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    const char *a = text, *b = want;
    for (char *end;;) {
        unsigned long x = strtoul(a, &end, 10);
        int more_a = end != a;
        a = end;
        unsigned long y = strtoul(b, &end, 10);
        int more_b = end != b;
        b = end;
        if (more_a != more_b || (more_a && x != y)) return 0;
        if (!more_a) return 1;
    }
}

/* The directory that holds KEEP, if it is the user's alone (made when missing); else -1. */
static int keep_dir(const char *keep) {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", keep);
    const char *dir = dirname(copy);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) return -1;
    int fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077))) close(fd), fd = -1;
    return fd;
}

/* Join the namespace the keeper named in KEEP holds, if its maps are the wanted ones; 0 once in. */
static int join_kept(int dir, const char *name, const struct step *m) {
    char text[32], path[48];
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    if (fd >= 0) close(fd);
    if (n <= 0) return -1;
    text[n] = '\0';
    snprintf(path, sizeof path, "/proc/%d", atoi(text));
    /* Pinned: should the keeper end now and its pid be reused, every read below fails (ESRCH). */
    int proc = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) return -1;
    int ns = -1, ok = same_numbers(proc, "uid_map", m->argv[2]) && same_numbers(proc, "gid_map", m->argv[3]);
    if (ok) { /* newgidmap leaves setgroups allowed: a namespace that denies it is not the wanted one */
        fd = openat(proc, "setgroups", O_RDONLY | O_CLOEXEC);
        ok = fd >= 0 && read(fd, text, sizeof text) >= 5 && strncmp(text, "allow", 5) == 0;
        if (fd >= 0) close(fd);
    }
    if (ok) ns = openat(proc, "ns/user", O_RDONLY | O_CLOEXEC);
    close(proc);
    ok = ns >= 0 && setns(ns, CLONE_NEWUSER) == 0;
    if (ns >= 0) close(ns);
    return ok ? 0 : -1;
}

/* Whether a process but this one is in this one's user namespace. */
static int others(const struct stat *own) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    struct stat st;
    char path[288];
    int found = 0, self = getpid();
    while (d && !found && (e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || atoi(e->d_name) == self) continue;
        snprintf(path, sizeof path, "/proc/%s/ns/user", e->d_name);
        found = stat(path, &st) == 0 && st.st_ino == own->st_ino && st.st_dev == own->st_dev;
    }
    if (d) closedir(d);
    return found; /* no /proc to read: alone, so that it ends */
}

/* The keeper: in a new user namespace, tell `up` its pid; once mapped, kept if `go` says so. */
static void keeper(int up, int go, int idle) {
    char text[16];
    int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (setsid() < 0 || chdir("/") < 0 || unshare(CLONE_NEWUSER) < 0 || write(up, text, n) != n) _exit(1);
    close(up);
    char word;
    if (read(go, &word, 1) != 1 || word != 'k') _exit(0); /* the start died, or keeps nothing */
    close(go);
    struct stat own;
    if (stat("/proc/self/ns/user", &own) < 0) _exit(0);
    int tick = idle < 60 ? idle : 60;
    for (int alone = 0; alone < idle;) {
        sleep(tick);
        alone = others(&own) ? 0 : alone + tick;
    }
    _exit(0);
}

/* Make a namespace and its keeper (kept when `dir` >= 0, as `name` in it), map it, join it. */
static int make_kept(int dir, const char *name, const struct step *m, int idle) {
    int up[2], go[2];
    if (pipe2(up, O_CLOEXEC) < 0) return -1;
    if (pipe2(go, O_CLOEXEC) < 0) return close(up[0]), close(up[1]), -1;
    pid_t first = fork();
    if (first == 0) { /* forks the keeper and ends: the keeper is nobody's child here, never a zombie */
        if (fork() != 0) _exit(0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC), a = fcntl(up[1], F_DUPFD, 64),
            b = fcntl(go[0], F_DUPFD, 64);
        for (int fd = 0; fd < 3; fd++) dup2(null, fd);
        dup2(a, 3), dup2(b, 4);
        close_from(5); /* nothing of the start's: its pipes must end when it does */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        keeper(3, 4, idle);
    }
    close(up[1]);
    close(go[0]);
    char text[16] = "";
    ssize_t n = first < 0 ? -1 : read(up[0], text, sizeof text - 1);
    if (first > 0) waitpid(first, NULL, 0);
    close(up[0]);
    int pid = n > 0 ? atoi(text) : 0, ns = -1;
    char path[48];
    if (pid > 0 && run_maps(m, pid) == 0) {
        snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
        ns = open(path, O_RDONLY | O_CLOEXEC);
    }
    int ok = ns >= 0 && setns(ns, CLONE_NEWUSER) == 0;
    if (ns >= 0) close(ns);
    if (ok && dir >= 0) { /* named through a temporary file: a reader never sees half a pid */
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s.tmp", name);
        n = snprintf(text, sizeof text, "%d\n", pid);
        int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        int named = fd >= 0 && write(fd, text, n) == n;
        if (fd >= 0 && close(fd) < 0) named = 0;
        if (named && renameat(dir, tmp, dir, name) == 0 && write(go[1], "k", 1) != 1) unlinkat(dir, name, 0);
    }
    close(go[1]); /* not told to keep it, the keeper ends: the namespace lives on in this process */
    return ok ? 0 : -1;
}

int enter_mapped(const struct step *m) {
    const char *keep = m->argv[4];
    int idle = atoi(m->argv[5]), dir = *keep && idle > 0 ? keep_dir(keep) : -1;
    char name[256];
    snprintf(name, sizeof name, "%s", strrchr(keep, '/') ? strrchr(keep, '/') + 1 : keep);
    if (dir >= 0 && join_kept(dir, name, m) == 0) return close(dir), 0;
    char lock[300];
    snprintf(lock, sizeof lock, "%s.lock", name);
    int held = dir < 0 ? -1 : openat(dir, lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (held >= 0 && flock(held, LOCK_EX) < 0) close(held), held = -1;
    /* Under the lock: a start that made one meanwhile is joined, not doubled. */
    int r = held >= 0 && join_kept(dir, name, m) == 0 ? 0 : make_kept(held >= 0 ? dir : -1, name, m, idle);
    if (held >= 0) close(held);
    if (dir >= 0) close(dir);
    return r;
}
