#define G_LOG_DOMAIN "fake-bluez"

#include "bluez-error.h"

static const GDBusErrorEntry entries[] = {
    {FB_BLUEZ_ERROR_FAILED, "org.bluez.Error.Failed"},
    {FB_BLUEZ_ERROR_INVALID_ARGUMENTS, "org.bluez.Error.InvalidArguments"},
    {FB_BLUEZ_ERROR_IN_PROGRESS, "org.bluez.Error.InProgress"},
    {FB_BLUEZ_ERROR_ALREADY_EXISTS, "org.bluez.Error.AlreadyExists"},
    {FB_BLUEZ_ERROR_DOES_NOT_EXIST, "org.bluez.Error.DoesNotExist"},
    {FB_BLUEZ_ERROR_NOT_PERMITTED, "org.bluez.Error.NotPermitted"},
    {FB_BLUEZ_ERROR_NOT_READY, "org.bluez.Error.NotReady"},
    {FB_BLUEZ_ERROR_NOT_SUPPORTED, "org.bluez.Error.NotSupported"},
    {FB_BLUEZ_ERROR_BLOCKED, "org.bluez.Error.Blocked"},
    {FB_BLUEZ_ERROR_BUSY, "org.bluez.Error.Busy"},
};

GQuark fb_bluez_error_quark(void)
{
    static gsize quark = 0;

    g_dbus_error_register_error_domain("fb-bluez-error-quark", &quark, entries,
                                       G_N_ELEMENTS(entries));
    return (GQuark)quark;
}

void fb_return_invalid_args(GDBusMethodInvocation *invocation)
{
    g_dbus_method_invocation_return_error_literal(invocation, FB_BLUEZ_ERROR,
                                                  FB_BLUEZ_ERROR_INVALID_ARGUMENTS,
                                                  "Invalid arguments in method call");
}

void fb_return_not_ready(GDBusMethodInvocation *invocation)
{
    g_dbus_method_invocation_return_error_literal(invocation, FB_BLUEZ_ERROR,
                                                  FB_BLUEZ_ERROR_NOT_READY, "Resource Not Ready");
}
