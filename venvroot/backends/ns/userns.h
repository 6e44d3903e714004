/* The user namespace a rootless start enters with subordinate ids (userns.c). */
#ifndef VENVROOT_USERNS_H
#define VENVROOT_USERNS_H

#include "steps.h"

/* Enter the user namespace of the `idmap` step `m`: the kept one, or a new one, mapped; 0 once in. */
int enter_mapped(const struct step *m);

#endif
