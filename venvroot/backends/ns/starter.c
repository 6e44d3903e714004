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
 * K anchors the namespaces: it is what the record names, and what shims join (--join). It
 * ends when the brain closes the pipe it waits on (or is killed by `venvroot` stopping the env).
 * The brain is K's parent, so K is reaped the moment it ends.
 *
 * The start file: NUL-terminated tokens; each step is NAME COUNT ARG... (COUNT decimal).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_IN_ROOT_ 0x10
#define AT_RECURSIVE_ 0x8000
#define MOUNT_ATTR_RDONLY_ 0x1

#include "join.h"
#include "shim.h"
#include "steps.h"

struct open_how_ {
    uint64_t flags, mode, resolve;
};
struct mount_attr_ {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static struct step *steps;
static int nsteps;
static const char *state_dir, *hidden_dir;

/* -- the start file ---------------------------------------------------------------------------- */

static int load(const char *path) { return load_steps(path, "venvroot-start 1", &steps, &nsteps); }

static int is(const struct step *s, const char *name, int argc) {
    return strcmp(s->name, name) == 0 && s->argc == argc;
}

/* -- is the file still what the Python starter would build? ---------------------------------- */

static int same_file(const char *path, const char *ident) {
    struct stat st;
    char now[96];
    if (lstat(path, &st) < 0) return errno == ENOENT && strcmp(ident, "-") == 0;
    snprintf(now, sizeof now, "%llu:%lld%09ld:%lld", (unsigned long long)st.st_ino, (long long)st.st_mtim.tv_sec,
             st.st_mtim.tv_nsec, (long long)st.st_size);
    return strcmp(now, ident) == 0;
}

static int under(const char *path, const struct step *trees) {
    for (int i = 0; trees && i < trees->argc; i++) {
        size_t n = strlen(trees->argv[i]);
        while (n > 1 && trees->argv[i][n - 1] == '/') n--;
        if (strcmp(path, trees->argv[i]) != 0 && strncmp(path, trees->argv[i], n) == 0 &&
            (path[n] == '/' || (n == 1 && trees->argv[i][0] == '/')))
            return 1;
    }
    return 0;
}

/* The host's mount points (as mountinfo escapes them), but those inside trees bound whole. */
static int same_mounts(const struct step *expected, const struct step *trees) {
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    int i = 0, same = 1;
    while (same && getline(&line, &cap, f) > 0) {
        char *point = line;
        for (int field = 0; field < 4 && point; field++) point = strchr(point, ' '), point = point ? point + 1 : NULL;
        if (!point) continue;
        point[strcspn(point, " ")] = '\0';
        if (under(point, trees)) continue;
        same = i < expected->argc && strcmp(point, expected->argv[i]) == 0;
        i++;
    }
    free(line);
    fclose(f);
    return same && i == expected->argc;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "DIR:NAME/NAME..." with the names sorted, as the Python starter wrote it. */
static int same_listing(const char *dir, const char *expected) {
    DIR *d = opendir(dir);
    if (!d) return strlen(expected) == strlen(dir) + 2 && strcmp(expected + strlen(dir), ":?") == 0;
    char **names = NULL;
    size_t n = 0, cap = 0, len = strlen(dir) + 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n == cap && !(names = realloc(names, (cap = cap * 2 + 16) * sizeof *names))) return closedir(d), 0;
        names[n++] = strdup(e->d_name);
        len += strlen(e->d_name) + 1;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    char *got = malloc(len + 1), *p = got;
    p += sprintf(p, "%s:", dir);
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? "/" : "", names[i]);
    int same = strcmp(got, expected) == 0;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(got);
    return same;
}

/* Every step this program carries out or checks (startfile.py): any other one (`pid`, say) is the
 * Python starter's alone, and makes the file one to leave to it. */
static const char *const known[] = {"euid", "state", "hidden", "check", "bound-trees", "host-mounts", "listing",
                                    "needs", "brain", "userns", "idmap", "root-overlay", "root-bind", "together",
                                    "mount", "hostname", "domainname", "file"};

static int known_step(const char *name) {
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i]) == 0) return 1;
    return 0;
}

static int fresh(void) {
    const struct step *trees = NULL;
    for (int i = 0; i < nsteps; i++) {
        const struct step *s = &steps[i];
        if (!known_step(s->name)) return 0;
        if (is(s, "euid", 1) && (uid_t)strtoul(s->argv[0], NULL, 10) != geteuid()) return 0;
        if (is(s, "state", 1)) state_dir = s->argv[0];
        if (is(s, "hidden", 1)) hidden_dir = s->argv[0];
        if (is(s, "check", 2) && !same_file(s->argv[0], s->argv[1])) return 0;
        if (strcmp(s->name, "bound-trees") == 0) trees = s;
        if (strcmp(s->name, "host-mounts") == 0 && !same_mounts(s, trees)) return 0;
        if (is(s, "listing", 2) && !same_listing(s->argv[0], s->argv[1])) return 0;
        for (int j = 0; strcmp(s->name, "needs") == 0 && j < s->argc; j++) /* the brain's interpreter... */
            if (access(s->argv[j], R_OK) < 0) return 0;
    }
    return state_dir && hidden_dir;
}

/* -- K: the namespaces ------------------------------------------------------------------------- */

/* Write `text` to `name` in `dir`; `mode` 0: an existing (proc) file, never created. */
static int write_file(int dir, const char *name, const char *text, int mode) {
    int flags = mode ? O_CREAT | O_TRUNC | O_NOFOLLOW : 0;
    int fd = openat(dir, name, O_WRONLY | O_CLOEXEC | flags, mode);
    if (fd < 0) return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    return close(fd) == 0 && ok ? 0 : -1;
}

static int open_in_root(int root, const char *path) {
    struct open_how_ how = {O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_};
    while (*path == '/') path++;
    return (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof how);
}

static int map_ids(const char *inside_uid, const char *inside_gid, uid_t uid, gid_t gid) {
    char text[64];
    int proc = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
    snprintf(text, sizeof text, "%s %u 1\n", inside_uid, (unsigned)uid);
    if (proc < 0 || write_file(proc, "uid_map", text, 0) < 0) return -1;
    if (write_file(proc, "setgroups", "deny\n", 0) < 0) return -1;
    snprintf(text, sizeof text, "%s %u 1\n", inside_gid, (unsigned)gid);
    int r = write_file(proc, "gid_map", text, 0);
    close(proc);
    return r;
}

/* idmap NEWUIDMAP NEWGIDMAP UIDS GIDS: the user's subordinate ids too. The setuid helpers must run
 * outside the new user namespace, on this process: a helper forked before the unshare runs them
 * when told, as venvroot/ns/idmap.py's Mapper does. UIDS, GIDS: "INSIDE OUTSIDE COUNT ..." */
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

/* newuidmap and newgidmap at once: two setuid programs' starts, on the cold start's path. */
static int run_maps(const struct step *m, pid_t target) {
    pid_t u = spawn_map(m->argv[0], target, m->argv[2]), g = spawn_map(m->argv[1], target, m->argv[3]);
    int uids = map_done(u), gids = map_done(g); /* both waited for, whatever the first did */
    return uids && gids ? 0 : -1;
}

static pid_t start_mapper(const struct step *m, int *tell) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -1;
    pid_t target = getpid(), h = fork();
    if (h == 0) {
        char word;
        close(p[1]);
        _exit(read(p[0], &word, 1) == 1 && run_maps(m, target) == 0 ? OK : FAILED);
    }
    close(p[0]);
    if (h < 0) close(p[1]);
    *tell = p[1];
    return h;
}

/* Tell the helper to map (`go`) or to leave; 0 once it has mapped. */
static int finish_mapper(pid_t h, int tell, int go) {
    int status;
    if (go && write(tell, "m", 1) != 1) go = 0;
    close(tell);
    if (waitpid(h, &status, 0) != h) return -1;
    return go && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : (errno = EPERM, -1);
}

/* mount KIND SOURCE DEST OPTIONS FLAGS; FLAGS: r recursive, o read-only, f a file, ? optional */
static int mount_step(int root, char **a) {
    const char *kind = a[0], *source = a[1], *dest = a[2], *options = a[3], *flags = a[4];
    int optional = strchr(flags, '?') != NULL, recursive = strchr(flags, 'r') != NULL;
    struct stat st;
    int fd = open_in_root(root, dest);
    if (fd < 0) return optional ? 0 : fail("cannot find the mount point", dest);
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    int r;
    if (strcmp(kind, "bind") == 0) {
        if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode) == (strchr(flags, 'f') != NULL))
            return close(fd), errno = ENOTDIR, fail("mount point of the wrong type", dest); /* as sandbox.py */
        r = mount(source, target, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL);
    } else if (strcmp(kind, "overlay") == 0) {
        r = mount("overlay", target, "overlay", 0, options);
    } else if (strcmp(kind, "tmpfs") == 0) {
        r = mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options);
    } else {
        errno = EINVAL;
        r = -1;
    }
    close(fd);
    if (r < 0) return optional && (errno == EPERM || errno == EACCES || errno == ENOENT) ? 0 : fail("cannot mount on", dest);
    if (strchr(flags, 'o')) {
        struct mount_attr_ attr = {MOUNT_ATTR_RDONLY_, 0, 0, 0};
        fd = open_in_root(root, dest); /* the new mount's root now */
        if (fd < 0 || syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE_ : 0), &attr,
                              sizeof attr) < 0)
            return fail("cannot make read-only", dest);
        close(fd);
    }
    return 0;
}

/* A run of overlays none of which holds another: most of an overlay mount is the kernel setting
 * up its filesystem, which runs beside another one (on another CPU, or while that one waits). */
struct run {
    int root;
    const struct step *first;
    int count;
    atomic_int next, failed;
};

static void *drain(void *arg) {
    struct run *r = arg;
    for (int i; !atomic_load(&r->failed) && (i = atomic_fetch_add(&r->next, 1)) < r->count;)
        if (mount_step(r->root, r->first[i].argv)) atomic_store(&r->failed, 1);
    return NULL;
}

static int mount_together(int root, const struct step *first, int count) {
    for (int i = 0; i < count; i++)
        if (!is(&first[i], "mount", 5)) return errno = EINVAL, fail("not a mount in a run of mounts", first[i].name);
    struct run r = {root, first, count, 0, 0};
    pthread_t helpers[3]; /* more threads than CPUs still help: an overlay mount also waits */
    int n = 0;
    while (n < 3 && n < count - 1 && pthread_create(&helpers[n], NULL, drain, &r) == 0) n++;
    drain(&r);
    while (n--) pthread_join(helpers[n], NULL);
    return atomic_load(&r.failed) ? FAILED : OK;
}

/* Build the namespaces and move into the root; then write the marker: K's word is "ok". */
static int build(const char *token) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    const struct step *ids = NULL, *full = NULL;
    for (int i = 0; i < nsteps; i++) {
        if (is(&steps[i], "userns", 2)) ids = &steps[i];
        if (is(&steps[i], "idmap", 4)) full = &steps[i];
    }
    int tell = -1;
    pid_t mapper = full ? start_mapper(full, &tell) : 0;
    if (mapper < 0) return fail("cannot fork the id mapper", NULL);
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (ids || full ? CLONE_NEWUSER : 0)) < 0) {
        int saved = errno;
        if (full) finish_mapper(mapper, tell, 0);
        return errno = saved, fail("cannot unshare", NULL);
    }
    if (full && finish_mapper(mapper, tell, 1) < 0) return fail("cannot map the subordinate ids", NULL);
    if (ids && map_ids(ids->argv[0], ids->argv[1], uid, gid) < 0) return fail("cannot map the ids", NULL);
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) return fail("cannot make / a slave", NULL);
    int root = -1;
    for (int i = 0; i < nsteps; i++) {
        const struct step *s = &steps[i];
        if (is(s, "root-overlay", 2) && mount("overlay", s->argv[0], "overlay", 0, s->argv[1]) < 0)
            return fail("cannot mount the root overlay on", s->argv[0]);
        if (is(s, "root-bind", 1) && mount(s->argv[0], s->argv[0], NULL, MS_BIND | MS_REC, NULL) < 0)
            return fail("cannot bind the root", s->argv[0]);
        if ((is(s, "root-overlay", 2) || is(s, "root-bind", 1)) &&
            (root = open(s->argv[0], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
            return fail("cannot open the root", s->argv[0]);
        if ((is(s, "mount", 5) || is(s, "together", 1)) && root < 0)
            return errno = EINVAL, fail("a mount before the root", NULL);
        if (is(s, "mount", 5) && mount_step(root, s->argv)) return FAILED;
        if (is(s, "together", 1)) { /* the next COUNT steps: mounts to make on several threads */
            int count = atoi(s->argv[0]);
            if (count < 1 || i + count >= nsteps || mount_together(root, s + 1, count)) return FAILED;
            i += count;
        }
        if (is(s, "hostname", 1) && sethostname(s->argv[0], strlen(s->argv[0])) < 0)
            return fail("cannot set the hostname", s->argv[0]);
        if (is(s, "domainname", 1) && setdomainname(s->argv[0], strlen(s->argv[0])) < 0)
            return fail("cannot set the domain name", s->argv[0]);
    }
    if (root < 0 || fchdir(root) < 0) return errno = EINVAL, fail("no root", NULL);
    if (syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return fail("cannot pivot_root", NULL);
    int hidden = open(hidden_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (hidden < 0) return fail("cannot open", hidden_dir);
    for (int i = 0; i < nsteps; i++)
        if (is(&steps[i], "file", 2) && write_file(hidden, steps[i].argv[0], steps[i].argv[1], 0644) < 0)
            return fail("cannot write", steps[i].argv[0]);
    char marker[64];
    snprintf(marker, sizeof marker, "live-%s", token);
    if (write_file(hidden, marker, "", 0644) < 0) return fail("cannot write the marker", marker);
    close(hidden);
    close(root);
    return OK;
}

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
