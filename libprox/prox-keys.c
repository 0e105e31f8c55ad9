/* prox-keys.c - placeholder until the module lands. */
#include "prox-types.h"
