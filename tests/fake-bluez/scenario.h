/* The simulated world's cast: devices with radio parameters and positions over time,
 * read from a JSON scenario file (format in README.md). */
#pragma once

#include <glib.h>

#include "bdaddr.h"

typedef struct {
    double t;    /* seconds since the scenario epoch (the sim clock's start) */
    double x, y; /* metres */
} FbWaypoint;

typedef struct {
    char *name;
    guint adapter;    /* hci<adapter> */
    char *role;       /* hint for whoever starts the daemons ("person", "beacon", ...) */
    FbBdaddr address; /* the adapter's public address */
    double tx_power;  /* RSSI heard at 1 m from this device, dBm */
    double path_loss_exponent;
    double noise_sigma; /* dB, applied to what this device hears */
    gboolean present;   /* plugged in when the fake starts */
    gboolean powered;   /* powered when plugged in (BlueZ AutoEnable) */
    /* "controller": "le-legacy": an LE-only controller with legacy advertising (btvirt -L),
     * one random address for advertising and scanning; "dual" (default): extended
     * advertising sets with addresses of their own. */
    gboolean legacy_advertising;
    GArray *waypoints; /* FbWaypoint, t ascending, at least one */
    gboolean pinned;   /* SetPosition override */
    double pin_x, pin_y;
} FbSimDevice;

typedef struct {
    char *description;
    double min_rssi;             /* weaker reports are not heard */
    double advertising_interval; /* seconds */
    GPtrArray *devices;          /* FbSimDevice */
} FbScenario;

FbScenario *fb_scenario_new(void);
FbScenario *fb_scenario_load(const char *path, GError **error);
FbScenario *fb_scenario_parse(const char *json, gssize length, GError **error);
void fb_scenario_free(FbScenario *scenario);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FbScenario, fb_scenario_free)

FbSimDevice *fb_scenario_find_adapter(FbScenario *scenario, guint adapter);
FbSimDevice *fb_scenario_find_name(FbScenario *scenario, const char *name);
/* A device for an adapter the scenario does not list: "hci<N>", still at the origin. */
FbSimDevice *fb_scenario_add_bare(FbScenario *scenario, guint adapter);

/* Position at t seconds since the epoch: piecewise linear, constant outside the waypoints. */
void fb_sim_device_position(const FbSimDevice *device, double t, double *x, double *y);
