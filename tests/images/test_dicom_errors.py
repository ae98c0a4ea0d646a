"""Bad DICOM input gets a clear MedSegError or warning, and nothing is written half."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the series factory beside this file
from dicom_helpers import make_volume, write_series  # noqa: E402

from chimerax.medseg.cli import main  # noqa: E402
from chimerax.medseg.errors import MedSegError  # noqa: E402
from chimerax.medseg.images.dicom import (DicomWarning, dicom_to_nifti, is_dicom_folder,  # noqa: E402
                                          list_dicom_series, read_dicom_series)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_missing_folder(tmp_path):
    with pytest.raises(MedSegError, match="not found"):
        read_dicom_series(tmp_path / "nowhere")
    assert not is_dicom_folder(tmp_path / "nowhere")


def test_empty_folder_cli_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedSegError, match="empty"):
        read_dicom_series(tmp_path / "empty")
    code, _, err = run_cli(capsys, "dicom", str(tmp_path / "empty"), "-o", str(tmp_path / "out" / "ct.nii.gz"))
    assert code == 1 and "empty" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_folder_without_dicom_files(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    (folder / "b.nii").write_bytes(bytes(400))
    assert not is_dicom_folder(folder)
    with pytest.raises(MedSegError, match="No DICOM image series"):
        read_dicom_series(folder)


def test_several_series_without_choice_lists_them(tmp_path, capsys):
    write_series(tmp_path / "d" / "1", make_volume((3, 4, 4)), series_number=3, description="Abdomen 1.0")
    write_series(tmp_path / "d" / "2", make_volume((4, 4, 4)), series_number=4, description="Thorax 5.0")
    with pytest.raises(MedSegError) as info:
        read_dicom_series(tmp_path / "d")
    message = str(info.value)
    assert "2 DICOM image volumes" in message and "Abdomen 1.0" in message and "Thorax 5.0" in message
    assert "\n" not in message
    code, _, err = run_cli(capsys, "dicom", str(tmp_path / "d"), "-o", str(tmp_path / "o.nii.gz"))
    assert code == 1 and "Thorax 5.0" in err and not (tmp_path / "o.nii.gz").exists()
    with pytest.raises(MedSegError, match="No DICOM series 'Head'"):
        read_dicom_series(tmp_path / "d", "Head")


def test_undecodable_file_among_good_ones_is_skipped_with_a_warning(tmp_path):
    paths = write_series(tmp_path / "d", make_volume((4, 4, 4)))
    (tmp_path / "d" / "broken").write_bytes(paths[0].read_bytes()[:500])  # header cut short
    with pytest.warns(DicomWarning, match="damaged.*broken"):
        image = read_dicom_series(tmp_path / "d")
    assert image.shape == (4, 4, 4)


def test_file_with_truncated_pixels_is_refused_and_nothing_written(tmp_path):
    paths = write_series(tmp_path / "d", make_volume((4, 6, 6)))
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 30])  # pixel data cut short: the header still reads
    target = tmp_path / "out" / "ct.nii.gz"
    with pytest.raises(MedSegError, match=paths[2].name):
        dicom_to_nifti(tmp_path / "d", target)
    assert not target.exists()
    assert not target.parent.exists() or not list(target.parent.iterdir())  # no partial file either


def test_inconsistent_dimensions_are_refused(tmp_path):
    series = pydicom.uid.generate_uid()
    write_series(tmp_path / "d", make_volume((4, 6, 6)), series_uid=series)
    write_series(tmp_path / "d", make_volume((1, 8, 8)), series_uid=series, origin=(-50.0, -40.0, 30.0))
    with pytest.raises(MedSegError, match=r"different numbers of rows .*6: 4 image\(s\).*8: 1 image\(s\)"):
        read_dicom_series(tmp_path / "d")


def test_mixed_pixel_spacing_is_refused(tmp_path):
    series = pydicom.uid.generate_uid()
    write_series(tmp_path / "d", make_volume((3, 6, 6)), series_uid=series)
    write_series(tmp_path / "d", make_volume((1, 6, 6)), series_uid=series, origin=(-50.0, -40.0, 30.0),
                 pixel_spacing=(0.5, 0.5))
    with pytest.raises(MedSegError, match="pixel spacings"):
        read_dicom_series(tmp_path / "d")


def test_two_images_at_one_position_are_refused(tmp_path):
    series = pydicom.uid.generate_uid()
    write_series(tmp_path / "d", make_volume((3, 6, 6)), series_uid=series)
    write_series(tmp_path / "d", make_volume((1, 6, 6), seed=4), series_uid=series)
    with pytest.raises(MedSegError, match="same slice position"):
        read_dicom_series(tmp_path / "d")


def test_repeated_acquisitions_become_separate_volumes(tmp_path):
    series = pydicom.uid.generate_uid()
    first = write_series(tmp_path / "d", make_volume((3, 6, 6)), series_uid=series)
    second = write_series(tmp_path / "d", make_volume((3, 6, 6), seed=8), series_uid=series)
    for number, paths in ((1, first), (2, second)):
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.AcquisitionNumber = number
            ds.save_as(path)
    infos = list_dicom_series(tmp_path / "d")
    assert [i.part for i in infos] == ["acquisition 1", "acquisition 2"]
    assert read_dicom_series(tmp_path / "d", infos[1].id).shape == (3, 6, 6)


def test_siemens_mosaic_is_refused(tmp_path):
    import shutil
    import nibabel
    (tmp_path / "d").mkdir()
    for name in ("0.dcm", "1.dcm"):  # nibabel's real Siemens mosaic DWI slices
        shutil.copy(Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / name, tmp_path / "d" / name)
    with pytest.raises(MedSegError, match="mosaic"):
        read_dicom_series(tmp_path / "d")


def test_colour_images_are_refused(tmp_path):
    paths = write_series(tmp_path / "d", make_volume((2, 4, 4)))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.zeros((4, 4, 3), np.uint8).tobytes()
        ds.save_as(path)
    with pytest.raises(MedSegError, match="colour"):
        read_dicom_series(tmp_path / "d")
