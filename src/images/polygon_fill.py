"""Fill the closed contours of one slice: which pixel centres are inside.

The rule (what DICOM RT-STRUCT readers do, and what skimage.draw.polygon2mask counts):

* a pixel belongs to the structure when its centre lies inside an odd number of the slice's
  contours (even-odd rule: a contour inside another is a hole, one inside a hole an island;
  DICOM allows holes only by such nesting, or by XOR of overlapping contours, which is the same);
* a pixel centre lying on a contour line (within ``ON_LINE_TOLERANCE`` pixels) belongs to the
  structure: writers such as rt-utils trace the centres of the boundary pixels, so those pixels
  are the structure's own. Contours written by MedSeg run between pixel centres and never touch one.

Coordinates are continuous pixel indices: x = column, y = row, (0, 0) the first pixel's centre.
"""
from __future__ import annotations

import numpy as np

ON_LINE_TOLERANCE = 1e-3  # pixels; contour coordinates in mm come back from float text with rounding


def fill_contours(contours: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask (rows, columns) of the pixel centres inside ``contours`` (each (n, 2) x, y)."""
    rows, columns = shape
    counts = np.zeros((rows, columns + 1), np.int32)
    on_line = np.zeros(shape, bool)
    for contour in contours:
        _add_crossings(np.asarray(contour, float), counts)
        _mark_on_line(np.asarray(contour, float), on_line)
    inside = (np.cumsum(counts, axis=1)[:, :columns] % 2).astype(bool)
    return inside | on_line


def _edges(contour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points of every edge of the closed polygon."""
    return contour, np.roll(contour, -1, axis=0)


def _add_crossings(contour: np.ndarray, counts: np.ndarray) -> None:
    """Toggle parity right of each point where an edge crosses a pixel row (half-open in y).

    A pixel's parity is the number of edge crossings left of its centre on its row; adding +1 at
    the first column past each crossing and summing along the row counts them.
    """
    rows, width = counts.shape[0], counts.shape[1] - 1
    start, end = _edges(contour)
    y0, y1 = start[:, 1], end[:, 1]
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.clip(np.ceil(low), 0, rows).astype(np.int64)
    last = np.clip(np.ceil(high), 0, rows).astype(np.int64)  # rows r with low <= r < high
    spans = last - first
    keep = spans > 0
    if not keep.any():
        return
    edge = np.repeat(np.flatnonzero(keep), spans[keep])
    row = np.concatenate([np.arange(a, b) for a, b in zip(first[keep], last[keep])])
    t = (row - y0[edge]) / (y1[edge] - y0[edge])
    x = start[edge, 0] + t * (end[edge, 0] - start[edge, 0])
    column = np.clip(np.floor(x).astype(np.int64) + 1, 0, width)  # first centre right of the crossing
    np.add.at(counts, (row, column), 1)


def _mark_on_line(contour: np.ndarray, on_line: np.ndarray) -> None:
    """Mark pixel centres lying on an edge: step along each edge's longer axis, test the other."""
    rows, columns = on_line.shape
    start, end = _edges(contour)
    steep = np.abs(end[:, 1] - start[:, 1]) > np.abs(end[:, 0] - start[:, 0])
    major_axis = steep.astype(np.int64)          # 1: y is the longer axis
    a0, a1 = start[np.arange(len(start)), major_axis], end[np.arange(len(end)), major_axis]
    b0, b1 = start[np.arange(len(start)), 1 - major_axis], end[np.arange(len(end)), 1 - major_axis]
    first = np.ceil(np.minimum(a0, a1) - ON_LINE_TOLERANCE).astype(np.int64)
    last = np.floor(np.maximum(a0, a1) + ON_LINE_TOLERANCE).astype(np.int64)
    counts = np.maximum(last - first + 1, 0)
    if not counts.any():
        return
    edge = np.repeat(np.arange(len(start)), counts)
    major = first[edge] + np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts)
    run = a1 - a0
    slope = np.divide(b1 - b0, run, out=np.zeros_like(run), where=run != 0)
    minor = b0[edge] + (major - a0[edge]) * slope[edge]
    hit = np.abs(minor - np.round(minor)) <= ON_LINE_TOLERANCE
    minor = np.round(minor[hit]).astype(np.int64)
    major, tall = major[hit], steep[edge][hit]
    x, y = np.where(tall, minor, major), np.where(tall, major, minor)
    ok = (x >= 0) & (x < columns) & (y >= 0) & (y < rows)
    on_line[y[ok], x[ok]] = True


def crosses_itself(contour: np.ndarray) -> bool:
    """True when two edges of the closed polygon that are not neighbours properly cross."""
    contour = np.asarray(contour, float)
    n = len(contour)
    if n < 4:
        return False
    start, end = _edges(contour)
    low, high = np.minimum(start, end), np.maximum(start, end)
    order = np.argsort(low[:, 0], kind="stable")   # sweep along x: only edges whose x-ranges meet
    sorted_low_x = low[order, 0]
    for b0 in range(0, n, 64):
        block = order[b0:b0 + 64]
        stop = int(np.searchsorted(sorted_low_x, high[block, 0].max(), side="right"))
        i, j = block[:, None], order[b0:stop][None, :]
        boxes = np.all((low[i] <= high[j]) & (low[j] <= high[i]), axis=-1) & _not_neighbours(i, j, n)
        pi, pj = np.nonzero(boxes)
        if pi.size and _segments_cross(start[i[pi, 0]], end[i[pi, 0]], start[j[0, pj]], end[j[0, pj]]).any():
            return True
    return False


def _not_neighbours(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Edges that are neither the same edge nor share a vertex (edge n-1 meets edge 0)."""
    gap = np.abs(i - j)
    return (gap > 1) & (gap != n - 1)


def _segments_cross(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Whether segment p-q properly crosses each segment r[k]-s[k].

    Touching at a point or running back along itself (traced one-pixel-wide parts) is not a
    crossing: the fill rule handles those the same way every reader does.
    """
    def orient(a, b, c):
        return np.sign((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
                       - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))
    return (orient(r, s, p) * orient(r, s, q) < 0) & (orient(p, q, r) * orient(p, q, s) < 0)
