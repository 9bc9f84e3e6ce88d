"""Small PINN training sets for the model tests, made by the package's own physics and grouping.

The same chain as a study's simulate and group stages (object, normalized probe, raster scan,
Poisson counts, neighbour groups), at test sizes. Used by tests/models, tests/tf and
tests/orchestration; it imports neither torch nor TensorFlow.
"""

from __future__ import annotations

import numpy as np

from ptycho_dist import grouping, physics
from ptycho_dist.models import TrainData

__all__ = ["simulated_train_data"]


def simulated_train_data(*, n: int = 32, gridsize: int = 1, n_groups: int = 40,
                         nphotons: float = 1e5, noise: bool = True,
                         rng: np.random.Generator | int | None = None) -> TrainData:
    """Training data simulated with :mod:`ptycho_dist.physics` and grouped with
    :func:`ptycho_dist.grouping.group_positions`.

    Object: (3N, 3N) lines object (100 segments, amplitude 0.5-1, phase 0-0.5 rad); probe:
    ``disk_probe(n)`` normalized with probe_scale 4; scan: raster grid with step N/8
    (17 x 17 = 289 positions, so neighbours overlap by 7/8 of a patch); counts:
    ``simulate_patterns`` at ``nphotons``; groups: ``n_groups`` groups of ``gridsize**2`` members
    among the K = max(6, C - 1) nearest neighbours.

    Parameters
    ----------
    n : int
        Patch side N (a power of two).
    gridsize : int
        Group side; C = gridsize**2 members.
    n_groups : int
        Number of groups B.
    nphotons : float
        Mean total counts per pattern.
    noise : bool
        Poisson counts (True) or expected counts.
    rng : Generator, int or None
        Random source of the object, the counts and the groups.

    Returns
    -------
    TrainData
        counts float32 (B, C, N, N), probe complex64 (N, N), relative float64 (B, C, 2) with
        ``relative = member - group centre``.
    """
    gen = np.random.default_rng(rng)
    obj = physics.lines_object((3 * n, 3 * n), n_lines=100, rng=gen)
    probe, _ = physics.normalize_probe(physics.disk_probe(n))
    positions = physics.grid_scan(obj.shape, n, step=n / 8)
    sim = physics.simulate_patterns(obj, probe, positions, nphotons=nphotons, noise=noise, rng=gen)
    groups = grouping.group_positions(positions, gridsize=gridsize,
                                      k_neighbors=max(6, gridsize**2 - 1), n_groups=n_groups,
                                      rng=gen)
    return TrainData(counts=sim.counts[groups.indices], scale=float(sim.scale), probe=probe,
                     relative=groups.relative, nphotons=float(nphotons))
