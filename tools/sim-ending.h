/* sim-ending.h - the demo's ending: the day after the ride, lan tests positive. The
 * health authority issues a one-time code (prox-authority), lan's device reports its keys
 * of the ride day with it to prox-keyserver on loopback (daemon/proxd-report), the
 * authority publishes a signed key list, and every device syncs it (file://) and runs
 * exposure detection on its own store (daemon/proxd-sync). */
#pragma once

#include "sim-world.h"

G_BEGIN_DECLS

/* Runs the ending on the stores of the ride (the daemons have exited). Fails when a step
 * fails; *passed is FALSE when the alerts are not the expected ones (the close passengers
 * at high risk, the far ones not, lan not). */
gboolean sim_ending_run(SimWorld *world, const SimRide *ride, gboolean *passed, GError **error);

G_END_DECLS
