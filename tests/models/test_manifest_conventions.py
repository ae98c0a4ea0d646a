"""The manifest's `conventions` and `parts` (TotalSegmentator's models): read, checked, and consistent."""
import copy
import json

import pytest

from chimerax.medseg.errors import MedSegError
from chimerax.medseg.models.manifest import default_manifest_path, load_manifest, parse_manifest


def _raw() -> dict:
    return json.loads(default_manifest_path().read_text(encoding="utf-8"))


def test_total_is_five_parts_whose_labels_cover_the_combined_map_once():
    entry = load_manifest().get("totalseg_total")
    conventions = entry.conventions
    assert [p.dataset.split("_")[0] for p in conventions.parts] == [f"Dataset{i}" for i in range(291, 296)]
    names = [name for part in conventions.parts for name in part.labels.values()]
    assert sorted(names) == sorted(entry.label_names())  # every structure in exactly one part
    assert conventions.spacing_mm == (1.5, 1.5, 1.5) and conventions.step == 0.8
    assert conventions.roi_crop.model == "totalseg_total_6mm"
    assert all(f.url.endswith(f"/v2.0.0-weights/{p.dataset}.zip") for f, p in zip(entry.files, conventions.parts))


def test_every_crop_model_is_a_manifest_model_that_knows_the_structures():
    manifest = load_manifest()
    for entry in manifest.models.values():
        crop = entry.conventions and entry.conventions.crop
        if crop:
            assert set(crop.structures) <= set(manifest.get(crop.model).label_names()), entry.name


def test_body_and_vertebrae_are_cleaned_up_as_totalsegmentator_does():
    manifest = load_manifest()
    for name in ("totalseg_body", "totalseg_body_6mm"):
        entry = manifest.get(name)
        steps = entry.conventions.clean_up
        assert [s.kind for s in steps] == ["largest_component", "remove_small_components"], name
        assert {n for s in steps for n in s.structures} <= set(entry.label_names())
    assert manifest.get("totalseg_body").conventions.spacing_mm == (1.5, 1.5, 1.5)
    assert not manifest.get("totalseg_total").conventions.clean_up
    vertebrae = manifest.get("totalseg_vertebrae_pp")
    (step,) = vertebrae.conventions.clean_up
    assert step.kind == "relabel_vertebrae" and (step.min_mm3, step.dilation_mm) == (100, 3)
    assert step.structures[0] == "vertebrae_C1" and step.structures[-1] == "vertebrae_L5"  # from the top down
    assert list(step.structures) == vertebrae.label_names()


def _with(change) -> dict:
    raw = _raw()
    entry = next(m for m in raw["models"] if m["name"] == "totalseg_total")
    change(entry)
    return raw


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: e["conventions"].update(style="nnunet"), "'style'"),
    (lambda e: e["conventions"].update(step=1.5), "'conventions.step'"),
    (lambda e: e["conventions"].update(spacing_mm=[1.5, 1.5]), "spacing_mm"),
    (lambda e: e["parts"].reverse(), "same order"),
    (lambda e: e["parts"][0]["labels"].update({"0": "background"}), "part Dataset291"),
    (lambda e: e.pop("conventions"), "'parts' needs 'conventions'"),
    (lambda e: e["conventions"].update(roi_crop={"model": "x", "margin_mm": [20, -1, 20]}), "margin_mm"),
    (lambda e: e["conventions"].update(clean_up=[{"kind": "largest", "structures": ["liver"]}]), "'kind'"),
    (lambda e: e["conventions"].update(clean_up=[{"kind": "largest_component", "structures": []}]), "'structures'"),
    (lambda e: e["conventions"].update(clean_up=[{"kind": "remove_small_components", "structures": ["liver"],
                                                  "min_mm3": -5}]), "'min_mm3'"),
])
def test_a_broken_conventions_entry_is_refused_naming_the_field(change, message):
    with pytest.raises(MedSegError, match="totalseg_total") as caught:
        parse_manifest(_with(change))
    assert message in str(caught.value)


def test_the_manifest_without_conventions_still_reads():
    raw = copy.deepcopy(_raw())
    for entry in raw["models"]:
        entry.pop("conventions", None)
        entry.pop("parts", None)
    assert all(e.conventions is None for e in parse_manifest(raw).values())
