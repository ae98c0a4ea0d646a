"""Label maps written as DICOM-SEG read back with the same voxels, geometry and names."""
from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the series factory beside this file
from dicom_helpers import (make_volume, oblique_orientation, totalseg_ct_dir, write_enhanced_mr,  # noqa: E402
                                write_series)

from chimerax.medseg.errors import MedSegError  # noqa: E402
from chimerax.medseg.images import Image  # noqa: E402
from chimerax.medseg.images.dicom import (DicomWarning, read_dicom_series, read_dicom_volume,  # noqa: E402
                                          write_dicom_seg)
from chimerax.medseg.images.dicom_seg import read_segmentation  # noqa: E402


def blocky_labels(shape, values=(1, 4)) -> np.ndarray:
    """Labels that differ along every axis, so a flip or shift of the SEG shows."""
    labels = np.zeros(shape, np.uint8)
    z, y, x = shape
    labels[: max(1, z // 2), : y // 2, 1: x // 2 + 1] = values[0]
    labels[z // 2:, y // 2:, x // 3:] = values[1]
    return labels


def test_real_ct_totalsegmentator_labels_round_trip(tmp_path):
    # real structures made by TotalSegmentator on dcm2niix's grid of this very series
    image = read_dicom_series(totalseg_ct_dir())
    labels = np.asarray(nib.load(str(totalseg_ct_dir().parent / "example_seg_dicom.nii.gz")).dataobj)
    labels = labels.transpose(2, 1, 0).astype(np.uint8)
    keep = np.argsort(np.bincount(labels.ravel()))[::-1][1:7]  # the six biggest structures keep it quick
    labels[~np.isin(labels, keep)] = 0
    names = {int(v): f"structure {int(v)}" for v in np.unique(labels) if v}
    with pytest.warns(DicomWarning, match="no SeriesInstanceUID or StudyInstanceUID"):  # anonymized
        path = write_dicom_seg(labels, image, names, tmp_path / "seg.dcm")
    back, back_names = read_segmentation(path, image.dicom_source)
    seg = pydicom.dcmread(path)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID  # a derived UID, never blank
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 20
    np.testing.assert_array_equal(back, labels)
    assert back_names == names and len(names) == 6


def test_seg_references_the_source_series(tmp_path):
    paths = write_series(tmp_path / "d", make_volume((5, 6, 7)), orientation=oblique_orientation(33),
                         series_number=4, description="oblique")
    image = read_dicom_series(tmp_path / "d")
    path = write_dicom_seg(blocky_labels(image.shape), image, {1: "liver", 4: "spleen"}, tmp_path / "out" / "s.dcm")
    seg = pydicom.dcmread(path)
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    assert seg.Modality == "SEG"
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert seg.PatientID == sources[0].PatientID
    referenced = {item.ReferencedSOPInstanceUID
                  for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert referenced == {s.SOPInstanceUID for s in sources}
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "spleen"]
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), oblique_orientation(65, (1, 2, 3))])
def test_round_trip_geometry_for_orientations(tmp_path, orientation):
    write_series(tmp_path / "d", make_volume((6, 5, 4)), orientation=orientation, slice_step=-2.0)
    image, source = read_dicom_volume(tmp_path / "d")
    labels = blocky_labels(image.shape, values=(2, 3))
    back, names = read_segmentation(write_dicom_seg(labels, source, {2: "a", 3: "b"}, tmp_path / "s.dcm"), source)
    np.testing.assert_array_equal(back, labels)
    assert names == {2: "a", 3: "b"}


def test_single_segment_round_trip(tmp_path):
    """One segment: its reference sits in the shared functional group, not in each frame."""
    write_series(tmp_path / "d", make_volume((6, 5, 4)))
    image, source = read_dicom_volume(tmp_path / "d")
    labels = (blocky_labels(image.shape, values=(2, 3)) == 3).astype(np.uint8) * 3
    assert labels.any()
    back, names = read_segmentation(write_dicom_seg(labels, source, {3: "tumour"}, tmp_path / "s.dcm"), source)
    np.testing.assert_array_equal(back, labels)
    assert names == {3: "tumour"}


def test_seg_frames_lie_on_the_source_slices_via_highdicom(tmp_path):
    # read with highdicom too: the frames it places must sit at the source slice positions
    import highdicom
    paths = write_series(tmp_path / "d", make_volume((4, 6, 6)), orientation=oblique_orientation(20))
    image = read_dicom_series(tmp_path / "d")
    labels = blocky_labels(image.shape)
    seg = highdicom.seg.segread(write_dicom_seg(labels, image, {1: "x", 4: "y"}, tmp_path / "s.dcm"))
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: p for p in paths}
    for number, value in ((1, 1), (2, 4)):
        mask = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=list(by_uid), segment_numbers=[number], combine_segments=False)
        for uid, plane in zip(by_uid, mask[..., 0]):
            k = image.dicom_source.frames.index(next(f for f in image.dicom_source.frames if f.sop_uid == uid))
            np.testing.assert_array_equal(plane.astype(bool), labels[k, ::-1, :] == value)


def test_enhanced_source_round_trip(tmp_path):
    volume = make_volume((2 * 4, 5, 6)).astype(np.uint16)
    write_enhanced_mr(tmp_path / "d" / "mf", volume, temporal_positions=2, orientation=oblique_orientation(12))
    image, source = read_dicom_volume(tmp_path / "d", "7#2")
    labels = blocky_labels(image.shape)
    back, _ = read_segmentation(write_dicom_seg(labels, image, {1: "a", 4: "b"}, tmp_path / "s.dcm"), source)
    np.testing.assert_array_equal(back, labels)


def test_empty_prediction_still_writes_all_segments(tmp_path):
    write_series(tmp_path / "d", make_volume((3, 4, 4)))
    image, source = read_dicom_volume(tmp_path / "d")
    path = write_dicom_seg(np.zeros(image.shape, np.uint8), image, {1: "tumour"}, tmp_path / "s.dcm")
    back, names = read_segmentation(path, source)
    assert not back.any() and names == {1: "tumour"}


def test_bad_seg_requests_are_refused_without_output(tmp_path):
    write_series(tmp_path / "d", make_volume((3, 4, 4)))
    image = read_dicom_series(tmp_path / "d")
    target = tmp_path / "s.dcm"
    with pytest.raises(MedSegError, match="does not match"):
        write_dicom_seg(np.zeros((2, 4, 4), np.uint8), image, {1: "a"}, target)
    with pytest.raises(MedSegError, match="DICOM input"):
        write_dicom_seg(np.zeros((3, 4, 4), np.uint8), Image(np.zeros((1, 3, 4, 4), np.float32), (1, 1, 1)),
                        {1: "a"}, target)
    with pytest.raises(MedSegError, match="empty"):
        write_dicom_seg(np.zeros((3, 4, 4), np.uint8), image, {}, target)
    assert list(tmp_path.glob("*.dcm")) == []


def test_resampled_volume_cannot_become_seg(tmp_path):
    write_series(tmp_path / "d", make_volume((4, 4, 4)), slice_offsets=[0, 2, 4, 8])
    with pytest.warns(UserWarning):
        image = read_dicom_series(tmp_path / "d", resample_uneven=True)
    with pytest.raises(MedSegError, match="interpolated"):
        write_dicom_seg(np.ones(image.shape, np.uint8), image, {1: "a"}, tmp_path / "s.dcm")
    assert not (tmp_path / "s.dcm").exists()
