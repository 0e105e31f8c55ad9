/* prox-store.c - placeholder until the module lands. */
#include "prox-types.h"
