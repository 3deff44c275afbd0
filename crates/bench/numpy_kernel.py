"""The notebook's own numpy kernel (mandelbrot_tile), timed on given tiles.

Usage: python numpy_kernel.py ROW,COL [ROW,COL ...]
Prints one JSON line: {"tiles": n, "seconds": s, "iterations": brute-force iterations}.
"""
import json
import sys
import time

import numpy as np


def mandelbrot_tile(params, tile_row, tile_col):
    xmin, xmax, ymin, ymax = params["viewport"]
    tiles = params["tiles_per_side"]
    pixels = params["tile_pixels"]
    max_iter = params["max_iter"]
    tile_width = (xmax - xmin) / tiles
    tile_height = (ymax - ymin) / tiles
    x0 = xmin + tile_col * tile_width
    y0 = ymin + tile_row * tile_height
    xs = np.linspace(x0, x0 + tile_width, pixels, endpoint=False, dtype=np.float64)
    ys = np.linspace(y0, y0 + tile_height, pixels, endpoint=False, dtype=np.float64)
    c = xs[np.newaxis, :] + 1j * ys[:, np.newaxis]
    z = np.zeros_like(c)
    out = np.full(c.shape, max_iter, dtype=np.uint16)
    active = np.ones(c.shape, dtype=bool)
    for i in range(max_iter):
        z[active] = z[active] * z[active] + c[active]
        escaped = active & (z.real * z.real + z.imag * z.imag > 4.0)
        out[escaped] = i
        active &= ~escaped
        if not active.any():
            break
    return out


params = {"viewport": (-0.745, -0.735, 0.105, 0.115), "tiles_per_side": 16, "tile_pixels": 256, "max_iter": 2000}
tiles = [tuple(int(v) for v in arg.split(",")) for arg in sys.argv[1:]]
iterations = 0
started = time.perf_counter()
for row, col in tiles:
    out = mandelbrot_tile(params, row, col).astype(np.int64)
    iterations += int(np.where(out >= 2000, 2000, out + 1).sum())
seconds = time.perf_counter() - started
print(json.dumps({"tiles": len(tiles), "seconds": seconds, "iterations": iterations}))
