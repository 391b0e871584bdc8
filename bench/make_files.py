#!/usr/bin/env python3
"""Write N small synthetic DICOM files (8x8 16-bit CT, fake PHI) for benchmarks.

usage: make_files.py OUT_DIR N [PATIENTS]
Files go in sub-folders of 1,000. Needs pydicom (bench scripts install it into a venv).
"""
import os
import sys

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

out, n = sys.argv[1], int(sys.argv[2])
patients = int(sys.argv[3]) if len(sys.argv) > 3 else 10
root = "1.2.826.0.1.3680043.10.999"
px = (np.arange(64, dtype=np.uint16) * 37 % 4096).reshape(8, 8)
for i in range(n):
    p = i % patients
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"{root}.{p}.1.1.{i}"
    ds.StudyInstanceUID = f"{root}.{p}"
    ds.SeriesInstanceUID = f"{root}.{p}.1"
    ds.FrameOfReferenceUID = f"{root}.{p}.9"
    ds.PatientName = f"Bench^Patient{p}"
    ds.PatientID = f"MRN{p:06d}"
    ds.PatientBirthDate = "19600101"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    ds.AccessionNumber = f"ACC{p:05d}"
    ds.InstitutionName = "Bench General Hospital"
    ds.ReferringPhysicianName = "Doctor^Bench"
    ds.StudyDescription = "CT CHEST"
    ds.Modality = "CT"
    ds.InstanceNumber = i
    ds.Rows, ds.Columns = 8, 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = px.tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    sub = os.path.join(out, f"d{i // 1000:03d}")
    os.makedirs(sub, exist_ok=True)
    ds.save_as(os.path.join(sub, f"f{i:05d}.dcm"), enforce_file_format=True)
