"""proxd against the real bluetoothd: two proxd processes, A on the first btvirt controller
and B on the second, on the guest's one system bus. What is asserted (issue 6):

- each proxd registers its advertisement (BlueZ ActiveInstances, btmon: 0xFD6F service data
  of 20 bytes from a non-resolvable random address, not connectable, not discoverable) and
  starts a filtered discovery (mgmt Start Service Discovery with the 0xFD6F UUID);
- each one's service data reaches the other's bluetoothd and ends up in the other proxd's
  store (read after a clean SIGTERM, which commits pending sightings) with the RSSI counted
  as unknown: btvirt reports RSSI 127, the "not available" value;
- rotation: the RPI changes and the btmon capture shows it sent from a new non-resolvable
  address at once; no address ever carries two RPIs; the public address is never used,
  except in the window the kernel itself opens when the adapter is made discoverable (it
  re-sends every broadcast advertisement, connectable, from the public address before any
  client can hear of it; measured and bounded here, see BLUEZ.md);
- Discoverable=true on A's adapter takes A's advertisement off the air (btmon) and
  Discoverable=false brings it back;
- bluetoothd killed (SIGKILL) and started again: both proxd re-register their advertisement
  and restart discovery by themselves.

How the harness drives proxd is kept in PROXD_ARGS, PROXD_CONF and SPEED below. proxd is found on the bus
by its process id, so the test does not depend on the well-known name it owns.
"""
import os
import signal
import sqlite3
import subprocess
import time

from gi.repository import Gio, GLib

import btsnoop
from vmlib import (ADAPTER, ADV_MANAGER, CAPTURE, GAEN_UUID, GAEN_UUID16, RESULTS, T0,
                   bluez_up, log)

PROXD_PATH = "/org/proxd"
PROXD_IFACE = "org.proxd.Manager1"
# proxd's clock (and every timer of it) runs this many times faster than the wall clock
# (PROX_SIM_CLOCK, daemon/prox-sim-clock.h), so GAEN's 10-20 minute rotation takes 10-20 s.
SPEED = 60
ROTATION_MAX_S = 20 * 60 / SPEED
# Two instances share the system bus with the one bluetoothd, so each owns its own name;
# continuous scanning (beacon role) lets each hear the other at once. The configuration
# file is the harness's own, so nothing from the host's /etc or /usr/local/etc applies.
PROXD_ARGS = ["--config={state}/proxd.conf", "--adapter={adapter}", "--state-dir={state}",
              "--role=beacon", "--bus-name=org.proxd.vm.{adapter}", "--verbose"]
PROXD_CONF = "[General]\nRole=beacon\n"
# Bounds on TCG (the daemon's own target is 2 s on real hardware).
RESUME_S = 10
# After a SIGKILL the kernel keeps the dead bluetoothd's discovery running until its 10.24 s
# LE scan window ends: StartDiscovery fails with InProgress until then, and on a legacy
# controller so does a registration (no new random address while scanning).
RECOVERY_S = 20
PAUSE_S = 2


class Proxd:
    def __init__(self, exe, label, adapter, bus, loop, sim_clock):
        self.exe = exe
        self.sim_clock = sim_clock
        self.label = label
        self.adapter = adapter  # "hci0"
        self.bus = bus
        self.loop = loop
        self.state = "/run/vm/proxd-%s" % label
        self.logpath = "%s/proxd-%s.log" % (RESULTS, label)
        self.proc = None
        self.exit_status = None
        self.proxy = None
        self.changes = 0

    def start(self):
        os.makedirs(self.state, exist_ok=True)
        with open(self.state + "/proxd.conf", "w") as f:
            f.write(PROXD_CONF)
        argv = [self.exe] + [a.format(adapter=self.adapter, state=self.state)
                             for a in PROXD_ARGS]
        env = dict(os.environ, PROX_SIM_CLOCK=self.sim_clock)
        with open(self.logpath, "a") as logf:
            logf.write("===== %s at %.2f\n" % (" ".join(argv), time.monotonic() - T0))
            logf.flush()
            self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=env)
        GLib.child_watch_add(GLib.PRIORITY_DEFAULT, self.proc.pid, self._exited)
        log("proxd %s started on %s, pid %d" % (self.label, self.adapter, self.proc.pid))

    def _exited(self, _pid, status):
        self.exit_status = status
        log("proxd %s exited, wait status %d" % (self.label, status))

    def alive(self):
        return self.exit_status is None

    def find_api(self):
        """The proxy for our process's org.proxd.Manager1, once its connection is on the bus."""
        if self.proxy is not None:
            return self.proxy
        names = self.bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                   "org.freedesktop.DBus", "ListNames", None, None,
                                   Gio.DBusCallFlags.NONE, 5000, None).unpack()[0]
        for name in names:
            if not name.startswith(":"):
                continue
            try:
                pid = self.bus.call_sync(
                    "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                    "GetConnectionUnixProcessID", GLib.Variant("(s)", (name,)), None,
                    Gio.DBusCallFlags.NONE, 5000, None).unpack()[0]
            except GLib.Error:
                continue
            if pid != self.proc.pid:
                continue
            proxy = Gio.DBusProxy.new_sync(
                self.bus, Gio.DBusProxyFlags.DO_NOT_AUTO_START, None, name, PROXD_PATH,
                PROXD_IFACE, None)
            if not proxy.get_cached_property_names():
                # Not exported (yet), or proxd's second connection: its scanner reads
                # Device1 signals on a connection of its own (bluez-device-signals.c).
                continue
            proxy.connect("g-properties-changed", self._props_changed)
            self.proxy = proxy
            return proxy
        return None

    def _props_changed(self, _proxy, _changed, _invalidated):
        self.changes += 1

    def prop(self, name):
        v = self.proxy.get_cached_property(name) if self.proxy else None
        return v.unpack() if v is not None else None

    def props(self):
        if not self.proxy:
            return {}
        return {k: self.proxy.get_cached_property(k).unpack()
                for k in self.proxy.get_cached_property_names()}

    def terminate(self, timeout=15):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            self.loop.wait(lambda: not self.alive(), timeout)
        if self.alive():
            self.proc.kill()
            self.loop.wait(lambda: not self.alive(), 5)
            return None
        return self.exit_status

    def store_sightings(self):
        """(rpi, aem, report_count, rssi_count, rssi_min, rssi_max) from every sqlite file in
        the state directory that has a sightings table."""
        rows = []
        for name in sorted(os.listdir(self.state)):
            path = os.path.join(self.state, name)
            try:
                with open(path, "rb") as f:
                    if f.read(16) != b"SQLite format 3\0":
                        continue
            except OSError:
                continue
            db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
            try:
                rows += db.execute("SELECT rpi, aem, report_count, rssi_count, rssi_min, "
                                   "rssi_max FROM sightings").fetchall()
            except sqlite3.Error:
                pass
            finally:
                db.close()
        return rows


def describe_status(status):
    """A wait status as people say it."""
    if status is None:
        return "running"
    if os.WIFSIGNALED(status):
        return "killed by %s" % signal.Signals(os.WTERMSIG(status)).name
    return "exited with %d" % os.WEXITSTATUS(status)


def max_gap(segments, t0, t1):
    """Longest time within [t0, t1] that none of `segments` was on the air."""
    spans = sorted((max(s["start"], t0), min(s["end"] or t1, t1)) for s in segments
                   if s["start"] < t1 and (s["end"] or t1) > t0)
    gap, covered = 0.0, t0
    for a, b in spans:
        gap = max(gap, a - covered)
        covered = max(covered, b)
    return max(gap, t1 - covered)


def gaen_payload(seg):
    return btsnoop.service_data16(seg["data"], GAEN_UUID16)


def run(res, loop, bus, bluez, bluetoothd, adapters, env):
    daemons = []
    try:
        scenario(res, loop, bus, bluez, bluetoothd, adapters, env, daemons)
    finally:
        # Whatever happened, stop them before bluetoothd goes (their logs stay readable).
        for p in daemons:
            if p.proc and p.alive():
                p.terminate()


def scenario(res, loop, bus, bluez, bluetoothd, adapters, env, daemons):
    exe = env["VM_PROXD"]
    cap = btsnoop.Capture(CAPTURE)

    def refresh():
        cap.update()
        return True

    def died():
        return [n for n in nodes if not n["proxd"].alive()]

    def wait(cond, timeout, poll=None):
        """loop.wait that gives up, failing the scenario, as soon as a proxd dies."""
        r = loop.wait(lambda: died() or cond(), timeout, poll)
        dead = died()
        if dead:
            res.require("proxd keeps running", False, "; ".join(
                "proxd %s %s" % (n["label"], describe_status(n["proxd"].exit_status))
                for n in dead))
        return r

    def capture_until(cond, timeout):
        return wait(lambda: refresh() and cond(), timeout, poll=0.1)

    refresh()
    # Both daemons share one simulated clock that starts now.
    start = "%.6f" % time.time()
    sim_clock = "%s:%s:%d" % (start, start, SPEED)
    res.fact("PROX_SIM_CLOCK", sim_clock)
    nodes = []
    for label, path in zip("AB", adapters):
        addr = bluez.prop(path, ADAPTER, "Address")
        nodes.append(dict(label=label, path=path, addr=addr, index=cap.index_of(addr),
                          proxd=Proxd(exe, label, os.path.basename(path), bus, loop,
                                      sim_clock)))
    res.require("btmon capture has both controllers",
                all(n["index"] is not None for n in nodes),
                {n["label"]: (n["path"], n["addr"], n["index"]) for n in nodes})
    daemons.extend(n["proxd"] for n in nodes)
    A, B = nodes
    # Only what happens from now on is proxd's (the capture also holds the BlueZ-only check).
    t_wall0 = time.time()

    def segs(n, since=None):
        """Segments of node n with GAEN service data that started after `since`."""
        since = t_wall0 if since is None else since
        return [s for s in cap.advertising(n["index"], GAEN_UUID16) if s["start"] >= since]

    def on_air(n):
        """Segments of node n currently on the air with GAEN service data."""
        return [s for s in segs(n) if s["end"] is None]

    def discovery_starts(n, since=None):
        since = t_wall0 if since is None else since
        return [d for d in cap.discovery_starts if d["index"] == n["index"] and
                d["t"] >= since and GAEN_UUID in d["uuids"]]

    # NameOwnerChanged wakes the loop when a proxd connects to the bus.
    sub = bus.signal_subscribe("org.freedesktop.DBus", "org.freedesktop.DBus",
                               "NameOwnerChanged", "/org/freedesktop/DBus", None,
                               Gio.DBusSignalFlags.NONE, lambda *a: None)
    for n in nodes:
        n["proxd"].start()
    for n in nodes:
        p = n["proxd"]
        ok = loop.wait(lambda: not p.alive() or p.find_api(), 30, poll=0.5)
        res.require("proxd %s serves %s on the system bus" % (n["label"], PROXD_IFACE),
                    ok and p.alive(), describe_status(p.exit_status))
    bus.signal_unsubscribe(sub)

    # ---- advertising and discovery come up --------------------------------------------------
    for n in nodes:
        p = n["proxd"]
        ok = capture_until(lambda: on_air(n), 30)
        s = on_air(n)[0] if ok else None
        res.require("%s's advertisement is on the air (btmon)" % n["label"], ok,
                    "after %.2fs" % (s["start"] - t_wall0) if s else "")
        payload = gaen_payload(s)
        ad_types = [t for t, _ in btsnoop.parse_ad(s["data"])]
        uuid_list = [v for t, v in btsnoop.parse_ad(s["data"]) if t in (0x02, 0x03)]
        res.check("%s: 20 bytes of 0xFD6F service data and the 0xFD6F UUID list" % n["label"],
                  len(payload) == 20 and any(b"\x6f\xfd" in v for v in uuid_list),
                  "service data %d bytes, AD types %s" % (len(payload), ad_types))
        res.check("%s: non-resolvable random address, not connectable, not discoverable"
                  % n["label"],
                  s["own_addr_type"] == "random" and s["addr_kind"] == "non-resolvable" and
                  not s["connectable"] and not btsnoop.discoverable_flags(s["data"]),
                  "%s %s connectable=%s flags=%s" % (s["addr"], s["addr_kind"],
                                                     s["connectable"], s["flags"]))
        ok = wait(lambda: bluez.prop(n["path"], ADV_MANAGER, "ActiveInstances") == 1 and
                       p.prop("Advertising") is True, 10)
        res.check("%s: BlueZ ActiveInstances=1 and proxd Advertising=true" % n["label"], ok,
                  "ActiveInstances=%s proxd=%s" % (
                      bluez.prop(n["path"], ADV_MANAGER, "ActiveInstances"), p.props()))
        ok = wait(lambda: bluez.prop(n["path"], ADAPTER, "Discovering") and
                       p.prop("Scanning") is True, 15)
        res.check("%s: discovering (Adapter1.Discovering) and proxd Scanning=true"
                  % n["label"], ok, p.props())
        ok = capture_until(lambda: discovery_starts(n), 10)
        res.check("%s: discovery filtered on the 0xFD6F UUID (mgmt Start Service Discovery)"
                  % n["label"], ok, [d for d in cap.discovery_starts
                                     if d["index"] == n["index"] and d["t"] >= t_wall0])
    res.fact("first_advertising_s", {n["label"]: round(segs(n)[0]["start"] - t_wall0, 2)
                                     for n in nodes})

    # ---- each one's bluetoothd hears the other ------------------------------------------
    def heard(listener, speaker):
        """Device1 under listener's adapter carrying speaker's current service data."""
        cur = on_air(speaker)
        if not cur:
            return None
        want = gaen_payload(cur[0])
        for path, d in list(bluez.devices.items()):
            sd = d.get("ServiceData") or {}
            if path.startswith(listener["path"] + "/") and bytes(sd.get(GAEN_UUID, b"")) == want:
                return dict(Address=d.get("Address"), RSSI=d.get("RSSI"))
        return None

    for listener, speaker in ((B, A), (A, B)):
        dev = wait(lambda: refresh() and heard(listener, speaker), 25, poll=0.2)
        res.check("%s's bluetoothd has %s's current service data" % (listener["label"],
                                                                  speaker["label"]),
                  dev, dev)

    # ---- rotation -------------------------------------------------------------------------
    for n in nodes:
        first = gaen_payload(segs(n)[0])
        t = time.monotonic()
        bound = ROTATION_MAX_S + 10
        ok = capture_until(lambda: [s for s in segs(n) if gaen_payload(s) != first], bound)
        res.require("%s rotated its RPI within %ds" % (n["label"], bound), ok,
                    "waited %.1fs" % (time.monotonic() - t))
        new = [s for s in segs(n) if gaen_payload(s) != first][0]
        old = [s for s in segs(n) if gaen_payload(s) == first]
        old_addrs = {s["addr"] for s in old}
        res.check("%s: the new RPI went out from a new non-resolvable address" % n["label"],
                  new["addr"] not in old_addrs and new["addr_kind"] == "non-resolvable",
                  "%s -> %s (%s)" % (sorted(old_addrs), new["addr"], new["addr_kind"]))
        res.check("%s: RPI changed (first 16 bytes)" % n["label"], new and
                  gaen_payload(new)[:16] != first[:16], "")
        gap = new["start"] - max(s["end"] for s in old if s["end"])
        res.check("%s: advertising resumed within 1s of the old RPI's last advertisement"
                  % n["label"], gap <= 1.0, "gap %.3fs" % gap)
        res.fact("rotation_gap_s_" + n["label"], round(gap, 4))

    # ---- discoverable pauses advertising ------------------------------------------------
    p = A["proxd"]
    t_disc = time.time()
    n_segs = len(cap.segments)
    _, err = bluez.set_prop(A["path"], ADAPTER, "Discoverable", GLib.Variant("b", True))
    res.require("A's adapter made discoverable", err is None and wait(
        lambda: bluez.prop(A["path"], ADAPTER, "Discoverable"), 10), err or "")
    ok = capture_until(lambda: not on_air(A), 10)
    t_paused = max((s["end"] for s in segs(A) if s["end"] and s["end"] >= t_disc),
                   default=t_disc) if ok else None
    res.check("btmon: A's advertising stops while discoverable", ok,
              "stopped %.2fs after the Discoverable request" % (t_paused - t_disc)
              if t_paused else "still on the air after 10s")
    leak = [s for s in cap.segments[n_segs:] if s["index"] == A["index"] and gaen_payload(s)
            and s["addr_kind"] == "public"]
    res.fact("discoverable_public_window", [dict(addr=s["addr"], connectable=s["connectable"],
                                                 on_air_s=round((s["end"] or 0) - s["start"], 4))
                                            for s in leak])
    res.check("A paused within %ds of becoming discoverable" % PAUSE_S,
              t_paused is not None and t_paused - t_disc <= PAUSE_S,
              "%.2fs" % (t_paused - t_disc) if t_paused else "")
    ok = wait(lambda: p.prop("Advertising") is False, 10)
    res.check("proxd A reports Advertising=false while discoverable", ok, p.props())
    n_segs = len(cap.segments)
    t_undisc = time.time()
    _, err = bluez.set_prop(A["path"], ADAPTER, "Discoverable", GLib.Variant("b", False))
    res.require("A's adapter no longer discoverable", err is None and wait(
        lambda: not bluez.prop(A["path"], ADAPTER, "Discoverable"), 10), err or "")
    ok = capture_until(lambda: on_air(A), RESUME_S)
    s = on_air(A)[0] if ok else None
    res.check("btmon: A advertises again once not discoverable", ok,
              "after %.2fs" % (s["start"] - t_undisc) if s else "")
    if s:
        res.check("A resumed from a non-resolvable address, not connectable",
                  s["addr_kind"] == "non-resolvable" and not s["connectable"],
                  "%s %s connectable=%s" % (s["addr"], s["addr_kind"], s["connectable"]))
    res.check("proxd A reports Advertising=true again",
              wait(lambda: p.prop("Advertising") is True, 10), p.props())
    discoverable_window = (t_disc, t_paused or time.time())
    gap = max_gap(segs(B), t_disc, time.time())
    res.check("B advertised throughout (no gap over 1s)", gap <= 1.0, "longest gap %.3fs" % gap)

    # ---- bluetoothd killed and restarted --------------------------------------------------
    bluetoothd.kill(signal.SIGKILL)
    res.check("org.bluez gone after SIGKILL", wait(lambda: not bluez.owner(), 10))
    t_restart = time.time()
    bluetoothd.start()
    bluez_up(res, loop, bluez, bluetoothd, prefix="after restart: ")
    t_up = time.time()
    for n in nodes:
        ok = capture_until(lambda: [s for s in segs(n, t_restart) if s["end"] is None], RECOVERY_S)
        s = segs(n, t_restart)[0] if ok else None
        res.check("%s re-registered its advertisement after the restart" % n["label"], ok,
                  "%.2fs after bluetoothd was back" % (s["start"] - t_up) if s else "")
        if s:
            res.fact("reregister_after_restart_s_" + n["label"], round(s["start"] - t_up, 2))
        ok = capture_until(lambda: discovery_starts(n, t_restart), RECOVERY_S)
        res.check("%s restarted its filtered discovery after the restart" % n["label"], ok,
                  "")
        res.check("%s: Adapter1.Discovering after the restart" % n["label"],
                  wait(lambda: bluez.prop(n["path"], ADAPTER, "Discovering"),
                            RECOVERY_S))
    for listener, speaker in ((B, A), (A, B)):
        dev = wait(lambda: refresh() and heard(listener, speaker), 25, poll=0.2)
        res.check("after restart: %s's bluetoothd has %s's current service data"
                  % (listener["label"], speaker["label"]), dev, dev)

    # ---- clean stop, then the stores ------------------------------------------------------
    for n in nodes:
        st = n["proxd"].terminate()
        res.check("proxd %s exits 0 on SIGTERM" % n["label"], st == 0, describe_status(st))
    refresh()
    for listener, speaker in ((B, A), (A, B)):
        rows = listener["proxd"].store_sightings()
        sent = {gaen_payload(s) for s in segs(speaker)}
        sent_rpis = {x[:16] for x in sent}
        got = [r for r in rows if bytes(r[0]) in sent_rpis]
        firsts = [gaen_payload(segs(speaker)[0])[:16]]
        rotated = [gaen_payload(s)[:16] for s in segs(speaker)
                   if gaen_payload(s)[:16] != firsts[0]][:1]
        stored = {bytes(r[0]) for r in got}
        res.check("%s's store has %s's first and rotated RPIs" % (listener["label"],
                                                                   speaker["label"]),
                  set(firsts + rotated) <= stored,
                  "%d of %d RPIs sent by %s stored, %d sightings in all"
                  % (len(stored), len(sent_rpis), speaker["label"], len(rows)))
        res.check("%s stored %s's AEM with each RPI" % (listener["label"], speaker["label"]),
                  all(bytes(r[0]) + bytes(r[1]) in sent for r in got), "")
        res.check("%s stored only RPIs someone sent" % listener["label"],
                  all(bytes(r[0]) in {x[:16] for n in nodes for x in
                                      map(gaen_payload, segs(n))} for r in rows),
                  "%d sightings" % len(rows))
        res.check("%s counted btvirt's RSSI 127 as unknown" % listener["label"],
                  got and all(r[3] == 0 and r[4] is None and r[5] is None for r in got),
                  [tuple(r[2:]) for r in got])

    # ---- invariants over the whole capture ------------------------------------------------
    refresh()
    for n in nodes:
        all_segs = segs(n)
        rpis_by_addr = {}
        for s in all_segs:
            rpis_by_addr.setdefault(s["addr"], set()).add(gaen_payload(s)[:16])
        shared = {a: len(r) for a, r in rpis_by_addr.items() if len(r) > 1}
        res.check("%s: no address ever carried two RPIs" % n["label"], not shared,
                  "addresses with several RPIs: %s" % shared)
        outside = [s for s in all_segs if s["addr_kind"] != "non-resolvable" and not (
            n is A and discoverable_window[0] <= s["start"] <= discoverable_window[1])]
        res.check("%s: only non-resolvable addresses (public never used outside the "
                  "kernel's discoverable switch)" % n["label"], not outside,
                  [(s["addr"], s["addr_kind"]) for s in outside])
        res.fact("addresses_" + n["label"], len(rpis_by_addr))
    res.fact("segments", {n["label"]: [dict(start=round(s["start"] - t_wall0, 3),
                                            end=round(s["end"] - t_wall0, 3) if s["end"] else None,
                                            addr=s["addr"], kind=s["addr_kind"],
                                            connectable=s["connectable"],
                                            payload=gaen_payload(s).hex())
                                       for s in segs(n)] for n in nodes})
