/* The start file's replay (replay.c): its steps, the freshness check, K's build of the namespaces. */
#ifndef VENVROOT_REPLAY_H
#define VENVROOT_REPLAY_H

#include "steps.h"

extern struct step *steps;
extern int nsteps;
extern const char *state_dir, *hidden_dir;

/* Read the start file `path` into steps, nsteps. */
int load(const char *path);
/* Whether nothing the steps were made from has changed (and state_dir, hidden_dir set). */
int fresh(void);
/* Build the namespaces and move into the root; then write the marker. */
int build(const char *token);

#endif
