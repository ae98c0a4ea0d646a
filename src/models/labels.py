"""What the network's outputs mean: plain labels (softmax) or overlapping regions (sigmoid)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import MedSegError


@dataclass(frozen=True)
class LabelScheme:
    """Labels from ``dataset.json``.

    Attributes:
        names: output label value -> name, background excluded. For region models the values
            are those of ``regions_class_order``.
        regions: for region models, the label values each output channel covers, in output order.
        regions_class_order: the label value written for each region (later ones win).
    """

    names: dict[int, str]
    regions: tuple[tuple[int, ...], ...] | None = None
    regions_class_order: tuple[int, ...] | None = None

    @property
    def is_region_based(self) -> bool:
        return self.regions is not None

    @property
    def num_outputs(self) -> int:
        """Number of network output channels."""
        return len(self.regions) if self.regions is not None else len(self.names) + 1

    def members(self) -> dict[int, tuple[int, ...]]:
        """Label value -> the label values its structure covers: itself, or for a region every value
        the region spans (BraTS whole tumour: 1, 2, 3), as metrics and volumes count it."""
        if self.regions is None:
            return {value: (value,) for value in self.names}
        return dict(zip(self.regions_class_order, self.regions))

    @classmethod
    def from_dataset_json(cls, dataset_json: dict) -> "LabelScheme":
        labels = dataset_json.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise MedSegError("dataset.json has no 'labels' mapping.")
        items = [(k, v) for k, v in labels.items() if k != "ignore"]
        for name, value in items:
            _check_label_value(name, value)
        has_regions = any(isinstance(v, (list, tuple)) and len(v) > 1 for _, v in items)
        if not has_regions:
            names = {int(_scalar(v)): k for k, v in items if int(_scalar(v)) != 0}
            return cls(dict(sorted(names.items())))
        regions, region_names = [], []
        for name, value in items:
            members = tuple(int(x) for x in (value if isinstance(value, (list, tuple)) else [value]))
            if set(members) == {0}:
                continue
            regions.append(members)
            region_names.append(name)
        order = dataset_json.get("regions_class_order")
        if not isinstance(order, (list, tuple)) or not all(_is_int(x) for x in order):
            order = None
        if order is None or len(order) != len(regions):
            raise MedSegError("dataset.json defines regions but its 'regions_class_order' is missing or has "
                              f"{0 if order is None else len(order)} entries for {len(regions)} regions.")
        order = tuple(int(x) for x in order)
        return cls({value: name for value, name in zip(order, region_names)}, tuple(regions), order)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _check_label_value(name: str, value) -> None:
    """A label value is a whole number, or a non-empty list of them (a region)."""
    members = value if isinstance(value, (list, tuple)) else [value]
    if not members or not all(_is_int(m) for m in members):
        raise MedSegError(f"dataset.json: label {name!r} must be a whole number 0..2^31 or a list of them; "
                          f"got {value!r}.")


def _scalar(value):
    return value[0] if isinstance(value, (list, tuple)) else value


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
    return tuple(max(0, min(255, p)) for p in parts)


def label_colors(label_names: dict[int, str], dataset_json: dict | None = None) -> dict[int, tuple[int, int, int, int]]:
    """RGBA per label value: dataset.json's optional ``label_colors`` (by name or value), else a palette."""
    given = (dataset_json or {}).get("label_colors") or {}
    colors = {}
    for value, name in sorted(label_names.items()):
        color = _parse_color(given.get(name, given.get(str(value))))
        colors[value] = color or (*_PALETTE[(value - 1) % len(_PALETTE)], 255)
    return colors
