"""A static HTML report of a run (``<run>/report/index.html``, figures embedded as PNG).

Sections: the study and its status; quality vs the swept parameters (a plot and a table); the arms of
each data point side by side (images and metrics: oracle, PINN, iterative); a gallery of
reconstructions next to the truth, with their coverage; the diagnostics that expose the
classic failures (collapsed offsets, clipped canvas, probe normalization); failures with messages.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from ptycho_dist.study.flags import FLAG_RULES  # noqa: E402
from ptycho_dist.report.summary import (  # noqa: E402
    arm_label_sql,
    parity_overview,
    stage_overview,
    swept_columns,
    training_parity,
)
from ptycho_dist.results import Results  # noqa: E402
from ptycho_dist.storage.files import write_text_atomic  # noqa: E402
from ptycho_dist.storage.outputs import Reconstruction, SimulatedData  # noqa: E402

__all__ = ["write_report", "swept_columns"]

_GALLERY = 6


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "<img src='data:image/png;base64," + base64.b64encode(buf.getvalue()).decode() + "'/>"


def _html_table(table: pa.Table, *, limit: int = 200) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.column_names)
    rows = []
    for r in table.slice(0, limit).to_pylist():
        cells = "".join(f"<td>{html.escape(f'{v:.4g}' if isinstance(v, float) else ('' if v is None else str(v)))}</td>"
                        for v in r.values())
        rows.append(f"<tr>{cells}</tr>")
    more = f"<p>({table.num_rows - limit} more rows: use <code>ptycho-dist query</code>)</p>" if table.num_rows > limit else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _quality_figure(run: Results, axes: Sequence[str]) -> str:
    if not axes:
        return ""
    cols = ", ".join(f"s.{c}" for c in axes)
    data = run.sql(f"""
        select {cols}, avg(m.ssim) as ssim, stddev_samp(m.ssim) as sd, count(*) as n
        from scenarios s join metrics m on m.scenario_id = s.scenario_id
        where s.status = 'ok' and m.target = 'stitched' and m.channel = 'amplitude'
        group by all order by all""").to_pylist()
    if not data:
        return ""
    x, others = axes[0], list(axes[1:])
    fig, ax = plt.subplots(figsize=(7, 4))
    series: dict[str, list[dict[str, Any]]] = {}
    for row in data:
        label = ", ".join(f"{o}={row[o]}" for o in others) or "all"
        series.setdefault(label, []).append(row)
    numeric = all(isinstance(r[x], int | float) and not isinstance(r[x], bool) for r in data)
    for label, rows in series.items():
        xs = [r[x] if numeric else str(r[x]) for r in rows]
        ax.errorbar(xs, [r["ssim"] for r in rows], yerr=[r["sd"] or 0 for r in rows], marker="o", capsize=3, label=label)
    if numeric and min(r[x] for r in data) > 0 and max(r[x] for r in data) / min(r[x] for r in data) > 50:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("stitched amplitude SSIM vs truth")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


#: SQL of the stage whose output is a scenario's reconstruction, and its key
_RECON_STAGE = "case when s.key_stitch is null then 'iterative' else 'stitch' end"
_RECON_KEY = "coalesce(s.key_stitch, s.key_iterative)"
#: the arms in the order the report shows them side by side
_ARM_ORDER = "case s.model_backend when 'oracle' then 0 when 'torch' then 1 when 'tf' then 2 else 3 end"


def _reconstruction(run: Results, stage: str, key: str) -> Reconstruction:
    return run.output(stage, key, Reconstruction)


def _gallery(run: Results, limit: int = _GALLERY) -> str:
    rows = run.sql(f"""
        select s.scenario_id, s.key_simulate, {_RECON_KEY} as key_recon, {_RECON_STAGE} as recon_stage,
               s.model_backend, s.dose_nphotons,
               s.grouping_gridsize, s.scan_kind, m.ssim
        from scenarios s join metrics m on m.scenario_id = s.scenario_id
        where s.status = 'ok' and m.target = 'stitched' and m.channel = 'amplitude'
        qualify row_number() over (partition by s.model_backend, s.grouping_gridsize, s.scan_kind
                                   order by s.dose_nphotons desc, s.scenario_id) = 1
        order by s.model_backend desc, s.grouping_gridsize, s.scan_kind limit {int(limit)}""").to_pylist()
    if not rows:
        return "<p>No finished scenario to show.</p>"
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for ax_row, r in zip(axes, rows):
        truth = np.abs(run.output("simulate", r["key_simulate"], SimulatedData).object)
        recon = _reconstruction(run, r["recon_stage"], r["key_recon"])
        canvas, coverage = np.abs(recon.canvas), recon.coverage
        title = f"{r['model_backend']} n={r['dose_nphotons']:.0e} g={r['grouping_gridsize']} {r['scan_kind']}"
        for ax, img, name in zip(ax_row, (truth, canvas, coverage), ("truth |O|", "stitched |O|", "coverage")):
            im = ax.imshow(img, cmap="gray" if name != "coverage" else "viridis")
            ax.set_title(f"{name}\n{title}" + (f"  SSIM {r['ssim']:.3f}" if name.startswith("stitched") else ""),
                         fontsize=7)
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def _side_by_side(run: Results, limit: int = 4) -> str:
    """The arms of each data point (the same simulated data) next to each other: the truth and
    every arm's reconstructed amplitude, and a metrics table (PINN, iterative and oracle alike)."""
    table = run.sql(f"""
        with arms as (
          select s.key_simulate, s.dose_nphotons, s.scan_kind, s.grouping_gridsize, {arm_label_sql('s')} as arm,
                 {_ARM_ORDER} as arm_order, {_RECON_KEY} as key_recon, {_RECON_STAGE} as recon_stage,
                 s.scenario_id,
                 coalesce(s.seconds_train, 0) + coalesce(s.seconds_infer, 0) + coalesce(s.seconds_iterative, 0)
                   + coalesce(s.seconds_stitch, 0) as recon_seconds
          from scenarios s where s.status = 'ok'
          qualify row_number() over (partition by s.key_simulate, arm order by s.grouping_gridsize, s.scenario_id) = 1),
        points as (
          select key_simulate from arms group by 1 having count(*) > 1
          order by max(dose_nphotons) desc, min(scan_kind), key_simulate limit {int(limit)})
        select a.*, ma.ssim as amp_ssim, mp.ssim as phase_ssim, ma.mae as amp_mae, ma.psnr as amp_psnr
        from arms a join points using (key_simulate)
        left join metrics ma on ma.scenario_id = a.scenario_id and ma.target = 'stitched' and ma.channel = 'amplitude'
        left join metrics mp on mp.scenario_id = a.scenario_id and mp.target = 'stitched' and mp.channel = 'phase'
        order by a.dose_nphotons desc, a.scan_kind, a.key_simulate, a.arm_order, a.arm""")
    rows = table.to_pylist()
    if not rows:
        return "<p>No data point was reconstructed by more than one arm.</p>"
    points: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        points.setdefault(r["key_simulate"], []).append(r)
    width = 1 + max(len(v) for v in points.values())
    fig, axes = plt.subplots(len(points), width, figsize=(2.6 * width, 2.8 * len(points)), squeeze=False)
    for ax_row, arms in zip(axes, points.values()):
        first = arms[0]
        truth = np.abs(run.output("simulate", first["key_simulate"], SimulatedData).object)
        images = [(truth, f"truth |O|\nn={first['dose_nphotons']:.0e} {first['scan_kind']}")]
        for r in arms:
            recon = _reconstruction(run, r["recon_stage"], r["key_recon"])
            ssim = "" if r["amp_ssim"] is None else f"  SSIM {r['amp_ssim']:.3f}"
            images.append((np.abs(recon.canvas), f"{r['arm']}{ssim}"))
        for i, ax in enumerate(ax_row):
            ax.axis("off")
            if i < len(images):
                ax.imshow(images[i][0], cmap="gray", vmin=0, vmax=float(np.nanmax(truth)))
                ax.set_title(images[i][1], fontsize=7)
    cols = ["dose_nphotons", "scan_kind", "arm", "amp_ssim", "phase_ssim", "amp_mae", "amp_psnr", "recon_seconds"]
    return _png(fig) + _html_table(table.select(cols))


_DIAG_NAMES = ("n_distinct_positions", "n_distinct_offsets", "coverage_share", "canvas_fixed_energy_share",
               "probe_normalization_factor", "mean_total_counts", "groups_achieved", "pred_to_measured_counts",
               "patch_amp_var_ratio", "patch_amp_structure_r", "train_norm_factor", "infer_norm_factor",
               "stitch_kept_weight_share", "patch_minus_stitched_amp_ssim", "scanned_fraction",
               "evaluated_stitched", "patch_score_trained", "patch_score_untrained", "model_probe_energy_ratio",
               "iterative_data_error_ratio", "iterative_probe_error", "iterative_position_error",
               "initial_log_scale", "train_log_scale", "infer_log_scale", "first_nonfinite_epoch")


def _expectations_html(run: Results) -> str:
    """The study's expectations (table ``expectations``, as last evaluated) and the flagged scenarios."""
    rows = run.sql("select name, label as row, value, condition, status, message, description "
                   "from expectations order by name, label")
    out = []
    if rows.num_rows:
        failed = sum(1 for r in rows.to_pylist() if r["status"] != "passed")
        verdict = (f"<p class='bad'>{failed} of {rows.num_rows} checks failed or are broken.</p>" if failed
                   else f"<p class='good'>All {rows.num_rows} checks passed.</p>")
        out.append(f"<h2>Expectations</h2>{verdict}{_html_table(rows)}")
    flagged = run.sql(f"select scenario_id, {arm_label_sql('s')} as arm, flags from scenarios s "
                      "where coalesce(flags, '') <> '' order by 1")
    if flagged.num_rows:
        meanings = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in FLAG_RULES.items())
        out.append(f"<h2>Quality warnings</h2><p class='bad'>{flagged.num_rows} scenario(s) finished ok but "
                   f"are flagged:</p><ul>{meanings}</ul>{_html_table(flagged)}")
    return "".join(out)


def write_report(run: Results) -> str:
    """Write ``report/index.html`` for ``run``; returns its path."""
    info = run.study()
    spec = info["spec"]["study"]
    status = run.sql("select status, count(*) as scenarios from scenarios group by 1 order by 1")
    axes = swept_columns(run)
    cols = ", ".join(f"s.{c}" for c in axes) + ", " if axes else ""
    quality = run.sql(f"""
        select {cols}m.channel, count(*) as n, avg(m.ssim) as ssim, avg(m.psnr) as psnr, avg(m.mae) as mae,
               avg(m.frc_05) as frc_05, avg(b.ls_scale) as ls_scale
        from scenarios s join metrics m on m.scenario_id = s.scenario_id
        left join bias b on b.scenario_id = s.scenario_id and b.dataset is not distinct from m.dataset
        where s.status = 'ok' and m.target = 'stitched' group by all order by all""")
    names = ", ".join(f"'{n}'" for n in _DIAG_NAMES)
    diag = run.sql(f"""select d.name, min(d.value) as min, avg(d.value) as mean, max(d.value) as max
        from diagnostics d where d.name in ({names}) group by 1 order by 1""")
    failed = run.sql("select scenario_id, status, failed_stage, error from scenarios where status <> 'ok'")
    checks = _expectations_html(run)
    parity, seeds = parity_overview(run), training_parity(run)
    parity_html = "" if not parity.num_rows else f"""<h2>Backend parity</h2><p>fwd_ok: the two backends run
with the same (transplanted) weights agree to the forward-parity tolerance. delta_amp_ssim: stitched amplitude
SSIM vs truth of arm a minus arm b, each trained separately.</p>{_html_table(parity)}""" + (
        "" if not seeds.num_rows else f"""<h3>Training parity vs seed spread</h3><p>tolerance = 3 sqrt(std_a^2 +
std_b^2), the SSIM standard deviations over training seeds within each arm; z tests a systematic offset of the
mean delta.</p>{_html_table(seeds)}""")
    body = f"""<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec['name'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px}} th{{background:#eee}} .bad{{color:#b00}} .good{{color:#070}}</style></head><body>
<h1>Study {html.escape(spec['name'])}</h1><p>{html.escape(spec.get('description', ''))}</p>
<p>{len(run.scenario_ids)} scenarios, seed {spec['seed']}, ptycho-dist {html.escape(str(info.get('ptycho_dist_version')))},
git {html.escape(str(info.get('git_revision')))}</p>{_html_table(status)}
{checks}
<h2>Quality vs the swept parameters</h2>{_quality_figure(run, axes)}{_html_table(quality)}
<h2>Arms side by side</h2><p>Each data point (the same simulated counts) reconstructed by every arm that
ran on it: the oracle (true patches stitched), the PINN (torch, tf) and the iterative engine (pty-chi), on one
grey scale; the table gives their stitched metrics against the truth (gridsize 1 where several were run) and
the reconstruction seconds (training + inference + stitch, or the iterative engine).</p>{_side_by_side(run)}
<h2>Reconstructions</h2>{_gallery(run)}
<h2>Diagnostics</h2><p>A collapse of offsets shows as n_distinct_positions = 1; a clipping canvas as
canvas_fixed_energy_share &lt; 1 (the share of the energy the older fixed-size canvas would keep); a
washed-out model as patch_amp_var_ratio far below 1; a model that learned each patch's mean amplitude but
not its structure as patch_amp_structure_r near 0 (1: the true structure); a lost intensity scale as pred_to_measured_counts
far from 1.</p>{_html_table(diag)}
{parity_html}
<h2>Failures</h2>{_html_table(failed) if failed.num_rows else '<p>None.</p>'}
<h2>Stages</h2><p>Distinct outputs per stage (a stage shared by several scenarios runs once), computed in
the run that recorded them or taken from the cache, and their compute seconds.</p>{_html_table(stage_overview(run))}
<h2>Study</h2><pre>{html.escape(json.dumps(info['spec']['study'], indent=1))}</pre>
</body></html>"""
    path = run.layout.report / "index.html"
    write_text_atomic(path, body)
    return str(path)
