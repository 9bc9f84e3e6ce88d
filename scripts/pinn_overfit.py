"""Fit the torch PINN to a handful of simulated patterns and watch when it learns their structure.

A diagnostic, not part of a study: it shows how many Adam steps the network needs before the
per-patch structure of the object appears (README, "Status and known limitations"). It reads the
simulated arrays of any finished run, fits the first ``--patterns`` patterns (gridsize 1) with
plain Adam on one process, and prints, every tenth of the run, the loss on those patterns, the mean
per-patch correlation of predicted and true amplitude on the central ``--crop`` pixels
(``patch_amp_structure_r``), and the intensity scale. It also prints the loss of the true patches
through the same physics layer (the floor a perfect model reaches) and of ``lambda = counts``.

    .venv/bin/python scripts/pinn_overfit.py runs/lines_widths --patterns 16 --steps 600 --lr 5e-4   # after studies/investigations/lines_widths.toml
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from ptycho_dist.evaluation.diagnostics import patch_statistics
from ptycho_dist.models import PinnConfig, central_window, normalization_factor, normalized_inputs
from ptycho_dist.models.torch.layers import far_field_amplitude
from ptycho_dist.models.torch.losses import mae_amplitude, poisson_nll
from ptycho_dist.models.torch.net import PinnNet
from ptycho_dist.results import open as open_run
from ptycho_dist.storage.outputs import SimulatedData


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a finished run (OUT/<study>); its first simulate output is used")
    ap.add_argument("--patterns", type=int, default=16, help="number of patterns to fit (default 16)")
    ap.add_argument("--steps", type=int, default=600, help="Adam steps (default 600)")
    ap.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    ap.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    ap.add_argument("--loss", choices=["poisson", "mae"], default="poisson")
    ap.add_argument("--filters", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--crop", type=int, default=20, help="structure_r on the central crop (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.patterns < 1 or args.steps < 10 or args.batch < 1:
        ap.error("--patterns and --batch must be >= 1, --steps >= 10")

    run = open_run(args.run_dir)
    keys = sorted(r["key_simulate"] for r in run.sql(
        "select distinct key_simulate from scenarios where key_simulate is not null").to_pylist())
    keys = [key for key in keys if run.layout.outputs.is_complete("simulate", key)]
    if not keys:
        print(f"{args.run_dir}: no simulate output", file=sys.stderr)
        return 2
    sim = run.output("simulate", keys[0], SimulatedData)
    counts = np.asarray(sim.counts[: args.patterns], dtype=np.float32)
    truth = np.asarray(sim.truth_patches[: args.patterns])
    probe = np.asarray(sim.probe)
    scale = sim.scale
    n = probe.shape[-1]
    cfg = PinnConfig(n=n, gridsize=1, filters=tuple(args.filters), lr=args.lr, loss=args.loss)
    loss_fn = poisson_nll if args.loss == "poisson" else mae_amplitude
    factor = normalization_factor(np.sqrt(counts) / scale)
    x = torch.from_numpy(normalized_inputs(counts[:, None], scale=scale, norm_factor=factor))
    k = torch.from_numpy(counts[:, None])
    rel = torch.zeros(len(counts), 1, 2)
    window = central_window(n)
    with torch.no_grad():
        true_obj = torch.from_numpy((truth * window).astype(np.complex64))[:, None]
        floor = loss_fn(far_field_amplitude(true_obj, torch.from_numpy(probe), torch.tensor(np.log(scale))), k)
        exact = loss_fn(torch.sqrt(k), k)
    print(f"{len(counts)} patterns of {args.run_dir} (sim {keys[0][:12]}), scale {scale:.1f}; "
          f"loss of the true patches {float(floor):.4g}, of lambda = counts {float(exact):.4g}")

    torch.manual_seed(args.seed)
    net = PinnNet(cfg, probe, log_scale=float(np.log(scale)))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    every = max(1, args.steps // 10)
    for step in range(args.steps + 1):
        if step % every == 0:
            with torch.no_grad():
                obj, amp = net(x, rel)
                r = patch_statistics(obj.numpy()[:, 0] * window, truth * window,
                                     structure_crop=args.crop)["patch_amp_structure_r"]
            print(f"step {step:5d}  loss {float(loss_fn(amp, k)):10.4g}  structure_r {r:6.3f}  "
                  f"intensity scale {float(net.log_scale.detach().exp()):8.1f}  {time.perf_counter() - t0:6.0f} s",
                  flush=True)
        if step == args.steps:
            break
        idx = torch.randperm(len(counts), generator=gen)[: args.batch]
        _, amp = net(x[idx], rel[idx])
        loss = loss_fn(amp, k[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
