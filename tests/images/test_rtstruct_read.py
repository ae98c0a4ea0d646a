"""RT-STRUCT contours read back onto the real CT grid: against the masks they were made from
(by rt-utils, an independent writer) and against a second rasteriser (dcmrtstruct2nii)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rtstruct_helpers import dice, identified_ct, known_masks, rtutils_rtstruct  # noqa: E402

from chimerax.medseg.errors import MedSegError  # noqa: E402
from chimerax.medseg.images.dicom import list_dicom_series, read_dicom_volume  # noqa: E402
from chimerax.medseg.images.dicom_labels import find_label_objects, label_map, referenced_series  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The real CT plus an rt-utils RT-STRUCT of its three biggest structures."""
    root = tmp_path_factory.mktemp("study")
    ct = identified_ct(root / "ct")
    masks = known_masks(3)
    rtutils_rtstruct(ct, masks, root / "rt" / "rtstruct.dcm")
    return root, masks


def read_back(root: Path, patterns=None):
    image, source = read_dicom_volume(root / "ct")
    obj = find_label_objects(root / "rt")[0]
    return label_map(obj, source, patterns), image


def test_rtutils_contours_read_back_at_dice_098(study):
    root, masks = study
    result, _ = read_back(root)
    assert list(result.names.values()) == list(masks)  # file order
    for value, name in result.names.items():
        score = dice(result.labels == value, masks[name])
        print(f"{name}: Dice {score:.4f} ({int(masks[name].sum())} voxels)")
        assert score >= 0.98


def _canonical(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data.astype(np.uint8), affine)).dataobj) > 0


def test_agrees_with_dcmrtstruct2nii(study, tmp_path, monkeypatch):
    """A second, independent rasteriser (skimage polygon2mask on SimpleITK's grid) gives the same masks."""
    import dcmrtstruct2nii  # a test dependency (pyproject [test])
    # dcmrtstruct2nii 5 still calls pydicom.read_file, which pydicom 3 renamed to dcmread
    monkeypatch.setattr(pydicom, "read_file", pydicom.dcmread, raising=False)
    root, masks = study
    result, image = read_back(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcmrtstruct2nii.dcmrtstruct2nii(str(root / "rt" / "rtstruct.dcm"), str(root / "ct"), str(tmp_path),
                                        convert_original_dicom=False, mask_foreground_value=1)
    ours = result.labels.transpose(2, 1, 0)  # (z, y, x) -> NIfTI (i, j, k)
    for value, name in result.names.items():
        theirs = nib.load(str(tmp_path / f"mask_{name.replace(' ', '-')}.nii.gz"))
        a = _canonical(theirs.get_fdata() > 0, theirs.affine)
        b = _canonical(ours == value, image.affine)
        assert a.shape == b.shape
        score = dice(a, b)
        print(f"{name}: Dice ours vs dcmrtstruct2nii {score:.4f}, differing voxels {int((a != b).sum())}")
        assert score >= 0.99


def test_holes_by_nesting(study, tmp_path):
    """A ring (outer contour with a hole contour inside) fills the ring only."""
    root, masks = study
    ring = np.zeros_like(next(iter(masks.values())))
    yy, xx = np.mgrid[:ring.shape[1], :ring.shape[2]]
    radius = np.hypot(yy - 250, xx - 240)
    ring[5:12] = (radius < 60) & (radius >= 25)
    rtutils_rtstruct(root / "ct", {"ring": ring}, tmp_path / "rt" / "ring.dcm")
    _, source = read_dicom_volume(root / "ct")
    obj = find_label_objects(tmp_path / "rt")[0]
    result = label_map(obj, source)
    assert dice(result.labels == 1, ring) >= 0.98
    assert not result.labels[8, 250, 240]  # the hole stays empty


def test_roi_patterns_select_and_order(study):
    root, masks = study
    names = list(masks)
    result, _ = read_back(root, [names[2], "STRUCTURE*"])  # glob, case-insensitive
    assert list(result.names.values()) == [names[2], names[0], names[1]]
    with pytest.raises(MedSegError, match="No ROI matches 'GTV\\*'.*structure"):
        read_back(root, ["GTV*"])


def test_overlap_later_roi_wins(study, tmp_path):
    root, masks = study
    first = next(iter(masks.values()))
    blob = np.zeros_like(first)
    blob[4:9, 180:330, 150:300] = True  # overlaps the biggest structure
    rtutils_rtstruct(root / "ct", {"big": first, "blob": blob}, tmp_path / "rt" / "o.dcm")
    _, source = read_dicom_volume(root / "ct")
    obj = find_label_objects(tmp_path / "rt")[0]
    with pytest.warns(UserWarning, match="'blob' took [0-9]+ voxels from earlier ROIs"):
        result = label_map(obj, source)
    shared = first & blob
    assert shared.sum() > 100
    assert np.all(result.labels[shared] == 2)
    assert result.overlaps == {"blob": int(shared.sum())}
    with pytest.warns(UserWarning, match="'big' took"):
        swapped = label_map(obj, source, ["blob", "big"])
    assert np.all(swapped.labels[shared] == 2) and swapped.names[2] == "big"


def test_referenced_series_found_by_uid(study):
    root, _ = study
    infos = list_dicom_series(root / "ct")
    obj = find_label_objects(root / "rt")[0]
    assert referenced_series(obj, infos, root).series_uid == infos[0].series_uid
    assert obj.series_uids == [infos[0].series_uid]


def test_structure_set_on_a_series_not_in_the_study(study, tmp_path):
    root, _ = study
    ds = pydicom.dcmread(str(root / "rt" / "rtstruct.dcm"))
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    series.SeriesInstanceUID = "1.2.3.4.5.6.7.8.9"
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            contour.ContourImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.999"
    series.ContourImageSequence = []
    (tmp_path / "rt").mkdir()
    ds.save_as(str(tmp_path / "rt" / "other.dcm"))
    obj = find_label_objects(tmp_path / "rt")[0]
    with pytest.raises(MedSegError, match=r"references image series 1\.2\.3\.4\.5\.6\.7\.8\.9, which is not in"):
        referenced_series(obj, list_dicom_series(root / "ct"), root / "ct")
