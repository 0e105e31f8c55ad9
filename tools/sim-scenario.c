/* sim-scenario.c - the bus ride's seating plan, timetable and fake-bluez scenario. */
#define G_LOG_DOMAIN "prox-sim"

#include "sim-scenario.h"

#include <json-glib/json-glib.h>
#include <math.h>

/* Monday 2026-03-09 07:00:00 UTC: the morning the ride takes place. */
#define SIM_EPOCH 1773039600

/* Seats: rows 0.8 m apart from 2 m behind the front; A and D by the windows, B and C by
 * the aisle (y across the 2.5 m wide bus). */
#define ROW_PITCH 0.8
#define FIRST_ROW_X 2.0
#define N_ROWS 12
static const double seat_y[4] = {0.4, 0.9, 1.6, 2.1};

/* Passengers wait 2 km to one side of the bus and leave to the other, each 50 m from the
 * next: beyond radio range (about 25 m under this model) of each other and of the bus, and
 * nobody's way in or out passes anyone else's waiting or finishing point, so what is
 * recorded is the ride. */
#define DOOR_X 0.8
#define DOOR_Y 2.5
#define OFFSTAGE 2000.0
#define OFFSTAGE_SPACING 50.0
#define QUEUE_SECONDS 3

static const SimStop stops[] = {
    {"Ben Thanh Market", 180},
    {"Opera House", 480},
    {"Tan Dinh Church", 1080},
    {"Saigon Zoo (terminus)", 1980},
};
/* The simulation ends a minute after the last passenger is off. */
#define SIM_END_AFTER_LAST_OFF 60

/* The first ten passengers are placed by hand so the demo tells its story: lan (F0) with
 * three people close by for the whole ride, one close by who gets off early, one a couple
 * of rows away, and four at the back. */
typedef struct {
    const char *name;
    guint row; /* 1-based */
    guint col; /* 0..3 = A..D */
    guint board, leave;
} Placement;

static const Placement placements[] = {
    {"lan", 1, 0, 0, 3},  {"minh", 1, 1, 0, 3}, {"hoa", 2, 0, 0, 3},  {"tuan", 1, 3, 1, 3},
    {"mai", 4, 1, 1, 3},  {"khoa", 2, 3, 1, 2}, {"linh", 7, 2, 1, 2}, {"nam", 11, 0, 0, 3},
    {"thu", 11, 3, 0, 3}, {"bao", 12, 1, 1, 3},
};

#define CLOSE_METRES 2.0
#define CLOSE_MINUTES 20
#define FAR_METRES 4.0

static void device_free(SimDevice *d)
{
    g_free(d->name);
    g_free(d->seat);
    g_free(d);
}

static SimDevice *add_passenger(SimRide *ride, const char *name, guint row, guint col, guint board,
                                guint leave)
{
    SimDevice *d = g_new0(SimDevice, 1);
    d->name = g_strdup(name);
    d->adapter = ride->devices->len;
    d->seat = g_strdup_printf("%u%c", row, 'A' + col);
    d->x = FIRST_ROW_X + ROW_PITCH * (row - 1);
    d->y = seat_y[col];
    d->board_stop = board;
    d->leave_stop = leave;
    g_ptr_array_add(ride->devices, d);
    return d;
}

SimRide *sim_ride_new(guint passengers, guint32 seed)
{
    g_return_val_if_fail(passengers >= SIM_PASSENGERS_MIN && passengers <= SIM_PASSENGERS_MAX,
                         NULL);
    SimRide *ride = g_new0(SimRide, 1);
    ride->epoch = SIM_EPOCH;
    ride->stops = (SimStop *)stops;
    ride->n_stops = G_N_ELEMENTS(stops);
    ride->end =
        stops[G_N_ELEMENTS(stops) - 1].t + QUEUE_SECONDS * passengers + SIM_END_AFTER_LAST_OFF;
    ride->devices = g_ptr_array_new_with_free_func((GDestroyNotify)device_free);

    SimDevice *bus = g_new0(SimDevice, 1);
    bus->name = g_strdup("bus");
    bus->beacon = TRUE;
    bus->seat = g_strdup("front");
    bus->x = 0.6;
    bus->y = 1.25;
    bus->board_stop = 0;
    bus->leave_stop = ride->n_stops - 1;
    bus->klass = SIM_DEVICE_BEACON;
    g_ptr_array_add(ride->devices, bus);

    gboolean taken[N_ROWS][4] = {{FALSE}};
    for (guint i = 0; i < MIN(passengers, G_N_ELEMENTS(placements)); i++) {
        const Placement *p = &placements[i];
        add_passenger(ride, p->name, p->row, p->col, p->board, p->leave);
        taken[p->row - 1][p->col] = TRUE;
    }
    /* More passengers fill the free seats from the back, boarding at either of the first
     * two stops; one in five gets off early. */
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
    guint extra = 11;
    for (int row = N_ROWS; row >= 1 && ride->devices->len <= passengers; row--) {
        for (guint col = 0; col < 4 && ride->devices->len <= passengers; col++) {
            if (taken[row - 1][col])
                continue;
            g_autofree char *name = g_strdup_printf("p%02u", extra++);
            guint board = g_rand_int_range(rand, 0, 2);
            guint leave = g_rand_int_range(rand, 0, 5) == 0 ? 2 : 3;
            add_passenger(ride, name, row, col, board, leave);
        }
    }

    ride->f0 = 1;
    const SimDevice *f0 = sim_ride_device(ride, ride->f0);
    for (guint i = 1; i < ride->devices->len; i++) {
        SimDevice *d = g_ptr_array_index(ride->devices, i);
        if (i == ride->f0) {
            d->klass = SIM_DEVICE_F0;
            continue;
        }
        d->distance_to_f0 = hypot(d->x - f0->x, d->y - f0->y);
        gint64 from = MAX(stops[d->board_stop].t, stops[f0->board_stop].t);
        gint64 to = MIN(stops[d->leave_stop].t, stops[f0->leave_stop].t);
        d->minutes_with_f0 = to > from ? (to - from) / 60 : 0;
        if (d->distance_to_f0 <= CLOSE_METRES && d->minutes_with_f0 >= CLOSE_MINUTES)
            d->klass = SIM_DEVICE_CLOSE;
        else if (d->distance_to_f0 >= FAR_METRES)
            d->klass = SIM_DEVICE_FAR;
        else
            d->klass = SIM_DEVICE_OTHER;
    }
    return ride;
}

void sim_ride_free(SimRide *ride)
{
    if (ride == NULL)
        return;
    g_ptr_array_free(ride->devices, TRUE);
    g_free(ride);
}

SimDevice *sim_ride_device(const SimRide *ride, guint i)
{
    return g_ptr_array_index(ride->devices, i);
}

SimDevice *sim_ride_device_by_name(const SimRide *ride, const char *name)
{
    for (guint i = 0; i < ride->devices->len; i++) {
        SimDevice *d = g_ptr_array_index(ride->devices, i);
        if (g_strcmp0(d->name, name) == 0)
            return d;
    }
    return NULL;
}

static void add_waypoint(JsonBuilder *b, gint64 t, double x, double y)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "t");
    json_builder_add_int_value(b, t);
    json_builder_set_member_name(b, "x");
    json_builder_add_double_value(b, x);
    json_builder_set_member_name(b, "y");
    json_builder_add_double_value(b, y);
    json_builder_end_object(b);
}

char *sim_ride_scenario_json(const SimRide *ride)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "description");
    json_builder_add_string_value(b, "prox-sim bus-ride: a bus beacon at the front and passengers "
                                     "boarding and leaving at four stops over 30 minutes.");
    json_builder_set_member_name(b, "min_rssi");
    json_builder_add_int_value(b, -100);
    json_builder_set_member_name(b, "advertising_interval_ms");
    json_builder_add_int_value(b, 250);
    json_builder_set_member_name(b, "defaults");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "tx_power");
    json_builder_add_int_value(b, SIM_TX_POWER_DBM);
    /* Bodies in a full bus absorb 2.4 GHz: the signal falls off faster than in free space. */
    json_builder_set_member_name(b, "path_loss_exponent");
    json_builder_add_double_value(b, SIM_PATH_LOSS_EXPONENT);
    json_builder_set_member_name(b, "noise_sigma");
    json_builder_add_double_value(b, 2.0);
    json_builder_end_object(b);

    json_builder_set_member_name(b, "devices");
    json_builder_begin_array(b);
    for (guint i = 0; i < ride->devices->len; i++) {
        const SimDevice *d = g_ptr_array_index(ride->devices, i);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, d->name);
        json_builder_set_member_name(b, "adapter");
        json_builder_add_int_value(b, d->adapter);
        json_builder_set_member_name(b, "role");
        json_builder_add_string_value(b, d->beacon ? "beacon" : "person");
        json_builder_set_member_name(b, "waypoints");
        json_builder_begin_array(b);
        if (d->beacon) {
            add_waypoint(b, 0, d->x, d->y);
        } else {
            /* Waits out of range, walks in through the door, sits, walks out. */
            double offstage_x = OFFSTAGE_SPACING * i;
            /* One at a time through the door, QUEUE_SECONDS apart, as people do. */
            guint board_k = 0, leave_k = 0;
            for (guint j = 1; j < i; j++) {
                const SimDevice *e = g_ptr_array_index(ride->devices, j);
                board_k += e->board_stop == d->board_stop;
                leave_k += e->leave_stop == d->leave_stop;
            }
            gint64 tb = stops[d->board_stop].t + QUEUE_SECONDS * board_k;
            gint64 tl = stops[d->leave_stop].t + QUEUE_SECONDS * leave_k;
            add_waypoint(b, 0, offstage_x, OFFSTAGE);
            add_waypoint(b, tb - 20, offstage_x, OFFSTAGE);
            add_waypoint(b, tb - 4, DOOR_X, DOOR_Y + 3);
            add_waypoint(b, tb, DOOR_X, DOOR_Y);
            add_waypoint(b, tb + 10, d->x, d->y);
            add_waypoint(b, tl, d->x, d->y);
            add_waypoint(b, tl + 10, DOOR_X, DOOR_Y);
            add_waypoint(b, tl + 14, DOOR_X, DOOR_Y + 3);
            add_waypoint(b, tl + 30, offstage_x, -OFFSTAGE);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);

    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    json_generator_set_pretty(gen, TRUE);
    return json_generator_to_data(gen, NULL);
}

char *sim_format_clock(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return dt != NULL ? g_date_time_format(dt, "%H:%M") : g_strdup("??:??");
}

double sim_rssi_to_distance(int rssi)
{
    return pow(10.0, (SIM_TX_POWER_DBM - rssi) / (10.0 * SIM_PATH_LOSS_EXPONENT));
}

const char *sim_device_class_label(SimDeviceClass klass)
{
    switch (klass) {
    case SIM_DEVICE_BEACON:
        return "bus beacon";
    case SIM_DEVICE_F0:
        return "tests positive";
    case SIM_DEVICE_CLOSE:
        return "close to lan";
    case SIM_DEVICE_FAR:
        return "far from lan";
    case SIM_DEVICE_OTHER:
        break;
    }
    return "in between";
}
