"""Segment the embedded example case in headless ChimeraX and render it to a PNG.

Runs the real bundle commands (`segment ...`) in a headless ChimeraX session from the PyPI
wheel, with OSMesa offscreen rendering (no display needed). Writes the label NIfTI and
the picture:

    .venv-chimerax/bin/python scripts/render_example.py -o out
    -> out/example_labels.nii.gz, out/example_segmented.png

Needs the ChimeraX environment (bash scripts/setup_chimerax_env.sh).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    parser.add_argument("--size", default="800x600", help="picture size WIDTHxHEIGHT (default 800x600)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fast", action="store_true", help="fast mode (one fold, no mirroring)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    import chimerax_headless  # beside this script; makes the wheel's chimerax package importable
    if not chimerax_headless.chimerax_available():
        sys.exit("The ChimeraX wheel is not installed here; run: bash scripts/setup_chimerax_env.sh")
    chimerax_headless.import_chimerax_package()

    from chimerax.core.commands import run
    from chimerax_headless import start_session

    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
    from chimerax.medseg.inference.preview import write_preview
    from chimerax.medseg.images import read_case, write_label_image
    from chimerax.medseg.inference.predictor import example_case_paths, example_model_path

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    session = start_session(offscreen=True, echo=False)
    paths = example_case_paths()
    image = read_case([str(p) for p in paths])
    volumes = open_image_volumes(session, image, [p.name.split(".")[0] for p in paths])
    spec = "#" + ",".join(v.id_string for v in volumes)
    job = run(session, f"segment {example_model_path()} {spec} device {args.device} fast {str(args.fast).lower()} "
                       "smooth true name example_labels")
    labels_path = write_label_image(job.labels, image, out / "example_labels.nii.gz")
    elapsed = time.perf_counter() - start

    # The 3D view: the structures' surfaces alone, seen from the front and a little above; outer
    # ones see-through so the inner ones show (whole tumour -> tumour core -> enhancing tumour).
    for v in volumes:
        v.display = False
    run(session, "view", log=False)
    run(session, "turn x -70", log=False)  # from the front (the scene is RAS: +y anterior, +z superior)
    run(session, "turn y 180", log=False)
    run(session, "view", log=False)
    run(session, "lighting simple", log=False)
    members = job.request.members  # a region's extent: every value it covers (whole tumour = 1, 2, 3)
    surfaces = sorted((m for m in job.models if hasattr(m, "medseg_label_value")),
                      key=lambda m: -int(np.isin(job.labels, members.get(m.medseg_label_value, ())).sum()))
    for rank, surface in enumerate(surfaces):
        color = surface.color.copy()
        color[3] = 255 if rank == len(surfaces) - 1 else 70  # every structure but the innermost see-through
        surface.vertex_colors = None  # one colour per surface, so its alpha applies
        surface.color = color
    width, height = (int(x) for x in args.size.lower().split("x"))
    three_d = out / "example_3d.png"
    session.main_view.image(width, height, supersample=3).save(three_d)
    r = job.request
    png = write_preview(image, job.labels, r.label_names, r.colors, out / "example_segmented.png", r.members,
                        render_3d=three_d, title=f"{paths[0].name.split('_0000')[0]}: model example "
                                                   f"(segment, headless ChimeraX)")
    print(report(paths, job.labels, image, elapsed, args.device))
    print(f"picture: {png}\nlabels:  {labels_path}")
    return 0


def report(paths, labels, image, seconds: float, device: str) -> str:
    """The demo's report: case, model, time and Dice against the phantom's ground truth."""
    from chimerax.medseg.demo import describe_run
    from chimerax.medseg.inference.predictor import Predictor, example_model_path
    predictor = Predictor.from_folder(example_model_path(), device="cpu")
    return describe_run(paths, image, predictor, labels, seconds, device + " (headless ChimeraX)")


if __name__ == "__main__":
    sys.exit(main())
