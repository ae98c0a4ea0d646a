"""The colour of each label: dataset.json's optional ``label_colors``, else a palette of distinct colours.

One rule for every place that draws or writes labels (ChimeraX surfaces, RT-STRUCT ROIs, previews).
"""
from __future__ import annotations

# Colours for labels that dataset.json gives none for: distinct, readable on black and white.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
]


def _parse_color(value) -> tuple[int, int, int, int] | None:
    """'#rrggbb', [r, g, b] (0-255 or 0-1) or [r, g, b, a] -> RGBA bytes; None if unusable."""
    try:
        if isinstance(value, str) and value.startswith("#") and len(value) in (7, 9):
            parts = [int(value[i:i + 2], 16) for i in range(1, len(value), 2)]
        elif isinstance(value, (list, tuple)) and len(value) in (3, 4):
            scale = 255.0 if all(float(v) <= 1.0 for v in value) else 1.0
            parts = [int(round(float(v) * scale)) for v in value]
        else:
            return None
    except (TypeError, ValueError):
        return None
    if len(parts) == 3:
        parts.append(255)
    r, g, b, a = (max(0, min(255, p)) for p in parts)  # 3 or 4 parts, an alpha appended to 3
    return (r, g, b, a)


def label_colors(label_names: dict[int, str], dataset_json: dict | None = None) -> dict[int, tuple[int, int, int, int]]:
    """RGBA per label value: dataset.json's optional ``label_colors`` (by name or value), else a palette."""
    given = (dataset_json or {}).get("label_colors") or {}
    colors = {}
    for value, name in sorted(label_names.items()):
        color = _parse_color(given.get(name, given.get(str(value))))
        colors[value] = color or (*_PALETTE[(value - 1) % len(_PALETTE)], 255)
    return colors
