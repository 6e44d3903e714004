/* What starter.c and shim.c share: the step files' reader, error reports, the join, the shim. */
#ifndef VENVROOT_SHIM_H
#define VENVROOT_SHIM_H

enum { OK = 0, FAILED = 1, STALE = 3 };

struct step {
    const char *name;
    int argc;
    char **argv;
};

/* NUL-terminated tokens: `header`, then steps NAME COUNT ARG... (COUNT decimal). */
int load_steps(const char *path, const char *header, struct step **out, int *count);
int fail(const char *what, const char *detail);
/* Whether the holder in `record` is alive (its marker in its root); its pid in *pid_out. */
int live_at(const char *record, const char *hidden, int *pid_out);
/* --join PID DIR IDS [--again SHIM] PROGRAM [ARG...]: returns only when it failed. */
int join(char **argv);

/* What every compiled shim, ENV/bin/NAME, links to: the env's copy of this program (shim.c). */
#define SHIM_NAME ".venvroot-shim"
int is_shim(void);
int shim(int argc, char **argv);

#endif
