/* authority-clock.h - where the health-authority tools get "now" from.
 *
 * The wall clock, or a simulated world's clock when PROX_SIM_CLOCK is set (the contract of
 * daemon/prox-sim-clock.h that proxd and the fake radio world follow too), or a fixed time
 * given with --now (tests).
 */
#pragma once

#include "prox-sim-clock.h"

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    gboolean fixed; /* when TRUE, fixed_now is the time */
    gint64 fixed_now;
    ProxSimClock sim; /* else this (the identity clock without PROX_SIM_CLOCK) */
} AuthorityClock;

/* Parses a --now value: "@UNIXSECONDS" or an ISO 8601 date-time with a zone
 * ("2020-05-20T10:00:00Z"). */
gboolean authority_clock_parse_time(const char *text, gint64 *out, GError **error);

/* A fixed clock for a --now value, else the one PROX_SIM_CLOCK describes (a malformed
 * PROX_SIM_CLOCK is an error). */
gboolean authority_clock_init(AuthorityClock *clock, const char *now_option, GError **error);

/* The current unix time in seconds. */
gint64 authority_clock_now(const AuthorityClock *clock);

/* Parses a duration "N" followed by s, m, h or d ("24h"). */
gboolean authority_parse_duration(const char *text, gint64 *seconds, GError **error);

/* Parses a UTC date "YYYY-MM-DD" into days since 1970-01-01. */
gboolean authority_parse_day(const char *text, gint64 *day, GError **error);

G_END_DECLS
