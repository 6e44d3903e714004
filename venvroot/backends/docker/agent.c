/* venvroot's docker agent: runs programs in an env's container without the Engine API.
 *
 *     agent --serve ENV_DIR OWNER_UID UID GID GROUPS LINGER        (inside, the container's main process)
 *     agent --run|--run-final PYTHON ENTRY ENV_DIR CONTAINER PATH LOGIN HOME DEFAULT_HOME NMAPS [HOST INSIDE]... PROGRAM [ARG...]
 *
 * --serve listens on ENV_DIR/.venvroot/docker/agent.sock (the state directory is bind-mounted at
 * its own path), mode 0600, owned by OWNER_UID, and accepts connections only from OWNER_UID (or
 * root) by SO_PEERCRED. A request is one length-prefixed record (cwd, argv, environment, tty size)
 * sent with the caller's fds 0, 1, 2 (SCM_RIGHTS). The agent forks; the child starts a session of
 * its own, takes the ids given on the agent's command line (fixed when the container was made,
 * never by a request), installs the terminal filter, enters the cwd and execs the program found on
 * the request's PATH. With a tty size in the request, the program gets a pseudo-terminal of its own
 * (its controlling terminal, its process group the foreground one) whose master goes back to the
 * caller, which relays it to its terminal. The wait status goes back on the connection; when the
 * connection closes first (the caller died, even by SIGKILL) the program's process group is killed.
 * LINGER > 0: the agent (and so the container) ends after LINGER idle seconds with no activated
 * shell and nobody holding the env's lock.
 *
 * --run is the caller (a shim, no Python): it maps the cwd and environment as venvroot.inside does,
 * sends the request, forwards INT TERM HUP QUIT USR1 USR2 WINCH CONT (TSTP: stops the program, then
 * itself) and exits with the status as a shell reports it. When the agent does not answer it execs
 * PYTHON -I -S ENTRY ENV_DIR PROGRAM ARG... (the shim's Python path; --run-final: fails instead).
 * After the program it runs `PYTHON -m venvroot sync ENV_DIR` when the env's bin inside changed.
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
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define SOCK "agent.sock"
#define MAX_REQUEST (8u << 20)
#define MAX_CONNS 256
enum { MSG_STARTED = 1, MSG_STATUS = 2, MSG_ERROR = 3, MSG_STOPPED = 4, MSG_SIGNAL = 5 };

struct msg { int32_t type, value; };
#define GROUP 0x100 /* in a MSG_SIGNAL's value */

static int send_msg(int fd, int type, int value, int pass_fd) {
    struct msg m = {type, value};
    struct iovec iov = {&m, sizeof m};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof u.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == sizeof m ? 0 : -1;
}

/* One connection's error, then it is closed; the agent serves on. */
static void send_error(int fd, const char *text) {
    size_t n = strlen(text);
    if (send_msg(fd, MSG_ERROR, (int)n, -1) == 0) (void)!send(fd, text, n, MSG_NOSIGNAL);
}

/* -- the terminal filter: the same program as venvroot/ns/seccomp.py and the ns starter's ------- */
static int deny_tty_injection(void) {
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

/* ============================== the agent (inside) ============================================== */

/* The request: u32 length, then u32 argc, u32 envc, u16 rows, u16 cols, then cwd, argv and env as
 * NUL-terminated strings. rows == 0: no terminal. */
struct conn {
    int fd, fds[3], nfds;
    uint32_t need, got;
    char *buf;
    pid_t pid; /* the program, once started; its process group has the same id */
};

static struct conn conns[MAX_CONNS];
static int nconns, listen_fd, sig_pipe[2];
static const char *env_dir;
static uid_t owner, uid;
static gid_t gid, groups[64];
static int ngroups;

static void on_signal(int signum) {
    int saved = errno;
    char c = (char)signum;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

/* The caller's handler: a signal the kernel sent (a terminal's INT, QUIT, TSTP) goes to the
 * program's process group, as the terminal would have; one from kill(2), to the program alone. */
static void on_caller_signal(int signum, siginfo_t *info, void *context) {
    (void)context;
    int saved = errno;
    unsigned char c[2] = {(unsigned char)signum, info->si_code == SI_KERNEL};
    (void)!write(sig_pipe[1], c, 2);
    errno = saved;
}

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

static int serve(char **argv) {
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

/* ============================== the caller (a shim) ============================================= */

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

/* Map the host cwd through the deepest mapping holding it, else /r<cwd> (venvroot.inside.map_cwd). */
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
        char root[4096]; /* ENTRY is ROOT/venvroot/shims/entry.py */
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

static int run(char **argv, char **environ_) {
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
        if (s < 65 && forwarded[s]) { /* it died of what we forwarded: so do we */
            signal(s, SIG_DFL);
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, s);
            sigprocmask(SIG_UNBLOCK, &one, NULL);
            kill(getpid(), s);
        }
        return 128 + s;
    }
    return 1;
}

int main(int argc, char **argv, char **envp) {
    if (argc == 8 && strcmp(argv[1], "--serve") == 0) return serve(argv + 2);
    final_try = argc >= 11 && strcmp(argv[1], "--run-final") == 0;
    if (argc >= 12 && (final_try || strcmp(argv[1], "--run") == 0)) return run(argv + 2, envp);
    fprintf(stderr, "usage: agent --serve ENV_DIR OWNER_UID UID GID GROUPS LINGER\n"
                    "       agent --run PYTHON ENTRY ENV_DIR CONTAINER PATH LOGIN HOME DEFAULT_HOME NMAPS [HOST INSIDE]... PROGRAM [ARG...]\n");
    return 2;
}
