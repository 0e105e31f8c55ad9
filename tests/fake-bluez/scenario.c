#define G_LOG_DOMAIN "fake-bluez"

#include "scenario.h"

#include <json-glib/json-glib.h>
#include <math.h>

#define FB_MAX_ADAPTER 1023

static void sim_device_free(gpointer data)
{
    FbSimDevice *d = data;

    g_free(d->name);
    g_free(d->role);
    g_array_unref(d->waypoints);
    g_free(d);
}

FbScenario *fb_scenario_new(void)
{
    FbScenario *s = g_new0(FbScenario, 1);

    s->description = g_strdup("");
    s->min_rssi = -100;
    s->advertising_interval = 0.25;
    s->devices = g_ptr_array_new_with_free_func(sim_device_free);
    return s;
}

void fb_scenario_free(FbScenario *scenario)
{
    if (scenario == NULL)
        return;
    g_free(scenario->description);
    g_ptr_array_unref(scenario->devices);
    g_free(scenario);
}

static gboolean fail(GError **error, const char *where, const char *what)
{
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "scenario: %s: %s", where, what);
    return FALSE;
}

static gboolean check_keys(JsonObject *obj, const char *const *allowed, const char *where,
                           GError **error)
{
    g_autoptr(GList) members = json_object_get_members(obj);

    /* Unknown keys are typos far more often than extensions: refuse them. */
    for (GList *l = members; l; l = l->next) {
        if (!g_strv_contains(allowed, l->data)) {
            g_autofree char *msg = g_strdup_printf("unknown key \"%s\"", (char *)l->data);
            return fail(error, where, msg);
        }
    }
    return TRUE;
}

static gboolean get_number(JsonObject *obj, const char *key, double *out, const char *where,
                           GError **error)
{
    JsonNode *node = json_object_get_member(obj, key);

    if (node == NULL)
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE(node) || (json_node_get_value_type(node) != G_TYPE_DOUBLE &&
                                         json_node_get_value_type(node) != G_TYPE_INT64)) {
        g_autofree char *msg = g_strdup_printf("\"%s\" must be a number", key);
        return fail(error, where, msg);
    }
    *out = json_node_get_double(node);
    if (!isfinite(*out)) {
        g_autofree char *msg = g_strdup_printf("\"%s\" must be finite", key);
        return fail(error, where, msg);
    }
    return TRUE;
}

static gboolean get_string(JsonObject *obj, const char *key, const char **out, const char *where,
                           GError **error)
{
    JsonNode *node = json_object_get_member(obj, key);

    if (node == NULL)
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING) {
        g_autofree char *msg = g_strdup_printf("\"%s\" must be a string", key);
        return fail(error, where, msg);
    }
    *out = json_node_get_string(node);
    return TRUE;
}

static gboolean get_bool(JsonObject *obj, const char *key, gboolean *out, const char *where,
                         GError **error)
{
    JsonNode *node = json_object_get_member(obj, key);

    if (node == NULL)
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_BOOLEAN) {
        g_autofree char *msg = g_strdup_printf("\"%s\" must be true or false", key);
        return fail(error, where, msg);
    }
    *out = json_node_get_boolean(node);
    return TRUE;
}

typedef struct {
    double tx_power, exponent, sigma;
} RadioDefaults;

static gboolean parse_radio_defaults(JsonObject *obj, RadioDefaults *d, GError **error)
{
    static const char *const keys[] = {"tx_power", "path_loss_exponent", "noise_sigma", NULL};

    return check_keys(obj, keys, "defaults", error) &&
           get_number(obj, "tx_power", &d->tx_power, "defaults", error) &&
           get_number(obj, "path_loss_exponent", &d->exponent, "defaults", error) &&
           get_number(obj, "noise_sigma", &d->sigma, "defaults", error);
}

static gboolean parse_waypoints(JsonNode *node, FbSimDevice *dev, const char *where, GError **error)
{
    static const char *const keys[] = {"t", "x", "y", NULL};
    JsonArray *arr;

    if (node == NULL)
        return fail(error, where, "\"waypoints\" is required");
    if (!JSON_NODE_HOLDS_ARRAY(node) || json_array_get_length(json_node_get_array(node)) == 0)
        return fail(error, where, "\"waypoints\" must be a non-empty array");
    arr = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonNode *wn = json_array_get_element(arr, i);
        FbWaypoint w = {0, 0, 0};
        JsonObject *wo;

        if (!JSON_NODE_HOLDS_OBJECT(wn))
            return fail(error, where, "a waypoint must be an object {t, x, y}");
        wo = json_node_get_object(wn);
        if (!check_keys(wo, keys, where, error) || !get_number(wo, "t", &w.t, where, error) ||
            !get_number(wo, "x", &w.x, where, error) || !get_number(wo, "y", &w.y, where, error))
            return FALSE;
        if (!json_object_has_member(wo, "t") || !json_object_has_member(wo, "x") ||
            !json_object_has_member(wo, "y"))
            return fail(error, where, "a waypoint needs t, x and y");
        if (dev->waypoints->len > 0 &&
            w.t < g_array_index(dev->waypoints, FbWaypoint, dev->waypoints->len - 1).t)
            return fail(error, where, "waypoint times must not decrease");
        g_array_append_val(dev->waypoints, w);
    }
    return TRUE;
}

static FbSimDevice *sim_device_new(const char *name, guint adapter, const RadioDefaults *d)
{
    FbSimDevice *dev = g_new0(FbSimDevice, 1);

    dev->name = g_strdup(name);
    dev->adapter = adapter;
    dev->role = g_strdup("person");
    fb_bdaddr_public_for(name, adapter, &dev->address);
    dev->tx_power = d->tx_power;
    dev->path_loss_exponent = d->exponent;
    dev->noise_sigma = d->sigma;
    dev->present = TRUE;
    dev->powered = TRUE;
    dev->waypoints = g_array_new(FALSE, FALSE, sizeof(FbWaypoint));
    return dev;
}

static gboolean parse_device(FbScenario *s, JsonNode *node, guint i, const RadioDefaults *d,
                             GError **error)
{
    static const char *const keys[] = {
        "name",        "adapter", "role",    "address",   "tx_power",   "path_loss_exponent",
        "noise_sigma", "present", "powered", "waypoints", "controller", NULL};
    g_autofree char *where = g_strdup_printf("devices[%u]", i);
    const char *name = NULL, *role = NULL, *address = NULL, *controller = NULL;
    double adapter = -1;
    FbSimDevice *dev;
    JsonObject *obj;

    if (!JSON_NODE_HOLDS_OBJECT(node))
        return fail(error, where, "must be an object");
    obj = json_node_get_object(node);
    if (!check_keys(obj, keys, where, error) || !get_string(obj, "name", &name, where, error) ||
        !get_number(obj, "adapter", &adapter, where, error) ||
        !get_string(obj, "role", &role, where, error) ||
        !get_string(obj, "address", &address, where, error) ||
        !get_string(obj, "controller", &controller, where, error))
        return FALSE;
    if (controller != NULL && !g_str_equal(controller, "dual") &&
        !g_str_equal(controller, "le-legacy"))
        return fail(error, where, "\"controller\" must be \"dual\" or \"le-legacy\"");
    if (name == NULL || *name == '\0')
        return fail(error, where, "\"name\" is required");
    if (adapter < 0 || adapter > FB_MAX_ADAPTER || adapter != floor(adapter))
        return fail(error, where, "\"adapter\" must be an integer 0..1023");
    if (fb_scenario_find_name(s, name) != NULL)
        return fail(error, where, "duplicate device name");
    if (fb_scenario_find_adapter(s, (guint)adapter) != NULL)
        return fail(error, where, "two devices on one adapter index");

    dev = sim_device_new(name, (guint)adapter, d);
    g_ptr_array_add(s->devices, dev);
    dev->legacy_advertising = g_strcmp0(controller, "le-legacy") == 0;
    if (role != NULL) {
        g_free(dev->role);
        dev->role = g_strdup(role);
    }
    if (address != NULL && !fb_bdaddr_parse(address, &dev->address))
        return fail(error, where, "\"address\" must look like 00:1B:DC:00:00:01");
    if (!get_number(obj, "tx_power", &dev->tx_power, where, error) ||
        !get_number(obj, "path_loss_exponent", &dev->path_loss_exponent, where, error) ||
        !get_number(obj, "noise_sigma", &dev->noise_sigma, where, error) ||
        !get_bool(obj, "present", &dev->present, where, error) ||
        !get_bool(obj, "powered", &dev->powered, where, error))
        return FALSE;
    if (dev->path_loss_exponent <= 0)
        return fail(error, where, "\"path_loss_exponent\" must be positive");
    if (dev->noise_sigma < 0)
        return fail(error, where, "\"noise_sigma\" must not be negative");
    return parse_waypoints(json_object_get_member(obj, "waypoints"), dev, where, error);
}

FbScenario *fb_scenario_parse(const char *json, gssize length, GError **error)
{
    static const char *const keys[] = {"description", "min_rssi", "advertising_interval_ms",
                                       "defaults",    "devices",  NULL};
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(FbScenario) s = fb_scenario_new();
    RadioDefaults d = {-59, 2.0, 2.0};
    const char *description = NULL;
    double interval_ms = 250;
    JsonObject *root;
    JsonNode *node;

    if (!json_parser_load_from_data(parser, json, length, error))
        return NULL;
    if (!JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
        fail(error, "top level", "must be an object");
        return NULL;
    }
    root = json_node_get_object(json_parser_get_root(parser));
    if (!check_keys(root, keys, "top level", error) ||
        !get_string(root, "description", &description, "top level", error) ||
        !get_number(root, "min_rssi", &s->min_rssi, "top level", error) ||
        !get_number(root, "advertising_interval_ms", &interval_ms, "top level", error))
        return NULL;
    if (description != NULL) {
        g_free(s->description);
        s->description = g_strdup(description);
    }
    if (interval_ms < 20 || interval_ms > 10240) {
        fail(error, "top level", "\"advertising_interval_ms\" must be 20..10240");
        return NULL;
    }
    s->advertising_interval = interval_ms / 1000.0;
    node = json_object_get_member(root, "defaults");
    if (node != NULL) {
        if (!JSON_NODE_HOLDS_OBJECT(node)) {
            fail(error, "defaults", "must be an object");
            return NULL;
        }
        if (!parse_radio_defaults(json_node_get_object(node), &d, error))
            return NULL;
    }
    node = json_object_get_member(root, "devices");
    if (node == NULL || !JSON_NODE_HOLDS_ARRAY(node)) {
        fail(error, "top level", "\"devices\" must be an array");
        return NULL;
    }
    for (guint i = 0; i < json_array_get_length(json_node_get_array(node)); i++) {
        if (!parse_device(s, json_array_get_element(json_node_get_array(node), i), i, &d, error))
            return NULL;
    }
    return g_steal_pointer(&s);
}

FbScenario *fb_scenario_load(const char *path, GError **error)
{
    g_autofree char *text = NULL;
    gsize len = 0;
    FbScenario *s;

    if (!g_file_get_contents(path, &text, &len, error))
        return NULL;
    s = fb_scenario_parse(text, (gssize)len, error);
    if (s == NULL)
        g_prefix_error(error, "%s: ", path);
    return s;
}

FbSimDevice *fb_scenario_find_adapter(FbScenario *scenario, guint adapter)
{
    for (guint i = 0; i < scenario->devices->len; i++) {
        FbSimDevice *d = scenario->devices->pdata[i];

        if (d->adapter == adapter)
            return d;
    }
    return NULL;
}

FbSimDevice *fb_scenario_find_name(FbScenario *scenario, const char *name)
{
    for (guint i = 0; i < scenario->devices->len; i++) {
        FbSimDevice *d = scenario->devices->pdata[i];

        if (g_str_equal(d->name, name))
            return d;
    }
    return NULL;
}

FbSimDevice *fb_scenario_add_bare(FbScenario *scenario, guint adapter)
{
    static const RadioDefaults d = {-59, 2.0, 2.0};
    g_autofree char *name = g_strdup_printf("hci%u", adapter);
    FbSimDevice *dev = sim_device_new(name, adapter, &d);
    FbWaypoint origin = {0, 0, 0};

    g_array_append_val(dev->waypoints, origin);
    g_ptr_array_add(scenario->devices, dev);
    return dev;
}

void fb_sim_device_position(const FbSimDevice *device, double t, double *x, double *y)
{
    const FbWaypoint *w = (const FbWaypoint *)(void *)device->waypoints->data;
    guint n = device->waypoints->len;

    if (device->pinned) {
        *x = device->pin_x;
        *y = device->pin_y;
        return;
    }
    if (t <= w[0].t) {
        *x = w[0].x;
        *y = w[0].y;
        return;
    }
    for (guint i = 1; i < n; i++) {
        if (t < w[i].t) {
            double f = (t - w[i - 1].t) / (w[i].t - w[i - 1].t);

            *x = w[i - 1].x + f * (w[i].x - w[i - 1].x);
            *y = w[i - 1].y + f * (w[i].y - w[i - 1].y);
            return;
        }
    }
    *x = w[n - 1].x;
    *y = w[n - 1].y;
}
