"""NIfTI and DICOM files that lie: each ends in one clear error (or a correct volume), never garbage."""
from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hostile_helpers import assert_one_error_line, run_cli, write_nifti
from dicom_helpers import make_volume, write_series

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_image
from chimerax.medseg.images.dicom import read_dicom_series


def _volume():
    return np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)


def test_complex_voxels_are_refused_not_truncated(tmp_path):
    path = write_nifti(tmp_path / "c.nii.gz", (_volume() + 1j * _volume()).astype(np.complex64))
    with pytest.raises(MedSegError, match="complex"):
        read_image(path)


def test_rgb_voxels_are_refused(tmp_path):
    rgb = np.zeros((4, 5, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = tmp_path / "rgb.nii"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(path))
    with pytest.raises(MedSegError, match="RGB"):
        read_image(path)


def test_a_2d_nifti_becomes_one_slice_with_three_spacings(tmp_path):
    path = write_nifti(tmp_path / "flat.nii.gz", np.ones((5, 6), np.float32), affine=np.diag([0.5, 0.7, 1, 1]))
    image = read_image(path)
    assert image.shape == (1, 6, 5) and len(image.spacing) == 3


def _patched_header(tmp_path, **fields) -> str:
    """An uncompressed NIfTI whose header fields are overwritten on disk, past nibabel's own fixes."""
    path = tmp_path / "patched.nii"
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), str(path))
    header = nib.load(str(path)).header.copy()
    for name, value in fields.items():
        header[name] = value
    data = path.read_bytes()
    path.write_bytes(header.binaryblock + data[len(header.binaryblock):])
    return str(path)


# (nibabel itself repairs 0 and negative pixdim, with a warning; NaN and inf it passes on)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_spacing_that_is_not_finite_and_positive_is_refused(tmp_path, bad):
    path = _patched_header(tmp_path, pixdim=[1, bad, 1, 1, 1, 1, 1, 1], qform_code=0, sform_code=0)
    with pytest.raises(MedSegError, match="spacing"):
        read_image(path)


@pytest.mark.parametrize("value", [0.0, float("nan")])
def test_zero_or_nan_sform_is_refused_before_work(tmp_path, value):
    path = _patched_header(tmp_path, sform_code=1, qform_code=0, srow_x=[value] * 4, srow_y=[value] * 4,
                           srow_z=[value] * 4)
    with pytest.raises(MedSegError, match="orientation matrix"):
        read_image(path)


def test_nan_spacing_is_not_reported_as_different_grids(tmp_path):
    from chimerax.medseg.images import read_case
    a = write_nifti(tmp_path / "c_0000.nii.gz", _volume(), pixdim=[float("nan"), 1, 1])
    b = write_nifti(tmp_path / "c_0001.nii.gz", _volume(), pixdim=[float("nan"), 1, 1])
    with pytest.raises(MedSegError) as info:
        read_case([a, b])
    assert "different grids" not in str(info.value) and "spacing" in str(info.value)


def test_header_claiming_a_huge_volume_is_refused_without_allocating(tmp_path):
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    image.header.set_data_shape((30000, 30000, 30000))  # 100 TB of float32; the file holds 32 bytes
    path = tmp_path / "bomb.nii"
    with open(path, "wb") as handle:
        handle.write(image.header.binaryblock + b"\0" * 4 + bytes(32))
    with pytest.raises(MedSegError, match="memory"):
        read_image(path)


def test_truncated_gzip_nifti_is_one_error(tmp_path, capsys):
    path = write_nifti(tmp_path / "t.nii.gz", np.random.default_rng(0).random((20, 20, 20), dtype=np.float32))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(MedSegError, match="Cannot read"):
        read_image(path)


def test_not_a_nifti_at_all(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(gzip.compress(b"hello world" * 10))
    with pytest.raises(MedSegError):
        read_image(path)


# --- DICOM ---------------------------------------------------------------------------------

def _series(tmp_path, shape=(3, 16, 16)):
    folder = tmp_path / "dicom"
    return folder, write_series(folder, make_volume(shape))


@pytest.mark.parametrize("length", [20, 510, 514, 1024])
def test_pixel_payload_of_the_wrong_length_is_refused(tmp_path, capsys, length):
    folder, paths = _series(tmp_path)  # 16 x 16 x 16 bits = 512 bytes are due
    ds = pydicom.dcmread(str(paths[1]))
    ds.PixelData = (bytes(ds.PixelData) * 3)[:length]
    ds.save_as(str(paths[1]))
    with pytest.raises(MedSegError, match="bytes of pixel data"):
        read_dicom_series(folder)
    code, _, err = run_cli(capsys, "dicom", folder, "-o", tmp_path / "ct.nii.gz")
    assert_one_error_line(code, err, "damaged")
    assert not (tmp_path / "ct.nii.gz").exists()


def test_a_pad_byte_on_an_odd_payload_is_accepted(tmp_path):
    folder = tmp_path / "odd"
    paths = write_series(folder, make_volume((2, 3, 3)).astype(np.int16))  # 18 bytes: even, no pad
    image = read_dicom_series(folder)
    assert image.shape == (2, 3, 3)
    assert len(paths) == 2


def test_headers_claiming_65535_squared_pixels_are_refused_up_front(tmp_path):
    folder, paths = _series(tmp_path)
    for path in paths:
        ds = pydicom.dcmread(str(path))
        ds.Rows = ds.Columns = 65535
        ds.save_as(str(path))
    with pytest.raises(MedSegError, match="memory|bytes of pixel data"):
        read_dicom_series(folder)


def test_a_many_slice_series_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    from chimerax.medseg.images import dicom_volume
    from chimerax.medseg.images.dicom_discovery import scan_folder
    folder, _ = _series(tmp_path)
    geometry = dicom_volume.stack_geometry(scan_folder(folder)[0])
    for frame in geometry.frames:
        frame.rows = frame.columns = 65535  # what the headers claim; 3 x 30 slices of them are 1.4 TB
    decoded = []
    monkeypatch.setattr(dicom_volume, "_decode", decoded.append)
    with pytest.raises(MedSegError, match="memory"):
        dicom_volume.read_pixels(geometry.frames * 30)
    assert decoded == []  # refused before any file was decoded
