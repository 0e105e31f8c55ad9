/* One exported D-Bus interface whose properties live in a table. Unlike gdbus-codegen
 * skeletons it emits PropertiesChanged exactly when told to, including for a value that did
 * not change: BlueZ signals RSSI (and ServiceData with DuplicateData) on every report. */
#pragma once

#include <gio/gio.h>

#define FB_TYPE_IFACE (fb_iface_get_type())
G_DECLARE_FINAL_TYPE(FbIface, fb_iface, FB, IFACE, GDBusInterfaceSkeleton)

typedef void (*FbIfaceMethodFunc)(FbIface *iface, GDBusMethodInvocation *invocation,
                                  gpointer user_data);
/* Validates and applies a client's Properties.Set (the callback stores the value itself). */
typedef gboolean (*FbIfaceSetFunc)(FbIface *iface, const char *name, GVariant *value,
                                   GError **error, gpointer user_data);

typedef enum {
    FB_EMIT_NONE,       /* store only (initial values, before export) */
    FB_EMIT_IF_CHANGED, /* signal when the value differs */
    FB_EMIT_ALWAYS,     /* signal even if unchanged */
} FbEmit;

FbIface *fb_iface_new(GDBusInterfaceInfo *info, FbIfaceMethodFunc method, FbIfaceSetFunc set,
                      gpointer user_data);

/* The current value (borrowed), or NULL if the optional property is absent. */
GVariant *fb_iface_get(FbIface *iface, const char *name);

/* Stores value (a floating reference is sunk); NULL removes an optional property and, if it
 * was present, signals it as invalidated. */
void fb_iface_set(FbIface *iface, const char *name, GVariant *value, FbEmit emit);

/* Between hold and release, signalled changes are merged into one PropertiesChanged. */
void fb_iface_hold(FbIface *iface);
void fb_iface_release(FbIface *iface);

/* Emits signal `member` of this interface at its object path on every connection. */
void fb_iface_emit_signal(FbIface *iface, const char *member, GVariant *parameters);
