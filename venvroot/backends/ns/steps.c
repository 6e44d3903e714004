/* The step files' reader (the start file, shim.cfg), error reports and the live check: what the starter and the shim share. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steps.h"

int fail(const char *what, const char *detail) {
    fprintf(stderr, "venvroot: %s%s%s: %s\n", what, detail ? " " : "", detail ? detail : "",
            strerror(errno));
    return FAILED;
}

/* Read the steps of `path` (whose first token must be `header`) into `*out`, `*count`. */
int load_steps(const char *path, const char *header, struct step **out, int *count) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return STALE;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 24)) return close(fd), STALE;
    char *buf = malloc(st.st_size + 1);
    ssize_t got = 0;
    while (buf && got < st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n <= 0) break;
        got += n;
    }
    close(fd);
    if (!buf || got != st.st_size || buf[got - 1] != '\0') return STALE;
    size_t ntok = 0;
    for (off_t i = 0; i < got; i++) ntok += buf[i] == '\0';
    char **tok = malloc(ntok * sizeof *tok);
    struct step *found = malloc(ntok * sizeof *found);
    if (!tok || !found) return STALE;
    size_t t = 0;
    int n = 0;
    for (char *p = buf; p < buf + got; p += strlen(p) + 1) tok[t++] = p;
    if (t < 1 || strcmp(tok[0], header) != 0) return STALE;
    for (size_t i = 1; i < t;) {
        if (i + 1 >= t) return STALE;
        char *end;
        long argc = strtol(tok[i + 1], &end, 10);
        if (*end || argc < 0 || i + 2 + argc > t) return STALE;
        found[n++] = (struct step){tok[i], (int)argc, tok + i + 2};
        i += 2 + argc;
    }
    *out = found;
    *count = n;
    return OK;
}

/* Whether the holder recorded in `record` is alive: its marker is in its root (never a reused pid's). */
int live_at(const char *record, const char *hidden, int *pid_out) {
    char text[96], path[PATH_MAX], token[64];
    int fd = open(record, O_RDONLY | O_CLOEXEC), pid;
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    if (sscanf(text, "%d %63s", &pid, token) != 2 || pid <= 0) return 0;
    if (snprintf(path, sizeof path, "/proc/%d/root%s/live-%s", pid, hidden, token) >= (int)sizeof path) return 0;
    if (pid_out) *pid_out = pid;
    return access(path, F_OK) == 0;
}
