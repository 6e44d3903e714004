/* The compiled shim (shim.c), which the starter's main hands a run through ENV/bin/NAME. */
#ifndef VENVROOT_SHIM_H
#define VENVROOT_SHIM_H

/* What every compiled shim, ENV/bin/NAME, links to: the env's copy of this program (shim.c). */
#define SHIM_NAME ".venvroot-shim"
int is_shim(void);
int shim(int argc, char **argv);

#endif
