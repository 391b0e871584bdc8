#!/usr/bin/env python3
"""Write a synthetic CT series: N slices of 512x512 16-bit (fake PHI), for memory benchmarks.

usage: make_series.py OUT_DIR [N]
"""
import os
import sys

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
os.makedirs(out, exist_ok=True)
root = "1.2.826.0.1.3680043.10.998"
yy, xx = np.mgrid[0:512, 0:512]
disc = ((xx - 256) ** 2 + (yy - 256) ** 2) < 200 ** 2
for i in range(n):
    px = np.where(disc, 1000 + (i % 50) * 10, 0).astype(np.uint16)
    px += ((xx + yy + i) % 64).astype(np.uint16)
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"{root}.1.1.{i + 1}"
    ds.StudyInstanceUID = root
    ds.SeriesInstanceUID = f"{root}.1"
    ds.PatientName = "Bench^Series"
    ds.PatientID = "MRN000001"
    ds.Modality = "CT"
    ds.InstanceNumber = i + 1
    ds.ImagePositionPatient = [0, 0, i * 1.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.Rows, ds.Columns = 512, 512
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PixelData = px.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(os.path.join(out, f"s{i:04d}.dcm"), enforce_file_format=True)
