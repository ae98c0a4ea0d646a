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
        assert self.regions_class_order is not None, "a region scheme has a class order"
        return dict(zip(self.regions_class_order, self.regions))

    @classmethod
    def from_dataset_json(cls, dataset_json: dict) -> LabelScheme:
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
