/* Ground truth of the radio world as JSON lines: one line per report heard over the air. */
#pragma once

#include <glib.h>

typedef struct FbTruthLog FbTruthLog;

typedef struct {
    double t; /* simulated unix seconds */
    const char *from, *to;
    guint from_adapter, to_adapter;
    const char *address;
    const char *address_type;
    int rssi;
    double distance;
    GVariant *service_data; /* a{sv}: uuid -> ay */
    gboolean visible;       /* BlueZ passed it on to D-Bus (a Device1 update) */
} FbTruthReport;

FbTruthLog *fb_truth_log_open(const char *path, GError **error);
void fb_truth_log_report(FbTruthLog *log, const FbTruthReport *report);
void fb_truth_log_flush(FbTruthLog *log);
void fb_truth_log_close(FbTruthLog *log);
