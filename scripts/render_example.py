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
import importlib.util
import os
import sys
import time
from pathlib import Path


def _import_chimerax() -> None:
    # The wheel's chimerax/__init__.py is broken: make the package without running it.
    if "chimerax" not in sys.modules:
        spec = importlib.util.find_spec("chimerax")
        if spec is None:
            sys.exit("The ChimeraX wheel is not installed here; run: bash scripts/setup_chimerax_env.sh")
        sys.modules["chimerax"] = importlib.util.module_from_spec(spec)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    parser.add_argument("--size", default="800x600", help="picture size WIDTHxHEIGHT (default 800x600)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fast", action="store_true", help="fast mode (one fold, no mirroring)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    _import_chimerax()

    from chimerax.core.commands import run
    from chimerax_headless import start_session
    from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
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

    # Picture: the label surfaces over the middle slice of the first channel, seen at an angle.
    for v in volumes[1:]:
        v.display = False
    nx, ny, nz = volumes[0].data.size
    run(session, f"volume #{volumes[0].id_string} style image region 0,0,{nz // 2},{nx - 1},{ny - 1},{nz // 2}",
        log=False)
    run(session, "view", log=False)
    run(session, "turn x -50", log=False)
    run(session, "view", log=False)
    run(session, "lighting simple", log=False)
    inner = max((m.medseg_label_value for m in job.models if hasattr(m, "medseg_label_value")), default=None)
    for model in job.models:  # outer structures see-through, so the inner ones show
        if getattr(model, "medseg_label_value", inner) != inner:
            color = model.color.copy()
            color[3] = 100  # alpha of 255
            model.color = color
    width, height = (int(x) for x in args.size.lower().split("x"))
    picture = session.main_view.image(width, height, supersample=3)
    png = out / "example_segmented.png"
    picture.save(png)
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
