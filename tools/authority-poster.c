/* authority-poster.c - venue posters: QR code (libqrencode) as SVG and PNG (libpng). */
#define G_LOG_DOMAIN "prox-authority"

#include "authority-poster.h"

#include "authority-fs.h"
#include "prox-types.h"

#include <errno.h>
#include <png.h>
#include <qrencode.h>
#include <string.h>
#include <unistd.h>

/* Layout of the SVG, in millimetres: the symbol is printed 150 mm wide (docs/venues.md §2:
 * a 15x15 cm code), with at least 15 mm (and at least the quiet zone) of white around. */
#define SYMBOL_MM 150.0
#define MARGIN_MM 15.0

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QRcode, QRcode_free)

double authority_poster_module_mm(const AuthorityPosterInfo *info, double symbol_mm)
{
    return symbol_mm / info->modules;
}

static gboolean dark(const QRcode *qr, int x, int y)
{
    return (qr->data[y * qr->width + x] & 1) != 0;
}

/* A locale-independent decimal number for SVG attributes. */
static const char *num(char buf[G_ASCII_DTOSTR_BUF_SIZE], double v)
{
    return g_ascii_formatd(buf, G_ASCII_DTOSTR_BUF_SIZE, "%.3f", v);
}

/* Font size (mm) so that `text` fits `width` mm, at most `max`: a character of a sans-serif
 * font is about 0.6 em wide. */
static double fit_font(const char *text, double width, double max)
{
    glong chars = MAX(g_utf8_strlen(text, -1), 1);
    return MIN(max, width / (0.6 * (double)chars));
}

static void svg_text(GString *svg, double x, double y, double size, const char *weight,
                     const char *text)
{
    char bx[G_ASCII_DTOSTR_BUF_SIZE], by[G_ASCII_DTOSTR_BUF_SIZE], bs[G_ASCII_DTOSTR_BUF_SIZE];
    g_autofree char *escaped = g_markup_escape_text(text, -1);
    g_string_append_printf(svg,
                           "  <text x=\"%s\" y=\"%s\" font-size=\"%s\" font-weight=\"%s\" "
                           "text-anchor=\"middle\">%s</text>\n",
                           num(bx, x), num(by, y), num(bs, size), weight, escaped);
}

static char *render_svg(const QRcode *qr, const AuthorityPosterContent *c)
{
    double module = SYMBOL_MM / qr->width;
    double margin = MAX(MARGIN_MM, AUTHORITY_POSTER_QUIET_ZONE * module);
    double width = SYMBOL_MM + 2 * margin;
    double symbol_y = 36.0 + AUTHORITY_POSTER_QUIET_ZONE * module;
    double below = symbol_y + SYMBOL_MM + AUTHORITY_POSTER_QUIET_ZONE * module;
    double height = below + 48.0;
    double text_width = width - 2 * MARGIN_MM;
    double center = width / 2;
    char bw[G_ASCII_DTOSTR_BUF_SIZE], bh[G_ASCII_DTOSTR_BUF_SIZE];
    char bx[G_ASCII_DTOSTR_BUF_SIZE], by[G_ASCII_DTOSTR_BUF_SIZE], bm[G_ASCII_DTOSTR_BUF_SIZE];

    GString *svg = g_string_new("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    g_autofree char *title = g_markup_escape_text(c->name, -1);
    g_string_append_printf(svg,
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%smm\" "
                           "height=\"%smm\" viewBox=\"0 0 %s %s\" "
                           "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
                           "  <title>Check in: %s</title>\n"
                           "  <rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
                           num(bw, width), num(bh, height), bw, bh, title);
    svg_text(svg, center, 20.0, 11.0, "bold", "Check in here");
    g_autofree char *hint =
        g_strdup_printf("%s \u00b7 automatic checkout after %u min", c->kind, c->stay_minutes);
    svg_text(svg, center, 30.0, fit_font(hint, text_width, 5.5), "normal", hint);

    /* The symbol: one path, a rectangle per run of dark modules, in module units. */
    g_string_append_printf(svg,
                           "  <g transform=\"translate(%s %s) scale(%s)\" "
                           "shape-rendering=\"crispEdges\">\n    <path fill=\"#000000\" d=\"",
                           num(bx, margin), num(by, symbol_y), num(bm, module));
    for (int y = 0; y < qr->width; y++) {
        for (int x = 0; x < qr->width;) {
            if (!dark(qr, x, y)) {
                x++;
                continue;
            }
            int run = 1;
            while (x + run < qr->width && dark(qr, x + run, y))
                run++;
            g_string_append_printf(svg, "M%d %dh%dv1h-%dz", x, y, run, run);
            x += run;
        }
    }
    g_string_append(svg, "\"/>\n  </g>\n");

    svg_text(svg, center, below + 12.0, fit_font(c->name, text_width, 9.0), "bold", c->name);
    if (c->address[0] != '\0')
        svg_text(svg, center, below + 22.0, fit_font(c->address, text_width, 6.0), "normal",
                 c->address);
    svg_text(svg, center, below + 34.0, 3.8, "normal",
             "Scan with your phone to check in. Only this place and your times are kept,");
    svg_text(svg, center, below + 39.0, 3.8, "normal",
             "on your phone, to warn you if someone who was here at the same time tests positive.");
    g_string_append(svg, "</svg>\n");
    return g_string_free(svg, FALSE);
}

static void png_write_bytes(png_structp png, png_bytep data, png_size_t len)
{
    g_byte_array_append(png_get_io_ptr(png), data, (guint)len);
}

static void png_flush_nothing(png_structp png)
{
}

/* 1-bit grayscale, 0 = black. */
static gboolean render_png(const QRcode *qr, int scale, GByteArray *out)
{
    int side = (qr->width + 2 * AUTHORITY_POSTER_QUIET_ZONE) * scale;
    size_t row_bytes = ((size_t)side + 7) / 8;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (png == NULL)
        return FALSE;
    png_infop info = png_create_info_struct(png);
    uint8_t *row = g_malloc(row_bytes);
    if (info == NULL || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        g_free(row);
        return FALSE;
    }
    png_set_write_fn(png, out, png_write_bytes, png_flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)side, (png_uint_32)side, 1, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int py = 0; py < side; py++) {
        memset(row, 0xff, row_bytes);
        int y = py / scale - AUTHORITY_POSTER_QUIET_ZONE;
        for (int px = 0; px < side; px++) {
            int x = px / scale - AUTHORITY_POSTER_QUIET_ZONE;
            if (x >= 0 && y >= 0 && x < qr->width && y < qr->width && dark(qr, x, y))
                row[px / 8] &= (uint8_t) ~(0x80u >> (px % 8));
        }
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    g_free(row);
    return TRUE;
}

gboolean authority_poster_render(const AuthorityPosterContent *content, char **svg, GBytes **png,
                                 AuthorityPosterInfo *info, GError **error)
{
    g_autoptr(QRcode) qr = QRcode_encodeString(content->url, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (qr == NULL) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                    "cannot encode the URL as a QR code: %s", g_strerror(errno));
        return FALSE;
    }
    int total = qr->width + 2 * AUTHORITY_POSTER_QUIET_ZONE;
    info->version = qr->version;
    info->modules = qr->width;
    info->png_scale = (AUTHORITY_POSTER_PNG_MIN_PX + total - 1) / total;
    info->png_size = total * info->png_scale;
    g_autoptr(GByteArray) bytes = g_byte_array_new();
    if (!render_png(qr, info->png_scale, bytes)) {
        g_set_error_literal(error, PROX_ERROR, PROX_ERROR_IO, "libpng failed to encode the poster");
        return FALSE;
    }
    *svg = render_svg(qr, content);
    *png = g_byte_array_free_to_bytes(g_steal_pointer(&bytes));
    return TRUE;
}

gboolean authority_poster_write(const char *dir, const AuthorityPosterContent *content,
                                gboolean overwrite, AuthorityPosterInfo *info, GError **error)
{
    static const char *const names[] = {AUTHORITY_POSTER_PNG_NAME, AUTHORITY_POSTER_SVG_NAME,
                                        AUTHORITY_POSTER_URL_NAME};
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        g_set_error(error, PROX_ERROR, PROX_ERROR_IO, "cannot create %s: %s", dir,
                    g_strerror(errno));
        return FALSE;
    }
    char *paths[G_N_ELEMENTS(names)];
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        paths[i] = g_build_filename(dir, names[i], NULL);
    gboolean ok = FALSE;
    size_t written = 0;
    g_autofree char *svg = NULL;
    g_autoptr(GBytes) png = NULL;
    g_autofree char *url_line = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(names) && !overwrite; i++) {
        if (g_file_test(paths[i], G_FILE_TEST_EXISTS)) {
            g_set_error(error, PROX_ERROR, PROX_ERROR_INVALID_ARGUMENT,
                        "%s already exists (another venue's poster?); use another directory",
                        paths[i]);
            goto out;
        }
    }
    if (!authority_poster_render(content, &svg, &png, info, error))
        goto out;
    url_line = g_strconcat(content->url, "\n", NULL);
    gsize png_len = 0;
    const char *png_data = g_bytes_get_data(png, &png_len);
    const struct {
        const char *data;
        size_t len;
    } files[] = {
        {png_data, png_len},
        {svg, strlen(svg)},
        {url_line, strlen(url_line)},
    };
    for (; written < G_N_ELEMENTS(files); written++) {
        if (!authority_write_file_atomic(paths[written], files[written].data, files[written].len,
                                         0644, error))
            goto out;
    }
    ok = TRUE;
out:
    if (!ok) {
        for (size_t i = 0; i < written; i++)
            unlink(paths[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        g_free(paths[i]);
    return ok;
}
