"""ChimeraX volumes <-> engine images, and the label volume with its colours, surfaces and table.

Only the ChimeraX layer imports this module. Geometry: a ChimeraX grid maps index (i, j, k)
to ``origin + R @ (step * ijk)`` (origin not rotated), and the model's scene position is
applied on top. Arrays are (z, y, x); origin and step are (x, y, z).
"""
from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np
from chimerax.map import volume_from_grid_data
from chimerax.map_data import ArrayGridData
from chimerax.segment.segment import segmentation_surfaces
from scipy.ndimage import map_coordinates

from ..errors import MedSegError
from ..images import Image
from ..images.colors import label_colors  # noqa: F401  (the colours every label volume gets)

# --- ChimeraX grid <-> engine image ------------------------------------------------------------

def grid_to_scene(volume) -> np.ndarray:
    """4x4 matrix from voxel index (i=x, j=y, k=z) to scene coordinates."""
    place = volume.scene_position * volume.data.ijk_to_xyz_transform
    matrix = np.eye(4)
    matrix[:3, :] = place.matrix
    return matrix


def same_grid(a, b, atol: float = 1e-4) -> bool:
    """True when two volumes have the same size and put every voxel at the same scene point."""
    return (tuple(a.data.size) == tuple(b.data.size)
            and np.allclose(grid_to_scene(a), grid_to_scene(b), atol=atol))


def volume_array(volume) -> np.ndarray:
    """The full-resolution (z, y, x) values of a volume as float32."""
    return np.asarray(volume.full_matrix(), dtype=np.float32)


def resample_onto(volume, reference) -> np.ndarray:
    """Values of ``volume`` (trilinear) at every voxel centre of ``reference``.

    Points up to half a voxel beyond the source grid take the edge value (grids of the same
    extent but other spacing must not lose their border); points further out are 0.
    """
    source = volume_array(volume)
    ref_to_src = np.linalg.inv(grid_to_scene(volume)) @ grid_to_scene(reference)
    nx, ny, nz = reference.data.size
    limits = np.array(source.shape[::-1]) - 0.5  # (x, y, z) index limits of the source
    out = np.empty((nz, ny, nx), np.float32)
    j, i = np.mgrid[0:ny, 0:nx]
    for k in range(nz):  # one plane at a time keeps memory small for big volumes
        ijk = np.stack([i.ravel(), j.ravel(), np.full(i.size, k), np.ones(i.size)]).astype(np.float64)
        src = (ref_to_src @ ijk)[:3]
        values = map_coordinates(source, src[::-1], order=1, mode="nearest")
        outside = ((src < -0.5) | (src > limits[:, None])).any(axis=0)
        values[outside] = 0
        out[k] = values.reshape(ny, nx)
    return out


def image_from_volumes(volumes: Sequence, channel_names: Sequence[str] | None = None) -> tuple[Image, list[str]]:
    """One multi-channel engine image on the first volume's grid.

    Returns the image and a note per volume saying whether it was resampled.
    """
    reference = volumes[0]
    channels, notes = [], []
    for volume in volumes:
        if volume is reference or same_grid(volume, reference):
            channels.append(volume_array(volume))
        else:
            channels.append(resample_onto(volume, reference))
            notes.append(f"{volume.name} (#{volume.id_string}) was resampled onto the grid of "
                         f"{reference.name} (#{reference.id_string}).")
    affine = grid_to_scene(reference)
    sx, sy, sz = (float(np.linalg.norm(affine[:3, a])) for a in range(3))
    image = Image(np.stack(channels), spacing=(sz, sy, sx), affine=affine,
                  channel_names=list(channel_names) if channel_names else None)
    return image, notes


def open_image_volumes(session, image: Image, names: Sequence[str]) -> list:
    """Open each channel of an engine image as a ChimeraX volume placed exactly at its affine."""
    linear = image.affine[:3, :3]
    step = np.linalg.norm(linear, axis=0)           # (x, y, z) voxel sizes
    rotation = linear / step                         # unit axis directions as columns
    volumes = []
    for array, name in zip(image.array, names):
        grid = ArrayGridData(np.ascontiguousarray(array), origin=tuple(image.affine[:3, 3]), step=tuple(step),
                             rotation=tuple(map(tuple, rotation)), name=name)
        volumes.append(volume_from_grid_data(grid, session, show_dialog=False))
        session.update_loop.draw_new_frame()  # avoids a "graphics update" KeyError between volumes
    return volumes


# --- channels -------------------------------------------------------------------------------------

def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^0-9a-z]+", text.lower()) if t}


def _normal(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def match_channels(volume_names: Sequence[str], channel_names: Sequence[str]) -> tuple[list[int], bool]:
    """Order of volumes for the model's channels: by name where unambiguous, else as given.

    A volume matches a channel when the channel's name is the whole volume name or one of its
    words (``case_t1ce.nii.gz`` matches ``T1ce`` but not ``T1``). Returns (volume index for each
    channel, whether names decided).
    """
    count = len(channel_names)
    if len(volume_names) != count:
        raise ValueError("count mismatch")
    if count == 1:
        return [0], False
    matches = []
    for channel in channel_names:
        key = _normal(channel)
        hits = [i for i, name in enumerate(volume_names)
                if key and (key == _normal(name) or key in _tokens(name))]
        matches.append(hits)
    if all(len(h) == 1 for h in matches) and len({h[0] for h in matches}) == count:
        return [h[0] for h in matches], True
    return list(range(count)), False


# --- labels: names, colours, table ------------------------------------------------------------

def label_statistics(labels: np.ndarray, label_names: dict[int, str], voxel_volume_mm3: float,
                     members: dict[int, tuple[int, ...]] | None = None) -> list[tuple[int, str, int, float]]:
    """(value, name, voxel count, volume mm^3) for every named label (absent ones count 0); a region
    counts every voxel it covers (whole tumour = oedema + core), as BraTS reports volumes."""
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=max(label_names, default=0) + 1)
    rows = []
    for value, name in sorted(label_names.items()):
        n = int(sum(counts[m] for m in (members or {}).get(value, (value,)) if m < len(counts)))
        rows.append((value, name, n, n * voxel_volume_mm3))
    return rows


def label_table_html(stats, colors: dict[int, tuple], title: str) -> str:
    """The log's summary table: label, colour swatch, voxel count, volume in mm^3."""
    rows = []
    for value, name, count, volume in stats:
        r, g, b = colors[value][:3]
        swatch = (f'<span style="display:inline-block;width:1.5em;background-color:#{r:02x}{g:02x}{b:02x}">'
                  f'&nbsp;</span> #{r:02x}{g:02x}{b:02x}')
        rows.append(f"<tr><td>{value}</td><td>{html.escape(name)}</td><td>{swatch}</td>"
                    f'<td align="right">{count}</td><td align="right">{volume:.1f}</td></tr>')
    return (f"<table border=1 cellpadding=4 cellspacing=0><caption>{html.escape(title)}</caption>"
            "<tr><th>Value</th><th>Label</th><th>Colour</th><th>Voxels</th><th>Volume (mm<sup>3</sup>)</th></tr>"
            + "".join(rows) + "</table>")


# --- the label volume and its surfaces --------------------------------------------------------

def make_label_volume(session, labels: np.ndarray, reference, name: str, label_names: dict[int, str],
                      colors: dict[int, tuple]):
    """A new (not yet opened) label volume on exactly ``reference``'s grid and scene position."""
    size = tuple(reference.data.size)
    if labels.shape != size[::-1]:
        raise MedSegError(f"The labels have shape {labels.shape} but volume {reference.name} has "
                          f"{size[::-1]} (z, y, x); they must match.")
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.int32
    g = reference.data
    grid = ArrayGridData(np.ascontiguousarray(labels.astype(dtype)), origin=g.origin, step=g.step,
                         cell_angles=g.cell_angles, rotation=g.rotation, name=name)
    volume = volume_from_grid_data(grid, session, open_model=False, show_dialog=False)
    volume.position = reference.scene_position
    volume.medseg_label_names = dict(label_names)
    rgba = np.zeros((max(label_names, default=0) + 1, 4), np.uint8)
    for value, color in colors.items():
        rgba[value] = color
    volume.segment_colors = rgba
    return volume


def add_label_surfaces(session, label_volume, label_names: dict[int, str], colors: dict[int, tuple],
                       smooth: bool = False) -> list:
    """One surface per present label, made by ChimeraX's ``segmentation surfaces``, named and coloured."""
    if not label_volume.full_matrix().any():
        return []
    surfaces = segmentation_surfaces(session, [label_volume], each="segment", smooth=smooth)
    for surface in surfaces:
        value = int(surface.name.rsplit(" ", 1)[-1])  # named "<volume> segment <value>"
        surface.name = label_names.get(value, f"label {value}")
        surface.medseg_label_value = value
        if value in colors:
            surface.color = np.array(colors[value], np.uint8)
    label_volume.medseg_surfaces = list(surfaces)
    return surfaces


def label_surfaces(session, label_volume) -> list:
    """The structure surfaces made for a label volume (``add_label_surfaces``) that are still open."""
    return [s for s in getattr(label_volume, "medseg_surfaces", []) if not s.deleted]
