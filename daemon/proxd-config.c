/* proxd-config.c - configuration file + command-line overrides, SIGHUP reload. */
#define G_LOG_DOMAIN "proxd-config"

#include "proxd-config.h"

#include <string.h>

#include "prox-store.h"
#include "prox-venue.h"

#define GROUP_GENERAL "General"
#define GROUP_ADVERTISING "Advertising"
#define GROUP_SCANNING "Scanning"
#define GROUP_RISK "Risk"
#define GROUP_SYNC "Sync"
#define GROUP_REPORT "Report"
#define GROUP_VENUES "Venues"

struct _ProxdConfig {
    GObject parent_instance;

    char *path;
    gboolean path_explicit;
    char *cli_role;
    char *cli_adapter;
    char *cli_state_dir;

    ProxdSettings settings;
};

G_DEFINE_TYPE(ProxdConfig, proxd_config, G_TYPE_OBJECT)

enum {
    SIGNAL_CHANGED,
    N_SIGNALS,
};
static guint signals[N_SIGNALS];

/* Keys each group may hold; anything else is reported (a typo would silently do nothing). */
static const char *const general_keys[] = {"Role", "Adapter", "StateDirectory", "RetentionDays",
                                           NULL};
static const char *const advertising_keys[] = {"Enabled", "TxPower", NULL};
static const char *const scanning_keys[] = {
    "ScanSeconds",   "IntervalMinSeconds", "IntervalMaxSeconds",    "BeaconScanInstanceSeconds",
    "CommitSeconds", "RssiCorrection",     "CalibrationConfidence", NULL};
static const char *const sync_keys[] = {"URL", "PinnedKeys", "IntervalSeconds", NULL};
static const char *const report_keys[] = {"URL", NULL};
static const char *const venues_keys[] = {"MinMinutes", "SameVehicleMinutes", "ShareCounts", NULL};

const char *proxd_role_to_string(ProxdRole role)
{
    return role == PROXD_ROLE_BEACON ? "beacon" : "person";
}

gboolean proxd_role_from_string(const char *s, ProxdRole *role)
{
    if (g_strcmp0(s, "person") == 0) {
        *role = PROXD_ROLE_PERSON;
        return TRUE;
    }
    if (g_strcmp0(s, "beacon") == 0) {
        *role = PROXD_ROLE_BEACON;
        return TRUE;
    }
    return FALSE;
}

const char *proxd_config_default_path(void)
{
    return PROXD_SYSCONFDIR "/proxd/proxd.conf";
}

static char *default_state_dir(void)
{
    /* systemd's StateDirectory= sets $STATE_DIRECTORY (colon-separated if several). */
    const char *env = g_getenv("STATE_DIRECTORY");
    if (env != NULL && env[0] != '\0') {
        const char *colon = strchr(env, ':');
        return colon != NULL ? g_strndup(env, (gsize)(colon - env)) : g_strdup(env);
    }
    return g_strdup(PROXD_LOCALSTATEDIR "/lib/proxd");
}

static void settings_clear(ProxdSettings *s)
{
    g_clear_pointer(&s->adapter, g_free);
    g_clear_pointer(&s->state_dir, g_free);
    g_clear_pointer(&s->sync_url, g_free);
    g_clear_pointer(&s->sync_pinned_keys, g_strfreev);
    g_clear_pointer(&s->report_url, g_free);
}

static void settings_defaults(ProxdSettings *s)
{
    *s = (ProxdSettings){0};
    s->role = PROXD_ROLE_PERSON;
    s->retention_days = PROX_STORE_DEFAULT_RETENTION_DAYS;
    s->advertise = TRUE;
    s->tx_power = 0;
    s->scan_seconds = 4;
    s->scan_interval_min = 180;
    s->scan_interval_max = 300;
    s->beacon_instance_seconds = 60;
    s->commit_seconds = 60;
    s->rssi_correction = 0;
    s->calibration_confidence = PROX_CALIBRATION_LOW;
    prox_risk_parameters_default(&s->risk);
    s->venue_min_minutes = PROX_VENUE_DEFAULT_MIN_MINUTES;
    s->venue_same_vehicle_minutes = PROX_VENUE_DEFAULT_MIN_MINUTES;
    s->venue_share_counts = FALSE;
}

static gboolean adapter_name_valid(const char *name)
{
    if (!g_str_has_prefix(name, "hci") || name[3] == '\0')
        return FALSE;
    for (const char *p = name + 3; *p != '\0'; p++) {
        if (!g_ascii_isdigit(*p))
            return FALSE;
    }
    return TRUE;
}

static void warn_unknown_keys(GKeyFile *kf, const char *path)
{
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
    for (guint i = 0; groups[i] != NULL; i++) {
        const char *const *known = NULL;
        if (g_str_equal(groups[i], GROUP_GENERAL))
            known = general_keys;
        else if (g_str_equal(groups[i], GROUP_ADVERTISING))
            known = advertising_keys;
        else if (g_str_equal(groups[i], GROUP_SCANNING))
            known = scanning_keys;
        else if (g_str_equal(groups[i], GROUP_SYNC))
            known = sync_keys;
        else if (g_str_equal(groups[i], GROUP_REPORT))
            known = report_keys;
        else if (g_str_equal(groups[i], GROUP_VENUES))
            known = venues_keys;
        else if (g_str_equal(groups[i], GROUP_RISK))
            continue; /* prox_risk_parameters_load_keyfile() rejects unknown keys itself */
        else {
            g_warning("%s: unknown group [%s] ignored", path, groups[i]);
            continue;
        }
        g_auto(GStrv) keys = g_key_file_get_keys(kf, groups[i], NULL, NULL);
        for (guint k = 0; keys != NULL && keys[k] != NULL; k++) {
            if (!g_strv_contains(known, keys[k]))
                g_warning("%s: unknown key %s in [%s] ignored", path, keys[k], groups[i]);
        }
    }
}

/* Reads an integer key if present; range-checked. */
static gboolean get_int(GKeyFile *kf, const char *path, const char *group, const char *key,
                        gint64 min, gint64 max, gint64 *value, GError **error)
{
    if (!g_key_file_has_key(kf, group, key, NULL))
        return TRUE;
    g_autoptr(GError) local = NULL;
    gint64 v = g_key_file_get_int64(kf, group, key, &local);
    if (local != NULL) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "%s: [%s] %s: not an integer", path, group, key);
        return FALSE;
    }
    if (v < min || v > max) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "%s: [%s] %s=%" G_GINT64_FORMAT " is outside %" G_GINT64_FORMAT
                    "..%" G_GINT64_FORMAT,
                    path, group, key, v, min, max);
        return FALSE;
    }
    *value = v;
    return TRUE;
}

static gboolean get_uint_key(GKeyFile *kf, const char *path, const char *group, const char *key,
                             guint min, guint max, guint *value, GError **error)
{
    gint64 v = *value;
    if (!get_int(kf, path, group, key, min, max, &v, error))
        return FALSE;
    *value = (guint)v;
    return TRUE;
}

static gboolean get_signed_key(GKeyFile *kf, const char *path, const char *group, const char *key,
                               int min, int max, int *value, GError **error)
{
    gint64 v = *value;
    if (!get_int(kf, path, group, key, min, max, &v, error))
        return FALSE;
    *value = (int)v;
    return TRUE;
}

/* A string key if present: stripped, empty = unset. */
static void get_string_key(GKeyFile *kf, const char *group, const char *key, char **value)
{
    if (!g_key_file_has_key(kf, group, key, NULL))
        return;
    g_autofree char *v = g_key_file_get_string(kf, group, key, NULL);
    g_free(*value);
    *value = NULL;
    if (v != NULL && g_strstrip(v)[0] != '\0')
        *value = g_steal_pointer(&v);
}

/* g_strv_equal() that takes NULL for an empty list. */
static gboolean strv_equal0(char **a, char **b)
{
    guint na = a != NULL ? g_strv_length(a) : 0;
    guint nb = b != NULL ? g_strv_length(b) : 0;
    if (na != nb)
        return FALSE;
    for (guint i = 0; i < na; i++) {
        if (g_strcmp0(a[i], b[i]) != 0)
            return FALSE;
    }
    return TRUE;
}

static gboolean load_keyfile(ProxdConfig *self, GKeyFile *kf, ProxdSettings *s, GError **error)
{
    const char *path = self->path;
    g_autoptr(GError) local = NULL;

    if (g_key_file_has_key(kf, GROUP_GENERAL, "Role", NULL)) {
        g_autofree char *role = g_key_file_get_string(kf, GROUP_GENERAL, "Role", NULL);
        if (!proxd_role_from_string(role, &s->role)) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "%s: [General] Role=%s: expected person or beacon", path, role);
            return FALSE;
        }
    }
    if (g_key_file_has_key(kf, GROUP_GENERAL, "Adapter", NULL)) {
        g_autofree char *adapter = g_key_file_get_string(kf, GROUP_GENERAL, "Adapter", NULL);
        g_strstrip(adapter);
        if (adapter[0] != '\0') {
            if (!adapter_name_valid(adapter)) {
                g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                            "%s: [General] Adapter=%s: expected an adapter name like hci0", path,
                            adapter);
                return FALSE;
            }
            g_free(s->adapter);
            s->adapter = g_steal_pointer(&adapter);
        }
    }
    if (g_key_file_has_key(kf, GROUP_GENERAL, "StateDirectory", NULL)) {
        g_autofree char *dir = g_key_file_get_string(kf, GROUP_GENERAL, "StateDirectory", NULL);
        g_strstrip(dir);
        if (!g_path_is_absolute(dir)) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "%s: [General] StateDirectory=%s: must be an absolute path", path, dir);
            return FALSE;
        }
        g_free(s->state_dir);
        s->state_dir = g_steal_pointer(&dir);
    }
    if (!get_uint_key(kf, path, GROUP_GENERAL, "RetentionDays", 1, 3650, &s->retention_days, error))
        return FALSE;

    if (g_key_file_has_key(kf, GROUP_ADVERTISING, "Enabled", NULL)) {
        s->advertise = g_key_file_get_boolean(kf, GROUP_ADVERTISING, "Enabled", &local);
        if (local != NULL) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "%s: [Advertising] Enabled: expected true or false", path);
            return FALSE;
        }
    }
    if (!get_signed_key(kf, path, GROUP_ADVERTISING, "TxPower", -127, 127, &s->tx_power, error))
        return FALSE;

    if (!get_uint_key(kf, path, GROUP_SCANNING, "ScanSeconds", 1, 3600, &s->scan_seconds, error) ||
        !get_uint_key(kf, path, GROUP_SCANNING, "IntervalMinSeconds", 1, 86400,
                      &s->scan_interval_min, error) ||
        !get_uint_key(kf, path, GROUP_SCANNING, "IntervalMaxSeconds", 1, 86400,
                      &s->scan_interval_max, error) ||
        !get_uint_key(kf, path, GROUP_SCANNING, "BeaconScanInstanceSeconds", 5, 3600,
                      &s->beacon_instance_seconds, error) ||
        !get_uint_key(kf, path, GROUP_SCANNING, "CommitSeconds", 1, 3600, &s->commit_seconds,
                      error) ||
        !get_signed_key(kf, path, GROUP_SCANNING, "RssiCorrection", -100, 100, &s->rssi_correction,
                        error))
        return FALSE;
    guint confidence = s->calibration_confidence;
    if (!get_uint_key(kf, path, GROUP_SCANNING, "CalibrationConfidence", PROX_CALIBRATION_LOWEST,
                      PROX_CALIBRATION_HIGH, &confidence, error))
        return FALSE;
    s->calibration_confidence = (ProxCalibrationConfidence)confidence;

    if (s->scan_interval_min > s->scan_interval_max) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "%s: [Scanning] IntervalMinSeconds=%u is larger than IntervalMaxSeconds=%u",
                    path, s->scan_interval_min, s->scan_interval_max);
        return FALSE;
    }
    if (s->scan_seconds >= s->scan_interval_min) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "%s: [Scanning] ScanSeconds=%u must be shorter than IntervalMinSeconds=%u",
                    path, s->scan_seconds, s->scan_interval_min);
        return FALSE;
    }

    get_string_key(kf, GROUP_SYNC, "URL", &s->sync_url);
    get_string_key(kf, GROUP_REPORT, "URL", &s->report_url);
    if (g_key_file_has_key(kf, GROUP_SYNC, "PinnedKeys", NULL)) {
        g_auto(GStrv) keys = g_key_file_get_string_list(kf, GROUP_SYNC, "PinnedKeys", NULL, NULL);
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();
        for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
            g_strstrip(keys[i]);
            if (keys[i][0] != '\0')
                g_strv_builder_add(b, keys[i]);
        }
        g_strfreev(s->sync_pinned_keys);
        s->sync_pinned_keys = g_strv_builder_end(b);
    }
    if (!get_uint_key(kf, path, GROUP_SYNC, "IntervalSeconds", 60, 7 * 86400, &s->sync_interval,
                      error))
        return FALSE;
    if (s->sync_url != NULL && (s->sync_pinned_keys == NULL || s->sync_pinned_keys[0] == NULL)) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "%s: [Sync] URL is set but PinnedKeys is empty: key lists cannot be verified",
                    path);
        return FALSE;
    }

    if (!get_uint_key(kf, path, GROUP_VENUES, "MinMinutes", 1, 1440, &s->venue_min_minutes,
                      error) ||
        !get_uint_key(kf, path, GROUP_VENUES, "SameVehicleMinutes", 1, 1440,
                      &s->venue_same_vehicle_minutes, error))
        return FALSE;
    if (g_key_file_has_key(kf, GROUP_VENUES, "ShareCounts", NULL)) {
        s->venue_share_counts = g_key_file_get_boolean(kf, GROUP_VENUES, "ShareCounts", &local);
        if (local != NULL) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "%s: [Venues] ShareCounts: expected true or false", path);
            return FALSE;
        }
    }

    if (g_key_file_has_group(kf, GROUP_RISK)) {
        g_autoptr(GError) risk_error = NULL;
        if (!prox_risk_parameters_load_keyfile(kf, GROUP_RISK, &s->risk, &risk_error)) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "%s: [Risk] %s",
                        path, risk_error->message);
            return FALSE;
        }
    }
    return TRUE;
}

/* Builds settings from the file (if any) and the command line into *out. */
static gboolean build_settings(ProxdConfig *self, ProxdSettings *out, GError **error)
{
    ProxdSettings s;
    settings_defaults(&s);
    s.state_dir = default_state_dir();

    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    if (!g_key_file_load_from_file(kf, self->path, G_KEY_FILE_NONE, &local)) {
        if (!self->path_explicit && g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
            g_debug("%s does not exist: using defaults", self->path);
        } else {
            g_set_error(error, local->domain, local->code, "%s: %s", self->path, local->message);
            settings_clear(&s);
            return FALSE;
        }
    } else {
        warn_unknown_keys(kf, self->path);
        if (!load_keyfile(self, kf, &s, error)) {
            settings_clear(&s);
            return FALSE;
        }
    }

    if (self->cli_role != NULL && !proxd_role_from_string(self->cli_role, &s.role)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--role=%s: expected person or beacon", self->cli_role);
        settings_clear(&s);
        return FALSE;
    }
    if (self->cli_adapter != NULL) {
        if (!adapter_name_valid(self->cli_adapter)) {
            g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--adapter=%s: expected an adapter name like hci0", self->cli_adapter);
            settings_clear(&s);
            return FALSE;
        }
        g_free(s.adapter);
        s.adapter = g_strdup(self->cli_adapter);
    }
    if (self->cli_state_dir != NULL) {
        g_free(s.state_dir);
        s.state_dir = g_canonicalize_filename(self->cli_state_dir, NULL);
    }
    *out = s;
    return TRUE;
}

static void proxd_config_finalize(GObject *object)
{
    ProxdConfig *self = PROXD_CONFIG(object);
    g_free(self->path);
    g_free(self->cli_role);
    g_free(self->cli_adapter);
    g_free(self->cli_state_dir);
    settings_clear(&self->settings);
    G_OBJECT_CLASS(proxd_config_parent_class)->finalize(object);
}

static void proxd_config_class_init(ProxdConfigClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    object_class->finalize = proxd_config_finalize;

    /* Emitted after a reload changed at least one setting. */
    signals[SIGNAL_CHANGED] = g_signal_new("changed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST,
                                           0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void proxd_config_init(ProxdConfig *self)
{
}

ProxdConfig *proxd_config_new(const char *path, const ProxdOverrides *overrides, GError **error)
{
    g_autoptr(ProxdConfig) self = g_object_new(PROXD_TYPE_CONFIG, NULL);
    self->path_explicit = path != NULL;
    self->path = g_strdup(path != NULL ? path : proxd_config_default_path());
    if (overrides != NULL) {
        self->cli_role = g_strdup(overrides->role);
        self->cli_adapter = g_strdup(overrides->adapter);
        self->cli_state_dir = g_strdup(overrides->state_dir);
    }
    if (!build_settings(self, &self->settings, error))
        return NULL;
    return g_steal_pointer(&self);
}

const ProxdSettings *proxd_config_get(ProxdConfig *self)
{
    g_return_val_if_fail(PROXD_IS_CONFIG(self), NULL);
    return &self->settings;
}

const char *proxd_config_get_path(ProxdConfig *self)
{
    g_return_val_if_fail(PROXD_IS_CONFIG(self), NULL);
    return self->path;
}

static gboolean settings_equal(const ProxdSettings *a, const ProxdSettings *b)
{
    return a->role == b->role && g_strcmp0(a->adapter, b->adapter) == 0 &&
           g_strcmp0(a->state_dir, b->state_dir) == 0 && a->retention_days == b->retention_days &&
           a->advertise == b->advertise && a->tx_power == b->tx_power &&
           a->scan_seconds == b->scan_seconds && a->scan_interval_min == b->scan_interval_min &&
           a->scan_interval_max == b->scan_interval_max &&
           a->beacon_instance_seconds == b->beacon_instance_seconds &&
           a->commit_seconds == b->commit_seconds && a->rssi_correction == b->rssi_correction &&
           a->calibration_confidence == b->calibration_confidence &&
           prox_risk_parameters_equal(&a->risk, &b->risk) &&
           g_strcmp0(a->sync_url, b->sync_url) == 0 &&
           strv_equal0(a->sync_pinned_keys, b->sync_pinned_keys) &&
           a->sync_interval == b->sync_interval && g_strcmp0(a->report_url, b->report_url) == 0 &&
           a->venue_min_minutes == b->venue_min_minutes &&
           a->venue_same_vehicle_minutes == b->venue_same_vehicle_minutes &&
           a->venue_share_counts == b->venue_share_counts;
}

gboolean proxd_config_reload(ProxdConfig *self, GError **error)
{
    g_return_val_if_fail(PROXD_IS_CONFIG(self), FALSE);

    ProxdSettings fresh;
    if (!build_settings(self, &fresh, error))
        return FALSE;

    /* The store is open: these only take effect after a restart. */
    if (g_strcmp0(fresh.state_dir, self->settings.state_dir) != 0) {
        g_warning("StateDirectory changed to %s: takes effect when proxd restarts",
                  fresh.state_dir);
        g_free(fresh.state_dir);
        fresh.state_dir = g_strdup(self->settings.state_dir);
    }
    if (fresh.retention_days != self->settings.retention_days) {
        g_warning("RetentionDays changed to %u: takes effect when proxd restarts",
                  fresh.retention_days);
        fresh.retention_days = self->settings.retention_days;
    }

    /* The key-list sync is set up once, at start. */
    if (g_strcmp0(fresh.sync_url, self->settings.sync_url) != 0 ||
        !strv_equal0(fresh.sync_pinned_keys, self->settings.sync_pinned_keys) ||
        fresh.sync_interval != self->settings.sync_interval) {
        g_warning("[Sync] changed: takes effect when proxd restarts");
        g_free(fresh.sync_url);
        fresh.sync_url = g_strdup(self->settings.sync_url);
        g_strfreev(fresh.sync_pinned_keys);
        fresh.sync_pinned_keys = g_strdupv(self->settings.sync_pinned_keys);
        fresh.sync_interval = self->settings.sync_interval;
    }

    if (settings_equal(&fresh, &self->settings)) {
        settings_clear(&fresh);
        g_message("configuration %s reloaded: nothing changed", self->path);
        return TRUE;
    }
    settings_clear(&self->settings);
    self->settings = fresh;
    g_message("configuration %s reloaded", self->path);
    g_signal_emit(self, signals[SIGNAL_CHANGED], 0);
    return TRUE;
}
