"""A picture that says what was found: three orthogonal slices through the structures with
their outlines, orientation letters, a legend (name, colour, volume), and a 3D view.

The slices are shown in the patient's frame (the image is turned to RAS first, whatever its
storage order), axial from the feet, left on the right of the picture as radiologists view it,
so the letters always say which way is which. The 3D view is a picture rendered elsewhere (the
ChimeraX surfaces, ``render_3d``) or, without one, the structures projected along the three
axes. Regions (whole tumour, tumour core, ...) are outlined each, nested, so an inner region is
never hidden by an outer one.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MedSegError
from ..fileio import atomic_path
from ..images import Image

# View -> (axis sliced, (horizontal axis, vertical axis)), axes in RAS index order
_VIEWS = {"axial": (2, (0, 1)), "coronal": (1, (0, 2)), "sagittal": (0, (1, 2))}
_LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))  # per RAS axis: the side of index 0, of the last index


def check_matplotlib() -> None:
    """Refuse now, with the command to run, when pictures cannot be drawn."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib  # optional: only pictures need it
    except ImportError as exc:
        raise MedSegError("Preview pictures need matplotlib: pip install matplotlib (or the [plots] extra).") from exc
    matplotlib.use("Agg")  # files only; works without a display
    import matplotlib.pyplot as plt
    return plt


def to_ras(array_zyx: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (z, y, x) array as (i, j, k) indexed toward R, A, S, and the voxel sizes along them."""
    xyz = np.asarray(array_zyx).transpose(2, 1, 0)
    linear = affine[:3, :3]
    axes = np.argmax(np.abs(linear), axis=0)  # the world axis each voxel axis runs along
    if len(set(axes.tolist())) != 3:
        raise MedSegError("The image's axes are too oblique to show as axial, coronal and sagittal slices.")
    order = np.argsort(axes)  # voxel axis along R, A, S
    ras = xyz.transpose(order)
    for out_axis, voxel_axis in enumerate(order):
        if linear[out_axis, voxel_axis] < 0:
            ras = np.flip(ras, axis=out_axis)
    spacing = np.linalg.norm(linear, axis=0)[order]
    return ras, spacing


def write_preview(image: Image, labels: np.ndarray, label_names: dict[int, str], colors: Mapping[int, Sequence[int]],
                  path: str | os.PathLike, members: dict[int, tuple[int, ...]] | None = None,
                  render_3d: str | os.PathLike | None = None, title: str = "") -> Path:
    """Write the picture for ``labels`` (z, y, x) on ``image``'s grid to ``path`` (PNG); returns it."""
    plt = _pyplot()
    path = Path(path)
    if labels.shape != image.shape:
        raise MedSegError(f"The labels ({labels.shape}) are not on the image's grid ({image.shape}).")
    gray, spacing = to_ras(image.array[0], image.affine)
    lab, _ = to_ras(labels, image.affine)
    members = members or {v: (v,) for v in label_names}
    masks = {v: np.isin(lab, members.get(v, (v,))) for v in sorted(label_names)}
    voxel_ml = float(np.prod(spacing)) / 1000
    centre = _centre(lab > 0)
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 8.6), dpi=110, facecolor="black")
    for ax, (view, (axis, (h, v))) in zip(axes.flat[:3], _VIEWS.items()):
        _slice_panel(ax, view, gray, masks, colors, spacing, axis, h, v, centre[axis])
    if render_3d is not None:
        _three_d_panel(axes.flat[3], render_3d, plt)
    else:  # no renderer: every structure seen from the front (projection along A-P)
        _slice_panel(axes.flat[3], "projection, front view", gray, masks, colors, spacing, 1, 0, 2, None)
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.array(colors[v][:3]) / 255) for v in masks]
    texts = [f"{label_names[v]}: {masks[v].sum() * voxel_ml:.1f} mL" for v in masks]
    fig.legend(handles, texts, loc="lower center", ncol=min(3, max(len(texts), 1)), frameon=False,
               labelcolor="white", fontsize=10)
    fig.suptitle(title, color="white", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, facecolor=fig.get_facecolor(), format="png")
    plt.close(fig)
    return path


def _centre(foreground: np.ndarray) -> list[int]:
    """Slice positions: the foreground's centre of mass, or the image's centre when nothing was found."""
    if foreground.any():
        return [int(round(c)) for c in np.argwhere(foreground).mean(axis=0)]
    return [s // 2 for s in foreground.shape]


def _slice_panel(ax: Any, view: str, gray: np.ndarray, masks: dict, colors: Mapping, spacing: np.ndarray,
                 axis: int, h: int, v: int, index: int | None) -> None:
    """One slice (or, with ``index`` None, the maximum projection along ``axis``): rows along axis
    ``v`` (bottom = index 0), columns along ``h``; the R-L axis is shown with the patient's right on
    the picture's left (radiological convention)."""
    take: list = [slice(None)] * 3
    take[axis] = index
    flip = h == 0

    def oriented(volume: np.ndarray) -> np.ndarray:
        plane = (volume.max(axis=axis) if index is None else volume[tuple(take)]).T  # (v, h): h < v always
        return plane[:, ::-1] if flip else plane

    shown = oriented(gray)
    lo, hi = np.percentile(shown, [1, 99])
    extent = (0, shown.shape[1] * spacing[h], 0, shown.shape[0] * spacing[v])
    ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower", extent=extent,
              aspect="equal", interpolation="nearest")
    _outlines(ax, {value: oriented(mask) for value, mask in masks.items()}, colors, origin="lower", extent=extent)
    ax.set_title(f"{view} (slice {index})" if index is not None else view, color="white", fontsize=10)
    ax.set_xticks([]), ax.set_yticks([])
    low, high = _LETTERS[h]
    left, right = (high, low) if flip else (low, high)
    bottom, top = _LETTERS[v]
    for x, y, text in ((0.03, 0.5, left), (0.97, 0.5, right), (0.5, 0.03, bottom), (0.5, 0.97, top)):
        ax.text(x, y, text, transform=ax.transAxes, color="yellow", fontsize=11, fontweight="bold",
                ha="center", va="center")


def _outlines(ax: Any, planes: dict[int, np.ndarray], colors: Mapping, **placement: Any) -> None:
    """A light fill and an outline per structure; larger structures first and with wider lines, so a
    region sharing its border with an inner one (tumour core around the enhancing rim) still shows."""
    ordered = [v for v in sorted(planes, key=lambda val: -int(planes[val].sum())) if planes[v].any()]
    for rank, value in enumerate(ordered):
        rgb = np.array(colors[value][:3]) / 255
        ax.contourf(planes[value], levels=[0.5, 1.5], colors=[rgb], alpha=0.18, **placement)
        ax.contour(planes[value], levels=[0.5], colors=[rgb], linewidths=1.2 + 1.6 * (len(ordered) - 1 - rank),
                   **placement)


def _three_d_panel(ax: Any, render_3d: str | os.PathLike | None, plt: Any) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_facecolor("black")
    ax.imshow(plt.imread(str(render_3d)))
    ax.set_title("3D surfaces", color="white", fontsize=10)
