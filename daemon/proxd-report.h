/* proxd-report.h - reporting a positive test (PROTOCOL.md §6): the device's own TEKs of the
 * last 14 days, with the one-time code, to the key server's POST /v1/publish.
 *
 * What is sent, exactly: one JSON object
 *   {"code": CODE,
 *    "temporaryExposureKeys": [{"key": BASE64, "rollingStartNumber": N,
 *                               "rollingPeriod": P, "transmissionRisk": 0}, ...],
 *    "checkins": [{"locationId": "<64 hex>", "start": ARRIVED, "end": DEPARTED}, ...],
 *    "padding": RANDOM}
 * "checkins" (docs/venues.md §6) is there only when the person confirmed at least one: a
 * report offers the closed check-ins that arrived within the last 14 days (less
 * PROXD_REPORT_CHECKIN_MARGIN, so one does not age past the server's limit between preview
 * and upload), at most the newest PROXD_REPORT_MAX_CHECKINS, and sends none of them unless
 * proxd_report_select_checkins() picks them one by one.
 * The keys are the stored own TEKs that start no earlier than UTC midnight 14 days before
 * today (the key server's limit) and whose rolling period has ended by `now`: the key in
 * use (the one whose period contains `now`) is never sent, it is reported only after it
 * rolled over. At most the newest 30 (the server's limit; a device makes one a day). The
 * padding is random letters that bring every body to PROXD_REPORT_BODY_SIZE bytes, so the
 * upload's size does not tell how many keys (how many days of use) it holds; the server
 * ignores it. Nothing else: no device id, no contact data, no User-Agent, no cookies.
 *
 * Consent: the daemon shows the preview (number of keys and their days, never the keys),
 * and sends only after confirmation, checking with proxd_report_matches() that what it is
 * about to send is what was previewed (the day may have rolled over in between).
 *
 * Threads: ProxdReport is built from a ProxStore on the store's thread (short read);
 * sending blocks in libcurl and runs in a GTask thread that owns the report. Key material
 * and the code are wiped when freed and never logged.
 */
#pragma once

#include <gio/gio.h>

#include "prox-store.h"

G_BEGIN_DECLS

#define PROXD_REPORT_DAYS 14
#define PROXD_REPORT_MAX_KEYS 30
/* Room for 30 keys and 60 check-ins: every body is this size, with or without them. */
#define PROXD_REPORT_BODY_SIZE 16384
#define PROXD_REPORT_MAX_CHECKINS 60
#define PROXD_REPORT_CHECKIN_MARGIN 3600 /* s */
#define PROXD_REPORT_MAX_CODE_LEN 64
#define PROXD_REPORT_DEFAULT_CONNECT_TIMEOUT 15 /* s */
#define PROXD_REPORT_DEFAULT_TIMEOUT 60         /* s, the whole request */
#define PROXD_REPORT_MAX_ANSWER (64 * 1024)

#define PROXD_REPORT_ERROR (proxd_report_error_quark())
GQuark proxd_report_error_quark(void);

typedef enum {
    PROXD_REPORT_ERROR_INVALID_ARGUMENT, /* bad URL or code */
    PROXD_REPORT_ERROR_NO_KEYS,          /* nothing to send (yet) */
    PROXD_REPORT_ERROR_CHANGED,          /* not what was previewed (proxd_report_matches) */
    PROXD_REPORT_ERROR_INVALID_CODE,     /* 403 invalid_code */
    PROXD_REPORT_ERROR_CODE_USED,        /* 409 code_used */
    PROXD_REPORT_ERROR_CODE_EXPIRED,     /* 410 code_expired */
    PROXD_REPORT_ERROR_RATE_LIMITED,     /* 429: try again later */
    PROXD_REPORT_ERROR_REJECTED,         /* another 4xx: the server's reason says why */
    PROXD_REPORT_ERROR_UNAVAILABLE,      /* 5xx: the server failed, try again later */
    PROXD_REPORT_ERROR_NETWORK,          /* no answer */
    PROXD_REPORT_ERROR_PROTOCOL,         /* an answer we do not understand */
    PROXD_REPORT_ERROR_STORE,
} ProxdReportError;

typedef struct _ProxdReport ProxdReport;

/* Selects the keys to report at `now` (unix seconds): the own keys of the last 14 days, the
 * one in use cut short after the current interval (the caller ends it in the store with
 * prox_store_cut_current_tek() before sending). May hold 0 keys (preview shows it; sending
 * refuses with NO_KEYS). */
ProxdReport *proxd_report_new(ProxStore *store, gint64 now, GError **error);
void proxd_report_free(ProxdReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxdReport, proxd_report_free)

guint proxd_report_get_n_keys(const ProxdReport *report);
/* 0, or the end of the current interval when the last key is the one in use, cut there. */
gint64 proxd_report_get_cut_at(const ProxdReport *report);
/* Validity of key i (oldest first); never its key data. */
void proxd_report_get_key_period(const ProxdReport *report, guint i, guint32 *rolling_start,
                                 guint32 *rolling_period);

/* Check-ins offered (oldest first), and those selected to be sent. */
guint proxd_report_get_n_checkins(const ProxdReport *report);
const ProxCheckIn *proxd_report_get_checkin(const ProxdReport *report, guint i);
/* Sends exactly the check-ins with these ids (n_ids 0: none). Every id must be among those
 * offered, each once; otherwise PROXD_REPORT_ERROR_CHANGED and the selection is unchanged. */
gboolean proxd_report_select_checkins(ProxdReport *report, const gint64 *ids, gsize n_ids,
                                      GError **error);
guint proxd_report_get_n_selected_checkins(const ProxdReport *report);

/* The preview shown before consent: "keys" (u), "days" (at: UTC midnight of each key's
 * start, oldest first), "first-day" and "last-day" (t, absent when no keys), "bytes" (u,
 * the size of the upload), "checkins" (aa{sv}: "id" (x), "arrived" (t), "departed" (t) of
 * each check-in offered, oldest first). Floating GVariant a{sv}. */
GVariant *proxd_report_preview(const ProxdReport *report);
/* TRUE when the report holds exactly the keys whose days are `days` (as in the
 * preview's "days"), so what is sent is what the user agreed to. */
gboolean proxd_report_matches(const ProxdReport *report, const gint64 *days, gsize n_days);

/* The upload body for `code` (code 1..64 printable ASCII characters, trimmed). The bytes
 * are wiped when the GBytes is freed. */
GBytes *proxd_report_build_body(const ProxdReport *report, const char *code, GError **error);

typedef struct {
    /* The key server's upload URL, e.g. https://keys.example.org/v1/publish. */
    const char *url;
    /* Plain http is refused except to a loopback address, unless this is set. */
    gboolean allow_http;
    guint connect_timeout; /* 0 = default */
    guint timeout;         /* 0 = default */
} ProxdReportOptions;

/* Posts the report (blocking). *inserted = the server's count of keys it did not have. */
gboolean proxd_report_send(const ProxdReport *report, const char *code,
                           const ProxdReportOptions *options, GCancellable *cancellable,
                           guint *inserted, GError **error);

/* The same in a GTask thread; takes `report`. Options are copied. */
void proxd_report_send_async(ProxdReport *report, const char *code,
                             const ProxdReportOptions *options, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data);
gboolean proxd_report_send_finish(GAsyncResult *result, guint *inserted, GError **error);

G_END_DECLS
