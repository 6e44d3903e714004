/* What the docker agent's two halves share (agent_msg.c): the wire format, and helpers. */
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

extern int sig_pipe[2]; /* written by the signal handlers, read by the poll loops */

int send_msg(int fd, int type, int value, int pass_fd);
void send_error(int fd, const char *text);
void on_signal(int signum);
