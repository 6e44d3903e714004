/* The docker agent inside the container (agent --serve): see agent.c. */
#include "agent_msg.h"
#include "agent_serve.h"
#include "../ns/ttyfilter.h" /* deny_tty_injection(): the same filter as the ns backend's */

/* The request: u32 length, then u32 argc, u32 envc, u16 rows, u16 cols, then cwd, argv and env as
 * NUL-terminated strings. rows == 0: no terminal. */
struct conn {
    int fd, fds[3], nfds;
    uint32_t need, got;
    char *buf;
    pid_t pid; /* the program, once started; its process group has the same id */
};

static struct conn conns[MAX_CONNS];
static int nconns, listen_fd;
static const char *env_dir;
static uid_t owner, uid;
static gid_t gid, groups[64];
static int ngroups;

static void drop(struct conn *c) {
    if (c->pid > 0) kill(-c->pid, SIGKILL); /* its caller is gone: so is the program */
    for (int i = 0; i < c->nfds; i++) close(c->fds[i]);
    close(c->fd);
    free(c->buf);
    *c = conns[--nconns];
}

/* In the child: set up and exec, or say why not on the program's stderr and exit like sh would. */
static void child(char *cwd, char **argv, char **envp, int master, int slave, int fds[3]) {
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < 32; s++) signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    for (int i = 0; i < 3; i++) {
        int fd = fds[i];
        if (slave >= 0 && isatty(fd)) fd = slave; /* the caller's terminal: ours instead */
        if (dup2(fd, i) < 0) _exit(126);
    }
    if (slave >= 0) {
        close(master);
        ioctl(0, TIOCSCTTY, 0);
        tcsetpgrp(0, getpid());
    }
    if (setgroups(ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        dprintf(2, "venvroot: cannot take the ids %u:%u: %s\n", uid, gid, strerror(errno));
        _exit(126);
    }
    /* Without CAP_SYS_ADMIN (dropped by Docker) a filter needs no_new_privs. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || deny_tty_injection() < 0) {
        dprintf(2, "venvroot: cannot install the terminal filter: %s\n", strerror(errno));
        _exit(126);
    }
    if (chdir(cwd) < 0) {
        dprintf(2, "venvroot: cannot enter %s inside the environment %s; cd into a mapped directory "
                   "(the project, or the host under /r)\n", cwd, env_dir);
        _exit(1);
    }
    const char *path = "";
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
    char found[4096] = "", denied[4096] = "";
    struct stat st;
    if (strchr(argv[0], '/')) {
        snprintf(found, sizeof found, "%s", argv[0]);
    } else {
        for (const char *d = path;; d++) { /* execvp's search: the first executable file wins */
            const char *end = strchrnul(d, ':');
            char cand[4096];
            snprintf(cand, sizeof cand, "%.*s%s%s", (int)(end - d), end == d ? "." : d, "/", argv[0]);
            if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access(cand, X_OK) == 0) {
                    snprintf(found, sizeof found, "%s", cand);
                    break;
                }
                if (!denied[0]) snprintf(denied, sizeof denied, "%s", cand);
            }
            if (!*end) break;
            d = end;
        }
        if (!found[0]) snprintf(found, sizeof found, "%s", denied);
    }
    if (!found[0] || stat(found, &st) < 0) {
        dprintf(2, "venvroot: %s: command not found in %s\n", argv[0], env_dir);
        _exit(127);
    }
    execve(found, argv, envp);
    if (errno == ENOENT) {
        dprintf(2, "venvroot: %s: command not found in %s\n", argv[0], env_dir);
        _exit(127);
    }
    dprintf(2, "venvroot: %s: permission denied: not an executable file (in %s)\n", argv[0], env_dir);
    _exit(126);
}

/* The whole request is in: check it and start the program. */
static int start(struct conn *c) {
    const char *why = NULL;
    uint32_t argc, envc;
    uint16_t rows, cols;
    char *p = c->buf + 12, *end = c->buf + c->need;
    if (c->need < 12 || c->nfds != 3) return send_error(c->fd, "malformed request: fds 0, 1, 2 must come with it"), -1;
    memcpy(&argc, c->buf, 4);
    memcpy(&envc, c->buf + 4, 4);
    memcpy(&rows, c->buf + 8, 2);
    memcpy(&cols, c->buf + 10, 2);
    if (argc == 0 || argc > MAX_REQUEST / 2 || envc > MAX_REQUEST / 2) return send_error(c->fd, "malformed request: bad counts"), -1;
    char **strs = calloc((size_t)argc + envc + 3, sizeof *strs);
    if (!strs) return send_error(c->fd, "out of memory"), -1;
    for (uint32_t i = 0; i < 1 + argc + envc; i++) {
        char *z = memchr(p, 0, end - p);
        if (!z) { why = "malformed request: truncated strings"; break; }
        strs[i + (i > argc ? 1 : 0)] = p; /* cwd, argv..., NULL, env..., NULL */
        p = z + 1;
    }
    if (!why && p != end) why = "malformed request: trailing bytes";
    if (!why && strs[0][0] != '/') why = "malformed request: the directory is not absolute";
    if (why) return free(strs), send_error(c->fd, why), -1;
    int master = -1, slave = -1;
    if (rows) {
        struct winsize ws = {.ws_row = rows, .ws_col = cols};
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
            (slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
            if (master >= 0) close(master);
            return free(strs), send_error(c->fd, "cannot make a pseudo-terminal in the container"), -1;
        }
        ioctl(slave, TIOCSWINSZ, &ws);
    }
    pid_t pid = fork();
    if (pid == 0) child(strs[0], strs + 1, strs + 2 + argc, master, slave, c->fds);
    free(strs);
    if (slave >= 0) close(slave);
    if (pid < 0) {
        if (master >= 0) close(master);
        return send_error(c->fd, "cannot fork"), -1;
    }
    c->pid = pid;
    for (int i = 0; i < 3; i++) close(c->fds[i]);
    c->nfds = 0;
    free(c->buf);
    c->buf = NULL;
    int r = send_msg(c->fd, MSG_STARTED, pid, master);
    if (master >= 0) close(master);
    return r;
}

/* Data (or fds) arrived on a connection. -1: drop it. */
static int readable(struct conn *c) {
    char chunk[65536];
    union { char buf[CMSG_SPACE(sizeof(int) * 8)]; struct cmsghdr align; } u;
    struct iovec iov = {chunk, sizeof chunk};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    if (c->pid > 0) { /* started: only signals come now */
        struct msg m;
        ssize_t n = recv(c->fd, &m, sizeof m, 0);
        int signum = m.value & 0xff; /* GROUP: to the program's process group, as a terminal does */
        if (n == sizeof m && m.type == MSG_SIGNAL && signum > 0 && signum < 65) {
            if (kill(m.value & GROUP ? -c->pid : c->pid, signum) < 0 && errno == ESRCH) kill(c->pid, signum);
            return 0;
        }
        return n < 0 && errno == EINTR ? 0 : -1;
    }
    ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
        int k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (int i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
            if (c->nfds < 3) c->fds[c->nfds++] = fd;
            else close(fd), c->nfds = 4; /* too many: malformed */
        }
    }
    if (n == 0) {
        if (c->need || c->got) send_error(c->fd, "truncated request");
        return -1;
    }
    if (c->nfds > 3) return send_error(c->fd, "malformed request: more than three fds"), -1;
    size_t off = 0;
    while (off < (size_t)n) {
        if (!c->buf) { /* the length prefix, possibly split */
            c->need |= (uint32_t)(unsigned char)chunk[off] << (8 * c->got);
            off++;
            if (++c->got < 4) continue;
            if (c->need == 0 || c->need > MAX_REQUEST) return send_error(c->fd, "malformed request: bad length"), -1;
            c->buf = malloc(c->need);
            if (!c->buf) return send_error(c->fd, "out of memory"), -1;
            c->got = 0;
            continue;
        }
        size_t take = n - off < c->need - c->got ? n - off : c->need - c->got;
        memcpy(c->buf + c->got, chunk + off, take);
        c->got += take, off += take;
        if (c->got == c->need) {
            if (off != (size_t)n) return send_error(c->fd, "malformed request: bytes after the request"), -1;
            return start(c);
        }
    }
    return 0;
}

static void reap(void) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED)) > 0)
        for (int i = 0; i < nconns; i++) {
            if (conns[i].pid != pid) continue;
            if (WIFSTOPPED(status)) {
                send_msg(conns[i].fd, MSG_STOPPED, WSTOPSIG(status), -1);
                break;
            }
            send_msg(conns[i].fd, MSG_STATUS, status, -1);
            conns[i].pid = 0; /* ended: nothing to kill when the caller goes */
            drop(&conns[i]);
            break;
        }
}

static void refuse(int fd) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && (cred.uid == owner || cred.uid == 0)) {
        if (nconns < MAX_CONNS) {
            conns[nconns++] = (struct conn){.fd = fd, .pid = 0};
            return;
        }
        send_error(fd, "too many callers");
    } else {
        send_error(fd, "connection refused: this environment belongs to another user");
    }
    close(fd);
}

/* Idle long enough, no activated shell, nobody holding the env's lock: time to go. */
static int may_end(int lock_fd) {
    DIR *d = opendir("sessions"); /* a pid file per activated shell */
    struct dirent *e;
    int shells = 0;
    while (d && (e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') shells++;
    if (d) closedir(d);
    if (shells) return 0;
    return lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) == 0;
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

int serve(char **argv) {
    env_dir = argv[0];
    owner = (uid_t)strtoul(argv[1], NULL, 10);
    uid = (uid_t)strtoul(argv[2], NULL, 10);
    gid = (gid_t)strtoul(argv[3], NULL, 10);
    for (char *g = argv[4]; *g && ngroups < 64;) {
        groups[ngroups++] = (gid_t)strtoul(g, &g, 10);
        if (*g == ',') g++;
        else break;
    }
    int linger = atoi(argv[5]);
    if (access("/bin/sh", X_OK) < 0) { /* as the keeper would: the backend runs its hooks with it */
        fprintf(stderr, "venvroot agent: the image has no /bin/sh, which venvroot's docker backend needs\n");
        return 127;
    }
    char state[4096];
    snprintf(state, sizeof state, "%s/.venvroot/docker", env_dir);
    if (chdir(state) < 0) return perror(state), 1;
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) return perror("pipe"), 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = SOCK};
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(SOCK);
    umask(077);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        chown(SOCK, owner, (gid_t)-1) < 0 || chmod(SOCK, 0600) < 0 || listen(listen_fd, 64) < 0) {
        /* e.g. a file system without sockets: keep the container up as the keeper would; shims
         * find no agent and say so before they take the Engine API path. */
        perror("venvroot agent: cannot listen on " SOCK);
        unlink(SOCK);
        for (char c = 0; c != SIGTERM && c != SIGINT;) {
            struct pollfd p = {sig_pipe[0], POLLIN, 0};
            if (poll(&p, 1, -1) > 0 && read(sig_pipe[0], &c, 1) == 1 && c == SIGCHLD) reap();
        }
        return 0;
    }
    int lock_fd = open("lock", O_RDONLY | O_CLOEXEC);
    long long idle_since = now_ms();
    for (;;) {
        struct pollfd p[MAX_CONNS + 2];
        p[0] = (struct pollfd){listen_fd, POLLIN, 0};
        p[1] = (struct pollfd){sig_pipe[0], POLLIN, 0};
        for (int i = 0; i < nconns; i++) p[i + 2] = (struct pollfd){conns[i].fd, POLLIN, 0};
        int n = nconns, ready = poll(p, n + 2, 1000);
        if (ready < 0 && errno != EINTR) return perror("poll"), 1;
        if (p[1].revents) {
            char sigs[64];
            ssize_t k = read(sig_pipe[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < k; i++)
                if (sigs[i] == SIGTERM || sigs[i] == SIGINT) {
                    unlink(SOCK);
                    return 0;
                }
            reap();
        }
        /* Connections by fd: reap() and drop() reorder the table. */
        for (int i = 0; i < n; i++) {
            if (!p[i + 2].revents) continue;
            for (int j = 0; j < nconns; j++)
                if (conns[j].fd == p[i + 2].fd) {
                    if (readable(&conns[j]) < 0) drop(&conns[j]);
                    break;
                }
        }
        if (p[0].revents & POLLIN) {
            int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) refuse(fd);
        }
        if (nconns) {
            idle_since = now_ms();
        } else if (linger > 0 && now_ms() - idle_since >= linger * 1000LL) {
            if (may_end(lock_fd)) {
                unlink(SOCK); /* callers from now on start the container again */
                return 0;
            }
            idle_since = now_ms();
        }
    }
}
