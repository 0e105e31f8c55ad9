/* sim-report.h - what each device of the ride recorded, read from its store after the
 * ride, with names put to the anonymous IDs from the fake radio's ground-truth log. */
#pragma once

#include "sim-world.h"

G_BEGIN_DECLS

/* RPI (32 lower-case hex digits) -> name of the device that sent it, from fake-bluez's
 * truth log (every report carries the service data it was sent with). */
GHashTable *sim_truth_load(const char *truth_path, GError **error);

/* Prints the report of every device (all lines of a device when `all_peers`, else its
 * eight closest). Fails when a store cannot be read; *plausible is FALSE when the
 * recording misses what it must hold (the beacon did not hear every passenger, or a
 * passenger heard nobody). */
gboolean sim_report_ride(SimWorld *world, const SimRide *ride, GHashTable *truth,
                         gboolean all_peers, gboolean *plausible, GError **error);

G_END_DECLS
