"""``segment dicom DIR`` in headless ChimeraX: series listing, choice, and exact geometry."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "images"))  # the DICOM series factory
from dicom_helpers import (make_volume, oblique_orientation, totalseg_ct_dir, write_phantom_study,  # noqa: E402
                                write_series)


def test_real_ct_opens_on_the_dcm2niix_grid(run, log):
    import nibabel as nib
    from chimerax.medseg.chimerax_ui.volumes import grid_to_scene
    (volume,) = run(f"segment dicom {totalseg_ct_dir()}")
    # TotalSegmentator's label map of this series was made on dcm2niix's grid
    reference = nib.load(str(totalseg_ct_dir().parent / "example_seg_dicom.nii.gz"))
    np.testing.assert_allclose(grid_to_scene(volume), reference.affine, atol=1e-4)
    assert volume.full_matrix().shape == reference.shape[::-1]
    assert tuple(volume.data.step) == pytest.approx((0.9765625, 0.9765625, 2.0))  # 2 mm apart, not 3 mm thick
    assert volume.full_matrix().min() == pytest.approx(-1024)
    assert "Opened DICOM series" in log.text() and "x 2 mm (x, y, z)" in log.text()


def test_oblique_series_keeps_its_geometry(run, tmp_path):
    from chimerax.medseg.chimerax_ui.volumes import grid_to_scene
    from chimerax.medseg.images.dicom import read_dicom_series
    data = make_volume((5, 6, 7))
    write_series(tmp_path / "d", data, orientation=oblique_orientation(35, (1, 2, 0)), slice_step=-1.5,
                 slope=0.5, intercept=10)
    (volume,) = run(f"segment dicom {tmp_path / 'd'}")
    image = read_dicom_series(tmp_path / "d")
    np.testing.assert_allclose(grid_to_scene(volume), image.affine, atol=1e-5)
    np.testing.assert_allclose(volume.full_matrix(), image.array[0])
    # and against the values written: rows from the last, slices ascending along the normal
    np.testing.assert_allclose(volume.full_matrix(), 0.5 * data[::-1, ::-1, :] + 10)


def test_series_listing_choice_and_errors(run, session, log, tmp_path):
    from chimerax.core.errors import UserError
    write_series(tmp_path / "d" / "a", make_volume((3, 4, 4)), series_number=2, description="Abdomen")
    write_series(tmp_path / "d" / "b", make_volume((5, 4, 4)), series_number=6, description="Thorax")
    assert run(f"segment dicom {tmp_path / 'd'} list true") == []
    assert len(session.models) == 0 and "Abdomen" in log.text() and "Thorax" in log.text()
    with pytest.raises(UserError, match="2 DICOM image volumes.*Abdomen.*Thorax"):
        run(f"segment dicom {tmp_path / 'd'}")
    (thorax,) = run(f"segment dicom {tmp_path / 'd'} series Thorax")
    assert thorax.full_matrix().shape == (5, 4, 4) and thorax.name == "6 Thorax"
    both = run(f"segment dicom {tmp_path / 'd'} series all")
    assert [v.name for v in both] == ["2 Abdomen", "6 Thorax"]
    with pytest.raises(UserError, match="No DICOM series 'Head'"):
        run(f"segment dicom {tmp_path / 'd'} series Head")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty"):
        run(f"segment dicom {tmp_path / 'empty'}")
    from chimerax.map import Volume
    assert len([m for m in session.models if isinstance(m, Volume)]) == 3  # none by the failed commands


def test_uneven_series_refused_unless_resampled(run, session, tmp_path):
    from chimerax.core.errors import UserError
    write_series(tmp_path / "d", make_volume((4, 4, 4)), slice_offsets=[0, 2, 4, 8])
    with pytest.raises(UserError, match="missing"):
        run(f"segment dicom {tmp_path / 'd'}")
    (volume,) = run(f"segment dicom {tmp_path / 'd'} resampleUneven true")
    assert volume.full_matrix().shape == (5, 4, 4)


def test_segment_dicom_with_model_writes_dicom_seg(run, tmp_path, example_model):
    from chimerax.medseg.images.dicom import read_dicom_volume
    from chimerax.medseg.images.dicom_seg import read_segmentation
    write_phantom_study(tmp_path / "d")  # the example model takes four MR series: T1, T1ce, T2, Flair
    out = tmp_path / "seg.dcm"
    run(f"segment dicom {tmp_path / 'd'} series T1,T1ce,T2,Flair model {example_model} saveSeg {out}")
    image, source = read_dicom_volume(tmp_path / "d", "T1")
    labels, names = read_segmentation(out, source)
    assert labels.shape == image.shape and names and labels.max() > 0


def test_saved_seg_and_rtstruct_reference_the_series_and_open_in_chimerax_dicom(run, session, tmp_path,
                                                                                example_model):
    """segment save from a DICOM-sourced result: DICOM-SEG and RT-STRUCT read back as the labels,
    and ChimeraX's own DICOM reader (chimerax.dicom) opens both."""
    DICOM = _chimerax_dicom_reader()
    from chimerax.medseg.images.dicom import read_dicom_volume
    from chimerax.medseg.images.dicom_labels import find_label_objects, label_map
    from chimerax.medseg.images.dicom_seg import read_segmentation
    write_phantom_study(tmp_path / "d")
    run(f"segment dicom {tmp_path / 'd'} series T1,T1ce,T2,Flair model {example_model}")
    label_volume = next(m for m in session.models if hasattr(m, "medseg_label_names"))
    labels = label_volume.full_matrix().copy()
    spec = f"#{label_volume.id_string}"
    run(f"segment save {spec} {tmp_path / 'out' / 'seg.dcm'}")
    run(f"segment save {spec} {tmp_path / 'rt' / 'rt.dcm'} format rtstruct")
    image, source = read_dicom_volume(tmp_path / "d", "T1")
    seg, _ = read_segmentation(tmp_path / "out" / "seg.dcm", source)
    rt = label_map(find_label_objects(tmp_path / "rt")[0], source)
    names = label_volume.medseg_label_names
    for value in names:
        want = labels == value
        for got in (seg == value, rt.labels == value):
            assert 2 * (got & want).sum() / (got.sum() + want.sum()) >= 0.98
    series = sorted(str(p) for p in (tmp_path / "d" / "T1").rglob("*") if p.is_file())
    before = set(session.models.list())
    DICOM.from_paths(session, series + [str(tmp_path / "out" / "seg.dcm"), str(tmp_path / "rt" / "rt.dcm")]).open()
    opened = [m for m in session.models.list() if m not in before]
    kinds = {type(m).__name__: m for m in opened}
    seg_volumes = [m for m in opened if type(m).__name__ == "DICOMVolume" and "SEG" in m.name]
    assert seg_volumes, [m.name for m in opened]
    # what ChimeraX's segmentation-editing tool (the DICOM bundle's Segmentations tool) lists and edits
    assert all(m.is_segmentation() for m in seg_volumes)
    contours = [m.name for m in opened if type(m).__name__ == "ROIContourModel"]
    assert "DicomContours" in kinds and sorted(contours) == sorted(names.values())


def _chimerax_dicom_reader():
    """chimerax.dicom's DICOM reader class. The package's __init__ also loads its TCIA fetcher, which
    needs tcia_utils (pandas, plotly, ...), unrelated to reading files: the two package objects are
    made without running their __init__, as the harness does for chimerax itself."""
    import importlib
    import importlib.util
    for name in ("chimerax.dicom", "chimerax.dicom.dicom"):
        if name not in sys.modules:
            sys.modules[name] = importlib.util.module_from_spec(importlib.util.find_spec(name))
    sys.modules["chimerax.dicom"].__version__ = "1.2"  # the one name the reader takes from that __init__
    return importlib.import_module("chimerax.dicom.dicom.dicom").DICOM
