"""Fractalshades 1.2.1 on a published location, timed, beside mandel-bench deep.

Renders the location's view at SIDE² with Fractalshades' perturbation and
BLA (threshold BLA_EPS, or "off"), times the calculation (its numba compile
is done first, on an 8² warm-up, and reported apart) and, given a brute-force
grid of the same size (tools/deep_truth.py), prints the agreement.
Usage: python tools/fractalshades_bench.py LOCATION.kfr SIDE BLA_EPS [GRID.json]"""
import sys, time, json, os, tempfile
import numpy as np
import mpmath
import fractalshades as fs
import fractalshades.models as fsm

kfr, side, eps = sys.argv[1], int(sys.argv[2]), sys.argv[3]
grid = sys.argv[4] if len(sys.argv) > 4 else None
fields = {}
for line in open(kfr):
    if ':' in line:
        k, v = line.split(':', 1)
        fields[k.strip()] = v.strip()
re_, im_, zoom, max_iter = fields['Re'], fields['Im'], fields['Zoom'], int(fields['Iterations'])
mpmath.mp.dps = 30
# Fractalshades puts its pixels at the image's edges, (nx - 1) gaps across
# dx; ours are pixel centres, nx gaps across 4/zoom: the same points with
# dx = 4/zoom * (nx - 1)/nx.
def width(nx):
    return str(mpmath.mpf(4) / mpmath.mpf(zoom) * (nx - 1) / nx)
digits = int(mpmath.log10(mpmath.mpf(zoom))) + 20

def run(nx):
    d = tempfile.mkdtemp()
    f = fsm.Perturbation_mandelbrot(d)
    f.zoom(precision=digits, x=re_, y=im_, dx=width(nx), nx=nx, xy_ratio=1.0, theta_deg=0.0)
    bla = None if eps == "off" else float(eps)
    f.calc_std_div(calc_name="div", subset=None, max_iter=max_iter, M_divergence=2.0,
                   epsilon_stationnary=1e-3, BLA_eps=bla, calc_dzndc=False)
    t = time.time()
    f.calc_raw("div")
    secs = time.time() - t
    out = np.zeros((nx, nx), dtype=np.int64)
    for ch in f.chunk_slices():
        subset, c_pix, Z, U, stop_reason, stop_iter = f.reload_data(ch, "div")
        it = f.reshape2d(stop_iter, subset, ch)[0]
        (ix, ixx, iy, iyy) = ch
        out[ix:ixx, iy:iyy] = it
    return secs, out

t0 = time.time()
secs0, _ = run(8)   # numba compile and a warm-up
print(f"warm-up (numba compile) {time.time() - t0:.1f} s")
secs, counts = run(side)
print(f"fractalshades {fs.__version__} {os.path.basename(kfr)} {side}x{side} BLA_eps={eps}: {secs:.2f} s wall")
if grid:
    truth = np.array(json.load(open(grid))["counts"]).reshape(side, side)  # [row i (imag up), col j]
    best = None
    for name, arr in [("T", counts.T), ("Tflip", counts.T[::-1]), ("id", counts), ("flip", counts[::-1])]:
        for off in (-1, 0, 1):
            a = np.minimum(arr + off, max_iter)
            agree = (a == truth).mean()
            if best is None or agree > best[0]:
                best = (agree, name, off)
    print(f"agreement with {os.path.basename(grid)}: {best[0]*100:.3f} % (orientation {best[1]}, offset {best[2]})")
