"""DICOM volumes read by MedSeg equal dcm2niix's NIfTI of the same series (voxels and affine)."""
from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the series factory beside this file
from dicom_helpers import (make_volume, oblique_orientation, run_dcm2niix, totalseg_ct_dir,  # noqa: E402
                                transcode, write_enhanced_mr, write_series)

from chimerax.medseg.errors import MedSegError  # noqa: E402
from chimerax.medseg.images.dicom import (DicomWarning, is_dicom_folder, list_dicom_series,  # noqa: E402
                                          read_dicom_series, read_dicom_volume)

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_DICOM = Path(nib.__file__).parent / "nicom" / "tests" / "data"


def dcm2niix_zyx(nifti: Path) -> tuple[np.ndarray, np.ndarray]:
    """dcm2niix's voxels (scaled) as (z, y, x) with its affine."""
    img = nib.load(str(nifti))
    data = img.get_fdata()
    return data.reshape(data.shape[:3] + (-1,))[..., 0].transpose(2, 1, 0), img.affine


def assert_same_as_dcm2niix(image, nifti: Path, voxel_atol: float = 0.0) -> None:
    data, affine = dcm2niix_zyx(nifti)
    assert image.shape == data.shape
    np.testing.assert_allclose(image.affine, affine, atol=1e-4)
    np.testing.assert_allclose(image.array[0], data, atol=voxel_atol, rtol=0)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    np.testing.assert_allclose(image.spacing, zooms[::-1], atol=1e-4)


def test_real_ct_series_equals_dcm2niix(tmp_path):
    folder = totalseg_ct_dir()
    image = read_dicom_series(folder)
    (nifti,) = run_dcm2niix(folder, tmp_path / "ref")
    assert_same_as_dcm2niix(image, nifti)
    # 3 mm slices taken 2 mm apart: the spacing comes from the positions, not SliceThickness
    assert image.spacing[0] == pytest.approx(2.0)
    assert image.array.dtype == np.float32 and image.array.min() == pytest.approx(-1024)


def test_real_ct_lies_on_totalsegmentator_label_grid():
    # TotalSegmentator ships labels made on dcm2niix's grid of this series: same affine, same shape
    image = read_dicom_series(totalseg_ct_dir())
    labels = nib.load(str(totalseg_ct_dir().parent / "example_seg_dicom.nii.gz"))
    assert image.shape == labels.shape[::-1]
    np.testing.assert_allclose(image.affine, labels.affine, atol=1e-4)


ORIENTATIONS = {
    "axial": dict(orientation=(1, 0, 0, 0, 1, 0)),
    "axial_reversed_instances": dict(orientation=(1, 0, 0, 0, 1, 0), slice_step=-2.5),
    "sagittal": dict(orientation=(0, 1, 0, 0, 0, -1)),
    "coronal": dict(orientation=(1, 0, 0, 0, 0, -1)),
    "oblique": dict(orientation=oblique_orientation(25)),
    "double_oblique_reversed": dict(orientation=oblique_orientation(70, (0.2, 1, 0.5)), slice_step=-1.5),
    "flipped_axial": dict(orientation=(-1, 0, 0, 0, -1, 0)),
    "rescaled": dict(orientation=oblique_orientation(10, (1, 0, 0)), slope=0.25, intercept=3.5),
}


@pytest.mark.parametrize("case", sorted(ORIENTATIONS))
def test_synthetic_orientations_equal_dcm2niix(tmp_path, case):
    volume = make_volume((6, 5, 4), seed=len(case))
    write_series(tmp_path / "dicom", volume, **ORIENTATIONS[case])
    image = read_dicom_series(tmp_path / "dicom")
    (nifti,) = run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    assert_same_as_dcm2niix(image, nifti)


def test_single_slice_uses_thickness_like_dcm2niix(tmp_path):
    write_series(tmp_path / "dicom", make_volume((1, 6, 5)), thickness=4.0)
    image = read_dicom_series(tmp_path / "dicom")
    (nifti,) = run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    assert_same_as_dcm2niix(image, nifti)
    assert image.spacing[0] == 4.0


@pytest.mark.parametrize("offsets,what", [([0, 2.5, 5, 7.5, 12.5, 15], "missing"),
                                          ([0, 2, 4, 7, 9, 11], "vary")])
def test_uneven_spacing_refused_or_resampled_like_dcm2niix(tmp_path, offsets, what):
    write_series(tmp_path / "dicom", make_volume((6, 5, 4)), slice_offsets=offsets,
                 orientation=oblique_orientation(15))
    with pytest.raises(MedSegError, match=what):
        read_dicom_series(tmp_path / "dicom")
    with pytest.warns(DicomWarning, match="even grid"):
        image, source = read_dicom_volume(tmp_path / "dicom", resample_uneven=True)
    run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    (equalized,) = (tmp_path / "ref").glob("*_Eq_*.nii")
    # dcm2niix rounds interpolated values to its integer storage type
    assert_same_as_dcm2niix(image, equalized, voxel_atol=0.501)
    assert source.resampled


def test_gantry_tilt_is_detected_and_refused(tmp_path):
    write_series(tmp_path / "dicom", make_volume((6, 5, 4)), step_vector=(0, 0.6, 2.5))
    with pytest.raises(MedSegError, match=r"gantry tilt of 13\.5"):
        read_dicom_series(tmp_path / "dicom")


@pytest.mark.parametrize("syntax,atol", [("rle", 0), ("jpeg-lossless", 0), ("jpeg-baseline", 2)])
def test_compressed_series_equal_dcm2niix(tmp_path, syntax, atol):
    volume = make_volume((4, 16, 16), seed=3)
    paths = write_series(tmp_path / "dicom", volume, orientation=oblique_orientation(30), slope=2, intercept=-100)
    transcode(paths, syntax)
    image = read_dicom_series(tmp_path / "dicom")  # (some decoders warn on JPEG lossless, others not: gdcm)
    (nifti,) = run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    assert_same_as_dcm2niix(image, nifti, voxel_atol=atol)
    if syntax != "jpeg-baseline":  # lossless: the original voxels come back exactly
        np.testing.assert_array_equal(image.array[0], 2.0 * volume[:, ::-1, :] - 100)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_pydicom_transfer_syntaxes_give_the_same_image(tmp_path, name):
    reference_dir, variant_dir = tmp_path / "plain", tmp_path / "variant"
    reference_dir.mkdir()
    variant_dir.mkdir()
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", reference_dir / "a")
    shutil.copy(PYDICOM_FILES / name, variant_dir / "b")
    reference = read_dicom_series(reference_dir)
    variant = read_dicom_series(variant_dir)
    np.testing.assert_array_equal(variant.array, reference.array)
    np.testing.assert_allclose(variant.affine, reference.affine)
    (nifti,) = run_dcm2niix(variant_dir, tmp_path / "ref")
    assert_same_as_dcm2niix(variant, nifti)


def test_pydicom_ct_small_equals_dcm2niix(tmp_path):
    (tmp_path / "ct").mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", tmp_path / "ct" / "1")
    image = read_dicom_series(tmp_path / "ct")
    (nifti,) = run_dcm2niix(tmp_path / "ct", tmp_path / "ref")
    assert_same_as_dcm2niix(image, nifti)


def test_enhanced_multiframe_splits_time_points_like_dcm2niix(tmp_path):
    volume = make_volume((2 * 5, 6, 7), seed=5).astype(np.uint16)
    orientation = oblique_orientation(40, (0, 1, 1))
    write_enhanced_mr(tmp_path / "dicom" / "enhanced", volume, orientation=orientation, temporal_positions=2,
                      reverse=False)
    infos = list_dicom_series(tmp_path / "dicom")
    assert [i.num_slices for i in infos] == [5, 5]
    assert [i.part for i in infos] == ["time 1", "time 2"]
    with pytest.raises(MedSegError, match="2 DICOM image volumes"):
        read_dicom_series(tmp_path / "dicom")
    (nifti,) = run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    reference = nib.load(str(nifti))
    assert reference.shape[3] == 2  # dcm2niix writes the time points as one 4D file
    normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:])) * np.array([-1, -1, 1])
    for t, info in enumerate(infos):
        image = read_dicom_series(tmp_path / "dicom", info.id)
        # dcm2niix divides this object's extent by all 10 frames (1.33 mm); the slices are 3 mm apart
        np.testing.assert_allclose(image.affine[:, [0, 1, 3]], reference.affine[:, [0, 1, 3]], atol=1e-4)
        np.testing.assert_allclose(image.affine[:3, 2], 3.0 * normal, atol=1e-4)
        # (dcm2niix also assumes slice-major frame order in such an object, so its voxels of each time
        # point interleave both; the values we wrote are the reference for the voxels)
        # and against the values written: slope 2, intercept 5, rows counted from the last
        np.testing.assert_allclose(image.array[0], 2.0 * volume[t * 5:(t + 1) * 5, ::-1, :] + 5.0)


def test_enhanced_multiframe_in_reverse_frame_order_equals_dcm2niix(tmp_path):
    volume = make_volume((6, 5, 7), seed=4).astype(np.uint16)
    write_enhanced_mr(tmp_path / "dicom" / "enhanced", volume, orientation=oblique_orientation(-35, (1, 0, 1)))
    image = read_dicom_series(tmp_path / "dicom")
    (nifti,) = run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    assert_same_as_dcm2niix(image, nifti, voxel_atol=1e-3)


def test_multi_echo_series_splits_into_echoes_like_dcm2niix(tmp_path):
    volume = make_volume((4, 6, 5), seed=2)
    echoes = make_volume((4, 6, 5), seed=9) + 7
    series = pydicom.uid.generate_uid()
    common = dict(series_uid=series, orientation=oblique_orientation(20), modality="MR", description="me")
    write_series(tmp_path / "dicom", volume, echo_numbers=[1] * 4, **common)
    write_series(tmp_path / "dicom", echoes, echo_numbers=[2] * 4, **common)
    infos = list_dicom_series(tmp_path / "dicom")
    assert [(i.part, i.num_slices, i.series_uid) for i in infos] == [("echo 1", 4, series), ("echo 2", 4, series)]
    outputs = run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    assert len(outputs) == 2
    for info, nifti in zip(infos, outputs):  # dcm2niix names them _e1, _e2: same order
        assert_same_as_dcm2niix(read_dicom_series(tmp_path / "dicom", info.id), nifti)


def test_philips_enhanced_mr_geometry_equals_dcm2niix(tmp_path):
    # nibabel's real Philips enhanced MR (176 frames, oblique); compare after reorienting both
    (tmp_path / "dicom").mkdir()
    with gzip.open(NIBABEL_DICOM / "philips_mprage.dcm.gz") as packed:
        (tmp_path / "dicom" / "mprage").write_bytes(packed.read())
    image = read_dicom_series(tmp_path / "dicom")
    (nifti,) = run_dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    ours = nib.as_closest_canonical(nib.Nifti1Image(image.array[0].transpose(2, 1, 0), image.affine))
    theirs = nib.as_closest_canonical(nib.load(str(nifti)))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
    np.testing.assert_allclose(ours.get_fdata(), theirs.get_fdata(), atol=1e-3)


def test_discovery_finds_series_anywhere_and_ignores_other_files(tmp_path):
    root = tmp_path / "export"
    first = write_series(root / "a" / "deep", make_volume((3, 4, 4)), series_number=2, description="Body 3.0")
    write_series(root / "b", make_volume((5, 4, 4)), series_number=5, description="Lung 1.0", modality="MR")
    (root / "README.txt").write_text("not dicom")
    (root / "b" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (root / "b" / "cut").write_bytes(first[0].read_bytes()[:400])  # a damaged file: skipped with a warning
    assert is_dicom_folder(root) and not is_dicom_folder(root / "missing")
    with pytest.warns(DicomWarning, match="damaged"):
        infos = list_dicom_series(root)
    assert [(i.number, i.description, i.modality, i.num_slices, i.size) for i in infos] == [
        (2, "Body 3.0", "CT", 3, (4, 4, 3)), (5, "Lung 1.0", "MR", 5, (4, 4, 5))]
    uid = pydicom.dcmread(first[0]).SeriesInstanceUID
    for selector, slices in (("5", 5), ("body 3.0", 3), ("lung", 5), (uid, 3)):
        with pytest.warns(DicomWarning):
            assert read_dicom_series(root, selector).shape[0] == slices


def test_localizer_in_the_series_is_kept_apart(tmp_path):
    series = pydicom.uid.generate_uid()
    write_series(tmp_path / "d", make_volume((6, 4, 4)), series_uid=series, description="with scout")
    write_series(tmp_path / "d", make_volume((1, 8, 8)), series_uid=series, description="with scout",
                 orientation=(0, 1, 0, 0, 0, -1))
    infos = list_dicom_series(tmp_path / "d")
    assert [i.num_slices for i in infos] == [6, 1]
    assert infos[0].id == f"{series}#1" and "orientation" in infos[1].part
    with pytest.raises(MedSegError, match="choose one"):
        read_dicom_series(tmp_path / "d")
    assert read_dicom_series(tmp_path / "d", f"{series}#1").shape == (6, 4, 4)
    assert read_dicom_series(tmp_path / "d", "1#2").shape == (1, 8, 8)
