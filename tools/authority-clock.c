/* authority-clock.c - "now" for the health-authority tools: wall, simulated or pinned. */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-clock.h"

#include "prox-types.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strict decimal integer: optional '-', digits only, no overflow. */
static gboolean parse_int64(const char *text, gint64 *out)
{
    if (text == NULL || text[0] == '\0')
        return FALSE;
    char *end = NULL;
    errno = 0;
    gint64 v = g_ascii_strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || g_ascii_isspace(text[0]))
        return FALSE;
    *out = v;
    return TRUE;
}

gboolean authority_clock_parse_time(const char *text, gint64 *out, GError **error)
{
    if (text[0] == '@') {
        if (!parse_int64(text + 1, out) || *out < 0) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "time \"%s\" is not @ and a non-negative number of seconds", text);
            return FALSE;
        }
        return TRUE;
    }
    g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(text, NULL);
    if (dt == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "time \"%s\" is neither @UNIXSECONDS nor ISO 8601 with a zone "
                    "(2020-05-20T10:00:00Z)",
                    text);
        return FALSE;
    }
    *out = g_date_time_to_unix(dt);
    return TRUE;
}

gboolean authority_clock_init(AuthorityClock *clock, const char *now_option, GError **error)
{
    memset(clock, 0, sizeof *clock);
    if (now_option != NULL) {
        clock->fixed = TRUE;
        return authority_clock_parse_time(now_option, &clock->fixed_now, error);
    }
    g_autoptr(GError) local = NULL;
    if (!prox_sim_clock_init_from_env(&clock->sim, &local)) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT, "%s", local->message);
        return FALSE;
    }
    return TRUE;
}

gint64 authority_clock_now(const AuthorityClock *clock)
{
    if (clock->fixed)
        return clock->fixed_now;
    /* floor, also for the (theoretical) negative case */
    gint64 us = prox_sim_clock_now_us(&clock->sim);
    return us >= 0 ? us / G_USEC_PER_SEC : -((-us + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
}

gboolean authority_parse_duration(const char *text, gint64 *seconds, GError **error)
{
    size_t len = strlen(text);
    gint64 n = 0;
    gint64 unit = 0;
    if (len >= 2) {
        switch (text[len - 1]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            break;
        }
    }
    g_autofree char *digits = len >= 2 ? g_strndup(text, len - 1) : NULL;
    if (unit == 0 || digits[0] == '-' || !parse_int64(digits, &n) || n <= 0 || n > G_MAXINT32) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "duration \"%s\" is not a positive number followed by s, m, h or d", text);
        return FALSE;
    }
    *seconds = n * unit;
    return TRUE;
}

gboolean authority_parse_day(const char *text, gint64 *day, GError **error)
{
    int y = 0;
    int m = 0;
    int d = 0;
    char tail = 0;
    if (strlen(text) != 10 || sscanf(text, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 ||
        !g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y) || y < 1970) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "date \"%s\" is not a valid YYYY-MM-DD", text);
        return FALSE;
    }
    g_autoptr(GDateTime) dt = g_date_time_new_utc(y, m, d, 0, 0, 0);
    *day = g_date_time_to_unix(dt) / 86400;
    return TRUE;
}
