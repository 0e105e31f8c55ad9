#define G_LOG_DOMAIN "fake-bluez"

#include "fb-iface.h"

struct _FbIface {
    GDBusInterfaceSkeleton parent_instance;
    GDBusInterfaceInfo *info;
    GDBusInterfaceVTable vtable;
    GHashTable *props;  /* name -> GVariant */
    GPtrArray *pending; /* names to signal, in order of change */
    int hold;
    FbIfaceMethodFunc method;
    FbIfaceSetFunc set;
    gpointer user_data;
};

G_DEFINE_TYPE(FbIface, fb_iface, G_TYPE_DBUS_INTERFACE_SKELETON)

static void on_method_call(GDBusConnection *connection, const char *sender, const char *object_path,
                           const char *interface_name, const char *method_name,
                           GVariant *parameters, GDBusMethodInvocation *invocation,
                           gpointer user_data)
{
    FbIface *self = FB_IFACE(user_data);

    if (self->method == NULL) {
        g_dbus_method_invocation_return_error(invocation, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                              "No such method '%s'", method_name);
        return;
    }
    self->method(self, invocation, self->user_data);
}

static GVariant *on_get_property(GDBusConnection *connection, const char *sender,
                                 const char *object_path, const char *interface_name,
                                 const char *property_name, GError **error, gpointer user_data)
{
    FbIface *self = FB_IFACE(user_data);
    GVariant *value = g_hash_table_lookup(self->props, property_name);

    if (value == NULL) {
        g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS, "No such property '%s'",
                    property_name);
        return NULL;
    }
    return g_variant_ref(value);
}

static gboolean on_set_property(GDBusConnection *connection, const char *sender,
                                const char *object_path, const char *interface_name,
                                const char *property_name, GVariant *value, GError **error,
                                gpointer user_data)
{
    FbIface *self = FB_IFACE(user_data);

    if (self->set == NULL) {
        g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_PROPERTY_READ_ONLY,
                    "Property '%s' is read-only", property_name);
        return FALSE;
    }
    return self->set(self, property_name, value, error, self->user_data);
}

static GDBusInterfaceInfo *fb_iface_get_info(GDBusInterfaceSkeleton *skeleton)
{
    return FB_IFACE(skeleton)->info;
}

static GDBusInterfaceVTable *fb_iface_get_vtable(GDBusInterfaceSkeleton *skeleton)
{
    return &FB_IFACE(skeleton)->vtable;
}

static GVariant *fb_iface_get_properties(GDBusInterfaceSkeleton *skeleton)
{
    FbIface *self = FB_IFACE(skeleton);
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
    /* Introspection order, so InterfacesAdded looks the same every time. */
    for (GDBusPropertyInfo **p = self->info->properties; p && *p; p++) {
        GVariant *value = g_hash_table_lookup(self->props, (*p)->name);

        if (value != NULL)
            g_variant_builder_add(&b, "{sv}", (*p)->name, value);
    }
    return g_variant_builder_end(&b);
}

static void fb_iface_flush(GDBusInterfaceSkeleton *skeleton)
{
    /* Changes are signalled synchronously; nothing is ever queued across calls. */
}

static void fb_iface_finalize(GObject *object)
{
    FbIface *self = FB_IFACE(object);

    g_hash_table_unref(self->props);
    g_ptr_array_unref(self->pending);
    g_dbus_interface_info_unref(self->info);
    G_OBJECT_CLASS(fb_iface_parent_class)->finalize(object);
}

static void fb_iface_class_init(FbIfaceClass *klass)
{
    GObjectClass *object_class = G_OBJECT_CLASS(klass);
    GDBusInterfaceSkeletonClass *skeleton_class = G_DBUS_INTERFACE_SKELETON_CLASS(klass);

    object_class->finalize = fb_iface_finalize;
    skeleton_class->get_info = fb_iface_get_info;
    skeleton_class->get_vtable = fb_iface_get_vtable;
    skeleton_class->get_properties = fb_iface_get_properties;
    skeleton_class->flush = fb_iface_flush;
}

static void fb_iface_init(FbIface *self)
{
    self->props =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_variant_unref);
    self->pending = g_ptr_array_new_with_free_func(g_free);
    self->vtable.method_call = on_method_call;
    self->vtable.get_property = on_get_property;
    self->vtable.set_property = on_set_property;
}

FbIface *fb_iface_new(GDBusInterfaceInfo *info, FbIfaceMethodFunc method, FbIfaceSetFunc set,
                      gpointer user_data)
{
    FbIface *self = g_object_new(FB_TYPE_IFACE, NULL);

    self->info = g_dbus_interface_info_ref(info);
    self->method = method;
    self->set = set;
    self->user_data = user_data;
    return self;
}

GVariant *fb_iface_get(FbIface *iface, const char *name)
{
    return g_hash_table_lookup(iface->props, name);
}

static void flush_pending(FbIface *self)
{
    GDBusInterfaceSkeleton *skeleton = G_DBUS_INTERFACE_SKELETON(self);
    const char *path = g_dbus_interface_skeleton_get_object_path(skeleton);
    GVariantBuilder changed, invalidated;
    GList *connections;
    GVariant *params;

    if (self->pending->len == 0)
        return;
    if (path == NULL) {
        g_ptr_array_set_size(self->pending, 0);
        return;
    }
    g_variant_builder_init(&changed, G_VARIANT_TYPE_VARDICT);
    g_variant_builder_init(&invalidated, G_VARIANT_TYPE_STRING_ARRAY);
    for (guint i = 0; i < self->pending->len; i++) {
        const char *name = self->pending->pdata[i];
        GVariant *value = g_hash_table_lookup(self->props, name);

        if (value != NULL)
            g_variant_builder_add(&changed, "{sv}", name, value);
        else
            g_variant_builder_add(&invalidated, "s", name);
    }
    g_ptr_array_set_size(self->pending, 0);
    params =
        g_variant_ref_sink(g_variant_new("(sa{sv}as)", self->info->name, &changed, &invalidated));
    connections = g_dbus_interface_skeleton_get_connections(skeleton);
    for (GList *l = connections; l; l = l->next)
        g_dbus_connection_emit_signal(l->data, NULL, path, "org.freedesktop.DBus.Properties",
                                      "PropertiesChanged", params, NULL);
    g_list_free_full(connections, g_object_unref);
    g_variant_unref(params);
}

static void add_pending(FbIface *self, const char *name)
{
    for (guint i = 0; i < self->pending->len; i++)
        if (g_str_equal(self->pending->pdata[i], name))
            return;
    g_ptr_array_add(self->pending, g_strdup(name));
}

void fb_iface_set(FbIface *iface, const char *name, GVariant *value, FbEmit emit)
{
    GVariant *old = g_hash_table_lookup(iface->props, name);
    gboolean changed;

    if (value != NULL)
        g_variant_ref_sink(value);
    changed = (old == NULL) != (value == NULL) || (old != NULL && !g_variant_equal(old, value));
    if (value != NULL)
        g_hash_table_replace(iface->props, g_strdup(name), value);
    else
        g_hash_table_remove(iface->props, name);
    if (emit == FB_EMIT_NONE || (emit == FB_EMIT_IF_CHANGED && !changed))
        return;
    if (value == NULL && old == NULL)
        return;
    add_pending(iface, name);
    if (iface->hold == 0)
        flush_pending(iface);
}

void fb_iface_hold(FbIface *iface)
{
    iface->hold++;
}

void fb_iface_release(FbIface *iface)
{
    g_return_if_fail(iface->hold > 0);
    if (--iface->hold == 0)
        flush_pending(iface);
}

void fb_iface_emit_signal(FbIface *iface, const char *member, GVariant *parameters)
{
    GDBusInterfaceSkeleton *skeleton = G_DBUS_INTERFACE_SKELETON(iface);
    const char *path = g_dbus_interface_skeleton_get_object_path(skeleton);
    GList *connections;

    g_variant_ref_sink(parameters);
    if (path != NULL) {
        connections = g_dbus_interface_skeleton_get_connections(skeleton);
        for (GList *l = connections; l; l = l->next)
            g_dbus_connection_emit_signal(l->data, NULL, path, iface->info->name, member,
                                          parameters, NULL);
        g_list_free_full(connections, g_object_unref);
    }
    g_variant_unref(parameters);
}
