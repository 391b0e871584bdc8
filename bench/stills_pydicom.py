#!/usr/bin/env python3
"""The stills pipeline a user would otherwise write: pydicom + Pillow, one PNG per file.

usage: stills_pydicom.py OUT_DIR FILE...   (--check: only print the files it can decode)
Modality LUT, then the file's VOI window (or min..max when it has none), 8-bit PNG.
"""
import os
import sys

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut


def render(path):
    ds = pydicom.dcmread(path)
    arr = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        arr = apply_voi_lut(arr, ds).astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    img = np.clip((arr - lo) * (255.0 / max(hi - lo, 1e-9)), 0, 255).astype(np.uint8)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        img = 255 - img
    return img


if sys.argv[1] == "--check":
    for p in sys.argv[2:]:
        try:
            render(p)
            print(p)
        except Exception:
            pass
    sys.exit(0)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for i, p in enumerate(sys.argv[2:]):
    Image.fromarray(render(p)).save(os.path.join(out, f"{i:05d}.png"))
