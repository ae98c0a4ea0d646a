"""Closed contours around the True pixels of a 2D mask, half-way between pixel centres.

The contours are what marching squares draws at the 0.5 level of a binary mask: each vertex is
the midpoint between a pixel inside and a 4-neighbour outside. They are found by walking the
pixel-edge ("crack") boundary, whose edges have those midpoints, so every loop closes by
construction: outer boundaries run one way, holes the other, and pixels touching only at a
corner get separate loops (4-connected structures, as in scikit-image's default). No pixel
centre lies on a contour, so filling by the even-odd rule gives the mask back exactly.
Our own, so RT-STRUCT writing needs nothing beyond numpy (ChimeraX's Python may lack scikit-image);
the tests check it against scikit-image's find_contours.
"""
from __future__ import annotations

import numpy as np

# edge directions, clockwise on screen (x right, y down): +x, +y, -x, -y
_STEP = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]])   # (row, column) step of each direction


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours (n, 2) as (column, row) pixel coordinates, without the repeated first point."""
    starts, directions = _crack_edges(np.pad(np.asarray(mask, bool), 1))
    if not len(starts):
        return []
    successor = _successors(starts, directions)
    midpoints = starts + _STEP[directions] / 2.0 - 0.5 - 1.0  # corner -> pixel coordinates, minus the padding
    return [_simplify(midpoints[loop], directions[loop]) for loop in _loops(successor)]


def _crack_edges(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel edge between inside and outside, as start corner (row, column) and direction.

    Corner (i, j) is the top-left corner of pixel (i, j); edges run clockwise around inside
    pixels (inside on the right on screen).
    """
    rows, cols = np.nonzero(padded)
    starts, directions = [], []
    # (neighbour offset, start corner offset, direction): top, right, bottom, left sides
    for (dr, dc), corner, direction in (((-1, 0), (0, 0), 0), ((0, 1), (0, 1), 1),
                                        ((1, 0), (1, 1), 2), ((0, -1), (1, 0), 3)):
        outside = ~padded[rows + dr, cols + dc]
        starts.append(np.stack([rows[outside] + corner[0], cols[outside] + corner[1]], 1))
        directions.append(np.full(int(outside.sum()), direction))
    return np.concatenate(starts), np.concatenate(directions)


def _successors(starts: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The edge that follows each edge: the one leaving its end corner; at a saddle corner
    (two leaving) the right turn, which keeps walking round the same pixel."""
    width = int(starts[:, 1].max()) + 2
    ends = starts + _STEP[directions]
    start_id = starts[:, 0] * width + starts[:, 1]
    end_id = ends[:, 0] * width + ends[:, 1]
    order = np.lexsort((directions, start_id))
    sorted_ids = start_id[order]
    first = np.searchsorted(sorted_ids, end_id, side="left")
    count = np.searchsorted(sorted_ids, end_id, side="right") - first
    successor = order[first]
    saddle = np.flatnonzero(count == 2)
    if saddle.size:
        right = (directions[saddle] + 1) % 4
        a, b = order[first[saddle]], order[first[saddle] + 1]
        successor[saddle] = np.where(directions[a] == right, a, b)
    return successor


def _loops(successor: np.ndarray) -> list[np.ndarray]:
    seen = np.zeros(len(successor), bool)
    loops = []
    for start in range(len(successor)):
        if seen[start]:
            continue
        loop, edge = [], start
        while not seen[edge]:
            seen[edge] = True
            loop.append(edge)
            edge = successor[edge]
        loops.append(np.array(loop))
    return loops


def _simplify(points: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Drop midpoints inside straight runs (same direction before and after): same polygon."""
    keep = (directions != np.roll(directions, 1)) | (directions != np.roll(directions, -1))
    return points[keep][:, ::-1]  # (row, column) -> (column, row)
