/* The join into a running env's namespaces (join.c), for the starter and the compiled shim. */
#ifndef VENVROOT_JOIN_H
#define VENVROOT_JOIN_H

/* --join PID DIR IDS [--again SHIM] PROGRAM [ARG...]: returns only when it failed. */
int join(char **argv);
/* Close every fd from `low` up. */
void close_from(int low);

#endif
