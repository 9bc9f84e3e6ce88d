"""Terminal renderings of a run: the end-of-run summary, ``status``, and query result formats."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ptycho_dist.evaluation.parity import seed_spread_tolerance
from ptycho_dist.results import Results
from ptycho_dist.results import open as open_run
from ptycho_dist.storage.lock import read_lock
from ptycho_dist.storage.tables import STAGES as SCENARIO_STAGES
from ptycho_dist.study.registry import STAGES, stage_def
from ptycho_dist.study.spec import FaultsSpec

if TYPE_CHECKING:
    from ptycho_dist.orchestration.driver import RunSummary

__all__ = ["render_run_summary", "render_status", "format_table", "metrics_overview", "arrow_to_rich",
           "parity_overview", "swept_columns", "training_parity", "stage_overview", "arm_label_sql"]

def arrow_to_rich(table: pa.Table, *, title: str | None = None, float_fmt: str = "{:.4g}") -> Table:
    """A rich table of an Arrow table (floats shortened)."""
    out = Table(*table.column_names, title=title)
    for row in table.to_pylist():
        out.add_row(*(float_fmt.format(v) if isinstance(v, float) else ("" if v is None else str(v))
                      for v in row.values()))
    return out


#: scenario columns that metrics_overview always shows (the arm stands for the backend and its faults)
_OVERVIEW_FIXED = ("model_backend", *(f"faults_{f}" for f in FaultsSpec.model_fields), "dose_nphotons",
                   "grouping_gridsize", "scan_kind")


def arm_label_sql(alias: str = "s") -> str:
    """SQL expression naming a scenario's arm: the backend (with its algorithm for the iterative arm:
    ``ptychi lsqml``), then each fault switch that is on (``torch +collapse_offsets``, ``tf relative_sign=-1``)."""
    parts = [f"{alias}.model_backend",
             f"case when {alias}.model_backend = 'ptychi' then ' ' || {alias}.iterative_algorithm else '' end"]
    for name, field in FaultsSpec.model_fields.items():
        col = f"{alias}.faults_{name}"
        if isinstance(field.default, bool):
            parts.append(f"case when {col} then ' +{name}' else '' end")
        else:
            default = field.default if isinstance(field.default, int) else f"'{field.default}'"
            parts.append(f"case when {col} is distinct from {default} then ' {name}=' || {col} else '' end")
    return " || ".join(parts)


def swept_columns(run: Results) -> list[str]:
    """Scenario-table columns of the swept axes (in the study's axis order)."""
    axes = run.study()["spec"]["axes"]
    return [p.replace(".", "_") for a in axes for p in a["paths"]]


def metrics_overview(run: Results) -> pa.Table:
    """Stitched-object quality per swept parameter combination (mean over replicates).

    The rows are the arm, dose, gridsize and scan kind, and every other swept axis of the study
    (``training.epochs``, ``training.seed``, ...), so that arms the study tells apart are never
    averaged together. ``structure_r`` is the diagnostic ``patch_amp_structure_r`` (model arms:
    about 0 when only each patch's mean amplitude was learned, 1 for the true structure).
    """
    extra = "".join(f"s.{c}, " for c in swept_columns(run) if c not in _OVERVIEW_FIXED)
    return run.sql(
        f"""
        select {arm_label_sql("s")} as arm,
               s.dose_nphotons as nphotons, s.grouping_gridsize as gridsize,
               s.scan_kind as scan, {extra}count(distinct s.scenario_id) as replicates,
               avg(case when m.channel = 'amplitude' then m.ssim end) as amp_ssim,
               avg(case when m.channel = 'amplitude' then m.psnr end) as amp_psnr,
               avg(case when m.channel = 'phase' then m.ssim end) as phase_ssim,
               avg(b.ls_scale) as ls_scale,
               avg(case when m.channel = 'amplitude' then d.value end) as structure_r
        from scenarios s
        join metrics m on m.scenario_id = s.scenario_id and m.target = 'stitched'
        left join bias b on b.scenario_id = s.scenario_id and b.dataset is not distinct from m.dataset
        left join diagnostics d on d.scenario_id = s.scenario_id and d.name = 'patch_amp_structure_r'
                                  and d.dataset is not distinct from m.dataset
        where s.status = 'ok'
        group by all order by all
        """
    )


def stage_overview(run: Results) -> pa.Table:
    """Per stage of the registry: distinct outputs the recorded scenarios use, how many the run that
    recorded them computed, cache hits, and the compute seconds of the distinct outputs (a stage shared
    by several scenarios is counted once). Pair-scope stages: the number of pairs recorded."""
    parts = [f"""select '{stage}' as stage, {i} as ord, '{stage_def(stage).scope}' as scope,
                count(distinct key_{stage}) as outputs,
                count(distinct case when not cached_{stage} then key_{stage} end) as computed,
                count(distinct case when cached_{stage} then key_{stage} end) as cache_hits,
                (select sum(sec) from (select any_value(seconds_{stage}) as sec from scenarios
                 where key_{stage} is not null and not cached_{stage} group by key_{stage})) as seconds
             from scenarios where key_{stage} is not null"""
             for i, stage in enumerate(STAGES) if stage in SCENARIO_STAGES]
    pairs = run.table("parity").num_rows
    table = run.sql(" union all ".join(parts) + " order by ord").drop(["ord"])
    rows = [r for r in table.to_pylist() if r["outputs"]]
    rows += [{"stage": st, "scope": "pair", "outputs": pairs, "computed": None, "cache_hits": None, "seconds": None}
             for st in STAGES if stage_def(st).scope == "pair" and pairs]
    return pa.Table.from_pylist(rows, schema=table.schema)


#: a parity pair named by its two arms (backend and fault switches, :func:`arm_label_sql`)
_PAIR_LABEL = f"{arm_label_sql('sa')} || ' vs ' || {arm_label_sql('sb')}"
_PAIR_FROM = ("parity p join scenarios sa on sa.scenario_id = p.scenario_a"
              " join scenarios sb on sb.scenario_id = p.scenario_b")


def parity_overview(run: Results) -> pa.Table:
    """One line per parity pair: forward parity, training-parity SSIM delta, agreement of the two."""
    return run.sql(
        f"select {_PAIR_LABEL} as pair, p.grouping_gridsize as gridsize, p.dose_nphotons as nphotons,"
        " p.training_seed as seed, p.forward_parity_ok as fwd_ok,"
        " greatest(p.fwd_obj_max_rel_ab, p.fwd_obj_max_rel_ba) as fwd_obj_rel, p.delta_amp_ssim,"
        " p.stitched_amp_ssim as a_vs_b_ssim, p.intensity_scale_ratio"
        f" from {_PAIR_FROM} order by all")


def training_parity(run: Results, *, k: float = 3.0) -> pa.Table:
    """Separately trained arms vs their seed spread, per cell of pairs that differ only in training seed.

    For each (cell, backend pair, signs) with >= 2 training seeds: the per-seed stitched amplitude
    SSIM of each arm, :func:`~ptycho_dist.evaluation.parity.seed_spread_tolerance`, the largest
    single-pair ``|delta_amp_ssim|`` and whether it is within the tolerance. Empty without such cells.
    """
    rows = run.sql(
        f"select p.seed_cell, {_PAIR_LABEL} as pair, p.grouping_gridsize as gridsize,"
        " p.dose_nphotons as nphotons, p.training_seed, p.amp_ssim_a, p.amp_ssim_b"
        f" from {_PAIR_FROM} where p.seed_cell is not null order by all").to_pylist()
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["seed_cell"], r["pair"], r["gridsize"], r["nphotons"]), []).append(r)
    out: list[dict[str, Any]] = []
    for (_, pair, gridsize, nphotons), group in cells.items():
        a = [r["amp_ssim_a"] for r in group if r["amp_ssim_a"] is not None]
        b = [r["amp_ssim_b"] for r in group if r["amp_ssim_b"] is not None]
        if len(group) < 2 or len(a) != len(group) or len(b) != len(group):
            continue
        tol = seed_spread_tolerance(a, b, k=k)
        worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
        out.append({"pair": pair, "gridsize": gridsize, "nphotons": nphotons, "seeds": len(group),
                    "ssim_a_mean": tol["mean_a"], "ssim_b_mean": tol["mean_b"], "ssim_a_std": tol["std_a"],
                    "ssim_b_std": tol["std_b"], "tolerance": tol["tolerance"], "max_abs_delta": worst,
                    "within_tolerance": worst <= tol["tolerance"], "mean_delta": tol["mean_delta"],
                    "z": tol["z"]})
    names = ["pair", "gridsize", "nphotons", "seeds", "ssim_a_mean", "ssim_b_mean", "ssim_a_std", "ssim_b_std",
             "tolerance", "max_abs_delta", "within_tolerance", "mean_delta", "z"]
    return pa.Table.from_pylist(out) if out else pa.table({n: [] for n in names})


def render_run_summary(summary: "RunSummary") -> Group:
    """Scenarios ok/failed, stages run/cached, wall time, and the metrics overview."""
    status = ", ".join(f"{n} {s}" for s, n in sorted(summary.status.items()))
    head = Text.assemble(("run ", "bold"), str(summary.run_dir), f": {summary.scenarios} scenarios ({status}); "
                         f"{summary.already_done} were already done; wall time {summary.wall_seconds:.1f} s")
    stages = Table("stage", "run", "cached", title="stages")
    for stage in STAGES:
        r, c = summary.stages_run.get(stage, 0), summary.stages_cached.get(stage, 0)
        if r or c:
            stages.add_row(stage, str(r), str(c))
    if not summary.stages_run and not summary.stages_cached:
        stages.add_row("(all)", "0", "0 - every scenario was already finished")
    parts: list[Any] = [head, stages]
    if summary.failures:
        fail = Table("scenario", "stage", "error", title="failed scenarios (tracebacks in logs/)")
        for sid, stage, err in summary.failures:
            fail.add_row(sid, stage or "", err)
        parts.append(fail)
    run = open_run(summary.run_dir)
    parts.append(arrow_to_rich(metrics_overview(run), title="stitched reconstruction vs truth (mean over replicates)"))
    parity = parity_overview(run)
    if parity.num_rows:
        parts.append(arrow_to_rich(parity, title="backend parity (table `parity`)"))
    seeds = training_parity(run)
    if seeds.num_rows:  # the columns that fit a terminal; all of them in the HTML report
        short = seeds.select(["pair", "gridsize", "nphotons", "seeds", "tolerance", "max_abs_delta",
                              "within_tolerance", "z"])
        parts.append(arrow_to_rich(short, title="training parity: |delta amp SSIM| vs 3 x seed spread"))
    return Group(*parts)


def render_status(run: Results) -> Group:
    """Per-stage counts (computed / cache hits) and failures (:func:`ptycho_dist.report.text.render_status`)."""
    from ptycho_dist.report.text import render_status as light

    return light(run)


def _flat_for_csv(table: pa.Table) -> pa.Table:
    """Nested columns (lists, structs, maps: e.g. ``object_line_widths``, ``list(...)`` in a query)
    as JSON text, which CSV can hold; other columns unchanged."""
    cols = []
    for col in table.columns:
        if pa.types.is_nested(col.type):
            col = pa.array([None if v is None else json.dumps(v, default=str) for v in col.to_pylist()],
                           type=pa.string())
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def format_table(table: pa.Table, fmt: str) -> str:
    """Render a query result as an aligned text table, CSV or JSON (records)."""
    if fmt == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(_flat_for_csv(table), buf)
        return buf.getvalue().decode()
    if fmt == "json":
        return json.dumps(table.to_pylist(), default=str, indent=1) + "\n"
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, soft_wrap=True)
    console.print(arrow_to_rich(table))
    return console.file.getvalue()  # type: ignore[attr-defined]
