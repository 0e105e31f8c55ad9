#!/usr/bin/python3
"""Guest-side checker of the VM tests (run by guest-init.sh as root inside the VM).

Starts bluetoothd, waits for both btvirt controllers to be usable through D-Bus, then either
runs proxd's scenario (two proxd processes, one per controller; proxd_scenario.py) or, when
the build has no proxd, a BlueZ-only radio check with an advertisement of its own
(bluez_scenario.py). Every assertion is recorded in /run/vm/results/result.json as soon as it
is made, so a crash or a timeout still leaves what was established. Waits are on D-Bus
signals, process exits, or (for the btmon capture, which has no event) a bounded poll.
"""
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmlib import (ADAPTER, ADV_MANAGER, BLUETOOTHD, RESULTS, T0, Bluetoothd,  # noqa: E402
                   Bluez, Failed, Loop, Results, bluez_up, log, read_env)
from gi.repository import Gio  # noqa: E402

import bluez_scenario  # noqa: E402
import proxd_scenario  # noqa: E402


def bluez_stage(res, loop, bus, bluez, bluetoothd):
    out = subprocess.run([BLUETOOTHD, "--version"], capture_output=True, text=True)
    version = out.stdout.strip()
    res.fact("bluetoothd_version", version)
    res.require("bluetoothd is 5.66", version == "5.66", version)
    bluetoothd.start()
    secs = bluez_up(res, loop, bluez, bluetoothd)
    res.fact("bluez_up_s", round(secs, 2))
    ads = bluez.adapters()
    facts = {}
    for p in ads:
        facts[p] = dict(
            Address=bluez.prop(p, ADAPTER, "Address"),
            AddressType=bluez.prop(p, ADAPTER, "AddressType"),
            Discoverable=bluez.prop(p, ADAPTER, "Discoverable"),
            Roles=bluez.prop(p, ADAPTER, "Roles"),
            SupportedInstances=bluez.prop(p, ADV_MANAGER, "SupportedInstances"),
            SupportedIncludes=bluez.prop(p, ADV_MANAGER, "SupportedIncludes"),
            SupportedSecondaryChannels=bluez.prop(p, ADV_MANAGER, "SupportedSecondaryChannels"))
    res.fact("adapters", facts)
    return list(ads)


def main():
    env = read_env(RESULTS + "/vm.env")
    mode = env["VM_MODE"]
    proxd = env.get("VM_PROXD", "")
    # VM_BUDGET: guest uptime by which the checker must be done, leaving the rest of the
    # host's limit for collecting logs and powering off.
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    budget = float(env["VM_BUDGET"]) - uptime
    res = Results(RESULTS + "/result.json", mode, "bluez+proxd" if proxd else "bluez")
    res.fact("checker_budget_s", round(budget, 1))
    loop = Loop(T0 + budget)
    bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    bluez = Bluez(bus, loop)
    bluetoothd = Bluetoothd(res)
    error = None
    try:
        adapters = bluez_stage(res, loop, bus, bluez, bluetoothd)
        # The BlueZ-only check always runs first: when proxd's part fails, it shows whether
        # BlueZ and the harness itself work, and it records what BlueZ did (BLUEZ.md).
        bluez_scenario.run(res, loop, bus, bluez, adapters, mode)
        if proxd:
            proxd_scenario.run(res, loop, bus, bluez, bluetoothd, adapters, env)
    except Failed as e:
        error = "stopped at failed check: %s" % e
    except Exception:
        error = traceback.format_exc()
        log(error)
    finally:
        res.fact("checker_s", round(time.monotonic() - T0, 2))
        bluetoothd.stop()
    ok = res.finish(error)
    log("RESULT", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
