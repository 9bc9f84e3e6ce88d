"""Human-readable description of a study (used by ``ptycho-dist validate``)."""

from __future__ import annotations

import json

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ptycho_dist.study.plan import stage_counts
from ptycho_dist.study.registry import stage_def
from ptycho_dist.study.study import Study

__all__ = ["describe_study", "stage_counts"]


def describe_study(study: Study) -> Group:
    """A rich renderable: headline, axes table, distinct stages."""
    n_points = len(study.scenarios) // study.meta.replicates
    head = Text.assemble(
        (f"{study.source}: ", "bold"),
        f"study {study.meta.name!r} is valid: ",
        (f"{len(study.scenarios)} scenarios", "bold green"),
        f" ({n_points} grid points x {study.meta.replicates} replicates, seed {study.meta.seed})",
    )
    axes = Table("axis", "values", "count", title="axes")
    for axis in study.axes:
        vals = ", ".join(json.dumps(v[0] if len(v) == 1 else list(v)) for v in axis.values)
        axes.add_row(axis.label, vals, str(len(axis.values)))
    for i, flt in enumerate(study.excludes):
        axes.add_row(f"exclude[{i}]", json.dumps(dict(flt)), "-")
    stages = Table("stage", "distinct tasks", "scope", "output", title="stages (shared work runs once)")
    for stage, n in stage_counts(study).items():
        if n:
            d = stage_def(stage)
            stages.add_row(stage, str(n), d.scope, d.doc)
    parts: list[RenderableType] = [head]
    if study.meta.description:
        parts.append(Text(study.meta.description, style="italic"))
    parts += [axes, stages]
    return Group(*parts)
