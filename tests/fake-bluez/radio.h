/* Log-distance path loss with Gaussian noise: what one simulated device hears of another. */
#pragma once

#include <glib.h>

#include "scenario.h"

/* Distances below this are treated as this (the model has no near field). */
#define FB_RADIO_MIN_DISTANCE 0.1

/* Mean RSSI (dBm) at `distance` metres: tx's power at 1 m minus 10·n·log10(d), n being the
 * mean of both ends' path-loss exponents. */
double fb_radio_mean_rssi(const FbSimDevice *tx, const FbSimDevice *rx, double distance);

/* One report's RSSI: the mean plus N(0, rx noise σ), rounded and clamped to −127..20 dBm.
 * FALSE (not heard) when it falls below min_rssi. */
gboolean fb_radio_sample(const FbSimDevice *tx, const FbSimDevice *rx, double distance,
                         double min_rssi, GRand *rng, int *rssi);

/* A standard normal deviate (Box–Muller). */
double fb_radio_gaussian(GRand *rng);
