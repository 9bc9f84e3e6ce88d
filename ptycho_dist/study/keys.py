"""Content-addressed stage keys and derived seeds (DESIGN.md §5).

A stage key is the SHA-256 (hex) of the canonical JSON of ``{"stage", "version", "spec", "upstream"}``:
the stage name, its algorithm version, the spec fields that affect its output, and the keys of the
stages it reads. Canonical JSON sorts keys, has no whitespace, is ASCII, and refuses NaN/inf, so the
order in which fields were written never changes a key. Scenarios that share a stage's inputs share
its key, and therefore its stored output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ptycho_dist.study.registry import REGISTRY
from ptycho_dist.study.spec import Scenario

__all__ = [
    "STAGE_VERSIONS",
    "canonical_json",
    "stage_key",
    "derive_seed",
    "scenario_id",
    "pair_signature",
    "seed_cell",
]

#: stage name -> algorithm version, from the registry (bump it there when a stage's output changes)
STAGE_VERSIONS: dict[str, int] = {d.name: d.version for d in REGISTRY}


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, compact separators, ASCII, no NaN/inf."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def stage_key(stage: str, spec: Mapping[str, Any], upstream: Sequence[str] = ()) -> str:
    """SHA-256 hex digest identifying one stage's output.

    Parameters
    ----------
    stage : str
        Stage name, one of the registry's (:data:`ptycho_dist.study.registry.STAGES`).
    spec : mapping
        JSON-compatible fields of the scenario that affect this stage.
    upstream : sequence of str
        Keys of the stages whose outputs this stage reads, in a fixed order.
    """
    payload = {"stage": stage, "version": STAGE_VERSIONS[stage], "spec": spec, "upstream": list(upstream)}
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


def derive_seed(study_seed: int, key: str) -> int:
    """A 63-bit seed for the random draws of the stage ``key`` under ``study_seed``.

    Independent of worker, order and process: ``SHA-256(f"{study_seed}:{key}")``'s first 8 bytes.
    """
    digest = hashlib.sha256(f"{study_seed}:{key}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def scenario_id(scenario: Scenario) -> str:
    """Identity of a whole scenario: the first 16 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(scenario.to_dict()).encode("ascii")).hexdigest()[:16]


def pair_signature(s: Scenario) -> str | None:
    """What two model arms must share to be compared for parity (None for the oracle arm).

    Everything but ``model.backend`` and the ``faults`` section (a convention fork, like the sign of
    the relative coordinates, is exactly what parity must expose): same data, grouping, architecture,
    training, stitching and evaluation.
    """
    if s.model.backend == "oracle":
        return None
    data = s.to_dict()
    data["model"] = {k: v for k, v in data["model"].items() if k != "backend"}
    data.pop("resources")
    data.pop("faults")
    return canonical_json(data)


def seed_cell(s: Scenario) -> str | None:
    """What model arms that differ only in ``training.seed`` (and backend/sign) share; 16 hex digits.

    Pairs of one cell are the same comparison repeated with other training seeds on the same data,
    so the spread within a cell measures seed noise (None for the oracle arm).
    """
    signature = pair_signature(s)
    if signature is None:
        return None
    data = json.loads(signature)
    data["training"].pop("seed")
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]
