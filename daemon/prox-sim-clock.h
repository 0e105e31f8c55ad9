/* prox-sim-clock.h - the simulated-clock contract shared by proxd, the fake BlueZ radio world
 * and the demo: every process of a simulated world derives "now" from the wall clock and one
 * environment variable, so they agree without talking to each other.
 *
 *   PROX_SIM_CLOCK="<real_unix_start>:<sim_unix_start>:<speed>"
 *   sim_now = sim_unix_start + (real_unix_now - real_unix_start) * speed
 *
 * Times are decimal seconds (fractions allowed), speed is a positive decimal. Unset means the
 * identity clock (sim time = real time). Daemons use it for timestamps and turn simulated
 * delays into real timer delays with prox_sim_clock_real_ms(). Pure GLib, no GObject: any
 * program of the tree can compile it in.
 */
#pragma once

#include <glib.h>

#define PROX_SIM_CLOCK_ENV "PROX_SIM_CLOCK"

typedef struct {
    gint64 real_start_us; /* wall-clock (unix) microseconds at which sim_start_us applies */
    gint64 sim_start_us;  /* simulated unix microseconds at real_start_us */
    double speed;         /* simulated seconds per real second */
} ProxSimClock;

/* The identity clock anchored at the current wall-clock time. */
void prox_sim_clock_init_real(ProxSimClock *clock);

/* Parses "<real_unix_start>:<sim_unix_start>:<speed>". */
gboolean prox_sim_clock_parse(const char *spec, ProxSimClock *clock, GError **error);

/* From $PROX_SIM_CLOCK, or the identity clock when it is unset or empty. */
gboolean prox_sim_clock_init_from_env(ProxSimClock *clock, GError **error);

/* The spec string for this clock, suitable for PROX_SIM_CLOCK. */
char *prox_sim_clock_format(const ProxSimClock *clock);

/* Simulated time at a given wall-clock time, and now, in unix microseconds. */
gint64 prox_sim_clock_at_us(const ProxSimClock *clock, gint64 real_us);
gint64 prox_sim_clock_now_us(const ProxSimClock *clock);

/* Simulated unix seconds now (for logs and JSON). */
double prox_sim_clock_now(const ProxSimClock *clock);

/* Real milliseconds a timer must wait for sim_us simulated microseconds to pass
 * (at least 1 for any positive duration, saturating at G_MAXUINT). */
guint prox_sim_clock_real_ms(const ProxSimClock *clock, gint64 sim_us);
