/* The compiled shim: what <env>/.venvroot/shim.sh does, without starting a shell.
 *
 *     ENV/bin/NAME -> .venvroot-shim          a shim: a link to the env's copy of this program
 *
 * Run through such a link (the path it was run by, AT_EXECFN, leads by links to one naming
 * .venvroot-shim), this program is the shim for the program NAME of the env ENV: the copy is in
 * ENV/bin so that links work wherever the env is seen (inside the root too), static so that it
 * runs in any root. With the steps the ns backend wrote to ENV/.venvroot/shim.cfg (fastpath.py), it
 * checks that the env's holder is alive (else runs the compiled starter on the start file, as the
 * sh fragment does), maps the physical current directory into the root, finds NAME on the root's
 * PATH, cleans the environment and joins the namespaces (join.c's join). Anything else goes to
 * Python exactly as the sh fragment would (automatic-snapshot rules, no holder and no compiled
 * start, a directory or program not found inside, an env that is not where shim.cfg says). Without
 * shim.cfg (inside the root, where a tmpfs covers ENV/.venvroot) it sources ENV/.venvroot/shim.sh,
 * the inside fragment, with /bin/sh, as an sh shim does.
 *
 * shim.cfg, after "venvroot-shim 1": env DIR | auto MARKER | holder RECORD | hidden DIR |
 * start STARTER FILE | map HOST INSIDE (the deepest first) | search DIR... | unset NAME... |
 * set NAME VALUE | default NAME VALUE (set when unset) | ids IDS | python ARGV... (NAME and the
 * arguments follow) | python-for NAME... (programs always left to Python: rangehint.py's apt
 * and dpkg).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "join.h"
#include "shim.h"
#include "steps.h"

extern char **environ;

static struct step *cfg;
static int ncfg;

static char link_path[PATH_MAX]; /* ENV/bin/NAME, as this program was run by */

/* Whether this program runs as a shim: the links from the path it was run by lead to one that names
 * .venvroot-shim (in its own directory); that one is ENV/bin/NAME. */
int is_shim(void) {
    const char *start = (const char *)getauxval(AT_EXECFN);
    char p[PATH_MAX], target[PATH_MAX];
    if (!start || strlen(start) >= sizeof p) return 0;
    strcpy(p, start);
    for (int hops = 0; hops < 40; hops++) {
        ssize_t n = readlink(p, target, sizeof target - 1);
        if (n < 0) return 0; /* not a link: the starter itself */
        target[n] = '\0';
        if (strcmp(target, SHIM_NAME) == 0) return strcpy(link_path, p), 1;
        char *slash = strrchr(p, '/');
        size_t keep = target[0] == '/' || !slash ? 0 : (size_t)(slash - p + 1);
        if (keep + n >= sizeof p) return 0;
        memcpy(p + keep, target, n + 1);
    }
    return 0;
}

static const struct step *get(const char *name, int argc) {
    for (int i = 0; i < ncfg; i++)
        if (cfg[i].argc == argc && strcmp(cfg[i].name, name) == 0) return &cfg[i];
    return NULL;
}

/* Whether a python-for step names the program (by its last component): Python runs it. */
static int for_python(const char *program) {
    const char *slash = strrchr(program, '/'), *base = slash ? slash + 1 : program;
    for (int i = 0; i < ncfg; i++)
        if (strcmp(cfg[i].name, "python-for") == 0)
            for (int k = 0; k < cfg[i].argc; k++)
                if (strcmp(cfg[i].argv[k], base) == 0) return 1;
    return 0;
}

static char env_dir[PATH_MAX];
static const char *name; /* the program: the link's name */

/* What an sh shim runs, without a shim.cfg: ENV/.venvroot/shim.sh with /bin/sh (inside the root,
 * the fragment that runs the root's own NAME; on the host, where the env's shim.cfg is lost, the
 * fragment joins running namespaces, and there is no Python path to say more). */
static int sh(int argc, char **argv) {
    static const char script[] = "_venvroot_program=$1; _vr_fragment=$2; shift 2; . \"$_vr_fragment\"\n"
                                 "echo \"venvroot: cannot run $_venvroot_program: ${_vr_fragment%/*}/shim.cfg is missing "
                                 "(a damaged environment): make it again\" >&2; exit 127";
    char fragment[PATH_MAX + 32];
    snprintf(fragment, sizeof fragment, "%s/.venvroot/shim.sh", env_dir);
    char **a = calloc(argc + 6, sizeof *a);
    if (!a) return fail("cannot run", "/bin/sh"), 127;
    char *head[] = {"sh", "-c", (char *)script, link_path, (char *)name, fragment};
    memcpy(a, head, sizeof head);
    memcpy(a + 6, argv + 1, (argc - 1) * sizeof *a);
    execv("/bin/sh", a);
    return fail("cannot run /bin/sh for", link_path), 127;
}

/* The Python path, as the sh shim ends: python -I -S ENTRY ENV NAME ARG... */
static int python(int argc, char **argv) {
    const struct step *p = NULL;
    for (int i = 0; i < ncfg && !p; i++)
        if (strcmp(cfg[i].name, "python") == 0 && cfg[i].argc > 0) p = &cfg[i];
    if (!p) return sh(argc, argv);
    char **a = calloc(p->argc + argc + 1, sizeof *a);
    if (!a) return sh(argc, argv);
    memcpy(a, p->argv, p->argc * sizeof *a);
    a[p->argc] = (char *)name;
    memcpy(a + p->argc + 1, argv + 1, (argc - 1) * sizeof *a);
    execv(a[0], a);
    return fail("cannot run", a[0]), 127;
}

/* The compiled starter on the start file, its errors silenced: the Python path says what is wrong. */
static int start(void) {
    const struct step *s = get("start", 2);
    if (!s || access(s->argv[1], F_OK) < 0) return 0;
    pid_t child = fork();
    if (child == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) dup2(null, 2);
        execv(s->argv[0], (char *[]){s->argv[0], s->argv[1], NULL});
        _exit(127);
    }
    int status;
    while (child > 0 && waitpid(child, &status, 0) < 0)
        if (errno != EINTR) return 0;
    return child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The physical directory `pwd` as seen inside, as inside.map_cwd maps it. */
static char *inside_dir(const char *pwd) {
    char *out;
    for (int i = 0; i < ncfg; i++) {
        if (cfg[i].argc != 2 || strcmp(cfg[i].name, "map") != 0) continue;
        const char *host = cfg[i].argv[0], *inside = cfg[i].argv[1];
        size_t n = strlen(host), m = strlen(inside);
        if (strcmp(pwd, host) == 0) return strdup(inside);
        if (strncmp(pwd, host, n) == 0 && pwd[n] == '/') {
            while (m > 1 && inside[m - 1] == '/') m--;
            return asprintf(&out, "%.*s%s", (int)m, m == 1 && inside[0] == '/' ? "" : inside, pwd + n) < 0 ? NULL : out;
        }
    }
    return asprintf(&out, "/r%s", strcmp(pwd, "/") == 0 ? "" : pwd) < 0 ? NULL : out;
}

static int dir_inside(int pid, const char *dir, const char *name, char *out, size_t size) {
    struct stat st;
    if (snprintf(out, size, "/proc/%d/root%s%s%s", pid, dir, name ? "/" : "", name ? name : "") >= (int)size) return 0;
    if (stat(out, &st) < 0) return 0;
    return name ? S_ISREG(st.st_mode) && faccessat(AT_FDCWD, out, X_OK, AT_EACCESS) == 0 : S_ISDIR(st.st_mode);
}

/* PROGRAM: a path inside, or the first DIR/PROGRAM of the root's PATH that is an executable file. */
static char *find(int pid, const char *program) {
    char here[PATH_MAX], *out;
    if (strchr(program, '/')) return (char *)program;
    const struct step *s = NULL;
    for (int i = 0; i < ncfg && !s; i++)
        if (strcmp(cfg[i].name, "search") == 0) s = &cfg[i];
    for (int i = 0; s && i < s->argc; i++)
        if (dir_inside(pid, s->argv[i], program, here, sizeof here))
            return asprintf(&out, "%s/%s", s->argv[i], program) < 0 ? NULL : out;
    return NULL;
}

static int named(const char *entry, const char *name) {
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* The program's environment: ours without the unset and set names, then the set and defaults. */
static char **environment(const char *wd) {
    size_t have = 0;
    while (environ[have]) have++;
    char **env = calloc(have + ncfg + 2, sizeof *env), *text;
    size_t n = 0;
    if (!env) return NULL;
    for (size_t e = 0; e < have; e++) {
        int drop = named(environ[e], "PWD");
        for (int i = 0; i < ncfg && !drop; i++) {
            const struct step *s = &cfg[i];
            if (strcmp(s->name, "unset") == 0)
                for (int j = 0; j < s->argc && !drop; j++) drop = named(environ[e], s->argv[j]);
            if (s->argc == 2 && strcmp(s->name, "set") == 0) drop = named(environ[e], s->argv[0]);
        }
        if (!drop) env[n++] = environ[e];
    }
    for (int i = 0; i < ncfg; i++) {
        const struct step *s = &cfg[i];
        int set = strcmp(s->name, "set") == 0, otherwise = strcmp(s->name, "default") == 0;
        if (s->argc != 2 || !(set || (otherwise && !getenv(s->argv[0])))) continue;
        if (asprintf(&text, "%s=%s", s->argv[0], s->argv[1]) < 0) return NULL;
        env[n++] = text;
    }
    if (asprintf(&text, "PWD=%s", wd) < 0) return NULL;
    env[n++] = text;
    return env;
}

/* Whether `a` and `b` are the same directory (the env moved: not where shim.cfg says). */
static int same_dir(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* ENV of ENV/bin/NAME into env_dir: lexically when the path is plain, else through realpath. */
static int env_of(const char *link) {
    const char *slash = strrchr(link, '/');
    if (link[0] == '/' && !strstr(link, "/.") && !strstr(link, "//")) {
        int n = (int)(slash - link); /* ENV/bin */
        while (n > 0 && link[n - 1] != '/') n--;
        return n > 1 && snprintf(env_dir, sizeof env_dir, "%.*s", n - 1, link) < (int)sizeof env_dir;
    }
    char bin[PATH_MAX];
    if (snprintf(bin, sizeof bin, "%.*s", slash ? (int)(slash - link) : 1, slash ? link : ".") >= (int)sizeof bin ||
        !realpath(bin, env_dir))
        return 0;
    char *up = strrchr(env_dir, '/');
    if (!up || up == env_dir) return 0; /* bin/ right under / : no env */
    *up = '\0';
    return 1;
}

/* argv: NAME ARG... (run through ENV/bin/NAME, link_path) */
int shim(int argc, char **argv) {
    char path[PATH_MAX], pwd[PATH_MAX];
    static char *none[] = {NULL, NULL};
    if (argc < 1) argc = 1, argv = none; /* run with no argv[0] at all */
    char *slash = strrchr(link_path, '/');
    name = slash ? slash + 1 : link_path;
    if (!env_of(link_path)) return fail("cannot find the environment of", link_path), 127;
    if (snprintf(path, sizeof path, "%s/.venvroot/shim.cfg", env_dir) >= (int)sizeof path ||
        load_steps(path, "venvroot-shim 1", &cfg, &ncfg) != OK)
        return sh(argc, argv);
    const struct step *auto_rules = get("auto", 1), *record = get("holder", 1), *hidden = get("hidden", 1);
    const struct step *ids = get("ids", 1), *env = get("env", 1);
    if (!record || !hidden || !ids || !env || !same_dir(env->argv[0], env_dir) ||
        (auto_rules && access(auto_rules->argv[0], F_OK) == 0))
        return python(argc, argv); /* automatic snapshots are the Python path's, as a moved env */
    if (for_python(name)) return python(argc, argv);
    int pid = 0;
    if (!live_at(record->argv[0], hidden->argv[0], &pid) && !(start() && live_at(record->argv[0], hidden->argv[0], &pid)))
        return python(argc, argv);
    if (!getcwd(pwd, sizeof pwd) || pwd[0] != '/') return python(argc, argv); /* a deleted one: Python says so */
    char *wd = inside_dir(pwd), *program = find(pid, name), **environment_ = NULL;
    if (!wd || !program || !dir_inside(pid, wd, NULL, path, sizeof path) || !(environment_ = environment(wd)))
        return python(argc, argv);
    char pid_text[16];
    snprintf(pid_text, sizeof pid_text, "%d", pid);
    char **join_argv = calloc(argc + 6, sizeof *join_argv);
    if (!join_argv) return python(argc, argv);
    char *head[] = {pid_text, wd, ids->argv[0], "--again", link_path, program};
    memcpy(join_argv, head, sizeof head);
    memcpy(join_argv + 6, argv + 1, (argc - 1) * sizeof *join_argv);
    environ = environment_;
    return join(join_argv);
}
