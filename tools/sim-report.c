/* sim-report.c - per-device report of the ride from each proxd store. */
#define G_LOG_DOMAIN "prox-sim"

#include "sim-report.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "prox-hex.h"
#include "prox-store.h"

#define FD6F_UUID "0000fd6f-0000-1000-8000-00805f9b34fb"
#define RPI_HEX_LEN (PROX_RPI_LEN * 2)
#define TEN_MINUTES 600
#define DEFAULT_PEERS_SHOWN 8
/* proxd's defaults: a person scans every 180-300 s, a beacon's scan instance lasts 60 s. */
#define PERSON_SCAN_MAX_SECONDS 300
#define BEACON_SCAN_SECONDS 60
/* A person's scan lasts 4 s once discovery runs; one much shorter means proxd gave up
 * waiting for bluetoothd (here: the simulation outran an overloaded machine). */
#define PERSON_SCAN_MIN_FULL_SECONDS 3

GHashTable *sim_truth_load(const char *truth_path, GError **error)
{
    g_autoptr(GFile) file = g_file_new_for_path(truth_path);
    g_autoptr(GFileInputStream) in = g_file_read(file, NULL, error);
    if (in == NULL)
        return NULL;
    g_autoptr(GDataInputStream) data = g_data_input_stream_new(G_INPUT_STREAM(in));
    g_autoptr(GHashTable) owners = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr(JsonParser) parser = json_parser_new();
    char *line;
    gsize len;
    guint64 n = 0;
    while ((line = g_data_input_stream_read_line(data, &len, NULL, error)) != NULL) {
        g_autofree char *owned_line = line;
        n++;
        /* A line cut short by the fake's exit is the only malformed one there can be. */
        if (len == 0 || !json_parser_load_from_data(parser, line, len, NULL))
            continue;
        JsonObject *o = json_node_get_object(json_parser_get_root(parser));
        JsonObject *sd = o != NULL ? json_object_get_object_member(o, "service_data") : NULL;
        const char *from =
            o != NULL ? json_object_get_string_member_with_default(o, "from", NULL) : NULL;
        const char *hex =
            sd != NULL ? json_object_get_string_member_with_default(sd, FD6F_UUID, NULL) : NULL;
        if (from == NULL || hex == NULL || strlen(hex) < RPI_HEX_LEN)
            continue;
        char *rpi = g_ascii_strdown(hex, RPI_HEX_LEN);
        if (!g_hash_table_contains(owners, rpi))
            g_hash_table_insert(owners, rpi, g_strdup(from));
        else
            g_free(rpi);
    }
    if (error != NULL && *error != NULL)
        return NULL;
    if (n == 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "the truth log %s is empty", truth_path);
        return NULL;
    }
    return g_steal_pointer(&owners);
}

/* What one device recorded of one other device, over all its IDs. */
typedef struct {
    const char *name; /* from the truth log; "(unknown)" if not in it */
    gint64 first, last;
    GHashTable *scans; /* scan instance ids it was heard in */
    GHashTable *rpis;
    int rssi_max;
    gboolean has_rssi;
} Peer;

static void peer_free(Peer *p)
{
    g_hash_table_unref(p->scans);
    g_hash_table_unref(p->rpis);
    g_free(p);
}

static int compare_peers(gconstpointer a, gconstpointer b)
{
    const Peer *pa = *(Peer *const *)a;
    const Peer *pb = *(Peer *const *)b;
    if (pa->has_rssi != pb->has_rssi)
        return pa->has_rssi ? -1 : 1;
    if (pa->rssi_max != pb->rssi_max)
        return pb->rssi_max - pa->rssi_max;
    return g_strcmp0(pa->name, pb->name);
}

static gint64 *int64_dup(gint64 v)
{
    return g_memdup2(&v, sizeof v);
}

static void print_occupancy(const SimRide *ride, GArray *sightings, GHashTable *truth)
{
    g_print("    Occupancy: distinct IDs the beacon heard per 10 minutes (what it counts), and\n"
            "    the people they belong to (ground truth). Phones change IDs every 10 minutes,\n"
            "    not all at the same moment, so one person can count twice in a period:\n");
    for (gint64 t = ride->epoch; t < ride->epoch + ride->end; t += TEN_MINUTES) {
        g_autoptr(GHashTable) rpis = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GHashTable) people = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint i = 0; i < sightings->len; i++) {
            const ProxSighting *s = &g_array_index(sightings, ProxSighting, i);
            if (s->last_seen < t || s->first_seen >= t + TEN_MINUTES)
                continue;
            char *hex = prox_hex_dup(s->rpi.bytes, PROX_RPI_LEN);
            const char *owner = g_hash_table_lookup(truth, hex);
            if (owner != NULL)
                g_hash_table_add(people, (gpointer)owner);
            g_hash_table_add(rpis, hex);
        }
        g_autofree char *from = sim_format_clock(t);
        g_autofree char *to = sim_format_clock(t + TEN_MINUTES);
        guint n = g_hash_table_size(rpis);
        g_autofree char *bar = g_strnfill(MIN(n, 60), '#');
        g_print("      %s-%s  %3u IDs  %3u people  %s\n", from, to, n, g_hash_table_size(people),
                bar);
    }
}

static gboolean report_device(const SimDaemon *d, const SimRide *ride, GHashTable *truth,
                              gboolean all_peers, gboolean *heard_anyone, guint *n_scans,
                              GHashTable *heard_names, GError **error)
{
    const SimDevice *dev = d->device;
    g_autoptr(ProxStore) store = prox_store_open(d->db_path, NULL, error);
    if (store == NULL) {
        g_prefix_error(error, "%s's store %s: ", dev->name, d->db_path);
        return FALSE;
    }
    g_autoptr(GArray) sightings = NULL;
    g_autoptr(GArray) scans = NULL;
    if (!prox_store_load_sightings(store, 0, G_MAXINT64, &sightings, error) ||
        !prox_store_load_scan_instances(store, 0, G_MAXINT64, &scans, error)) {
        g_prefix_error(error, "%s's store %s: ", dev->name, d->db_path);
        return FALSE;
    }

    g_autoptr(GHashTable) peers =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)peer_free);
    g_autoptr(GHashTable) all_rpis = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    guint64 reports = 0;
    for (guint i = 0; i < sightings->len; i++) {
        const ProxSighting *s = &g_array_index(sightings, ProxSighting, i);
        char *hex = prox_hex_dup(s->rpi.bytes, PROX_RPI_LEN);
        const char *owner = g_hash_table_lookup(truth, hex);
        if (owner == NULL)
            owner = "(unknown)";
        Peer *p = g_hash_table_lookup(peers, owner);
        if (p == NULL) {
            p = g_new0(Peer, 1);
            p->name = owner;
            p->first = s->first_seen;
            p->last = s->last_seen;
            p->scans = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
            p->rpis = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
            g_hash_table_insert(peers, (gpointer)owner, p);
        }
        p->first = MIN(p->first, s->first_seen);
        p->last = MAX(p->last, s->last_seen);
        g_hash_table_add(p->scans, int64_dup(s->scan_instance_id));
        g_hash_table_add(p->rpis, g_strdup(hex));
        if (s->rssi_count > 0 && (!p->has_rssi || s->rssi_max > p->rssi_max)) {
            p->rssi_max = s->rssi_max;
            p->has_rssi = TRUE;
        }
        reports += s->report_count;
        g_hash_table_add(all_rpis, hex);
    }

    g_autofree char *board = sim_format_clock(ride->epoch + ride->stops[dev->board_stop].t);
    g_autofree char *leave = sim_format_clock(ride->epoch + ride->stops[dev->leave_stop].t);
    if (dev->beacon)
        g_print("\n%s - the bus's beacon at the front (hci%u, proxd --role=beacon)\n", dev->name,
                dev->adapter);
    else
        g_print("\n%s - seat %s, on board %s-%s (hci%u)\n", dev->name, dev->seat, board, leave,
                dev->adapter);
    g_print("    %u scan instances, %" G_GUINT64_FORMAT
            " radio reports, %u distinct IDs from %u devices\n",
            scans->len, reports, g_hash_table_size(all_rpis), g_hash_table_size(peers));
    *heard_anyone = g_hash_table_size(peers) > 0;
    /* Only full-length scans count towards the plausibility check. */
    *n_scans = 0;
    for (guint i = 0; i < scans->len; i++) {
        const ProxScanInstance *scan = &g_array_index(scans, ProxScanInstance, i);
        if (dev->beacon || scan->end - scan->start >= PERSON_SCAN_MIN_FULL_SECONDS)
            (*n_scans)++;
    }

    g_autoptr(GPtrArray) sorted = g_ptr_array_new();
    GHashTableIter iter;
    gpointer value;
    g_hash_table_iter_init(&iter, peers);
    while (g_hash_table_iter_next(&iter, NULL, &value))
        g_ptr_array_add(sorted, value);
    g_ptr_array_sort(sorted, compare_peers);
    if (sorted->len > 0)
        g_print("    %-10s %-5s %-11s %5s %5s %8s %9s %8s\n", "heard", "seat", "when", "min",
                "scans", "IDs", "closest", "~dist");
    guint shown = all_peers ? sorted->len : MIN(sorted->len, DEFAULT_PEERS_SHOWN);
    for (guint i = 0; i < sorted->len; i++) {
        const Peer *p = g_ptr_array_index(sorted, i);
        g_hash_table_add(heard_names, (gpointer)p->name);
        if (i >= shown)
            continue;
        const SimDevice *other = sim_ride_device_by_name(ride, p->name);
        g_autofree char *from = sim_format_clock(p->first);
        g_autofree char *to = sim_format_clock(p->last);
        g_autofree char *when = g_strdup_printf("%s-%s", from, to);
        g_autofree char *closest =
            p->has_rssi ? g_strdup_printf("%d dBm", p->rssi_max) : g_strdup("?");
        g_autofree char *dist = p->has_rssi
                                    ? g_strdup_printf("%.1f m", sim_rssi_to_distance(p->rssi_max))
                                    : g_strdup("?");
        g_print("    %-10s %-5s %-11s %5" G_GINT64_FORMAT " %5u %8u %9s %8s\n", p->name,
                other != NULL ? other->seat : "", when, (p->last - p->first + 59) / 60,
                g_hash_table_size(p->scans), g_hash_table_size(p->rpis), closest, dist);
    }
    if (shown < sorted->len)
        g_print("    ... and %u more farther away (--verbose lists all)\n", sorted->len - shown);
    if (dev->beacon)
        print_occupancy(ride, sightings, truth);
    return TRUE;
}

gboolean sim_report_ride(SimWorld *world, const SimRide *ride, GHashTable *truth,
                         gboolean all_peers, gboolean *plausible, GError **error)
{
    g_print("\n== What each device recorded ==\n"
            "A store holds only the random IDs (RPIs, new every 10 minutes) it heard, with times\n"
            "and signal strengths: no names, no positions. The names below come from the fake\n"
            "radio's ground-truth log, which knows who sent each ID; a real device cannot know.\n"
            "'min' is first to last time heard; people scan 4 s every 3-5 minutes (the beacon\n"
            "all the time), so it is accurate to a few minutes. 'closest' is the strongest\n"
            "signal, '~dist' what it means under this bus's radio model (seat distances: 0.8 m\n"
            "between rows, 0.5-1.7 m across).\n");
    *plausible = TRUE;
    for (guint i = 0; i < world->daemons->len; i++) {
        const SimDaemon *d = g_ptr_array_index(world->daemons, i);
        gboolean heard_anyone = FALSE;
        guint n_scans = 0;
        g_autoptr(GHashTable) heard = g_hash_table_new(g_str_hash, g_str_equal);
        if (!report_device(d, ride, truth, all_peers, &heard_anyone, &n_scans, heard, error))
            return FALSE;
        if (!heard_anyone) {
            g_print("    CHECK FAILED: %s recorded nobody\n", d->device->name);
            *plausible = FALSE;
        }
        /* A person scans every 3-5 minutes, the beacon starts an instance every minute: far
         * fewer means the daemons fell behind the simulated clock (too busy a machine). */
        guint expected = d->device->beacon ? (guint)(ride->end * 3 / 4 / BEACON_SCAN_SECONDS)
                                           : (guint)(ride->end / PERSON_SCAN_MAX_SECONDS) - 1;
        if (n_scans < expected) {
            g_print(
                "    CHECK FAILED: %s made %u full scans where at least %u were due: the daemons\n"
                "    fell behind the simulated clock; this machine is too busy for this\n"
                "    --speed (try a lower one)\n",
                d->device->name, n_scans, expected);
            *plausible = FALSE;
        }
        if (d->device->beacon) {
            for (guint j = 1; j < ride->devices->len; j++) {
                const SimDevice *p = sim_ride_device(ride, j);
                if (!g_hash_table_contains(heard, p->name)) {
                    g_print("    CHECK FAILED: the beacon never heard %s\n", p->name);
                    *plausible = FALSE;
                }
            }
        }
    }
    return TRUE;
}
