"""The iterative arm: pty-chi's reconstruction engines on this project's data (``iterative`` extra).

* :mod:`ptycho_dist.models.iterative.conventions`: the mapping from this project's conventions to
  pty-chi's (positions, probe scale, data, object padding); pure numpy, importable without pty-chi.
* :mod:`ptycho_dist.models.iterative.engine`: :func:`reconstruct` runs one reconstruction (imports
  torch and pty-chi; run it in a process of its own: pty-chi changes torch's global default
  device and dtype).

docs/conventions.md ("The iterative arm") writes the mapping out with the tests that pin it.
"""

from __future__ import annotations

from ptycho_dist.models.iterative.conventions import (
    OBJECT_PAD,
    from_ptychi_positions,
    ptychi_origin,
    ptychi_probe,
    to_ptychi_positions,
)

__all__ = ["OBJECT_PAD", "ptychi_origin", "to_ptychi_positions", "from_ptychi_positions", "ptychi_probe",
           "install_hint"]


def install_hint() -> str:
    """How to install the iterative arm's dependencies."""
    return ("the iterative arm needs pty-chi: install with `pip install -c requirements/cpu-constraints.txt "
            "-e '.[torch,iterative]'` (README: 'The iterative arm'; GPU clusters: cluster/README.md)")
