/* The start file's replay (the compiled twin of replay.py): whether it is still fresh, and K's build. */
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

#include "replay.h"
#include "steps.h"
#include "userns.h"

struct open_how_ {
    uint64_t flags, mode, resolve;
};
struct mount_attr_ {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

struct step *steps;
int nsteps;
const char *state_dir, *hidden_dir;

/* -- the start file ---------------------------------------------------------------------------- */

int load(const char *path) { return load_steps(path, "venvroot-start 1", &steps, &nsteps); }

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

int fresh(void) {
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
int build(const char *token) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    const struct step *ids = NULL, *full = NULL;
    for (int i = 0; i < nsteps; i++) {
        if (is(&steps[i], "userns", 2)) ids = &steps[i];
        if (is(&steps[i], "idmap", 6)) full = &steps[i];
    }
    if (full && enter_mapped(full) < 0) return fail("cannot map the subordinate ids", NULL);
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (ids ? CLONE_NEWUSER : 0)) < 0)
        return fail("cannot unshare", NULL);
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
