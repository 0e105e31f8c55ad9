/* sim-ending.h - the demo's ending: the day after the ride, lan tests positive. The
 * health authority issues a one-time code (prox-authority); every device's proxd runs again
 * that morning on its store (a new private bus, the world's clock restarted at 09:00, no
 * radio). A restaurant has a QR poster (prox-authority venue register); lan and two riders
 * check in there (CheckIn, EditCheckIn: the evening of the ride, one rider 15 minutes with
 * lan, one 5). lan's proxd previews and reports her keys of the ride day and her check-in
 * with the code to prox-keyserver on loopback (PreviewReport, Report over D-Bus, as proxctl
 * report does); the authority publishes a signed key list; every proxd syncs it (Sync over
 * D-Bus, file://, SyncProgress followed): ExposureDetected for close contacts,
 * VenueExposureDetected for the 15-minute visitor. Then the bus operator traces the list
 * against the beacon's store (prox-tool beacon trace), the authority imports the warning
 * and publishes again, every proxd syncs: VenueExposureDetected "same-vehicle" for the
 * riders who were aboard with lan, also those too far to hear her phone. */
#pragma once

#include "sim-world.h"

G_BEGIN_DECLS

/* Runs the ending on the stores of the ride: the ride's daemons, fake-bluez and bus have
 * exited (sim_world_stop_daemons(), sim_world_stop_radio()); the ending starts a bus and the
 * daemons again and stops them before it returns. Fails when a step fails; *passed is FALSE
 * when an outcome is not the expected one: the close passengers at high risk with an
 * ExposureDetected, the far ones and lan without; the 15-minute visitor with a venue
 * exposure, the 5-minute one and everyone else without; one traced window while lan was
 * aboard; a same-vehicle exposure for every rider aboard with her 15 minutes or more; one
 * signal per stored exposure. prox-tool is found beside prox-authority, or PROX_SIM_TOOL. */
gboolean sim_ending_run(SimWorld *world, const SimRide *ride, gboolean *passed, GError **error);

G_END_DECLS
