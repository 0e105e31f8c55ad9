"""Shared pieces of the guest-side checker: result recording, waiting on the GLib main
context, org.bluez through an object manager, and the bluetoothd process."""
import json
import os
import signal
import subprocess
import time

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

RESULTS = "/run/vm/results"
CAPTURE = RESULTS + "/btmon.snoop"
BLUETOOTHD = "/usr/libexec/bluetooth/bluetoothd"
BLUEZ = "org.bluez"
ADAPTER = "org.bluez.Adapter1"
ADV_MANAGER = "org.bluez.LEAdvertisingManager1"
DEVICE = "org.bluez.Device1"
PROPS = "org.freedesktop.DBus.Properties"
GAEN_UUID16 = 0xFD6F
GAEN_UUID = "0000fd6f-0000-1000-8000-00805f9b34fb"

T0 = time.monotonic()


def log(*args):
    print("[%7.2f]" % (time.monotonic() - T0), *args, flush=True)


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if sep:
                env[key] = value
    return env


class Failed(Exception):
    """A check failed and the scenario cannot meaningfully go on."""


class Results:
    def __init__(self, path, mode, scenario):
        self.path = path
        self.doc = dict(mode=mode, scenario=scenario, checks=[], facts={}, complete=False,
                        ok=False)
        self.save()

    def check(self, name, ok, detail=""):
        self.doc["checks"].append(dict(name=name, ok=bool(ok), detail=str(detail),
                                       t=round(time.monotonic() - T0, 2)))
        log("%s %s%s" % ("ok  " if ok else "FAIL", name, ": " + str(detail) if detail else ""))
        self.save()
        return bool(ok)

    def require(self, name, ok, detail=""):
        if not self.check(name, ok, detail):
            raise Failed(name)

    def fact(self, key, value):
        self.doc["facts"][key] = value
        self.save()

    def finish(self, error=None):
        if error:
            self.doc["error"] = error
        checks = self.doc["checks"]
        self.doc["complete"] = error is None
        self.doc["ok"] = error is None and bool(checks) and all(c["ok"] for c in checks)
        self.save()
        return self.doc["ok"]

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1, default=str)
        os.replace(tmp, self.path)


class Loop:
    """Waiting on the GLib main context: D-Bus signals, child exits and deadlines wake it."""

    def __init__(self, deadline):
        self.ctx = GLib.MainContext.default()
        self.deadline = deadline  # monotonic time by which the whole checker must be done

    def wait(self, cond, timeout, poll=None):
        """Iterate until cond() is truthy or `timeout` seconds pass; returns cond()'s value.
        poll: seconds between re-evaluations when cond depends on something that sends no
        event (the btmon capture file)."""
        end = min(time.monotonic() + timeout, self.deadline)
        while True:
            r = cond()
            if r:
                return r
            left = end - time.monotonic()
            if left <= 0:
                return cond()
            wake = min(left, poll) if poll else left
            fired = []
            src = GLib.timeout_add(max(1, int(wake * 1000)), lambda: fired.append(1) or False)
            while not fired and not cond():
                self.ctx.iteration(True)
            if not fired:
                GLib.source_remove(src)

    def call(self, proxy_or_conn, *args, timeout=25):
        """Asynchronous D-Bus call with the loop running (bluetoothd calls back into our
        objects before it answers RegisterAdvertisement). Returns (result, error)."""
        box = {}

        def done(src, res):
            try:
                box["r"] = src.call_finish(res)
            except GLib.Error as e:
                box["e"] = e

        proxy_or_conn.call(*args, Gio.DBusCallFlags.NONE, int(timeout * 1000), None, done)
        self.wait(lambda: box, timeout + 1)
        if not box:
            return None, "no reply within %ss" % timeout
        return box.get("r"), box.get("e")


class Bluez:
    """org.bluez through an object manager, which follows bluetoothd across restarts."""

    def __init__(self, bus, loop):
        self.bus = bus
        self.loop = loop
        self.manager = Gio.DBusObjectManagerClient.new_sync(
            bus, Gio.DBusObjectManagerClientFlags.DO_NOT_AUTO_START, BLUEZ, "/",
            None, None, None)
        self.events = []  # (monotonic, kind, path, interface) for later inspection
        # A new object comes as object-added alone; interface-added/-removed are only for
        # objects that already exist.
        self.manager.connect("object-added", self._object_added)
        self.manager.connect("object-removed", self._object_removed)
        self.manager.connect("interface-added", self._iface_added)
        self.manager.connect("interface-removed", self._iface_removed)
        self.manager.connect("interface-proxy-properties-changed", self._props_changed)
        self.devices = {}  # path -> merged Device1 properties as plain python
        for obj in self.manager.get_objects():
            iface = obj.get_interface(DEVICE)
            if iface:
                self._track_device(obj.get_object_path(), iface)

    def _object_added(self, mgr, obj):
        for iface in obj.get_interfaces():
            self._iface_added(mgr, obj, iface)

    def _object_removed(self, mgr, obj):
        for iface in obj.get_interfaces():
            self._iface_removed(mgr, obj, iface)

    def _iface_added(self, _mgr, obj, iface):
        name = iface.get_interface_name()
        self.events.append((time.monotonic(), "added", obj.get_object_path(), name))
        if name == DEVICE:
            self._track_device(obj.get_object_path(), iface)

    def _iface_removed(self, _mgr, obj, iface):
        self.events.append((time.monotonic(), "removed", obj.get_object_path(),
                            iface.get_interface_name()))

    def _props_changed(self, _mgr, _obj, proxy, changed, _invalidated):
        if proxy.get_interface_name() == DEVICE:
            d = self.devices.setdefault(proxy.get_object_path(), {})
            d.update(changed.unpack())
            d.setdefault("_updates", 0)
            d["_updates"] += 1

    def _track_device(self, path, proxy):
        d = self.devices.setdefault(path, {})
        for key in proxy.get_cached_property_names() or []:
            d[key] = proxy.get_cached_property(key).unpack()
        d["_added"] = time.monotonic()

    def owner(self):
        return self.manager.get_name_owner()

    def adapters(self):
        """path -> proxy of each Adapter1, sorted by path."""
        out = {}
        for obj in self.manager.get_objects():
            a = obj.get_interface(ADAPTER)
            if a:
                out[obj.get_object_path()] = a
        return dict(sorted(out.items()))

    def has_iface(self, path, iface):
        obj = self.manager.get_object(path)
        return obj is not None and obj.get_interface(iface) is not None

    def prop(self, path, iface, name):
        obj = self.manager.get_object(path)
        proxy = obj.get_interface(iface) if obj else None
        v = proxy.get_cached_property(name) if proxy else None
        return v.unpack() if v is not None else None

    def set_prop(self, path, iface, name, variant, attempts=20):
        """Properties.Set; retried while bluetoothd answers Busy (the kernel refuses a mode
        change while the previous one is still being applied, and signals nothing when it
        is done). Returns (result, error)."""
        for _ in range(attempts):
            r, err = self.loop.call(self.bus, BLUEZ, path, PROPS, "Set",
                                    GLib.Variant("(ssv)", (iface, name, variant)), None)
            if err is None or "Busy" not in str(err):
                break
            self.loop.wait(lambda: False, 0.1)
        return r, err

    def usable(self, n):
        """n adapters, powered, with LEAdvertisingManager1 (which appears after Adapter1)."""
        ads = self.adapters()
        return len(ads) >= n and all(
            self.prop(p, ADAPTER, "Powered") and self.has_iface(p, ADV_MANAGER) for p in ads)


class Bluetoothd:
    """bluetoothd as the stock Debian unit runs it (no --experimental), logging to a file."""

    def __init__(self, results):
        self.results = results
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        logf = open(RESULTS + "/bluetoothd.log", "a")
        logf.write("===== start %d at %.2f\n" % (self.starts, time.monotonic() - T0))
        logf.flush()
        self.proc = subprocess.Popen([BLUETOOTHD, "-n", "-d"], stdout=logf,
                                     stderr=subprocess.STDOUT)
        logf.close()
        log("bluetoothd started, pid", self.proc.pid)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
            log("bluetoothd pid %d ended by signal %d" % (self.proc.pid, sig))

    def stop(self):
        self.kill(signal.SIGTERM)


def bluez_up(res, loop, bluez, bluetoothd, prefix=""):
    """bluetoothd on the bus with both controllers powered and advertising-capable."""
    t = time.monotonic()
    ok = loop.wait(bluez.owner, 30)
    res.require(prefix + "bluetoothd owns org.bluez", ok, bluez.owner())
    ok = loop.wait(lambda: bluez.usable(2), 30)
    ads = bluez.adapters()
    res.require(prefix + "two adapters powered with LEAdvertisingManager1", ok,
                {p: dict(Address=bluez.prop(p, ADAPTER, "Address"),
                         Powered=bluez.prop(p, ADAPTER, "Powered"),
                         adv_manager=bluez.has_iface(p, ADV_MANAGER)) for p in ads})
    return time.monotonic() - t
