"""Reads the btsnoop capture `btmon -w` writes (monitor datalink 2001) and rebuilds, per
controller, what went on the air: which advertising data was sent from which address and
between which HCI commands, and which advertising reports each controller received.

Works on a capture that is still being written: Capture.update() parses the records appended
since the last call. Legacy (LE Set Advertising *) and extended (LE Set Extended Advertising
*) commands are both understood, so the same checks run on btvirt's LE-only 4.x controllers
and on its 5.x ones.
"""
import struct

BTSNOOP_MAGIC = b"btsnoop\0"
MONITOR_DATALINK = 2001
# 0000-01-01 to 1970-01-01 in microseconds, the btsnoop timestamp origin.
EPOCH_DELTA_US = 0x00DCDDB30F2F8000

# monitor opcodes
OP_NEW_INDEX, OP_DEL_INDEX, OP_COMMAND, OP_EVENT = 0, 1, 2, 3
OP_INDEX_INFO = 10
OP_CTRL_COMMAND = 16

# mgmt commands (from bluetoothd, seen by the monitor)
MGMT_START_DISCOVERY = 0x0023
MGMT_START_SERVICE_DISCOVERY = 0x003A

READ_BD_ADDR = 0x1009

# HCI LE opcodes (OGF 0x08)
LE_SET_RANDOM_ADDRESS = 0x2005
LE_SET_ADV_PARAMS = 0x2006
LE_SET_ADV_DATA = 0x2008
LE_SET_ADV_ENABLE = 0x200A
LE_SET_SCAN_ENABLE = 0x200C
LE_SET_ADV_SET_RANDOM_ADDRESS = 0x2035
LE_SET_EXT_ADV_PARAMS = 0x2036
LE_SET_EXT_ADV_DATA = 0x2037
LE_SET_EXT_ADV_ENABLE = 0x2039
LE_REMOVE_ADV_SET = 0x203C
LE_CLEAR_ADV_SETS = 0x203D
LE_SET_EXT_SCAN_ENABLE = 0x2042

EVT_CMD_COMPLETE = 0x0E
EVT_LE_META = 0x3E
LE_ADV_REPORT = 0x02
LE_EXT_ADV_REPORT = 0x0D

LEGACY = "legacy"  # the single legacy advertising "set"

OWN_ADDR_TYPES = {0: "public", 1: "random", 2: "rpa-or-public", 3: "rpa-or-random"}


def fmt_addr(raw):
    return ":".join("%02X" % b for b in reversed(raw))


def fmt_uuid128(raw):
    h = bytes(reversed(raw)).hex()
    return "%s-%s-%s-%s-%s" % (h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])


def addr_kind(raw_addr, addr_type):
    """'public', 'non-resolvable', 'resolvable', 'static' (random types by their top bits)."""
    if addr_type == "public":
        return "public"
    top = raw_addr[5] >> 6
    return {0: "non-resolvable", 1: "resolvable", 3: "static"}.get(top, "reserved")


def parse_ad(data):
    """AD structures -> list of (type, bytes)."""
    out = []
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0 or i + 1 + n > len(data):
            break
        out.append((data[i + 1], bytes(data[i + 2:i + 1 + n])))
        i += 1 + n
    return out


def service_data16(data, uuid16):
    """Service data for a 16-bit UUID in advertising data, or None."""
    for t, v in parse_ad(data):
        if t == 0x16 and len(v) >= 2 and struct.unpack_from("<H", v)[0] == uuid16:
            return v[2:]
    return None


def flags(data):
    """Value of the Flags AD structure, or None."""
    for t, v in parse_ad(data):
        if t == 0x01 and v:
            return v[0]
    return None


def discoverable_flags(data):
    """LE Limited or LE General Discoverable Mode set in Flags."""
    return bool((flags(data) or 0) & 0x03)


class AdvSet:
    def __init__(self):
        self.random_addr = None
        self.own_addr_type = None
        self.connectable = None
        self.scannable = None
        self.data = b""
        self.enabled = False
        self.segment = None


class Controller:
    def __init__(self, index, public_addr, name):
        self.index = index
        self.public_addr = public_addr
        self.name = name
        self.sets = {}
        self.pending = {}  # opcode -> parameters of a command awaiting Command Complete
        self.scanning = False

    def adv_set(self, handle):
        return self.sets.setdefault(handle, AdvSet())


class Capture:
    """Incremental reader of a btmon capture."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.header_ok = False
        self.controllers = {}
        # Every period during which one advertising set sent unchanged data from one address.
        self.segments = []
        # Advertising reports received: dict(t, index, addr, addr_kind, rssi, data)
        self.reports = []
        # mgmt discovery starts: dict(t, index, service=bool, uuids=[str])
        self.discovery_starts = []
        # (t, index, opcode, params) of every LE advertising/scanning command, for debugging
        self.commands = []
        self.last_t = 0.0

    # ---- reading ---------------------------------------------------------------------------
    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                buf = f.read()
        except FileNotFoundError:
            return
        pos = 0
        if not self.header_ok:
            if len(buf) < 16:
                return
            magic, version, datalink = struct.unpack_from(">8sII", buf)
            if magic != BTSNOOP_MAGIC or datalink != MONITOR_DATALINK:
                raise ValueError("%s: not a btmon monitor capture" % self.path)
            self.header_ok = True
            pos = 16
        while len(buf) - pos >= 24:
            orig_len, incl_len, flags, _drops, ts = struct.unpack_from(">IIIIQ", buf, pos)
            if len(buf) - pos - 24 < incl_len:
                break
            payload = buf[pos + 24:pos + 24 + incl_len]
            pos += 24 + incl_len
            t = (ts - EPOCH_DELTA_US) / 1e6
            self.last_t = t
            self._record(t, flags >> 16, flags & 0xFFFF, payload)
        self.offset += pos

    def _record(self, t, index, opcode, p):
        if opcode == OP_NEW_INDEX and len(p) >= 16:
            name = p[8:16].split(b"\0")[0].decode(errors="replace")
            self.controllers[index] = Controller(index, bytes(p[2:8]), name)
        elif opcode == OP_INDEX_INFO and len(p) >= 6 and index in self.controllers:
            self.controllers[index].public_addr = bytes(p[0:6])
        elif opcode == OP_COMMAND and len(p) >= 3 and index in self.controllers:
            op, plen = struct.unpack_from("<HB", p)
            self._command(t, self.controllers[index], op, p[3:3 + plen])
        elif opcode == OP_EVENT and len(p) >= 2 and index in self.controllers:
            self._event(t, self.controllers[index], p[0], p[2:2 + p[1]])
        elif opcode == OP_CTRL_COMMAND and len(p) >= 6:
            self._mgmt_command(t, index, struct.unpack_from("<H", p, 4)[0], p[6:])

    def _mgmt_command(self, t, index, op, p):
        if op == MGMT_START_DISCOVERY:
            self.discovery_starts.append(dict(t=t, index=index, service=False, uuids=[]))
        elif op == MGMT_START_SERVICE_DISCOVERY and len(p) >= 4:
            n = struct.unpack_from("<H", p, 2)[0]
            uuids = [fmt_uuid128(p[4 + 16 * i:20 + 16 * i]) for i in range(n)
                     if 20 + 16 * i <= len(p)]
            self.discovery_starts.append(dict(t=t, index=index, service=True, uuids=uuids))

    # ---- commands --------------------------------------------------------------------------
    # A command takes effect when the controller completes it successfully: a controller may
    # refuse one (a legacy controller refuses a new random address while it scans).
    TRACKED = (LE_SET_RANDOM_ADDRESS, LE_SET_ADV_PARAMS, LE_SET_ADV_DATA, LE_SET_ADV_ENABLE,
               LE_SET_SCAN_ENABLE, LE_SET_ADV_SET_RANDOM_ADDRESS, LE_SET_EXT_ADV_PARAMS,
               LE_SET_EXT_ADV_DATA, LE_SET_EXT_ADV_ENABLE, LE_REMOVE_ADV_SET,
               LE_CLEAR_ADV_SETS, LE_SET_EXT_SCAN_ENABLE)

    def _command(self, t, c, op, p):
        if 0x2000 <= op < 0x2100:
            self.commands.append((t, c.index, op, bytes(p)))
        if op in self.TRACKED:
            c.pending[op] = bytes(p)

    def _completed(self, t, c, op, p):
        if op == LE_SET_RANDOM_ADDRESS and len(p) >= 6:
            self._update(t, c, LEGACY, random_addr=bytes(p[0:6]))
        elif op == LE_SET_ADV_PARAMS and len(p) >= 15:
            adv_type, own = p[4], p[5]
            self._update(t, c, LEGACY, own_addr_type=OWN_ADDR_TYPES.get(own, "unknown"),
                         connectable=adv_type in (0x00, 0x01, 0x04),
                         scannable=adv_type in (0x00, 0x02))
        elif op == LE_SET_ADV_DATA and len(p) >= 1:
            self._update(t, c, LEGACY, data=bytes(p[1:1 + p[0]]))
        elif op == LE_SET_ADV_SET_RANDOM_ADDRESS and len(p) >= 7:
            self._update(t, c, p[0], random_addr=bytes(p[1:7]))
        elif op == LE_SET_EXT_ADV_PARAMS and len(p) >= 25:
            props = struct.unpack_from("<H", p, 1)[0]
            self._update(t, c, p[0], own_addr_type=OWN_ADDR_TYPES.get(p[10], "unknown"),
                         connectable=bool(props & 0x01), scannable=bool(props & 0x02))
        elif op == LE_SET_EXT_ADV_DATA and len(p) >= 4:
            handle, operation, dlen = p[0], p[1], p[3]
            frag = bytes(p[4:4 + dlen])
            # 3 = complete, 1 = first fragment, 0 = intermediate, 2 = last
            data = frag if operation in (1, 3) else c.adv_set(handle).data + frag
            self._update(t, c, handle, data=data)
        elif op == LE_SET_ADV_ENABLE and len(p) >= 1:
            self._enable(t, c, LEGACY, bool(p[0]))
        elif op == LE_SET_EXT_ADV_ENABLE and len(p) >= 2:
            enable, nsets = p[0], p[1]
            handles = [p[2 + 4 * i] for i in range(nsets) if 2 + 4 * i < len(p)]
            if not enable and nsets == 0:
                handles = list(c.sets)  # disable all
            for h in handles:
                self._enable(t, c, h, bool(enable))
        elif op in (LE_SET_SCAN_ENABLE, LE_SET_EXT_SCAN_ENABLE) and len(p) >= 1:
            c.scanning = bool(p[0])
        elif op == LE_REMOVE_ADV_SET and len(p) >= 1:
            self._enable(t, c, p[0], False)
            c.sets.pop(p[0], None)
        elif op == LE_CLEAR_ADV_SETS:
            for h in list(c.sets):
                self._enable(t, c, h, False)
            c.sets.clear()

    def _event(self, t, c, code, p):
        if code == EVT_CMD_COMPLETE and len(p) >= 4:
            op, status = struct.unpack_from("<H", p, 1)[0], p[3]
            if op == READ_BD_ADDR and status == 0 and len(p) >= 10:
                c.public_addr = bytes(p[4:10])
            params = c.pending.pop(op, None)
            if params is not None and status == 0:
                self._completed(t, c, op, params)
        elif code == EVT_LE_META and len(p) >= 2:
            if p[0] == LE_ADV_REPORT:
                self._legacy_reports(t, c, p[1:])
            elif p[0] == LE_EXT_ADV_REPORT:
                self._ext_reports(t, c, p[1:])

    def _legacy_reports(self, t, c, p):
        n, i = p[0], 1
        for _ in range(n):
            if i + 9 > len(p):
                return
            addr_type = "public" if p[i + 1] == 0 else "random"
            raw = bytes(p[i + 2:i + 8])
            dlen = p[i + 8]
            data = bytes(p[i + 9:i + 9 + dlen])
            rssi = struct.unpack_from("b", p, i + 9 + dlen)[0] if i + 9 + dlen < len(p) else None
            self._report(t, c, raw, addr_type, rssi, data)
            i += 10 + dlen

    def _ext_reports(self, t, c, p):
        n, i = p[0], 1
        for _ in range(n):
            if i + 24 > len(p):
                return
            addr_type = "public" if p[i + 2] in (0, 2) else "random"
            raw = bytes(p[i + 3:i + 9])
            rssi = struct.unpack_from("b", p, i + 13)[0]
            dlen = p[i + 23]
            data = bytes(p[i + 24:i + 24 + dlen])
            self._report(t, c, raw, addr_type, rssi, data)
            i += 24 + dlen

    def _report(self, t, c, raw, addr_type, rssi, data):
        self.reports.append(dict(t=t, index=c.index, addr=fmt_addr(raw),
                                 addr_kind=addr_kind(raw, addr_type), rssi=rssi, data=data))

    # ---- advertising timeline --------------------------------------------------------------
    def _address(self, c, s):
        if s.own_addr_type == "public" or s.own_addr_type is None:
            return c.public_addr, "public"
        if s.random_addr is None:
            return None, "random"
        return s.random_addr, "random"

    def _open(self, t, c, handle, s):
        raw, atype = self._address(c, s)
        s.segment = dict(
            index=c.index, controller=c.name, handle=handle, start=t, end=None,
            addr=fmt_addr(raw) if raw else None,
            addr_kind=addr_kind(raw, atype) if raw else "unset",
            own_addr_type=s.own_addr_type, connectable=s.connectable,
            scannable=s.scannable, data=s.data, flags=flags(s.data))
        self.segments.append(s.segment)

    def _close(self, t, s):
        if s.segment is not None:
            s.segment["end"] = t
            s.segment = None

    def _enable(self, t, c, handle, on):
        s = c.adv_set(handle)
        if on and not s.enabled:
            s.enabled = True
            self._open(t, c, handle, s)
        elif not on and s.enabled:
            s.enabled = False
            self._close(t, s)

    def _update(self, t, c, handle, **fields):
        s = c.adv_set(handle)
        changed = {k: v for k, v in fields.items() if getattr(s, k) != v}
        if not changed:
            return
        for k, v in changed.items():
            setattr(s, k, v)
        if s.enabled:  # changed while on the air: a new segment starts now
            self._close(t, s)
            self._open(t, c, handle, s)

    # ---- queries ---------------------------------------------------------------------------
    def index_of(self, public_addr):
        for i, c in self.controllers.items():
            if fmt_addr(c.public_addr) == public_addr.upper():
                return i
        return None

    def advertising(self, index, uuid16):
        """Segments of controller `index` whose data carries service data for uuid16."""
        return [s for s in self.segments
                if s["index"] == index and service_data16(s["data"], uuid16) is not None]

    def on_air(self, index, uuid16):
        """True if controller `index` is currently advertising service data for uuid16."""
        c = self.controllers.get(index)
        if c is None:
            return False
        return any(s.enabled and service_data16(s.data, uuid16) is not None
                   for s in c.sets.values())
