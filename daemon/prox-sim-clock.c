/* prox-sim-clock.c - the PROX_SIM_CLOCK contract (see prox-sim-clock.h). */
#define G_LOG_DOMAIN "proxd-clock"

#include "prox-sim-clock.h"

#include <math.h>
#include <stdlib.h>

void prox_sim_clock_init_real(ProxSimClock *clock)
{
    gint64 now = g_get_real_time();

    clock->real_start_us = now;
    clock->sim_start_us = now;
    clock->speed = 1.0;
}

static gboolean parse_seconds(const char *text, gint64 *out_us)
{
    char *end = NULL;
    double v;

    if (*text == '\0')
        return FALSE;
    v = g_ascii_strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(v) || v < 0 || v > 1e11)
        return FALSE;
    *out_us = (gint64)llround(v * G_USEC_PER_SEC);
    return TRUE;
}

gboolean prox_sim_clock_parse(const char *spec, ProxSimClock *clock, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(spec, ":", -1);
    char *end = NULL;
    double speed;

    if (g_strv_length(parts) != 3)
        goto bad;
    if (!parse_seconds(parts[0], &clock->real_start_us) ||
        !parse_seconds(parts[1], &clock->sim_start_us))
        goto bad;
    speed = g_ascii_strtod(parts[2], &end);
    if (end == parts[2] || *end != '\0' || !isfinite(speed) || speed <= 0 || speed > 1e6)
        goto bad;
    clock->speed = speed;
    return TRUE;

bad:
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "%s=\"%s\": expected <real_unix_start>:<sim_unix_start>:<speed>",
                PROX_SIM_CLOCK_ENV, spec);
    return FALSE;
}

gboolean prox_sim_clock_init_from_env(ProxSimClock *clock, GError **error)
{
    const char *spec = g_getenv(PROX_SIM_CLOCK_ENV);

    if (spec == NULL || *spec == '\0') {
        prox_sim_clock_init_real(clock);
        return TRUE;
    }
    return prox_sim_clock_parse(spec, clock, error);
}

char *prox_sim_clock_format(const ProxSimClock *clock)
{
    char speed[G_ASCII_DTOSTR_BUF_SIZE];

    g_ascii_dtostr(speed, sizeof speed, clock->speed);
    return g_strdup_printf(
        "%" G_GINT64_FORMAT ".%06" G_GINT64_FORMAT ":%" G_GINT64_FORMAT ".%06" G_GINT64_FORMAT
        ":%s",
        clock->real_start_us / G_USEC_PER_SEC, clock->real_start_us % G_USEC_PER_SEC,
        clock->sim_start_us / G_USEC_PER_SEC, clock->sim_start_us % G_USEC_PER_SEC, speed);
}

gint64 prox_sim_clock_at_us(const ProxSimClock *clock, gint64 real_us)
{
    double elapsed = (double)(real_us - clock->real_start_us) * clock->speed;

    return clock->sim_start_us + (gint64)llround(elapsed);
}

gint64 prox_sim_clock_now_us(const ProxSimClock *clock)
{
    return prox_sim_clock_at_us(clock, g_get_real_time());
}

double prox_sim_clock_now(const ProxSimClock *clock)
{
    return (double)prox_sim_clock_now_us(clock) / G_USEC_PER_SEC;
}

guint prox_sim_clock_real_ms(const ProxSimClock *clock, gint64 sim_us)
{
    double ms;

    if (sim_us <= 0)
        return 0;
    ms = ceil((double)sim_us / clock->speed / 1000.0);
    if (ms < 1)
        return 1;
    if (ms > (double)G_MAXUINT)
        return G_MAXUINT;
    return (guint)ms;
}
