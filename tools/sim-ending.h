/* sim-ending.h - the demo's ending: the day after the ride, lan tests positive. The
 * health authority issues a one-time code (prox-authority); every device's proxd runs again
 * that morning on its store (a new private bus, the world's clock restarted at 09:00, no
 * radio); lan's proxd previews and reports her keys of the ride day with the code to
 * prox-keyserver on loopback (PreviewReport, Report over D-Bus, as proxctl report does); the
 * authority publishes a signed key list; every proxd syncs it (Sync over D-Bus, file://,
 * SyncProgress followed) and runs exposure detection; ExposureDetected is what alerts. */
#pragma once

#include "sim-world.h"

G_BEGIN_DECLS

/* Runs the ending on the stores of the ride: the ride's daemons, fake-bluez and bus have
 * exited (sim_world_stop_daemons(), sim_world_stop_radio()); the ending starts a bus and the
 * daemons again and stops them before it returns. Fails when a step fails; *passed is FALSE
 * when the alerts are not the expected ones (the close passengers at high risk with an
 * ExposureDetected, the far ones and lan without). */
gboolean sim_ending_run(SimWorld *world, const SimRide *ride, gboolean *passed, GError **error);

G_END_DECLS
