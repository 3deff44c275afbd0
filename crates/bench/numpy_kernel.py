"""The notebook's own numpy kernel (mandelbrot_tile), timed over the whole
default viewport at a reduced size, so the pixel mix (exterior, boundary,
interior) is the default job's.

Usage: python numpy_kernel.py TILES_PER_SIDE TILE_PIXELS
Prints one JSON line: {"tiles": n, "pixels": p, "seconds": s,
"iterations": brute-force iterations}.
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


tiles_per_side, tile_pixels = int(sys.argv[1]), int(sys.argv[2])
params = {
    "viewport": (-0.745, -0.735, 0.105, 0.115),
    "tiles_per_side": tiles_per_side,
    "tile_pixels": tile_pixels,
    "max_iter": 2000,
}
iterations = 0
started = time.perf_counter()
for row in range(tiles_per_side):
    for col in range(tiles_per_side):
        out = mandelbrot_tile(params, row, col).astype(np.int64)
        iterations += int(np.where(out >= 2000, 2000, out + 1).sum())
seconds = time.perf_counter() - started
print(json.dumps({
    "tiles": tiles_per_side ** 2,
    "pixels": (tiles_per_side * tile_pixels) ** 2,
    "seconds": seconds,
    "iterations": iterations,
}))
