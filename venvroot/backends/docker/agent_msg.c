/* The docker agent's wire format helpers and signal pipe, shared by --serve and --run: see agent.c. */
#include "agent_msg.h"

int sig_pipe[2];

int send_msg(int fd, int type, int value, int pass_fd) {
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
void send_error(int fd, const char *text) {
    size_t n = strlen(text);
    if (send_msg(fd, MSG_ERROR, (int)n, -1) == 0) (void)!send(fd, text, n, MSG_NOSIGNAL);
}

void on_signal(int signum) {
    int saved = errno;
    char c = (char)signum;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}
