"""The rows a scenario commits to the result tables, assembled from its nodes' outcomes (no Ray).

Stage rows are tagged with the dataset of the node that wrote them; the ``scenarios`` row gets the
status (the first stage that was not ok), the per-stage keys (primary dataset), seconds and cache
hits, and the scenario's parameters as typed columns.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from ptycho_dist.pipeline.base import StageOutcome
from ptycho_dist.storage.tables import STAGES, flatten_scenario
from ptycho_dist.study import StageTask
from ptycho_dist.study.plan import NodeId, Plan, Unit
from ptycho_dist.study.spec import PINN_BACKENDS

__all__ = ["DATASET_TABLES", "FLAG_MEANINGS", "FLAG_RULES", "quality_flags", "scenario_rows"]

from ptycho_dist.study.flags import (
    FLAG_MEANINGS,
    FLAG_RULES,
    LEARN_MIN_GAIN,
    LEARN_MIN_SCORE,
    LEARN_SE_FACTOR,
    SCALE_COLLAPSE,
    UNSCANNED_BELOW,
)

#: tables whose rows are tagged with the dataset of the node that wrote them
DATASET_TABLES = ("metrics", "bias", "diagnostics")


def _tagged(rows: list[dict[str, Any]], table: str, task: StageTask) -> list[dict[str, Any]]:
    """Rows of ``task`` with their ``dataset``; with held-out test objects, the metrics of a training
    object are the targets ``train_stitched`` / ``train_patch``, so that ``stitched`` is the test."""
    if table not in DATASET_TABLES:
        return rows
    ds = task.dataset or None
    train_side = ds is not None and not task.is_test and task.scenario.data.test_objects > 0
    out = []
    for r in rows:
        r = {**r, "dataset": ds}
        if table == "metrics" and train_side:
            r["target"] = f"train_{r['target']}"
        out.append(r)
    return out


def quality_flags(diagnostics: list[dict[str, Any]], *, status: str, model_arm: bool) -> list[str]:
    """Quality flags of an ok scenario from its diagnostics rows (:data:`FLAG_RULES`), sorted.

    Parameters
    ----------
    diagnostics : list of dict
        The scenario's ``diagnostics`` rows (``stage``, ``name``, ``value``).
    status : str
        The scenario's status; only ``ok`` scenarios are flagged (a failure says more than a flag).
    model_arm : bool
        Whether the arm trains a model (the learning and scale flags apply to model arms only).
    """
    if status != "ok":
        return []
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in diagnostics:
        if r.get("value") is not None and math.isfinite(r["value"]):
            values[(r["stage"], r["name"])].append(float(r["value"]))

    def one(stage: str, name: str) -> float | None:
        found = values.get((stage, name))
        return found[0] if found else None

    flags = []
    if any(v < UNSCANNED_BELOW for v in values.get(("simulate", "scanned_fraction"), [])):
        flags.append("mostly_unscanned")
    if model_arm:
        trained, untrained = one("train", "patch_score_trained"), one("train", "patch_score_untrained")
        se = one("train", "patch_score_gain_se") or 0.0
        if trained is not None and untrained is not None and (
                trained - untrained < max(LEARN_SE_FACTOR * se, LEARN_MIN_GAIN) or trained < LEARN_MIN_SCORE):
            flags.append("learned_nothing")
        final, start = one("train", "train_log_scale"), one("train", "initial_log_scale")
        if final is not None and start is not None and final - start < math.log(SCALE_COLLAPSE):
            flags.append("scale_collapsed")
    return sorted(flags)


def scenario_rows(study_name: str, unit: Unit, plan: Plan,
                   outcomes: dict[NodeId, StageOutcome]) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows of one scenario unit (its nodes' outcomes), its ``scenarios`` row included."""
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    status, error, failed_stage, diverged_epoch = "ok", None, None, None
    per_stage: dict[str, list[StageOutcome]] = defaultdict(list)
    for nid in unit.nodes:
        oc = outcomes[nid]
        per_stage[nid[0]].append(oc)
        for table, rows in oc.rows.items():
            tables[table].extend(_tagged(list(rows), table, plan.nodes[nid].task))
        if oc.status != "ok" and status == "ok":
            status, error, failed_stage = oc.status, oc.error, nid[0]
            if oc.status == "diverged" and error is None:
                error = f"non-finite loss at epoch {oc.info.get('diverged_epoch')} (0-based)"
        if oc.info.get("diverged_epoch") is not None:
            diverged_epoch = int(oc.info["diverged_epoch"])
    row: dict[str, Any] = {
        "scenario_id": unit.id, "study": study_name, "status": status, "error": error,
        "failed_stage": failed_stage, "diverged_epoch": diverged_epoch, "finished_at": datetime.now(UTC),
    }
    for stage in STAGES:
        ran = [oc for oc in per_stage.get(stage, []) if not oc.info.get("skipped")]
        row[f"key_{stage}"] = unit.keys.get(stage)
        row[f"seconds_{stage}"] = sum(oc.seconds for oc in ran) if ran else None
        row[f"cached_{stage}"] = all(oc.cached for oc in ran) if ran else None
    model_arm = unit.arms[0].model.backend in PINN_BACKENDS
    row["flags"] = ",".join(quality_flags(tables.get("diagnostics", []), status=status, model_arm=model_arm))
    row.update(flatten_scenario(unit.arms[0]))
    tables["scenarios"] = [row]
    return dict(tables)
