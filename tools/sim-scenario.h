/* sim-scenario.h - prox-sim's bus ride: who sits where, who boards and leaves when, and
 * the fake-bluez scenario file (tests/fake-bluez/README.md) that plays it out.
 *
 * The bus stays at the origin of the fake's 2-D world (only distances matter to the
 * radio); passengers wait far away (out of radio range) until their stop, walk in through
 * the front door, sit down, and walk out again at their stop.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SIM_PASSENGERS_MIN 4
#define SIM_PASSENGERS_MAX 40
#define SIM_PASSENGERS_DEFAULT 10

/* Radio model of the ride (written into the scenario): RSSI at 1 m and the path-loss
 * exponent, also used to turn a recorded RSSI back into a rough distance. */
#define SIM_TX_POWER_DBM (-59)
#define SIM_PATH_LOSS_EXPONENT 3.0

typedef enum {
    SIM_DEVICE_BEACON,
    SIM_DEVICE_F0,    /* the passenger who will test positive */
    SIM_DEVICE_CLOSE, /* sits within 2 m of F0 for most of the ride: must be alerted */
    SIM_DEVICE_FAR,   /* never within 4 m of F0: must not be alerted */
    SIM_DEVICE_OTHER, /* in between, or not on board long: shown, not checked */
} SimDeviceClass;

typedef struct {
    char *name;
    guint adapter; /* hci<adapter> */
    gboolean beacon;
    char *seat; /* "1A".., "front" for the beacon */
    double x, y;
    guint board_stop; /* index into SimRide.stops */
    guint leave_stop;
    SimDeviceClass klass;
    double distance_to_f0;  /* metres, seat to seat */
    gint64 minutes_with_f0; /* on board together */
} SimDevice;

typedef struct {
    const char *name;
    gint64 t; /* seconds since the scenario epoch when the bus stands at the stop */
} SimStop;

typedef struct {
    gint64 epoch; /* simulated unix seconds of scenario time 0 */
    SimStop *stops;
    guint n_stops;
    gint64 end;         /* scenario time when the ride (and the simulation) ends */
    GPtrArray *devices; /* SimDevice; [0] is the bus beacon */
    guint f0;           /* index of the F0 passenger in devices */
} SimRide;

/* Lays out a ride with `passengers` passengers (SIM_PASSENGERS_MIN..MAX); `seed` chooses
 * the stops of passengers beyond the first ten. */
SimRide *sim_ride_new(guint passengers, guint32 seed);
void sim_ride_free(SimRide *ride);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SimRide, sim_ride_free)

SimDevice *sim_ride_device(const SimRide *ride, guint i);
/* The device called `name`, or NULL. */
SimDevice *sim_ride_device_by_name(const SimRide *ride, const char *name);

/* The scenario JSON for fake-bluez. */
char *sim_ride_scenario_json(const SimRide *ride);

/* "HH:MM" of simulated unix time t (UTC, the bus's clock). */
char *sim_format_clock(gint64 t);

/* Rough distance in metres of an RSSI under the ride's radio model. */
double sim_rssi_to_distance(int rssi);

const char *sim_device_class_label(SimDeviceClass klass);

G_END_DECLS
