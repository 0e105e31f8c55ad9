/* prox-exposure.h - exposure window value type, shared by risk (which computes windows)
 * and store (which keeps them so the risk rule can be re-applied when parameters change).
 *
 * Mirrors GAEN's ExposureWindow/ScanInstance: a window groups the sightings of one matched
 * key (at most 30 minutes, PROTOCOL.md §4); each scan instance keeps its raw attenuations
 * and gap, so scoring can be redone from the stored windows alone.
 */
#pragma once

#include "prox-types.h"

G_BEGIN_DECLS

/* GAEN Infectiousness, derived from days since onset by the risk configuration. */
typedef enum {
    PROX_INFECTIOUSNESS_NONE = 0,
    PROX_INFECTIOUSNESS_STANDARD = 1,
    PROX_INFECTIOUSNESS_HIGH = 2,
} ProxInfectiousness;

/* One scan instance of a window (GAEN ScanInstance). */
typedef struct {
    uint8_t min_attenuation;         /* dB, over the reports of this scan */
    uint8_t typical_attenuation;     /* dB, from the mean RSSI */
    int32_t seconds_since_last_scan; /* raw gap; scoring caps it */
} ProxWindowScan;

typedef struct {
    gint64 key_id; /* store id of the matched diagnosis key; 0 when not stored */
    gint64 day;    /* unix seconds of the UTC midnight the window falls on */
    gint64 start;  /* first sighting in the window, unix seconds */
    gint64 end;    /* last sighting in the window */
    ProxReportType report_type;
    ProxInfectiousness infectiousness;
    int32_t transmission_risk_level;
    /* ProxMatchedSighting.key_index of the window's key (set by risk). */
    guint key_index;
    /* GAEN CalibrationConfidence of the scanning device, 0 lowest .. 3 high. */
    uint8_t calibration_confidence;
    double weighted_minutes; /* as scored when saved */
    double risk;
    GArray *scans; /* ProxWindowScan, in time order; owned by the window */
} ProxExposureWindow;

/* Sets *window to an empty window with an allocated, empty scans array. */
static inline void prox_exposure_window_init(ProxExposureWindow *window)
{
    *window = (ProxExposureWindow){0};
    window->scans = g_array_new(FALSE, FALSE, sizeof(ProxWindowScan));
}

/* Frees what the window owns; usable as a GArray clear func. */
static inline void prox_exposure_window_clear(void *p)
{
    ProxExposureWindow *window = p;
    g_clear_pointer(&window->scans, g_array_unref);
}

G_END_DECLS
