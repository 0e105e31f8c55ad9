#define G_LOG_DOMAIN "fake-bluez"

#include "radio.h"

#include <math.h>

double fb_radio_mean_rssi(const FbSimDevice *tx, const FbSimDevice *rx, double distance)
{
    double n = (tx->path_loss_exponent + rx->path_loss_exponent) / 2.0;
    double d = distance < FB_RADIO_MIN_DISTANCE ? FB_RADIO_MIN_DISTANCE : distance;

    return tx->tx_power - 10.0 * n * log10(d);
}

double fb_radio_gaussian(GRand *rng)
{
    /* 1 - [0,1) keeps the logarithm's argument in (0,1]. */
    double u1 = 1.0 - g_rand_double(rng);
    double u2 = g_rand_double(rng);

    return sqrt(-2.0 * log(u1)) * cos(2.0 * G_PI * u2);
}

gboolean fb_radio_sample(const FbSimDevice *tx, const FbSimDevice *rx, double distance,
                         double min_rssi, GRand *rng, int *rssi)
{
    double v = fb_radio_mean_rssi(tx, rx, distance);

    if (rx->noise_sigma > 0)
        v += rx->noise_sigma * fb_radio_gaussian(rng);
    v = round(v);
    if (v < min_rssi)
        return FALSE;
    *rssi = (int)CLAMP(v, -127, 20);
    return TRUE;
}
