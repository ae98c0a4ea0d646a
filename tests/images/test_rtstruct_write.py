"""RT-STRUCTs written from label maps: they reference the source series, read back at Dice >= 0.98
per label (through our reader and through rt-utils' own), and bad contours are refused clearly."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rtstruct_helpers import dice, identified_ct, known_masks, to_rtutils  # noqa: E402
from dicom_helpers import make_volume, oblique_orientation, write_series  # noqa: E402

from chimerax.medseg.errors import MedSegError  # noqa: E402
from chimerax.medseg.images.dicom import read_dicom_volume, write_dicom_seg  # noqa: E402
from chimerax.medseg.images.dicom_labels import find_label_objects, label_map  # noqa: E402
from chimerax.medseg.images.rtstruct_write import write_rtstruct  # noqa: E402


def label_volume(masks: dict) -> np.ndarray:
    labels = np.zeros(next(iter(masks.values())).shape, np.uint8)
    for value, mask in enumerate(masks.values(), start=1):
        labels[mask] = value
    return labels


def test_real_ct_round_trip_and_references(tmp_path):
    ct = identified_ct(tmp_path / "ct")
    masks = known_masks(3)
    labels = label_volume(masks)
    image, source = read_dicom_volume(ct)
    names = {v: n for v, n in enumerate(masks, start=1)}
    path = write_rtstruct(labels, image, names, tmp_path / "rt" / "pred.dcm", colors={2: (1, 2, 3)})
    ds = pydicom.dcmread(path)
    refs = [pydicom.dcmread(str(f.path), stop_before_pixels=True) for f in source.frames]
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert ds.Modality == "RTSTRUCT" and ds.StudyInstanceUID == refs[0].StudyInstanceUID
    assert series.SeriesInstanceUID == refs[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == {r.SOPInstanceUID for r in refs}
    assert [r.ROIName for r in ds.StructureSetROISequence] == list(masks)
    assert [list(r.ROIDisplayColor) for r in ds.ROIContourSequence][1] == [1, 2, 3]
    obj = find_label_objects(tmp_path / "rt")[0]
    back = label_map(obj, source)
    assert back.names == names
    for value in names:
        score = dice(back.labels == value, labels == value)
        print(f"{names[value]}: round-trip Dice {score:.4f}")
        assert score >= 0.98


def test_rtutils_reads_what_we_write(tmp_path):
    """rt-utils (OpenCV fillPoly of rounded points) reads our contours into nearly the same masks."""
    from rt_utils import RTStructBuilder
    ct = identified_ct(tmp_path / "ct")
    masks = known_masks(2)
    image = read_dicom_volume(ct)[0]
    path = write_rtstruct(label_volume(masks), image, dict(enumerate(masks, start=1)), tmp_path / "pred.dcm")
    rt = RTStructBuilder.create_from(dicom_series_path=str(ct), rt_struct_path=str(path))
    for name, mask in masks.items():
        theirs = rt.get_roi_mask_by_name(name)
        score = dice(theirs, to_rtutils(mask))
        print(f"{name}: rt-utils reading our file, Dice {score:.4f}")
        assert score >= 0.95  # rt-utils rounds every point to a whole pixel, so edges move by half a pixel


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), oblique_orientation(35, (1, 2, 3))])
def test_holes_islands_and_oblique_geometry(tmp_path, orientation):
    write_series(tmp_path / "ct", make_volume((4, 40, 36)), orientation=orientation, slice_step=-2.0)
    image, source = read_dicom_volume(tmp_path / "ct")
    labels = np.zeros(image.shape, np.uint8)
    labels[1:3, 5:35, 4:30] = 1       # a block with a hole, and an island inside the hole
    labels[1:3, 12:28, 10:24] = 0
    labels[1:3, 17:22, 15:19] = 1
    labels[0, 0:3, 0:3] = 2           # touches the image corner
    labels[3, 20, 20] = 2             # a single voxel
    write_rtstruct(labels, source, {1: "ring", 2: "bits"}, tmp_path / "rt" / "s.dcm")
    back = label_map(find_label_objects(tmp_path / "rt")[0], source)
    np.testing.assert_array_equal(back.labels, labels)


def test_refuses_what_it_cannot_reference(tmp_path):
    write_series(tmp_path / "ct", make_volume((3, 8, 8)))
    image, _ = read_dicom_volume(tmp_path / "ct")
    with pytest.raises(MedSegError, match="does not match the DICOM volume"):
        write_rtstruct(np.zeros((2, 8, 8), np.uint8), image, {1: "a"}, tmp_path / "x.dcm")
    with pytest.raises(MedSegError, match="needs a DICOM input"):
        write_rtstruct(np.zeros((3, 8, 8), np.uint8), object(), {1: "a"}, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


# --- bad input: each a clear error or a stated warning, no partial output ---------------------

@pytest.fixture
def small_study(tmp_path):
    write_series(tmp_path / "ct", make_volume((5, 30, 30)), slice_step=3.0)
    image, source = read_dicom_volume(tmp_path / "ct")
    labels = np.zeros(image.shape, np.uint8)
    labels[1:4, 8:20, 6:22] = 1
    labels[2, 3:6, 3:6] = 2
    path = write_rtstruct(labels, source, {1: "body", 2: "gtv", 3: "empty"}, tmp_path / "rt" / "s.dcm")
    return tmp_path, source, labels, path


def _edit_first_contour(path: Path, roi: int, change) -> None:
    ds = pydicom.dcmread(path)
    contour = ds.ROIContourSequence[roi].ContourSequence[0]
    points = change(np.asarray(contour.ContourData, float).reshape(-1, 3))
    contour.ContourData = [f"{v:.4f}" for v in points.ravel()]
    contour.NumberOfContourPoints = len(points)
    ds.save_as(path)


def test_contour_between_slices_is_off_the_grid(small_study):
    root, source, _, path = small_study
    _edit_first_contour(path, 0, lambda p: p + [0, 0, 1.5])  # half-way to the next slice (3 mm apart)
    with pytest.raises(MedSegError, match="ROI 'body' has a contour off the image grid: it lies 1.50 mm"):
        label_map(find_label_objects(root / "rt")[0], source)


def test_contour_beyond_the_last_slice_and_beside_the_image(small_study):
    root, source, _, path = small_study
    _edit_first_contour(path, 1, lambda p: p + [0, 0, 30.0])
    with pytest.raises(MedSegError, match="ROI 'gtv' has a contour off the image grid"):
        label_map(find_label_objects(root / "rt")[0], source, ["gtv"])
    _edit_first_contour(path, 1, lambda p: p - [0, 0, 30.0] + [50.0, 0, 0])
    with pytest.raises(MedSegError, match="ROI 'gtv' has a contour off the image grid on slice 3: it reaches "
                                          "columns"):
        label_map(find_label_objects(root / "rt")[0], source, ["gtv"])


def test_empty_roi_left_out_with_warning_or_refused_when_named(small_study):
    root, source, labels, _ = small_study
    obj = find_label_objects(root / "rt")[0]
    assert obj.names == ["body", "gtv", "empty"]
    with pytest.warns(UserWarning, match="empty ROI\\(s\\) left out: empty"):
        result = label_map(obj, source)
    assert result.names == {1: "body", 2: "gtv"} and result.empty == ["empty"]
    np.testing.assert_array_equal(result.labels, labels)
    with pytest.raises(MedSegError, match="ROI 'empty' in s.dcm is empty"):
        label_map(obj, source, ["gtv", "empty"])


def test_self_intersecting_contour_warns_and_fills_even_odd(small_study):
    root, source, _, path = small_study
    # a bow-tie: the square's last two corners swapped, on the gtv's slice
    def bow_tie(points):
        z = points[0, 2]
        x0, y0 = points[:, 0].min(), points[:, 1].min()
        return np.array([[x0, y0, z], [x0 + 4, y0, z], [x0, y0 + 4, z], [x0 + 4, y0 + 4, z]])
    _edit_first_contour(path, 1, bow_tie)
    with pytest.warns(UserWarning, match="ROI 'gtv' has 1 self-intersecting contour"):
        result = label_map(find_label_objects(root / "rt")[0], source, ["gtv"])
    assert result.labels.any()


def test_seg_with_overlapping_segments_warns_later_wins(tmp_path):
    write_series(tmp_path / "ct", make_volume((3, 12, 12)))
    image, source = read_dicom_volume(tmp_path / "ct")
    first = np.zeros(image.shape, np.uint8)
    first[:, 2:8, 2:8] = 1
    path = write_dicom_seg(first, image, {1: "lung"}, tmp_path / "seg" / "a.dcm")
    # a second segment over part of the first: DICOM-SEG allows overlapping binary segments
    ds = pydicom.dcmread(path)
    second = first.copy()
    second[:, 2:8, 2:8] = 0
    second[:, 5:10, 5:10] = 2
    other = write_dicom_seg(second, image, {2: "gtv"}, tmp_path / "b.dcm")
    ds_other = pydicom.dcmread(other)
    merged = _merge_segs(ds, ds_other)
    merged.save_as(path)
    obj = find_label_objects(tmp_path / "seg")[0]
    assert obj.names == ["lung", "gtv"]
    with pytest.warns(UserWarning, match="'gtv' took 27 voxels from earlier ROIs"):
        result = label_map(obj, source)
    assert np.count_nonzero(result.labels == 2) == 75 and result.overlaps == {"gtv": 27}


def _merge_segs(a, b):
    """SEG ``a`` with ``b``'s segment and frames appended as segment 2."""
    import copy
    merged = copy.deepcopy(a)
    segment = copy.deepcopy(b.SegmentSequence[0])
    segment.SegmentNumber = 2
    merged.SegmentSequence.append(segment)
    shared = a.SharedFunctionalGroupsSequence[0].get("SegmentIdentificationSequence")
    groups = []
    for group in a.PerFrameFunctionalGroupsSequence:
        group = copy.deepcopy(group)
        if shared and "SegmentIdentificationSequence" not in group:
            group.SegmentIdentificationSequence = copy.deepcopy(shared)
        groups.append(group)
    for group in b.PerFrameFunctionalGroupsSequence:
        group = copy.deepcopy(group)
        group.SegmentIdentificationSequence = copy.deepcopy(b.SharedFunctionalGroupsSequence[0]
                                                            .SegmentIdentificationSequence)
        group.SegmentIdentificationSequence[0].ReferencedSegmentNumber = 2
        groups.append(group)
    if shared:
        del merged.SharedFunctionalGroupsSequence[0].SegmentIdentificationSequence
    merged.PerFrameFunctionalGroupsSequence = groups
    frames = np.concatenate([ds.pixel_array.reshape(-1, ds.Rows, ds.Columns) for ds in (a, b)])
    merged.NumberOfFrames = len(frames)
    merged.PixelData = np.packbits(frames.astype(np.uint8).ravel(), bitorder="little").tobytes()
    return merged
