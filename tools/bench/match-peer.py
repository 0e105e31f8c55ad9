#!/usr/bin/python3
"""Peer exposure matcher for comparison with `prox-tool bench match`.

A straightforward GAEN v1.2 matcher in Python on Debian's python3-cryptography (OpenSSL
underneath), the way a careful application would write it: per key, HKDF for the RPIK,
one AES-128-ECB call for all of the key's RPIs, a set lookup for each RPI, and AEMK / AEM
decryption, the ±12 interval window and the TX-power check only for RPIs that were heard.
--per-rpi encrypts one RPI per call instead, as most published reference code does.

The workload has the shape of prox-tool's: N random keys over 14 days (rolling period 144,
1 in 10 not aligned to 00:00 UTC), M observed sightings of random RPIs of which K are
planted (a key's RPI heard -12..+12 intervals from its interval, TX power -50..+20 dBm).
It prints the median keys/s of R runs and, last, one line:
    PEER python keys_per_s=<n> matched=<found>/<planted>
Exit status 1 when a planted match is missed.

    /usr/bin/python3 tools/bench/match-peer.py --keys 20000 --observed 100000
"""

import argparse
import random
import statistics
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INTERVAL = 600
PERIOD = 144
DAY0 = 1609459200 // INTERVAL  # 2021-01-01T00:00Z
DAYS = 14
TOLERANCE = 12
RPI_PREFIX = b"EN-RPI" + bytes(6)


def hkdf16(tek, info):
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(tek)


def ecb(key, data):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def ctr(key, counter, data):
    enc = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    return enc.update(data) + enc.finalize()


def padded(start, count):
    return b"".join(RPI_PREFIX + struct.pack("<I", (start + j) & 0xFFFFFFFF) for j in range(count))


def make_workload(n_keys, n_observed, n_planted, seed):
    rng = random.Random(seed)
    keys = []
    for _ in range(n_keys):
        start = DAY0 + rng.randrange(DAYS) * PERIOD
        if rng.randrange(10) == 0:
            start += rng.randrange(PERIOD)
        keys.append((rng.randbytes(16), start, PERIOD))
    t0 = DAY0 * INTERVAL
    observed = {}
    for _ in range(n_observed - n_planted):
        t = t0 + rng.randrange((DAYS + 1) * 86400)
        observed.setdefault(rng.randbytes(16), []).append((t, t + 4, rng.randbytes(4)))
    planted = {}
    step = n_keys // n_planted
    for p in range(n_planted):
        k = p * step + rng.randrange(step)
        tek, start, period = keys[k]
        interval = start + rng.randrange(period)
        heard = (interval + rng.randrange(-TOLERANCE, TOLERANCE + 1)) * INTERVAL + rng.randrange(INTERVAL)
        tx = rng.randrange(-50, 21)
        rpi = ecb(hkdf16(tek, b"EN-RPIK"), padded(interval, 1))
        aem = ctr(hkdf16(tek, b"EN-AEMK"), rpi, bytes([0x40, tx & 0xFF, 0, 0]))
        observed.setdefault(rpi, []).append((heard, heard + 4, aem))
        planted[k] = (interval, tx)
    return keys, observed, planted


def match(keys, observed, per_rpi):
    found = []
    for index, (tek, start, period) in enumerate(keys):
        if not 1 <= period <= PERIOD:
            continue
        rpik = hkdf16(tek, b"EN-RPIK")
        if per_rpi:
            enc = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor()
            rpis = b"".join(enc.update(padded(start + j, 1)) for j in range(period))
        else:
            rpis = ecb(rpik, padded(start, period))
        aemk = None
        for j in range(period):
            rpi = rpis[16 * j:16 * j + 16]
            heard = observed.get(rpi)
            if heard is None:
                continue
            interval = start + j
            for first, last, aem in heard:
                lo, hi = min(first, last) // INTERVAL, max(first, last) // INTERVAL
                if lo > interval + TOLERANCE or hi < interval - TOLERANCE:
                    continue
                if aemk is None:
                    aemk = hkdf16(tek, b"EN-AEMK")
                meta = ctr(aemk, rpi, aem)
                tx = struct.unpack("b", meta[1:2])[0]
                if meta[0] >> 6 != 1 or not -50 <= tx <= 20:
                    continue
                found.append((index, interval, tx, first))
    found.sort()
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=200000)
    parser.add_argument("--observed", type=int, default=100000)
    parser.add_argument("--planted", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-rpi", action="store_true",
                        help="one AES call per RPI (as most reference code does)")
    args = parser.parse_args()
    planted_n = min(args.planted, args.keys, args.observed)
    keys, observed, planted = make_workload(args.keys, args.observed, planted_n, args.seed)
    print(f"workload: {args.keys} keys over {DAYS} days (period 144), {args.observed} observed "
          f"sightings, {planted_n} planted matches, seed {args.seed}; "
          f"{'one AES call per RPI' if args.per_rpi else 'one AES call per key'}")
    rates = []
    found_min = planted_n
    for _ in range(args.repeat):
        t = time.perf_counter()
        found = match(keys, observed, args.per_rpi)
        rates.append(args.keys / (time.perf_counter() - t))
        ok = sum(1 for index, interval, tx, _ in found if planted.get(index) == (interval, tx))
        found_min = min(found_min, ok if len(found) == ok else 0)
    print("keys/s runs: " + " ".join(f"{r:.0f}" for r in rates))
    print(f"PEER python keys_per_s={statistics.median(rates):.0f} matched={found_min}/{planted_n}")
    return 0 if found_min == planted_n else 1


if __name__ == "__main__":
    sys.exit(main())
