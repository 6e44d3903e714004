/* die_of(): end this process of the signal its program died of, so that its caller (a shell)
 * sees the same death. Shared by the ns starter (starter.c) and the docker agent (agent_run.c). */
#ifndef VENVROOT_DIEOF_H
#define VENVROOT_DIEOF_H
#include <signal.h>
#include <unistd.h>

static void die_of(int s) {
    signal(s, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, s);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    kill(getpid(), s);
}
#endif
