#define G_LOG_DOMAIN "fake-bluez"

#include "truth-log.h"

#include <errno.h>
#include <stdio.h>

struct FbTruthLog {
    FILE *fp;
    GString *line;
};

FbTruthLog *fb_truth_log_open(const char *path, GError **error)
{
    /* Appending lets a restarted fake continue the same world's record. */
    FILE *fp = fopen(path, "a");
    FbTruthLog *log;

    if (fp == NULL) {
        int err = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "%s: %s", path,
                    g_strerror(err));
        return NULL;
    }
    log = g_new0(FbTruthLog, 1);
    log->fp = fp;
    log->line = g_string_new(NULL);
    return log;
}

static void append_json_string(GString *s, const char *text)
{
    g_string_append_c(s, '"');
    for (const char *p = text; *p; p++) {
        if (*p == '"' || *p == '\\')
            g_string_append_printf(s, "\\%c", *p);
        else if ((guchar)*p < 0x20)
            g_string_append_printf(s, "\\u%04x", (guchar)*p);
        else
            g_string_append_c(s, *p);
    }
    g_string_append_c(s, '"');
}

void fb_truth_log_report(FbTruthLog *log, const FbTruthReport *r)
{
    GString *s = log->line;
    char num[G_ASCII_DTOSTR_BUF_SIZE];
    GVariantIter iter;
    const char *uuid;
    GVariant *value;
    gboolean first = TRUE;

    g_string_truncate(s, 0);
    g_string_append_printf(s,
                           "{\"t\":%s,\"from\":", g_ascii_formatd(num, sizeof num, "%.3f", r->t));
    append_json_string(s, r->from);
    g_string_append(s, ",\"to\":");
    append_json_string(s, r->to);
    g_string_append_printf(s, ",\"from_adapter\":%u,\"to_adapter\":%u,\"address\":\"%s\"",
                           r->from_adapter, r->to_adapter, r->address);
    g_string_append_printf(s, ",\"address_type\":\"%s\",\"rssi\":%d,\"distance\":%s",
                           r->address_type, r->rssi,
                           g_ascii_formatd(num, sizeof num, "%.2f", r->distance));
    g_string_append(s, ",\"service_data\":{");
    g_variant_iter_init(&iter, r->service_data);
    while (g_variant_iter_loop(&iter, "{&sv}", &uuid, &value)) {
        gsize n = 0;
        const guint8 *bytes = g_variant_get_fixed_array(value, &n, 1);

        g_string_append_printf(s, "%s\"%s\":\"", first ? "" : ",", uuid);
        for (gsize i = 0; i < n; i++)
            g_string_append_printf(s, "%02x", bytes[i]);
        g_string_append_c(s, '"');
        first = FALSE;
    }
    g_string_append_printf(s, "},\"visible\":%s}\n", r->visible ? "true" : "false");
    fwrite(s->str, 1, s->len, log->fp);
}

void fb_truth_log_flush(FbTruthLog *log)
{
    fflush(log->fp);
}

void fb_truth_log_close(FbTruthLog *log)
{
    if (log == NULL)
        return;
    fclose(log->fp);
    g_string_free(log->line, TRUE);
    g_free(log);
}
