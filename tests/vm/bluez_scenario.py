"""BlueZ-only radio check, run when the build has no proxd: the harness's own broadcast
advertisement on the first controller (GAEN-shaped: 0xFD6F service data of 20 bytes), a
filtered discovery on the second, then an in-place ServiceData update. Asserts what proxd
relies on (BLUEZ.md) against the real bluetoothd and the btmon capture."""
import time

from gi.repository import Gio, GLib

import btsnoop
from vmlib import (ADAPTER, ADV_MANAGER, CAPTURE, GAEN_UUID, GAEN_UUID16, PROPS, log)

ADV_IFACE = "org.bluez.LEAdvertisement1"
ADV_XML = """
<node>
  <interface name="org.bluez.LEAdvertisement1">
    <method name="Release"/>
    <property name="Type" type="s" access="read"/>
    <property name="ServiceUUIDs" type="as" access="read"/>
    <property name="ServiceData" type="a{sv}" access="read"/>
  </interface>
</node>"""


class Advertisement:
    def __init__(self, bus, path, payload):
        self.bus = bus
        self.path = path
        self.payload = payload
        self.released = False
        info = Gio.DBusNodeInfo.new_for_xml(ADV_XML).interfaces[0]
        self.reg_id = bus.register_object(path, info, self._method, self._get, None)

    def _service_data(self):
        return GLib.Variant("a{sv}", {GAEN_UUID: GLib.Variant("ay", self.payload)})

    def _get(self, _conn, _sender, _path, _iface, name):
        return {"Type": GLib.Variant("s", "broadcast"),
                "ServiceUUIDs": GLib.Variant("as", [GAEN_UUID]),
                "ServiceData": self._service_data()}[name]

    def _method(self, _conn, _sender, _path, _iface, method, _params, invocation):
        if method == "Release":
            self.released = True
        invocation.return_value(None)

    def update(self, payload):
        """New ServiceData, announced with PropertiesChanged (bluetoothd re-sends it)."""
        self.payload = payload
        self.bus.emit_signal(None, self.path, PROPS, "PropertiesChanged", GLib.Variant(
            "(sa{sv}as)", (ADV_IFACE, {"ServiceData": self._service_data()}, [])))

    def remove(self):
        self.bus.unregister_object(self.reg_id)


def payload(n):
    return bytes([0xB1, 0xE5, n]) + bytes(range(17))


def run(res, loop, bus, bluez, adapters, mode):
    a_path, b_path = adapters[0], adapters[1]
    a_addr = bluez.prop(a_path, ADAPTER, "Address")
    cap = btsnoop.Capture(CAPTURE)
    cap.update()
    a_idx = cap.index_of(a_addr)
    b_idx = cap.index_of(bluez.prop(b_path, ADAPTER, "Address"))
    res.require("btmon capture has both controllers", a_idx is not None and b_idx is not None,
                {i: (c.name, btsnoop.fmt_addr(c.public_addr)) for i, c in cap.controllers.items()})

    # B: filtered discovery (without a filter, flag-less advertisers get no Device1).
    flt = {"Transport": GLib.Variant("s", "le"),
           "UUIDs": GLib.Variant("as", [GAEN_UUID]),
           "DuplicateData": GLib.Variant("b", True)}
    _, err = loop.call(bus, "org.bluez", b_path, ADAPTER, "SetDiscoveryFilter",
                       GLib.Variant("(a{sv})", (flt,)), None)
    res.require("SetDiscoveryFilter on B", err is None, err or "")
    _, err = loop.call(bus, "org.bluez", b_path, ADAPTER, "StartDiscovery", None, None)
    res.require("StartDiscovery on B", err is None, err or "")

    def seen_by_b(data):
        for path, d in bluez.devices.items():
            sd = d.get("ServiceData") or {}
            if path.startswith(b_path + "/") and bytes(sd.get(GAEN_UUID, b"")) == data:
                return dict(path=path, Address=d.get("Address"),
                            AddressType=d.get("AddressType"), RSSI=d.get("RSSI"))
        return None

    # A: register a broadcast advertisement.
    adv = Advertisement(bus, "/proxdvm/adv0", payload(1))
    t = time.monotonic()
    _, err = loop.call(bus, "org.bluez", a_path, ADV_MANAGER, "RegisterAdvertisement",
                       GLib.Variant("(oa{sv})", (adv.path, {})), None)
    res.require("RegisterAdvertisement (broadcast) on A", err is None, err or "")
    dev = loop.wait(lambda: seen_by_b(payload(1)), 20)
    res.require("B's Device1 carries A's service data", dev,
                dict(dev or {}, after_s=round(time.monotonic() - t, 2)))
    res.check("RSSI is btvirt's 127 (unknown)", dev["RSSI"] == 127, dev["RSSI"])

    def capture_shows(pred):
        cap.update()
        return pred()

    segs = loop.wait(lambda: capture_shows(lambda: cap.advertising(a_idx, GAEN_UUID16)), 10,
                     poll=0.1)
    res.require("btmon: A advertises the FD6F service data", segs,
                len(cap.advertising(a_idx, GAEN_UUID16)))
    first = segs[0]
    res.check("btmon: advertised from a non-resolvable random address",
              first["own_addr_type"] == "random" and first["addr_kind"] == "non-resolvable",
              "%s %s" % (first["addr"], first["addr_kind"]))
    res.check("btmon: not connectable, not discoverable",
              not first["connectable"] and not btsnoop.discoverable_flags(first["data"]),
              "connectable=%s flags=%s" % (first["connectable"], btsnoop.flags(first["data"])))
    res.check("B's Device1 address is the one A advertised from",
              dev["Address"] == first["addr"], "%s vs %s" % (dev["Address"], first["addr"]))
    ext = any(op == btsnoop.LE_SET_EXT_ADV_PARAMS
              for _, i, op, _ in cap.commands if i == a_idx)
    res.check("advertising commands match the controller mode",
              ext == (mode == "dual"), "extended=%s mode=%s" % (ext, mode))

    def with_payload(data):
        cap.update()
        return [s for s in cap.advertising(a_idx, GAEN_UUID16)
                if btsnoop.service_data16(s["data"], GAEN_UUID16) == data]

    def addrs(data):
        return sorted({s["addr"] for s in with_payload(data)})

    # In-place update (PropertiesChanged): bluetoothd re-sends the advertisement and the
    # kernel gives it a fresh address (BLUEZ.md). On legacy controllers the kernel writes
    # the new data before it stops advertising under the old address: measured, not failed.
    t = time.monotonic()
    adv.update(payload(2))
    ok = loop.wait(lambda: [s for s in with_payload(payload(2)) if s["addr"] not in
                            addrs(payload(1))], 15, poll=0.1)
    res.check("in-place ServiceData update goes out from a new address", ok,
              "%s -> %s after %.2fs" % (addrs(payload(1)), addrs(payload(2)),
                                        time.monotonic() - t))
    leak = [s for s in with_payload(payload(2)) if s["addr"] in addrs(payload(1))]
    res.fact("inplace_update", dict(
        before=addrs(payload(1)), after=addrs(payload(2)),
        new_data_under_old_address_s=round(sum(s["end"] - s["start"] for s in leak
                                                if s["end"]), 6)))
    dev2 = loop.wait(lambda: seen_by_b(payload(2)), 20)
    res.check("B sees the updated service data", dev2, dev2)

    # Unregister + register: what proxd does to rotate. The new data must never be sent
    # from an address that sent other data.
    _, err = loop.call(bus, "org.bluez", a_path, ADV_MANAGER, "UnregisterAdvertisement",
                       GLib.Variant("(o)", (adv.path,)), None)
    res.check("UnregisterAdvertisement", err is None, err or "")
    adv.remove()
    adv = Advertisement(bus, "/proxdvm/adv1", payload(3))
    _, err = loop.call(bus, "org.bluez", a_path, ADV_MANAGER, "RegisterAdvertisement",
                       GLib.Variant("(oa{sv})", (adv.path, {})), None)
    res.check("RegisterAdvertisement again", err is None, err or "")
    ok = loop.wait(lambda: with_payload(payload(3)), 15, poll=0.1)
    old = set(addrs(payload(1)) + addrs(payload(2)))
    res.check("re-registered data goes out only from new addresses",
              ok and not old & set(addrs(payload(3))),
              "%s -> %s" % (sorted(old), addrs(payload(3))))
    dev3 = loop.wait(lambda: seen_by_b(payload(3)), 20)
    res.check("B sees the re-registered service data", dev3, dev3)

    # What the kernel does to a registered broadcast advertisement when the adapter is made
    # discoverable (BLUEZ.md: makes it connectable and sends it from the public address).
    # Recorded, not judged: it happens before any client hears of Discoverable. Then the
    # advertisement is unregistered (proxd pauses the same way) before Discoverable goes
    # off: with an extended advertising set still enabled, the 6.1 kernel fails to turn
    # connectable off (LE Set Extended Advertising Parameters -> Command Disallowed, Busy).
    n_before = len(cap.segments)
    _, err = bluez.set_prop(a_path, ADAPTER, "Discoverable", GLib.Variant("b", True))
    res.check("A Discoverable=true", err is None and loop.wait(
        lambda: bluez.prop(a_path, ADAPTER, "Discoverable"), 10), err or "")
    _, err = loop.call(bus, "org.bluez", a_path, ADV_MANAGER, "UnregisterAdvertisement",
                       GLib.Variant("(o)", (adv.path,)), None)
    res.check("UnregisterAdvertisement while discoverable", err is None, err or "")
    stopped = loop.wait(lambda: capture_shows(lambda: not cap.on_air(a_idx, GAEN_UUID16)), 10,
                        poll=0.1)
    res.check("btmon: advertising stopped after unregister", stopped)
    adv.remove()
    _, err = bluez.set_prop(a_path, ADAPTER, "Discoverable", GLib.Variant("b", False))
    res.check("A Discoverable=false", err is None and loop.wait(
        lambda: not bluez.prop(a_path, ADAPTER, "Discoverable"), 10), err or "")
    during = [dict(addr=s["addr"], kind=s["addr_kind"], connectable=s["connectable"],
                   flags=s["flags"], on_air_s=round(s["end"] - s["start"], 4))
              for s in cap.segments[n_before:]
              if s["index"] == a_idx and btsnoop.service_data16(s["data"], GAEN_UUID16)]
    res.fact("broadcast_while_discoverable", during)
    log("our broadcast advertisement once A was discoverable:", during)
    public_reports = [r for r in cap.reports if r["index"] == b_idx and
                      r["addr_kind"] == "public" and
                      btsnoop.service_data16(r["data"], GAEN_UUID16) is not None]
    res.fact("B_heard_it_from_public_address", [r["addr"] for r in public_reports])

    # Registering on a controller that is itself discovering. Legacy controllers refuse
    # a new random address while scanning (LE Set Random Address -> Command Disallowed), so
    # the registration fails there; extended advertising sets have their own address.
    _, err = loop.call(bus, "org.bluez", a_path, ADAPTER, "SetDiscoveryFilter",
                       GLib.Variant("(a{sv})", (flt,)), None)
    res.check("SetDiscoveryFilter on A", err is None, err or "")
    _, err = loop.call(bus, "org.bluez", a_path, ADAPTER, "StartDiscovery", None, None)
    res.check("StartDiscovery on A", err is None, err or "")
    adv = Advertisement(bus, "/proxdvm/adv2", payload(4))
    _, err = loop.call(bus, "org.bluez", a_path, ADV_MANAGER, "RegisterAdvertisement",
                       GLib.Variant("(oa{sv})", (adv.path, {})), None)
    res.fact("register_while_discovering", "ok" if err is None else str(err))
    log("RegisterAdvertisement while A discovers:", "ok" if err is None else err)
    if err is not None:  # register with discovery stopped, then discover again
        loop.call(bus, "org.bluez", a_path, ADAPTER, "StopDiscovery", None, None)
        _, err = loop.call(bus, "org.bluez", a_path, ADV_MANAGER, "RegisterAdvertisement",
                           GLib.Variant("(oa{sv})", (adv.path, {})), None)
        res.check("RegisterAdvertisement with discovery stopped", err is None, err or "")
        _, err = loop.call(bus, "org.bluez", a_path, ADAPTER, "StartDiscovery", None, None)
        res.check("StartDiscovery on A again", err is None, err or "")
    loop.wait(lambda: with_payload(payload(4)), 10, poll=0.1)
    # ... and an in-place update while it discovers: does it reach the air, and from where?
    adv.update(payload(5))
    ok = loop.wait(lambda: [s for s in with_payload(payload(5))
                            if s["addr"] not in addrs(payload(4))], 5, poll=0.1)
    res.fact("inplace_update_while_discovering", dict(
        new_address=bool(ok), before=addrs(payload(4)), after=addrs(payload(5))))
    log("in-place update while A discovers:", addrs(payload(4)), "->", addrs(payload(5)))
    loop.call(bus, "org.bluez", a_path, ADV_MANAGER, "UnregisterAdvertisement",
              GLib.Variant("(o)", (adv.path,)), None)
    adv.remove()
    loop.call(bus, "org.bluez", a_path, ADAPTER, "StopDiscovery", None, None)
    loop.call(bus, "org.bluez", b_path, ADAPTER, "StopDiscovery", None, None)
    res.fact("segments_A", [dict(s, data=s["data"].hex()) for s in cap.segments
                            if s["index"] == a_idx])
    log("reports received by B:", len([r for r in cap.reports if r["index"] == b_idx]))
