/* org.bluez.Error.* as a GError domain, so method and property errors carry BlueZ's names. */
#pragma once

#include <gio/gio.h>

typedef enum {
    FB_BLUEZ_ERROR_FAILED,
    FB_BLUEZ_ERROR_INVALID_ARGUMENTS,
    FB_BLUEZ_ERROR_IN_PROGRESS,
    FB_BLUEZ_ERROR_ALREADY_EXISTS,
    FB_BLUEZ_ERROR_DOES_NOT_EXIST,
    FB_BLUEZ_ERROR_NOT_PERMITTED,
    FB_BLUEZ_ERROR_NOT_READY,
    FB_BLUEZ_ERROR_NOT_SUPPORTED,
    FB_BLUEZ_ERROR_BLOCKED,
    FB_BLUEZ_ERROR_BUSY,
} FbBluezError;

#define FB_BLUEZ_ERROR (fb_bluez_error_quark())
GQuark fb_bluez_error_quark(void);

/* BlueZ's standard messages for the common cases. */
void fb_return_invalid_args(GDBusMethodInvocation *invocation);
void fb_return_not_ready(GDBusMethodInvocation *invocation);
