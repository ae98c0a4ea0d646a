"""Predictions written as RT-STRUCT (the jobs behind ``medseg predict --output-format rtstruct``):
the file references the source series, names and colours its ROIs from the model, and reads back
(through our RT-STRUCT reader) at Dice >= 0.98 per label against the same prediction as NIfTI."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "images"))
from dicom_helpers import write_phantom_study  # noqa: E402

from chimerax.medseg.errors import MedSegError  # noqa: E402
from chimerax.medseg.images.dicom import read_dicom_volume  # noqa: E402
from chimerax.medseg.images.dicom_labels import find_label_objects, label_map  # noqa: E402
from chimerax.medseg.inference.jobs import plan_jobs  # noqa: E402
from chimerax.medseg.inference.predictor import Predictor, example_model_path  # noqa: E402


def test_prediction_as_rtstruct_reads_back(tmp_path):
    write_phantom_study(tmp_path / "d")
    series = ["T1", "T1ce", "T2", "Flair"]
    predictor = Predictor.from_folder(example_model_path(), fast=True, device="cpu")
    [job] = plan_jobs([str(tmp_path / "d")], str(tmp_path / "out"), output_format="rtstruct")
    assert job.output == tmp_path / "out" / "d.dcm"
    image = job.read(series)
    prediction = predictor.predict(image)
    [path] = job.write(prediction, image, predictor)
    ds = pydicom.dcmread(path)
    _, source = read_dicom_volume(tmp_path / "d", "T1")
    t1 = pydicom.dcmread(str(source.frames[0].path), stop_before_pixels=True)
    referenced = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == t1.SeriesInstanceUID and ds.FrameOfReferenceUID == t1.FrameOfReferenceUID
    assert [r.ROIName for r in ds.StructureSetROISequence] == [predictor.label_names[v]
                                                               for v in sorted(predictor.label_names) if v]
    colors = [tuple(r.ROIDisplayColor) for r in ds.ROIContourSequence]
    assert len(set(colors)) == len(colors)  # one distinct colour per label
    result = label_map(find_label_objects(tmp_path / "out")[0], source)
    by_name = {name: value for value, name in result.names.items()}
    found = [v for v in np.unique(prediction.labels) if v]
    assert len(found) >= 2  # the phantom's tumour parts are found
    for value in found:
        ours = result.labels == by_name[predictor.label_names[int(value)]]
        truth = prediction.labels == value
        score = 2 * np.logical_and(ours, truth).sum() / (ours.sum() + truth.sum())
        print(f"{predictor.label_names[int(value)]}: Dice {score:.4f}")
        assert score >= 0.98


def test_unknown_output_format_is_refused(tmp_path):
    with pytest.raises(MedSegError, match="Unknown output format 'rt-struct'"):
        plan_jobs([str(tmp_path)], str(tmp_path / "o"), output_format="rt-struct")
