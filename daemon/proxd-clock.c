/* proxd-clock.c - wall or simulated clock, and timers that fire at a time of that clock. */
#define G_LOG_DOMAIN "proxd-clock"

#include "proxd-clock.h"

#include "prox-sim-clock.h"

/* A timer never sleeps longer than this in real time before re-reading the clock: GLib's
 * timers run on CLOCK_MONOTONIC, which stands still during suspend and ignores wall-clock
 * steps, while our deadlines are wall-clock (or simulated) times. */
#define MAX_REAL_WAIT_MS (300 * 1000)

struct _ProxdClock {
    GObject parent_instance;
    ProxSimClock sim;
    gboolean simulated;
};

G_DEFINE_TYPE(ProxdClock, proxd_clock, G_TYPE_OBJECT)

static void proxd_clock_class_init(ProxdClockClass *klass)
{
}

static void proxd_clock_init(ProxdClock *self)
{
    prox_sim_clock_init_real(&self->sim);
}

ProxdClock *proxd_clock_new(GError **error)
{
    g_autoptr(ProxdClock) self = g_object_new(PROXD_TYPE_CLOCK, NULL);
    const char *spec = g_getenv(PROX_SIM_CLOCK_ENV);

    if (!prox_sim_clock_init_from_env(&self->sim, error))
        return NULL;
    self->simulated = spec != NULL && spec[0] != '\0';
    if (self->simulated) {
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(proxd_clock_now(self));
        g_autofree char *when = g_date_time_format_iso8601(dt);
        g_message("simulated clock: %s, %g times real time", when, self->sim.speed);
    }
    return g_steal_pointer(&self);
}

gboolean proxd_clock_is_simulated(ProxdClock *self)
{
    g_return_val_if_fail(PROXD_IS_CLOCK(self), FALSE);
    return self->simulated;
}

double proxd_clock_get_speed(ProxdClock *self)
{
    g_return_val_if_fail(PROXD_IS_CLOCK(self), 1.0);
    return self->sim.speed;
}

gint64 proxd_clock_now_us(ProxdClock *self)
{
    g_return_val_if_fail(PROXD_IS_CLOCK(self), 0);
    return self->simulated ? prox_sim_clock_now_us(&self->sim) : g_get_real_time();
}

gint64 proxd_clock_now(ProxdClock *self)
{
    gint64 us = proxd_clock_now_us(self);
    gint64 s = us / G_USEC_PER_SEC;
    if (us < 0 && s * G_USEC_PER_SEC != us)
        s--;
    return s;
}

/* ---- timer source ---- */

typedef struct {
    GSource source;
    ProxdClock *clock; /* strong ref */
    gint64 when_us;
} ClockSource;

static void clock_source_arm(ClockSource *cs)
{
    gint64 remaining = cs->when_us - proxd_clock_now_us(cs->clock);
    guint ms = remaining > 0 ? prox_sim_clock_real_ms(&cs->clock->sim, remaining) : 0;
    if (ms > MAX_REAL_WAIT_MS)
        ms = MAX_REAL_WAIT_MS;
    g_source_set_ready_time(&cs->source, g_get_monotonic_time() + (gint64)ms * 1000);
}

static gboolean clock_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
    ClockSource *cs = (ClockSource *)source;

    if (proxd_clock_now_us(cs->clock) < cs->when_us) {
        /* Woke early (wall clock stepped back, or the real-time cap): wait the rest. */
        clock_source_arm(cs);
        return G_SOURCE_CONTINUE;
    }
    if (callback != NULL) {
        ProxdClockFunc func = (ProxdClockFunc)(void (*)(void))callback;
        func(user_data);
    }
    return G_SOURCE_REMOVE;
}

static void clock_source_finalize(GSource *source)
{
    ClockSource *cs = (ClockSource *)source;
    g_clear_object(&cs->clock);
}

static GSourceFuncs clock_source_funcs = {
    .dispatch = clock_source_dispatch,
    .finalize = clock_source_finalize,
};

guint proxd_clock_call_at(ProxdClock *self, gint64 when_us, ProxdClockFunc func, gpointer user_data)
{
    g_return_val_if_fail(PROXD_IS_CLOCK(self), 0);
    g_return_val_if_fail(func != NULL, 0);

    GSource *source = g_source_new(&clock_source_funcs, sizeof(ClockSource));
    ClockSource *cs = (ClockSource *)source;
    cs->clock = g_object_ref(self);
    cs->when_us = when_us;
    g_source_set_static_name(source, "proxd-clock-timer");
    g_source_set_callback(source, (GSourceFunc)(void (*)(void))func, user_data, NULL);
    clock_source_arm(cs);
    guint id = g_source_attach(source, g_main_context_get_thread_default());
    g_source_unref(source);
    return id;
}

guint proxd_clock_call_after(ProxdClock *self, gint64 delay_us, ProxdClockFunc func,
                             gpointer user_data)
{
    return proxd_clock_call_at(self, proxd_clock_now_us(self) + MAX(delay_us, 0), func, user_data);
}
