/* What starter.c, join.c and shim.c share (steps.c): the step files' reader, error reports, the live check. */
#ifndef VENVROOT_STEPS_H
#define VENVROOT_STEPS_H

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

#endif
