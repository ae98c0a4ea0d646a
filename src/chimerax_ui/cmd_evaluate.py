"""ChimeraX ``segment evaluate #2 reference #3[,4,5]``: score a label volume against reference
label volumes, log the table, and show false positives / false negatives as coloured surfaces."""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
from chimerax.core.commands import BoolArg, CmdDesc, StringArg, register
from chimerax.map import MapArg, MapsArg

from ..errors import MedSegError
from ..evaluation.casefiles import resample_labels
from ..evaluation.evaluate import ERROR_KINDS, error_map, evaluate_label_arrays
from ..evaluation.metrics import Region, as_label_array, parse_regions, regions_from_values
from ..evaluation.stability import stability_table, summarize_stability
from ..evaluation.summary import format_number
from .errors import user_errors
from .volumes import add_label_surfaces, grid_to_scene, make_label_volume, same_grid

# Error surface colours (RGBA): false positives warm, false negatives cool, wrong labels yellow.
ERROR_COLORS = {1: (230, 60, 40, 255), 2: (40, 110, 230, 255), 3: (240, 200, 30, 255)}


def register_commands(logger: Any) -> None:
    desc = CmdDesc(required=[("prediction", MapArg)],
                   keyword=[("reference", MapsArg), ("labels", StringArg), ("ignore_unlisted", BoolArg),
                            ("resample", BoolArg), ("show_errors", BoolArg)],
                   required_arguments=["reference"],
                   synopsis="Score a label volume against reference label volumes (Dice, HD95, ...)")
    register("segment evaluate", desc, segment_evaluate, logger=logger)


@user_errors
def segment_evaluate(session: Any, prediction: Any, reference: Sequence = (), labels: str | None = None,
                     ignore_unlisted: bool = False, resample: bool = False, show_errors: bool = True) -> Any:
    """Log per-label metrics of ``prediction`` against each reference volume (several: stability).

    ``labels`` is e.g. "1 2 tumor=2,3"; by default every value found is scored. With
    ``show_errors`` a volume of error kinds (against the first reference) is added and drawn as
    surfaces: false positives red, false negatives blue, wrong labels yellow.
    Returns the evaluation (rows of metrics).
    """
    return _evaluate(session, prediction, list(reference), labels, ignore_unlisted, resample, show_errors)


def _evaluate(session: Any, prediction: Any, references: list, labels: str | None, ignore_unlisted: bool,
              resample: bool, show_errors: bool) -> Any:
    if not references:
        raise MedSegError("Name the reference label volume(s): segment evaluate #2 reference #3[,4,5].")
    if prediction in references:
        raise MedSegError(f"#{prediction.id_string} is both the prediction and a reference; give another reference.")
    first = references[0]
    pred = _labels_on_grid(prediction, first, resample)
    refs = [as_label_array(first.full_matrix(), f"reference #{first.id_string}")]
    for ref in references[1:]:
        refs.append(_labels_on_grid(ref, first, resample))
    names = [f"#{v.id_string}" for v in references]
    spacing = tuple(float(s) for s in first.data.step)[::-1]  # ChimeraX step is (x, y, z)
    regions = parse_regions([labels]) if labels else None
    label_names = getattr(prediction, "medseg_label_names", None) or getattr(first, "medseg_label_names", None)
    members = getattr(prediction, "medseg_label_members", None) or getattr(first, "medseg_label_members", None)
    if regions is None and label_names and members and any(len(m) > 1 for m in members.values()):
        # a region model: whole tumour is scored on values 1, 2, 3
        regions = [Region(name, tuple(members[value])) for value, name in sorted(label_names.items())]
    elif regions is None and label_names:
        values = set(np.unique(pred)) | set().union(*(set(np.unique(r)) for r in refs))
        regions = regions_from_values(values, label_names)
    ev = evaluate_label_arrays(pred, refs, names, spacing, regions, case=prediction.name,
                               ignore_unlisted=ignore_unlisted,
                               unlisted_hint="Add them to 'labels', or add 'ignoreUnlisted true' to score only the "
                                             "listed labels.")
    _log_tables(session, prediction, ev)
    if show_errors:
        evaluated = regions if regions is not None else [Region(label, (int(label),)) for label in ev.labels]
        _show_errors(session, error_map(pred, refs[0], evaluated), prediction, first)
    return ev


def _labels_on_grid(volume, reference, resample: bool) -> np.ndarray:
    """A volume's labels on ``reference``'s grid: refused when the grids differ, unless ``resample``."""
    labels = as_label_array(volume.full_matrix(), f"volume #{volume.id_string}")
    if same_grid(volume, reference):
        return labels
    if not resample:
        raise MedSegError(f"#{volume.id_string} ({volume.name}, size {tuple(volume.data.size)}) is not on the grid of "
                          f"#{reference.id_string} ({reference.name}, size {tuple(reference.data.size)}). "
                          "Use volumes on one grid, or add 'resample true' (nearest neighbour).")
    session_note = f"#{volume.id_string} was resampled onto the grid of #{reference.id_string} (nearest neighbour)."
    volume.session.logger.info(session_note)
    return resample_labels(labels, grid_to_scene(volume), tuple(reference.data.size)[::-1], grid_to_scene(reference))


def _html_table(header: Sequence[str], rows: Sequence[Sequence], caption: str) -> str:
    cells = lambda row, tag: "".join(  # noqa: E731
        f"<{tag}{'' if isinstance(c, str) else ' align=right'}>"
        f"{html.escape(c if isinstance(c, str) else format_number(c))}</{tag}>"
        for c in row)
    return (f"<table border=1 cellpadding=3 cellspacing=0><caption>{html.escape(caption)}</caption>"
            f"<tr>{cells(header, 'th')}</tr>" + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows) + "</table>")


def _log_tables(session, prediction, ev) -> None:
    header = ["reference", "label", "Dice", "IoU", "HD95 (mm)", "ASD (mm)", "vol pred (mL)", "vol ref (mL)",
              "missed", "lesions missed"]
    rows = [[r["reference"], r["label"], r["dice"], r["iou"], r["hd95"], r["asd"], r["volume_pred_ml"],
             r["volume_ref_ml"], "yes" if r["missed"] else "", f'{r["lesions_missed"]}/{r["lesions_ref"]}']
            for r in ev.rows]
    session.logger.info(_html_table(header, rows, f"Evaluation of #{prediction.id_string} {prediction.name}"),
                        is_html=True)
    if ev.pair_rows:
        head, stab = stability_table(summarize_stability(ev.rows, ev.pair_rows, ev.reference_names), "dice")
        session.logger.info(_html_table(head, stab, "Stability across references"), is_html=True)
    scored = [r["dice"] for r in ev.rows if not np.isnan(r["dice"])]
    mean = f"{np.mean(scored):.3f}" if scored else "NaN"
    session.logger.info(f"Evaluated #{prediction.id_string} against {', '.join(ev.reference_names)}: "
                        f"{len(ev.labels)} label(s), mean Dice {mean}.")


def _show_errors(session, errors: np.ndarray, prediction, reference) -> None:
    counts = np.bincount(errors.ravel(), minlength=4)
    name = f"{prediction.name} errors vs {reference.name}"
    volume = make_label_volume(session, errors, reference, name, dict(ERROR_KINDS), ERROR_COLORS)
    volume.medseg_error_counts = {ERROR_KINDS[k]: int(counts[k]) for k in ERROR_KINDS}
    session.models.add([volume])
    surfaces = add_label_surfaces(session, volume, dict(ERROR_KINDS), ERROR_COLORS)
    volume.display = False
    volume.medseg_error_surfaces = surfaces
    shown = ", ".join(f"{ERROR_KINDS[k]} {int(counts[k])} voxels ({_color_name(k)})" for k in ERROR_KINDS)
    session.logger.info(f"Errors of #{prediction.id_string} against #{reference.id_string} shown as "
                        f"#{volume.id_string}: {shown}.")


def _color_name(kind: int) -> str:
    return {1: "red", 2: "blue", 3: "yellow"}[kind]
