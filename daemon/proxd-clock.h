/* proxd-clock.h - the daemon's one source of time.
 *
 * Wall clock normally; when PROX_SIM_CLOCK is set (prox-sim-clock.h) it follows the
 * simulated world's clock, and every timer of the daemon (RPI rotation, scan duty cycle,
 * commits) runs in simulated time too, so a simulation can run days in minutes.
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

#define PROXD_TYPE_CLOCK (proxd_clock_get_type())
G_DECLARE_FINAL_TYPE(ProxdClock, proxd_clock, PROXD, CLOCK, GObject)

/* From $PROX_SIM_CLOCK (wall clock when unset); fails on a malformed value. */
ProxdClock *proxd_clock_new(GError **error);

gboolean proxd_clock_is_simulated(ProxdClock *self);
/* Simulated speed (1.0 for the wall clock). */
double proxd_clock_get_speed(ProxdClock *self);

/* Now, unix microseconds / seconds (floor). */
gint64 proxd_clock_now_us(ProxdClock *self);
gint64 proxd_clock_now(ProxdClock *self);

typedef void (*ProxdClockFunc)(gpointer user_data);

/* Calls `func` once, from the thread-default main context, when the clock reaches
 * `when_us` (unix microseconds in this clock's time). Returns a GSource id for
 * g_source_remove() / g_clear_handle_id(). If the wall clock is set forwards or back
 * meanwhile, the timer still fires when the clock (not a duration) says so. */
guint proxd_clock_call_at(ProxdClock *self, gint64 when_us, ProxdClockFunc func,
                          gpointer user_data);
/* Same, `delay_us` of this clock's time from now. */
guint proxd_clock_call_after(ProxdClock *self, gint64 delay_us, ProxdClockFunc func,
                             gpointer user_data);

G_END_DECLS
