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
 * --run is the caller (a shim, no Python): it maps the cwd and environment as venvroot.backends.inside does,
 * sends the request, forwards INT TERM HUP QUIT USR1 USR2 WINCH CONT (TSTP: stops the program, then
 * itself) and exits with the status as a shell reports it. When the agent does not answer it execs
 * PYTHON -I -S ENTRY ENV_DIR PROGRAM ARG... (the shim's Python path; --run-final: fails instead).
 * After the program it runs `PYTHON -m venvroot sync ENV_DIR` when the env's bin inside changed.
 *
 * Sources: agent.c (this: main), agent_serve.c (--serve), agent_run.c (--run), agent_msg.c and
 * agent_msg.h (the wire format's helpers, shared by both).
 */
#include <stdio.h>
#include <string.h>

#include "agent_run.h"
#include "agent_serve.h"

int main(int argc, char **argv, char **envp) {
    if (argc == 8 && strcmp(argv[1], "--serve") == 0) return serve(argv + 2);
    int final = argc > 1 && strcmp(argv[1], "--run-final") == 0;
    if (argc >= 12 && (final || strcmp(argv[1], "--run") == 0)) return run(argv + 2, envp, final);
    fprintf(stderr, "usage: agent --serve ENV_DIR OWNER_UID UID GID GROUPS LINGER\n"
                    "       agent --run PYTHON ENTRY ENV_DIR CONTAINER PATH LOGIN HOME DEFAULT_HOME NMAPS [HOST INSIDE]... PROGRAM [ARG...]\n");
    return 2;
}
