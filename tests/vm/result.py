#!/usr/bin/python3
"""Host side: prints the guest's result.json as one line per check and a closing count.
Exit 0 only if the guest finished its scenario and every check passed.
Usage: result.py RESULT_JSON WALL_SECONDS"""
import json
import sys


def main():
    path, wall = sys.argv[1], sys.argv[2]
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("no usable result from the guest (%s)" % e)
        return 1
    checks = doc.get("checks", [])
    for c in checks:
        print("%-4s [%6.1fs] %s%s" % ("ok" if c["ok"] else "FAIL", c["t"], c["name"],
                                     "" if c["ok"] or not c["detail"] else ": " + c["detail"]))
    facts = doc.get("facts", {})
    for key in ("bluetoothd_version", "bluez_up_s", "checker_s"):
        if key in facts:
            print("fact %s = %s" % (key, facts[key]))
    if doc.get("error"):
        print("guest checker stopped: %s" % doc["error"].strip())
    if not doc.get("complete"):
        print("the guest did not complete its scenario")
    failed = sum(1 for c in checks if not c["ok"])
    print("vm %s (%s scenario, %ss): %d passed, %d failed" % (
        doc.get("mode"), doc.get("scenario"), wall, len(checks) - failed, failed))
    return 0 if doc.get("ok") and doc.get("complete") and checks and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
