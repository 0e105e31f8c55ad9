/* prox-types.h - value types shared by every libprox module.
 *
 * Times are always passed in by the caller (unix seconds, gint64) or as GAEN
 * interval numbers (ENIN, 10-minute units); libprox never reads the clock.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PROX_KEY_LEN 16
#define PROX_RPI_LEN 16
#define PROX_AEM_LEN 4
#define PROX_METADATA_LEN 4
#define PROX_INTERVAL_SECONDS 600
#define PROX_TEK_ROLLING_PERIOD 144
#define PROX_MAX_ROLLING_PERIOD 144
/* A sighting matches an RPI only within this many intervals of the RPI's own. */
#define PROX_MATCH_TOLERANCE_INTERVALS 12
/* RSSI value BlueZ/btvirt report when the radio does not know it. */
#define PROX_RSSI_UNKNOWN 127

#define PROX_ERROR (prox_error_quark())
GQuark prox_error_quark(void);

typedef enum {
    PROX_ERROR_INVALID_ARGUMENT, /* caller passed something out of range */
    PROX_ERROR_MALFORMED,        /* input bytes do not parse */
    PROX_ERROR_SIGNATURE,        /* a signature or key check failed */
    PROX_ERROR_UNSUPPORTED,      /* well-formed, but not something we handle */
    PROX_ERROR_STORE,            /* sqlite reported a failure */
    PROX_ERROR_IO,               /* file system or zip container failure */
    PROX_ERROR_NOT_FOUND,
} ProxError;

/* GAEN ENIntervalNumber of a unix time (floor division, also for t < 0). */
static inline uint32_t prox_interval_number(gint64 unix_seconds)
{
    gint64 q = unix_seconds / PROX_INTERVAL_SECONDS;
    if (unix_seconds < 0 && q * PROX_INTERVAL_SECONDS != unix_seconds)
        q--;
    return (uint32_t)q;
}

static inline gint64 prox_interval_start(uint32_t enin)
{
    return (gint64)enin * PROX_INTERVAL_SECONDS;
}

typedef struct {
    uint8_t bytes[PROX_RPI_LEN];
} ProxRpi;

typedef struct {
    uint8_t bytes[PROX_AEM_LEN];
} ProxAem;

/* A Temporary Exposure Key with its validity: [rolling_start, rolling_start + rolling_period). */
typedef struct {
    uint8_t key[PROX_KEY_LEN];
    uint32_t rolling_start;  /* ENIN */
    uint32_t rolling_period; /* 1..144 */
} ProxTek;

/* GAEN report types (TemporaryExposureKey.ReportType). */
typedef enum {
    PROX_REPORT_UNKNOWN = 0,
    PROX_REPORT_CONFIRMED_TEST = 1,
    PROX_REPORT_CONFIRMED_CLINICAL_DIAGNOSIS = 2,
    PROX_REPORT_SELF_REPORT = 3,
    PROX_REPORT_RECURSIVE = 4,
    PROX_REPORT_REVOKED = 5,
} ProxReportType;

/* A published ("F0") key as read from a key list. */
typedef struct {
    ProxTek tek;
    int32_t transmission_risk_level; /* 0 when absent */
    ProxReportType report_type;
    gboolean has_days_since_onset;
    int32_t days_since_onset; /* valid when has_days_since_onset */
} ProxDiagnosisKey;

/* One RPI heard during one scan instance, aggregated over all its radio reports
 * (PROTOCOL.md §3). RSSI values are after the device's calibration offset; a
 * report with RSSI PROX_RSSI_UNKNOWN does not contribute to the RSSI fields. */
typedef struct {
    ProxRpi rpi;
    ProxAem aem;
    gint64 scan_instance_id;
    gint64 first_seen; /* unix seconds */
    gint64 last_seen;
    uint32_t report_count;
    uint32_t rssi_count; /* reports with a known RSSI */
    int16_t rssi_min;    /* valid when rssi_count > 0 */
    int16_t rssi_max;
    int16_t rssi_mean;
} ProxSighting;

/* GAEN ScanInstance: one scan, its duration and the gap since the previous one. */
typedef struct {
    gint64 id;
    gint64 start; /* unix seconds */
    gint64 end;
    int32_t seconds_since_last_scan;
} ProxScanInstance;

/* One sighting explained by one diagnosis key: output of matching, input of risk. */
typedef struct {
    guint key_index;                     /* position of the key in the matched stream */
    ProxDiagnosisKey key;                /* the F0 key */
    ProxSighting sighting;               /* what we heard */
    uint32_t rpi_interval;               /* ENIN of the RPI that matched */
    uint8_t metadata[PROX_METADATA_LEN]; /* AEM decrypted */
    int8_t tx_power;                     /* from metadata, validated to -50..+20 dBm */
} ProxMatchedSighting;

/* ---- buses and venues (docs/venues.md) ---- */

#define PROX_LOCATION_ID_LEN 32   /* SHA-256 */
#define PROX_LOCATION_HASH_LEN 32 /* SHA-256 of a location id, as published */

typedef enum {
    PROX_VENUE_WARNING_SAME_VEHICLE = 1, /* a bus beacon's TEK + window */
    PROX_VENUE_WARNING_VENUE = 2,        /* a QR venue's location hash + window */
} ProxVenueWarningKind;

/* A published warning (export field 100). */
typedef struct {
    ProxVenueWarningKind kind;
    ProxTek beacon_tek;                            /* SAME_VEHICLE */
    uint8_t location_hash[PROX_LOCATION_HASH_LEN]; /* VENUE */
    gint64 start;                                  /* unix seconds, start < end */
    gint64 end;                                    /* end - start <= 24 h */
    int32_t transmission_risk_level;               /* 1..8 */
} ProxVenueWarning;

/* A local QR check-in: only the location id and times (docs/venues.md §3). */
typedef struct {
    gint64 id;
    uint8_t location_id[PROX_LOCATION_ID_LEN];
    gint64 arrived;           /* unix seconds */
    gint64 departed;          /* 0 while checked in */
    gint64 planned_departure; /* automatic checkout time (arrived + default stay) */
} ProxCheckIn;

/* A warning that applies to this device. */
typedef struct {
    gint64 id;         /* store id; 0 before saving */
    gint64 warning_id; /* store id of the warning */
    ProxVenueWarningKind kind;
    gint64 day;   /* UTC midnight of `start` */
    gint64 start; /* overlap of our presence with the warning's window */
    gint64 end;
    guint minutes; /* time together (same vehicle) or overlap (venue), whole minutes */
    int32_t transmission_risk_level;
    gint64 detected_at;
} ProxVenueExposure;

G_END_DECLS
