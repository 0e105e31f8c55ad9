/* authority-clock.h - where the health-authority tools get "now" from.
 *
 * Real time by default. Tests pin it (--now), and a simulated world can drive it through a
 * clock file that holds the current unix time in decimal seconds (--clock-file), re-read on
 * every call so the simulator can move it while the server runs.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    gboolean fixed; /* when TRUE, fixed_now is the time */
    gint64 fixed_now;
    char *file; /* or, when non-NULL, this file holds the time */
} AuthorityClock;

/* Parses a --now value: "@UNIXSECONDS" or an ISO 8601 date-time with a zone
 * ("2020-05-20T10:00:00Z"). */
gboolean authority_clock_parse_time(const char *text, gint64 *out, GError **error);

/* Sets the clock from the --now / --clock-file option values (either may be NULL; both
 * together are refused). */
gboolean authority_clock_init(AuthorityClock *clock, const char *now_option,
                              const char *clock_file_option, GError **error);
void authority_clock_clear(AuthorityClock *clock);

/* The current unix time. Fails only for a clock file that cannot be read or parsed. */
gboolean authority_clock_now(const AuthorityClock *clock, gint64 *now, GError **error);

/* Parses a duration "N" followed by s, m, h or d ("24h"). */
gboolean authority_parse_duration(const char *text, gint64 *seconds, GError **error);

/* Parses a UTC date "YYYY-MM-DD" into days since 1970-01-01. */
gboolean authority_parse_day(const char *text, gint64 *day, GError **error);

G_END_DECLS
