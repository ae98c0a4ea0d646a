"""``medseg dataset verify|convert|phantom``: check a raw dataset, build one from BraTS / multi-mask / DICOM
folders, or generate synthetic phantoms."""
from __future__ import annotations

import argparse

from ..option_ranges import check_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("dataset", help="check or convert training datasets",
                              description="Work with training datasets in nnU-Net's raw layout.")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")

    v = sub.add_parser("verify", help="list every problem in a raw dataset")
    v.add_argument("dataset", help="dataset id (102), name (Dataset102_Brain) or folder")
    v.add_argument("-np", "--processes", type=int, default=2, help="parallel processes (default 2)")
    v.set_defaults(func=run_verify)

    c = sub.add_parser("convert", help="build a raw dataset from other layouts")
    kinds = c.add_subparsers(dest="convert_kind", metavar="KIND")
    b = kinds.add_parser("brats", help="BraTS patient folders -> region-based dataset (WT/TC/ET)")
    _common(b, "BraTS")
    b.set_defaults(func=run_brats)
    for kind, what in (("multimask", "NIfTI images"), ("dicom", "DICOM series folders")):
        m = kinds.add_parser(kind, help=f"case folders with {what} and several mask files -> one label map")
        _common(m, None)
        m.add_argument("--channel", action="append", required=True, metavar="NAME=PATTERN",
                       help="an input channel and the file/folder pattern that finds it in each case "
                            "(repeat, in order)")
        m.add_argument("--label", action="append", required=True, metavar="NAME=PATTERN[,PATTERN]",
                       help="a label (values 1, 2, ... in the order given) and the mask files united into it; "
                            "masks matching no label are ignored")
        m.add_argument("--overlap", choices=("later-wins", "error"), default="later-wins",
                       help="where masks of two labels overlap: the label listed later wins (default), or refuse")
        m.add_argument("--allow-missing", action="store_true", help="a case without a label's mask gets none of it")
        m.set_defaults(func=run_cases)
        if kind == "dicom":
            m.description = ("Case folders holding DICOM studies: channels are series (a sub-folder, or the series "
                             "whose description/number/modality matches), labels are NIfTI masks or RT-STRUCT/SEG "
                             "ROIs whose names match the patterns (globs).")
            m.add_argument("--annotator", action="append", metavar="NAME[=OBJECT_PATTERN]",
                           help="one label map per annotator, from the RT-STRUCT/SEG objects whose label, description "
                                "or file name matches OBJECT_PATTERN ('{annotator}' in label patterns becomes NAME); "
                                "written to annotators/NAME/ for medseg evaluate's stability test, the first one "
                                "also to labelsTr")
            m.set_defaults(func=run_dicom)
    g = sub.add_parser("phantom", help="write a dataset of synthetic BraTS-like phantoms (for trying training)")
    g.add_argument("--id", type=int, required=True, help="new dataset id (3 digits)")
    g.add_argument("--name", default="BraTSPhantom", help="dataset name (default BraTSPhantom)")
    g.add_argument("--cases", type=int, default=40, help="training cases (default 40)")
    g.add_argument("--test-cases", type=int, default=0, help="held-out cases in imagesTs/labelsTs (default 0)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--raw", help="raw data folder (default: nnUNet_raw or $MEDSEG_DATA/raw)")
    g.set_defaults(func=run_phantom)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _common(parser, default_name) -> None:
    parser.add_argument("source", help="folder with one sub-folder per case/patient")
    parser.add_argument("--id", type=int, required=True, help="new dataset id (3 digits)")
    parser.add_argument("--name", default=default_name, required=default_name is None, help="dataset name")
    parser.add_argument("--raw", help="raw data folder (default: nnUNet_raw or $MEDSEG_DATA/raw)")


def _raw(args):
    from .paths import data_folder  # loaded when the command runs (fast start-up)
    return args.raw or data_folder("raw")


def run_verify(args: argparse.Namespace) -> int:
    check_int(args.processes, "--processes", 1, 256)
    from .paths import find_dataset  # loaded when the command runs (fast start-up)
    from .verify import verify_dataset  # loaded when the command runs (fast start-up)
    report = verify_dataset(find_dataset(args.dataset), args.processes)
    print(report.format())
    return 0 if report.ok else 1


def run_brats(args: argparse.Namespace) -> int:
    from .convert_brats import convert_brats  # loaded when the command runs (fast start-up)
    folder = convert_brats(args.source, _raw(args), args.id, args.name)
    print(f"Wrote {folder} (regions whole_tumor, tumor_core, enhancing_tumor). Next: medseg dataset verify {args.id}")
    return 0


def run_phantom(args: argparse.Namespace) -> int:
    check_int(args.cases, "--cases", 1, 100_000)
    check_int(args.test_cases, "--test-cases", 0, 100_000)
    check_int(args.id, "--id", 1, 999)
    from ..progress import ProgressBar  # loaded when the command runs (fast start-up)
    from .phantom import write_dataset  # loaded when the command runs (fast start-up)
    bar = ProgressBar("phantoms")
    try:
        folder = write_dataset(_raw(args), args.id, args.cases, args.test_cases, args.seed, args.name, bar.update)
    finally:
        bar.close()
    print(f"Wrote {folder}. Next: medseg plan {args.id}")
    return 0


def run_cases(args: argparse.Namespace) -> int:
    from .convert_cases import convert_cases  # loaded when the command runs (fast start-up)
    folder, notes = convert_cases(args.source, _raw(args), args.id, args.name, args.channel, args.label,
                                  args.overlap, args.allow_missing)
    for note in notes:
        print(f"note: {note}")
    print(f"Wrote {folder}. Next: medseg dataset verify {args.id}")
    return 0


def run_dicom(args: argparse.Namespace) -> int:
    from .convert_dicom import convert_dicom_cases  # loaded when the command runs (fast start-up)
    folder, notes = convert_dicom_cases(args.source, _raw(args), args.id, args.name, args.channel, args.label,
                                        args.overlap, args.allow_missing, args.annotator)
    for note in notes:
        print(f"note: {note}")
    print(f"Wrote {folder}. Next: medseg dataset verify {args.id}")
    if args.annotator:
        print(f"Stability across annotators: medseg evaluate PREDICTIONS {folder}/annotators/*")
    return 0
