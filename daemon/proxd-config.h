/* proxd-config.h - proxd's configuration: /etc/proxd/proxd.conf (GKeyFile) with
 * command-line overrides, reloaded on SIGHUP.
 */
#pragma once

#include <glib-object.h>

#include "prox-risk.h"

G_BEGIN_DECLS

typedef enum {
    PROXD_ROLE_PERSON,
    PROXD_ROLE_BEACON,
} ProxdRole;

const char *proxd_role_to_string(ProxdRole role);
gboolean proxd_role_from_string(const char *s, ProxdRole *role);

/* The effective settings: file values, overridden by the command line. */
typedef struct {
    ProxdRole role;
    char *adapter;   /* "hci0"; NULL = the first usable adapter */
    char *state_dir; /* holds proxd.db */
    guint retention_days;

    gboolean advertise;
    int tx_power; /* calibrated transmit power, dBm, -127..127 (sent in the AEM) */

    guint scan_seconds;      /* person: length of one scan */
    guint scan_interval_min; /* person: seconds from one scan's start to the next */
    guint scan_interval_max;
    guint beacon_instance_seconds; /* beacon: length of one scan instance */
    guint commit_seconds;          /* at most this long between store commits */
    int rssi_correction;           /* dB added to every known RSSI */
    ProxCalibrationConfidence calibration_confidence;

    ProxRiskParameters risk;

    char *sync_url;          /* [Sync] URL: key list index; NULL = no sync */
    char **sync_pinned_keys; /* [Sync] PinnedKeys: "PATH.pub" or "ID:VER:PATH" (NULL-ended) */
    guint sync_interval;     /* [Sync] IntervalSeconds between complete runs (0 = default) */
    char *report_url;        /* [Report] URL: the key server's upload URL; NULL = no reports */

    /* [Venues] (docs/venues.md §5) */
    guint venue_min_minutes;          /* MinMinutes: overlap with a venue warning */
    guint venue_same_vehicle_minutes; /* SameVehicleMinutes: time together on a bus */
    gboolean venue_share_counts;      /* ShareCounts: opt-in (location hash, hour) per check-in */
} ProxdSettings;

/* Command-line values; NULL / negative = not given. */
typedef struct {
    const char *role;
    const char *adapter;
    const char *state_dir;
} ProxdOverrides;

#define PROXD_TYPE_CONFIG (proxd_config_get_type())
G_DECLARE_FINAL_TYPE(ProxdConfig, proxd_config, PROXD, CONFIG, GObject)

/* Loads `path` (NULL = the default PROXD_SYSCONFDIR/proxd/proxd.conf, which may be
 * missing: defaults apply; an explicit path must exist). */
ProxdConfig *proxd_config_new(const char *path, const ProxdOverrides *overrides, GError **error);

const ProxdSettings *proxd_config_get(ProxdConfig *self);
const char *proxd_config_get_path(ProxdConfig *self);

/* Re-reads the file; on error the current settings stay. Emits "changed" when something
 * differs. Settings that need a restart (state directory, retention) are kept and a
 * warning says so. */
gboolean proxd_config_reload(ProxdConfig *self, GError **error);

/* The default configuration file path. */
const char *proxd_config_default_path(void);

G_END_DECLS
