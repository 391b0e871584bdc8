#!/usr/bin/env python3
"""The first half of the clip pipeline a user would otherwise write: every frame of a cine as a
PNG (pydicom + Pillow), then the frame rate on stdout for `ffmpeg -framerate`.

usage: frames_pydicom.py FILE OUT_DIR
"""
import os
import sys

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

ds = pydicom.dcmread(sys.argv[1])
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
frames = ds.pixel_array
if int(ds.get("NumberOfFrames", 1)) == 1:
    frames = frames[None]
for i, f in enumerate(frames):
    if ds.SamplesPerPixel == 1:
        a = apply_modality_lut(f, ds).astype(np.float64)
        if "WindowCenter" in ds:
            a = apply_voi_lut(a, ds).astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        f = np.clip((a - lo) * (255.0 / max(hi - lo, 1e-9)), 0, 255).astype(np.uint8)
    Image.fromarray(f).save(os.path.join(out, f"{i:05d}.png"))
if "RecommendedDisplayFrameRate" in ds:
    print(float(ds.RecommendedDisplayFrameRate))
elif "CineRate" in ds:
    print(float(ds.CineRate))
elif "FrameTime" in ds:
    print(1000.0 / float(ds.FrameTime))
else:
    print(25)
