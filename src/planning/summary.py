"""A readable account of the plans: every decision and why, instead of reverse-engineering the JSON."""
from __future__ import annotations

from ..network.bounds import check_arch_kwargs
from .planner import PlanningNotes


def summarize_plans(plans: dict, notes: PlanningNotes, fingerprint: dict) -> str:
    planner = plans.get("experiment_planner_used", "carried over")  # plans carried from a model may lack it
    lines = [f"Plans {plans['plans_name']} for {plans['dataset_name']} ({planner})", ""]
    n = len(fingerprint["spacings"])
    shape = plans.get("original_median_shape_after_transp")  # v1 models' plans carried over lack it
    lines.append(f"Dataset: {n} training cases; median shape after cropping to the non-zero region "
                 f"{tuple(shape) if shape else '(not in the carried plans)'} (transposed axes), cropping kept "
                 f"{fingerprint['median_relative_size_after_cropping']:.0%} of the voxels (median).")
    lines += [f"- {text}" for text in notes.general]
    first = next(c for c in plans["configurations"].values() if "normalization_schemes" in c)
    schemes = ", ".join(f"channel {i}: {s}{' inside the non-zero mask' if m else ''}"
                        for i, (s, m) in enumerate(zip(first["normalization_schemes"], first["use_mask_for_norm"])))
    lines.append(f"- Normalization ({schemes}): chosen by channel name (CT -> CTNormalization with the dataset's "
                 "foreground percentiles, otherwise z-score per image); the non-zero mask is used only when cropping "
                 "removed more than a quarter of the image.")
    for name, config in plans["configurations"].items():
        lines.append("")
        if "inherits_from" in config:
            lines.append(f"{name}: same network as {config['inherits_from']}, with {config['previous_stage']}'s "
                         "prediction as an extra input (cascade).")
            continue
        features, _ = check_arch_kwargs(config["architecture"])  # v2's U-Nets and v1's Generic_UNet alike
        lines.append(f"{name}: patch {tuple(config['patch_size'])}, batch {config['batch_size']}, "
                     f"{len(features)} stages, features {features}, "
                     f"spacing {tuple(round(s, 4) for s in config['spacing'])} mm")
        lines += [f"  - {text}" for text in notes.per_configuration.get(name, [])]
    return "\n".join(lines)
