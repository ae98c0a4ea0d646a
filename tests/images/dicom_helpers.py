"""Write small synthetic DICOM series for the DICOM tests (no tests here; helpers only).

Each series is a real DICOM file set written with pydicom: classic single-frame CT/MR slices
or one enhanced multi-frame object, with any orientation, slice positions and rescale, so the
reader can be checked against dcm2niix on geometry that no fixture file covers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[2]
TOTALSEG_DIR = REPO / "tests" / "data" / "dicom" / "totalsegmentator"
CT_UID = "1.2.840.10008.5.1.4.1.1.2"
MR_UID = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_UID = "1.2.840.10008.5.1.4.1.1.4.1"


def totalseg_ct_dir() -> Path:
    """The real 20-slice CT series of TotalSegmentator's source package, fetched once from PyPI."""
    folder = TOTALSEG_DIR / "example_ct_dicom"
    if not folder.is_dir():
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_dicom_test_data.py")], check=True)
    return folder


def dcm2niix_binary() -> str:
    """The dcm2niix executable shipped by the PyPI package ``dcm2niix`` (a test dependency)."""
    beside = Path(sys.executable).with_name("dcm2niix")
    found = str(beside) if beside.exists() else shutil.which("dcm2niix")
    if not found:
        raise RuntimeError("dcm2niix is not installed: pip install dcm2niix")
    return found


def run_dcm2niix(folder: Path, out: Path) -> list[Path]:
    """Convert ``folder`` with dcm2niix into ``out``; return the NIfTI files it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([dcm2niix_binary(), "-z", "n", "-b", "n", "-f", "%s_%e_%t", "-o", str(out), str(folder)],
                   check=True, capture_output=True)
    return sorted(out.glob("*.nii"))


def _base(uid: str, modality: str, series_uid: str, study_uid: str, for_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = uid
    ds.Modality = modality
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYN001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    ds.StudyID = "1"
    ds.AccessionNumber = "A1"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "MedSegTests"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def make_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A (slices, rows, columns) int16 volume with structure in every axis, so flips show."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return (z * 100 + y * 7 + x * 3 + rng.integers(0, 5, size=shape)).astype(np.int16)


def write_series(folder: Path, volume: np.ndarray, *, pixel_spacing=(0.8, 0.7),
                 orientation: Sequence[float] = (1, 0, 0, 0, 1, 0), origin=(-50.0, -40.0, 20.0),
                 slice_offsets: Sequence[float] | None = None, slice_step: float = 2.5,
                 step_vector: Sequence[float] | None = None, slope: float = 1.0, intercept: float = -1024.0,
                 modality: str = "CT", series_uid: str | None = None, series_number: int = 1,
                 description: str = "synthetic", study_uid: str | None = None, for_uid: str | None = None,
                 echo_numbers: Sequence[int] | None = None, temporal: Sequence[int] | None = None,
                 thickness: float | None = None, shuffle_names: bool = True) -> list[Path]:
    """Write ``volume`` (slices, rows, columns) as single-frame slices; return the file paths.

    Slice k lies at ``origin + offset_k * normal`` (``slice_offsets``, default ``k*slice_step``)
    or at ``origin + k * step_vector`` when given (a sheared stack, as with gantry tilt).
    File names are random-looking so nothing may rely on them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    for_uid = for_uid or generate_uid()
    row_dir, col_dir = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    n = volume.shape[0]
    offsets = list(slice_offsets) if slice_offsets is not None else [k * slice_step for k in range(n)]
    sop_class = CT_UID if modality == "CT" else MR_UID
    paths = []
    for k in range(n):
        ds = _base(sop_class, modality, series_uid, study_uid, for_uid)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.InstanceNumber = k + 1
        position = (np.asarray(origin, float) + k * np.asarray(step_vector, float) if step_vector is not None
                    else np.asarray(origin, float) + offsets[k] * normal)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
        ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
        ds.SliceThickness = f"{thickness if thickness is not None else slice_step:g}"
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        if modality == "CT":
            ds.RescaleType = "HU"
        if echo_numbers is not None:
            ds.EchoNumbers = echo_numbers[k]
            ds.EchoTime = 10 * echo_numbers[k]
        if temporal is not None:
            ds.TemporalPositionIdentifier = temporal[k]
            ds.NumberOfTemporalPositions = max(temporal)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelData = np.ascontiguousarray(volume[k]).astype("<i2").tobytes()
        name = f"IM{ds.SOPInstanceUID[-12:]}" if shuffle_names else f"slice{k:03d}.dcm"
        path = folder / name
        pydicom.dcmwrite(path, ds, **_write_kwargs())
        paths.append(path)
    return paths


def _write_kwargs() -> dict:
    # pydicom 3 renamed write_like_original; both write a proper file meta header here
    return {"enforce_file_format": True} if pydicom.__version__[0] >= "3" else {"write_like_original": False}


def write_enhanced_mr(path: Path, volume: np.ndarray, *, pixel_spacing=(0.9, 0.8),
                      orientation: Sequence[float] = (1, 0, 0, 0, 1, 0), origin=(-30.0, -20.0, 10.0),
                      slice_step: float = 3.0, slope: float = 2.0, intercept: float = 5.0,
                      temporal_positions: int = 1, series_uid: str | None = None,
                      series_number: int = 7, description: str = "enhanced", reverse: bool = True) -> Path:
    """Write one enhanced MR multi-frame object; frames loop slices inside temporal positions.

    ``volume`` is (temporal * slices, rows, columns); frame f is slice f % slices at time
    f // slices. With ``reverse`` the frames are stored in reverse slice order, to check that
    sorting uses positions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _base(ENHANCED_MR_UID, "MR", series_uid or generate_uid(), generate_uid(), generate_uid())
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.PixelRepresentation = 0
    n_frames = volume.shape[0]
    n_slices = n_frames // temporal_positions
    ds.NumberOfFrames = n_frames
    ds.Rows, ds.Columns = volume.shape[1:]
    normal = np.cross(np.array(orientation[:3], float), np.array(orientation[3:], float))
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    measures = Dataset()
    measures.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    measures.SliceThickness = f"{slice_step:g}"
    shared.PlaneOrientationSequence = [orient]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.NumberOfTemporalPositions = temporal_positions
    frames, order = [], []
    for t in range(temporal_positions):
        for k in (reversed(range(n_slices)) if reverse else range(n_slices)):
            frame = Dataset()
            pos = Dataset()
            pos.ImagePositionPatient = [f"{v:.6f}" for v in np.asarray(origin, float) + k * slice_step * normal]
            frame.PlanePositionSequence = [pos]
            content = Dataset()
            content.TemporalPositionIndex = t + 1
            content.StackID = "1"
            content.InStackPositionNumber = k + 1
            frame.FrameContentSequence = [content]
            transform = Dataset()
            transform.RescaleSlope = f"{slope:g}"
            transform.RescaleIntercept = f"{intercept:g}"
            transform.RescaleType = "US"
            frame.PixelValueTransformationSequence = [transform]
            frames.append(frame)
            order.append(t * n_slices + k)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.ascontiguousarray(volume[order]).astype("<u2").tobytes()
    pydicom.dcmwrite(path, ds, **_write_kwargs())
    return path


def oblique_orientation(angle_deg: float, axis: Sequence[float] = (1, 1, 0)) -> tuple[float, ...]:
    """Row and column directions of an axial plane rotated by ``angle_deg`` about ``axis``."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.deg2rad(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k
    return tuple(rot[:, 0]) + tuple(rot[:, 1])


def env_without_display() -> dict:
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    return env


def transcode(paths: Sequence[Path], syntax: str) -> None:
    """Rewrite single-frame files in place with compressed pixel data.

    ``syntax``: "rle" (pydicom's encoder), "jpeg-lossless" (process 14, encoded by GDCM in
    SimpleITK) or "jpeg-baseline" (8-bit lossy, encoded by Pillow).
    """
    import io
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, RLELossless
    for path in paths:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        if syntax == "rle":
            ds.compress(RLELossless)
        elif syntax == "jpeg-lossless":
            import SimpleITK as sitk
            tmp = path.with_name(path.name + ".sitk.dcm")
            writer = sitk.ImageFileWriter()
            writer.SetImageIO("GDCMImageIO")
            writer.SetUseCompression(True)
            writer.SetCompressor("JPEG")
            writer.SetFileName(str(tmp))
            writer.Execute(sitk.GetImageFromArray(pixels.astype(np.int16)))
            encoded = pydicom.dcmread(tmp)
            tmp.unlink()
            ds.file_meta.TransferSyntaxUID = encoded.file_meta.TransferSyntaxUID
            ds.PixelData = encoded.PixelData
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
        elif syntax == "jpeg-baseline":
            from PIL import Image as PILImage
            eight = np.clip((pixels.astype(float) - pixels.min()) * 255.0 / max(1, np.ptp(pixels)), 0, 255)
            buffer = io.BytesIO()
            PILImage.fromarray(eight.astype(np.uint8)).save(buffer, format="JPEG", quality=95)
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
            ds.PixelData = encapsulate([buffer.getvalue()])
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
        else:
            raise ValueError(syntax)
        pydicom.dcmwrite(path, ds, **_write_kwargs())


def write_phantom_study(folder: Path, seed: int = 0) -> None:
    """A BraTS-like phantom (chimerax.medseg.datasets.phantom) as four MR series of one study: T1, T1ce, T2, Flair."""
    from chimerax.medseg.datasets.phantom import CHANNELS, make_phantom
    case = make_phantom(np.random.default_rng(seed), spacing=(2.5, 2.0, 2.0), rotate=False)
    study, frame = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    for number, name in enumerate(CHANNELS):
        write_series(folder / name, case.image[number], pixel_spacing=(2.0, 2.0), slice_step=2.5,
                     orientation=oblique_orientation(10), modality="MR", intercept=0, series_number=number + 1,
                     description=name, study_uid=study, for_uid=frame)
