#!/usr/bin/env python3
"""Brute-force truth for deep-zoom test grids, independent of mandel's code.

For a location (centre RE, IM as decimal strings, ZOOM, MAX_ITER) and a grid
side N, iterates z <- z*z + c for every pixel of the N x N view in MPFR
(gmpy2's mpc) at precision P, and again at 2P, and keeps doubling P until the
two agree on every pixel: that is the truth the deep kernel is judged by
(docs/deep-zoom.md). Pixel (i, j) is c = (re + (j + 0.5 - N/2) s,
im + (i + 0.5 - N/2) s), s = 4 / (zoom N), row 0 the lowest imaginary part;
its count is the index i of the step whose result has |z|^2 > 4, or MAX_ITER.

Writes JSON: the location, N, P, seconds, and the counts, row-major. Usage:

    python3 tools/deep_truth.py NAME RE IM ZOOM MAX_ITER N OUT.json [--jobs K]
"""
import argparse
import json
import math
import sys
import time
from multiprocessing import Pool

import gmpy2
from gmpy2 import mpc, mpfr


def start_precision(zoom: str, n: int) -> int:
    # Bits below the pixel spacing, plus a margin; the doubling loop decides.
    mant, _, exp = zoom.lower().partition("e")
    log2_zoom = math.log2(float(mant)) + (int(exp) if exp else 0) * math.log2(10)
    return max(64, int(math.ceil(log2_zoom + math.log2(n))) + 64)


def row_counts(args):
    re, im, zoom, max_iter, n, prec, i = args
    ctx = gmpy2.get_context()
    ctx.precision = prec
    s = mpfr(4) / (mpfr(zoom) * n)
    cre0, cim = mpfr(re), mpfr(im) + (i + mpfr(0.5) - n / 2) * s
    out = []
    four = mpfr(4)
    for j in range(n):
        c = mpc(cre0 + (j + mpfr(0.5) - n / 2) * s, cim)
        z = mpc(0)
        count = max_iter
        for k in range(max_iter):
            z = z * z + c
            if gmpy2.norm(z) > four:
                count = k
                break
        out.append(count)
    return out


def grid(re, im, zoom, max_iter, n, prec, pool):
    rows = pool.map(row_counts, [(re, im, zoom, max_iter, n, prec, i) for i in range(n)])
    return [c for row in rows for c in row]


def main():
    ap = argparse.ArgumentParser()
    for name in ["name", "re", "im", "zoom"]:
        ap.add_argument(name)
    ap.add_argument("max_iter", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    prec = start_precision(a.zoom, a.n)
    with Pool(a.jobs) as pool:
        low = grid(a.re, a.im, a.zoom, a.max_iter, a.n, prec, pool)
        while True:
            high = grid(a.re, a.im, a.zoom, a.max_iter, a.n, 2 * prec, pool)
            differ = sum(x != y for x, y in zip(low, high))
            print(f"{a.name}: P={prec} and 2P differ on {differ} pixels", file=sys.stderr)
            if differ == 0:
                break
            prec, low = 2 * prec, high
    record = {
        "name": a.name, "re": a.re, "im": a.im, "zoom": a.zoom,
        "max_iter": a.max_iter, "n": a.n, "precision_bits": prec,
        "seconds": round(time.time() - t0, 1),
        "tool": f"gmpy2 {gmpy2.version()}, MPFR {gmpy2.mpfr_version()}",
        "counts": "COUNTS",
    }
    # One key a line, the counts (row-major, row 0 the lowest imaginary
    # part) on one line of their own.
    text = json.dumps(record, indent=1).replace('"COUNTS"', json.dumps(low))
    with open(a.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
