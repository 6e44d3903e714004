/* The docker agent's caller, a shim on the host (agent --run): see agent.c. */
#include "agent_msg.h"
#include "agent_run.h"
#include "../ns/dieof.h"

/* The caller's handler: a signal the kernel sent (a terminal's INT, QUIT, TSTP) goes to the
 * program's process group, as the terminal would have; one from kill(2), to the program alone. */
static void on_caller_signal(int signum, siginfo_t *info, void *context) {
    (void)context;
    int saved = errno;
    unsigned char c[2] = {(unsigned char)signum, info->si_code == SI_KERNEL};
    (void)!write(sig_pipe[1], c, 2);
    errno = saved;
}

static int conn_fd = -1, tty_master = -1, forwarded[65];
static struct termios saved_tty;
static int raw_tty;

static void set_raw(int on) {
    if (!raw_tty) return;
    if (!on) {
        tcsetattr(0, TCSADRAIN, &saved_tty);
        return;
    }
    struct termios raw = saved_tty;
    cfmakeraw(&raw);
    tcsetattr(0, TCSADRAIN, &raw);
}

static void copy_size(void) {
    struct winsize ws;
    if (tty_master >= 0 && ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(tty_master, TIOCSWINSZ, &ws);
}

static void forward(int signum, int group) {
    if (signum == SIGWINCH && tty_master >= 0) return copy_size();
    if (signum == SIGTSTP) { /* stop the program, then ourselves; SIGCONT resumes both */
        send_msg(conn_fd, MSG_SIGNAL, SIGSTOP | GROUP, -1);
        set_raw(0);
        kill(getpid(), SIGSTOP);
        set_raw(1);
        copy_size();
        signum = SIGCONT, group = 1;
    }
    if (signum != SIGCONT && signum != SIGWINCH) forwarded[signum] = 1;
    send_msg(conn_fd, MSG_SIGNAL, signum | (group ? GROUP : 0), -1);
}

/* Map the host cwd through the deepest mapping holding it, else /r<cwd> (venvroot.backends.inside.map_cwd). */
static void map_cwd(const char *cwd, int nmaps, char **maps, char *out, size_t size) {
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < nmaps; i++) {
        const char *host = maps[2 * i];
        size_t len = strlen(host);
        while (len > 1 && host[len - 1] == '/') len--;
        int holds = strcmp(cwd, host) == 0 || (strncmp(cwd, host, len) == 0 && (cwd[len] == '/' || (len == 1 && host[0] == '/')));
        if (holds && (best < 0 || strlen(host) >= best_len)) best = i, best_len = strlen(host);
    }
    if (best < 0 || strcmp(maps[2 * best], "/") == 0) {
        snprintf(out, size, "/r%s", strcmp(cwd, "/") ? cwd : "");
        return;
    }
    const char *rest = cwd + strlen(maps[2 * best]), *inside = maps[2 * best + 1];
    size_t ilen = strlen(inside);
    while (*rest && ilen > 1 && inside[ilen - 1] == '/') ilen--;
    snprintf(out, size, "%.*s%s", (int)ilen, inside, rest);
}

struct buf { char *p; size_t len, cap; };

static void put(struct buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(70);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_var(struct buf *b, uint32_t *envc, const char *key, const char *value) {
    put(b, key, strlen(key));
    put(b, "=", 1);
    put(b, value, strlen(value) + 1);
    ++*envc;
}

static int dropped(const char *var) {
    static const char *names[] = {"PATH", "HOSTNAME", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONHOME",
                                  "PWD", "USER", "LOGNAME", "HOME", NULL};
    for (const char **n = names; *n; n++) {
        size_t k = strlen(*n);
        if (strncmp(var, *n, k) == 0 && var[k] == '=') return 1;
    }
    return 0;
}

static int final_try; /* --run-final: the Python path's own hand-over, nothing to fall back on */

static int fallback(char **argv, char **program, const char *why) {
    if (final_try) {
        fprintf(stderr, "venvroot: the agent in the container of %s does not answer (%s)\n", argv[2], why);
        return 1;
    }
    int n = 0;
    while (program[n]) n++;
    char **args = calloc(n + 6, sizeof *args);
    args[0] = argv[0], args[1] = "-I", args[2] = "-S", args[3] = argv[1], args[4] = argv[2];
    memcpy(args + 5, program, (n + 1) * sizeof *args);
    execv(argv[0], args);
    fprintf(stderr, "venvroot: cannot run %s: %s\n", argv[0], strerror(errno));
    return 1;
}

/* After e.g. `pip install`, give the env's new programs shims (`venvroot sync`), as run.py does. */
static void sync_shims(const char *python, const char *entry, const char *state, const char *env) {
    char path[4200], text[64] = "", now[64];
    struct stat st;
    snprintf(path, sizeof path, "%s/bin", state);
    if (stat(path, &st) < 0) return;
    snprintf(now, sizeof now, "%lld", (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
    snprintf(path, sizeof path, "%s/bin.synced", state);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) n--;
    if (n < 0 || (text[n] = 0, strcmp(text, now) == 0)) return;
    pid_t pid = fork();
    if (pid == 0) {
        char root[4096]; /* ENTRY is ROOT/venvroot/cli/shimentry.py */
        snprintf(root, sizeof root, "%s", entry);
        for (int up = 0; up < 3; up++) *strrchr(root, '/') = 0;
        const char *old = getenv("PYTHONPATH");
        char pythonpath[8192];
        snprintf(pythonpath, sizeof pythonpath, "%s%s%s", root, old && *old ? ":" : "", old && *old ? old : "");
        setenv("PYTHONPATH", pythonpath, 1);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0), dup2(null, 1);
        execl(python, python, "-m", "venvroot", "sync", env, (char *)NULL);
        _exit(127);
    }
    if (pid > 0) waitpid(pid, NULL, 0);
}

int run(char **argv, char **environ_, int final) {
    final_try = final;
    const char *env = argv[2], *container = argv[3], *path = argv[4], *login = argv[5], *home = argv[6];
    const char *default_home = argv[7];
    int nmaps = atoi(argv[8]);
    char **maps = argv + 9, **program = maps + 2 * nmaps;
    char cwd[4096], inside[8192], state[4096];
    if (!program[0]) return fprintf(stderr, "venvroot agent: no program\n"), 2;
    if (!getcwd(cwd, sizeof cwd)) {
        fprintf(stderr, "venvroot: the current directory does not exist any more; cd to an existing directory and try again\n");
        return 1;
    }
    map_cwd(cwd, nmaps, maps, inside, sizeof inside);
    snprintf(state, sizeof state, "%s/.venvroot/docker", env);
    /* Connect by a relative name: a socket path is limited to 108 bytes, an env's path is not. */
    int here = open(".", O_PATH | O_CLOEXEC);
    struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = SOCK};
    conn_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (conn_fd < 0 || chdir(state) < 0 || connect(conn_fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        const char *why = strerror(errno);
        if (here >= 0) (void)!fchdir(here);
        return fallback(argv, program, why);
    }
    (void)!fchdir(here);
    close(here);

    struct buf b = {0};
    uint32_t head[3] = {0, 0, 0}, argc = 0, envc = 0;
    struct winsize ws = {0};
    raw_tty = isatty(0) && isatty(1) && tcgetattr(0, &saved_tty) == 0;
    if (raw_tty && (ioctl(0, TIOCGWINSZ, &ws) < 0 || !ws.ws_row)) ws.ws_row = 24, ws.ws_col = 80;
    put(&b, head, sizeof head);
    put(&b, inside, strlen(inside) + 1);
    for (char **a = program; *a; a++, argc++) put(&b, *a, strlen(*a) + 1);
    const char *caller_home = NULL;
    for (char **e = environ_; *e; e++) {
        if (strncmp(*e, "HOME=", 5) == 0) caller_home = *e + 5;
        if (!dropped(*e) || (!login[0] && (strncmp(*e, "USER=", 5) == 0 || strncmp(*e, "LOGNAME=", 8) == 0)))
            put(&b, *e, strlen(*e) + 1), envc++;
    }
    put_var(&b, &envc, "PATH", path);
    if (login[0]) {
        put_var(&b, &envc, "USER", login);
        put_var(&b, &envc, "LOGNAME", login);
        put_var(&b, &envc, "HOME", home[0] ? home : "/");
    } else {
        put_var(&b, &envc, "HOME", caller_home ? caller_home : default_home);
    }
    put_var(&b, &envc, "PWD", inside);
    head[0] = argc, head[1] = envc;
    uint16_t size[2] = {raw_tty ? ws.ws_row : 0, raw_tty ? ws.ws_col : 0};
    memcpy(b.p, head, 8);
    memcpy(b.p + 8, size, 4);
    uint32_t len = (uint32_t)b.len;

    int fds[3];
    for (int i = 0; i < 3; i++) /* a closed std fd reads as /dev/null's EOF */
        fds[i] = fcntl(i, F_GETFD) < 0 ? open("/dev/null", O_RDWR | O_CLOEXEC) : i;
    union { char buf[CMSG_SPACE(sizeof fds)]; struct cmsghdr align; } u;
    struct iovec iov[2] = {{&len, sizeof len}, {b.p, b.len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    /* Caught from now on: a signal that comes while the program starts is forwarded once it runs. */
    int sig_fds[2];
    if (pipe2(sig_fds, O_CLOEXEC | O_NONBLOCK) < 0) return perror("pipe"), 1;
    sig_pipe[1] = sig_fds[1];
    static const int caught[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGTSTP};
    struct sigaction sa = {.sa_sigaction = on_caller_signal, .sa_flags = SA_RESTART | SA_SIGINFO};
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++) sigaction(caught[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ssize_t sent = sendmsg(conn_fd, &mh, MSG_NOSIGNAL);
    if (sent > 0 && (size_t)sent < sizeof len + b.len) { /* the rest, without fds */
        size_t done = sent;
        while (done < sizeof len + b.len) {
            const char *from = done < sizeof len ? (char *)&len + done : b.p + (done - sizeof len);
            size_t left = done < sizeof len ? sizeof len - done : b.len - (done - sizeof len);
            ssize_t k = send(conn_fd, from, left, MSG_NOSIGNAL);
            if (k <= 0) { sent = -1; break; }
            done += k;
        }
    }
    if (sent < 0) return fallback(argv, program, strerror(errno));

    /* The first answer: started (with the terminal's master when asked), or an error. */
    struct msg m;
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } v;
    struct iovec mi = {&m, sizeof m};
    struct msghdr mr = {.msg_iov = &mi, .msg_iovlen = 1, .msg_control = v.buf, .msg_controllen = sizeof v.buf};
    ssize_t got;
    while ((got = recvmsg(conn_fd, &mr, MSG_CMSG_CLOEXEC | MSG_WAITALL)) < 0 && errno == EINTR) {}
    if (got != sizeof m) return fallback(argv, program, "the connection closed before the program started");
    if (m.type == MSG_ERROR) {
        char text[512] = "";
        ssize_t k = recv(conn_fd, text, m.value < 511 ? m.value : 511, MSG_WAITALL);
        fprintf(stderr, "venvroot: the agent refused the request: %.*s\n", k > 0 ? (int)k : 0, text);
        return 1;
    }
    struct cmsghdr *h = CMSG_FIRSTHDR(&mr);
    if (h && h->cmsg_type == SCM_RIGHTS) memcpy(&tty_master, CMSG_DATA(h), sizeof(int));

    if (tty_master >= 0) set_raw(1);
    int in_open = tty_master >= 0, out_open = tty_master >= 0, status = -1;
    char data[65536];
    while (status < 0) {
        struct pollfd p[3] = {{conn_fd, POLLIN, 0}, {sig_fds[0], POLLIN, 0}, {-1, POLLIN, 0}};
        struct pollfd *q = &p[2];
        if (out_open) q->fd = tty_master;
        struct pollfd pin = {in_open ? 0 : -1, POLLIN, 0};
        struct pollfd all[4] = {p[0], p[1], p[2], pin};
        if (poll(all, 4, -1) < 0 && errno != EINTR) break;
        if (all[1].revents) {
            unsigned char sigs[64];
            ssize_t k = read(sig_fds[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i + 1 < k; i += 2) forward(sigs[i], sigs[i + 1]);
        }
        if (all[3].revents) {
            ssize_t k = read(0, data, sizeof data);
            if (k <= 0) in_open = 0;
            else for (ssize_t o = 0; o < k;) {
                ssize_t w = write(tty_master, data + o, k - o);
                if (w <= 0) break;
                o += w;
            }
        }
        if (all[2].revents) {
            ssize_t k = read(tty_master, data, sizeof data);
            if (k <= 0) out_open = 0; /* EIO: every holder of the terminal is gone */
            else for (ssize_t o = 0; o < k;) {
                ssize_t w = write(1, data + o, k - o);
                if (w <= 0) break;
                o += w;
            }
        }
        if (all[0].revents) {
            ssize_t k = recv(conn_fd, &m, sizeof m, MSG_WAITALL);
            if (k != sizeof m) {
                set_raw(0);
                fprintf(stderr, "venvroot: the container %s was stopped or removed while %s ran in it; the next call "
                                "starts it again\n", container, program[0]);
                return 137;
            }
            if (m.type == MSG_STATUS) status = m.value;
            else if (m.type == MSG_STOPPED && tty_master >= 0) { /* stopped on its terminal: so do we */
                set_raw(0);
                kill(getpid(), SIGSTOP);
                set_raw(1);
                copy_size();
                send_msg(conn_fd, MSG_SIGNAL, SIGCONT | GROUP, -1);
            }
        }
    }
    while (out_open) { /* what the program wrote last */
        struct pollfd p = {tty_master, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) break;
        ssize_t k = read(tty_master, data, sizeof data);
        if (k <= 0 || write(1, data, k) != k) break;
    }
    set_raw(0);
    if (strchr(argv[1], '/') && strchr(argv[0], '/')) sync_shims(argv[0], argv[1], state, env);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        int s = WTERMSIG(status);
        if (s < 65 && forwarded[s]) die_of(s); /* it died of what we forwarded: so do we */
        return 128 + s;
    }
    return 1;
}
