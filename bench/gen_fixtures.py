"""Write N small synthetic CT files (64x64, 16-bit) with invented PHI for bench/deid.sh.

100 instances per series, one series per study, one study per patient; names, IDs, dates,
UIDs, free text and a private block are all made up. Usage: gen_fixtures.py OUT_DIR N
"""
import sys
from array import array
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

ROOT = "1.2.826.0.1.3680043.10.999"


def instance(n: int) -> Dataset:
    p, i = divmod(n, 100)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{ROOT}.4.{p}.{i}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = f"{ROOT}.1.{p}"
    ds.SeriesInstanceUID = f"{ROOT}.2.{p}"
    ds.FrameOfReferenceUID = f"{ROOT}.3.{p}"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName = f"BENCHPATIENT{p:04d}^GIVEN"
    ds.PatientID = f"BPID{p:06d}"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20210315"
    ds.StudyTime = ds.ContentTime = "101500"
    ds.AccessionNumber = f"BACC{p:06d}"
    ds.InstitutionName = "BENCH GENERAL HOSPITAL"
    ds.ReferringPhysicianName = "BENCH^REFERRER"
    ds.StudyDescription = f"CT chest for BENCHPATIENT{p:04d}"
    ds.Manufacturer = "BENCH"
    ds.SeriesNumber = 1
    ds.InstanceNumber = i + 1
    ds.ImagePositionPatient = [0, 0, float(i)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = f"{ROOT}.4.{p}.{(i + 1) % 100}"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00090010, "LO", "BENCH PRIVATE")
    ds.add_new(0x00091001, "LO", "private payload")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    px = array("H", ((k * 7 + n) % 4096 for k in range(64 * 64)))
    if sys.byteorder == "big":
        px.byteswap()
    ds.PixelData = px.tobytes()
    return ds


def main() -> None:
    out, n = Path(sys.argv[1]), int(sys.argv[2])
    for k in range(n):
        d = out / f"d{k // 1000:03d}"
        d.mkdir(parents=True, exist_ok=True)
        instance(k).save_as(d / f"f{k:05d}.dcm", enforce_file_format=True)


if __name__ == "__main__":
    main()
