"""TotalSegmentator's `kidney_cysts` task, whose model also predicts the kidneys (auxiliary labels 3, 4) that
TotalSegmentator clears, inside the crop its 6 mm model finds: against TotalSegmentator 2.18 on the real CT,
with TotalSegmentator's weights folder (the task's model beside its crop model) given as the model
(tests/data/totalseg/crop_weights, made by scripts/make_totalseg_fixtures.py --crop-tasks)."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from chimerax.medseg.cli import main
from chimerax.medseg.errors import MedSegError
from chimerax.medseg.images import read_case
from chimerax.medseg.inference.conventions import ConventionPredictor, open_predictor
from chimerax.medseg.inference.options import PredictOptions
from chimerax.medseg.models.manifest import load_manifest
from chimerax.medseg.models.multipart import find_convention_entry

DATA = Path(__file__).resolve().parents[1] / "data" / "totalseg"
WEIGHTS = DATA / "crop_weights"
CT = DATA / "cases" / "ct.nii.gz"


def test_kidney_cysts_equals_totalsegmentator_without_its_auxiliary_labels(tmp_path):
    out = tmp_path / "cysts.nii.gz"
    assert main(["predict", "--quiet", "--device", "cpu", "-m", str(WEIGHTS), "-i", str(CT), "-o", str(out)]) == 0
    ours = np.asarray(nib.load(str(out)).dataobj)
    theirs = np.asarray(nib.load(str(DATA / "reference" / "ct_kidney_cysts.nii.gz")).dataobj)
    assert set(np.unique(theirs)) == {0, 1, 2}
    np.testing.assert_array_equal(ours, theirs)


def test_the_model_itself_predicts_the_auxiliary_labels():
    predictor = open_predictor(WEIGHTS, PredictOptions(device="cpu").validate())
    assert isinstance(predictor, ConventionPredictor) and predictor.model_info.entry.name == "totalseg_kidney_cysts"
    assert predictor.crop_predictor is not None  # the 6 mm model beside it finds the crop
    assert list(predictor.tables[0]) == [0, 1, 2, 0, 0]  # the kidneys are cleared
    raw = predictor.parts[0].predict(read_case([CT])).labels  # the network's own labels, before the table
    assert np.count_nonzero(raw == 3) > 100 and np.count_nonzero(raw == 4) > 100


def test_a_folder_of_two_unrelated_models_is_refused_but_a_model_beside_its_crop_model_is_chosen():
    manifest = load_manifest()
    assert find_convention_entry(WEIGHTS, manifest).name == "totalseg_kidney_cysts"  # not its crop model
    with pytest.raises(MedSegError, match="holds several models .*totalseg_body.*totalseg_vertebrae_pp"):
        find_convention_entry(DATA / "other_weights", manifest)
