/* prox-error.c - the GError domain of libprox. */
#include "prox-types.h"

G_DEFINE_QUARK(prox - error - quark, prox_error)
