/* authority-poster.h - the poster a registered venue displays (docs/venues.md §2): its
 * check-in URL as a QR code (libqrencode, error correction level M, 4-module quiet zone),
 * as a printable SVG with the venue's name and address, and as a PNG (libpng, 1-bit
 * grayscale, at least 1000 pixels a side) for other layouts.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define AUTHORITY_POSTER_QUIET_ZONE 4    /* modules of white around the symbol */
#define AUTHORITY_POSTER_PNG_MIN_PX 1000 /* the PNG's side is at least this */
#define AUTHORITY_POSTER_SVG_NAME "poster.svg"
#define AUTHORITY_POSTER_PNG_NAME "poster.png"
#define AUTHORITY_POSTER_URL_NAME "url.txt"

typedef struct {
    int version;   /* QR version, 1..40 */
    int modules;   /* modules a side, without the quiet zone */
    int png_scale; /* PNG pixels a module */
    int png_size;  /* PNG pixels a side (quiet zone included) */
} AuthorityPosterInfo;

typedef struct {
    const char *url;     /* what the QR code holds */
    const char *name;    /* the venue's name, printed under the code */
    const char *address; /* may be "" */
    const char *kind;    /* the venue type, e.g. "shop" */
    guint stay_minutes;  /* default stay, printed as a hint */
} AuthorityPosterContent;

/* Millimetres a module measures when the symbol (quiet zone not included) is printed
 * `symbol_mm` wide. */
double authority_poster_module_mm(const AuthorityPosterInfo *info, double symbol_mm);

/* Renders the poster: *svg (UTF-8 text) and *png (the file's bytes). PROX_ERROR_INVALID_ARGUMENT
 * when the URL does not fit a QR code. */
gboolean authority_poster_render(const AuthorityPosterContent *content, char **svg, GBytes **png,
                                 AuthorityPosterInfo *info, GError **error);

/* Renders and writes DIR/poster.svg, DIR/poster.png and DIR/url.txt (the URL and a newline),
 * each atomically (temporary file, fsync, rename), creating DIR (0755) if needed. Refuses
 * (PROX_ERROR_INVALID_ARGUMENT) when DIR already holds one of them unless `overwrite`; on
 * failure removes the ones it wrote. */
gboolean authority_poster_write(const char *dir, const AuthorityPosterContent *content,
                                gboolean overwrite, AuthorityPosterInfo *info, GError **error);

G_END_DECLS
