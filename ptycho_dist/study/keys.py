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
from dataclasses import dataclass
from typing import Any

from ptycho_dist.study.spec import Scenario

__all__ = [
    "STAGE_VERSIONS",
    "canonical_json",
    "stage_key",
    "derive_seed",
    "scenario_id",
    "ScenarioKeys",
    "scenario_keys",
    "PairKeys",
    "pair_signature",
    "pair_keys",
    "seed_cell",
]

#: Bump a stage's version when its algorithm changes, so stored outputs are not reused.
STAGE_VERSIONS: dict[str, int] = {
    "simulate": 1,
    "group": 1,
    "train": 1,
    "infer": 1,
    "oracle": 1,
    "stitch": 1,
    "evaluate": 2,
    "transplant": 1,
    "parity": 1,
}


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, compact separators, ASCII, no NaN/inf."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def stage_key(stage: str, spec: Mapping[str, Any], upstream: Sequence[str] = ()) -> str:
    """SHA-256 hex digest identifying one stage's output.

    Parameters
    ----------
    stage : str
        Stage name, one of :data:`STAGE_VERSIONS`.
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


@dataclass(frozen=True)
class ScenarioKeys:
    """Stage keys of one scenario. ``oracle`` is None for a model arm, ``train``/``infer`` for the oracle."""

    scenario: str
    simulate: str
    group: str
    oracle: str | None
    train: str | None
    infer: str | None
    stitch: str
    evaluate: str

    def chain(self) -> list[tuple[str, str]]:
        """(stage, key) in execution order; each stage depends on the one before it."""
        order = ("simulate", "group", "oracle", "train", "infer", "stitch", "evaluate")
        return [(stage, key) for stage in order if (key := getattr(self, stage)) is not None]

    def as_dict(self) -> dict[str, str | None]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, str | None]) -> ScenarioKeys:
        return cls(**data)  # type: ignore[arg-type]


def scenario_keys(s: Scenario) -> ScenarioKeys:
    """Derive every stage key of scenario ``s`` from the spec fields that affect each stage."""
    sim = stage_key(
        "simulate",
        {"object": s.object.to_dict(), "probe": s.probe.to_dict(), "scan": s.scan.to_dict(),
         "dose": s.dose.to_dict(), "seed": s.seed, "replicate": s.replicate},
    )
    grp = stage_key("group", {"grouping": s.grouping.to_dict(), "seed": s.seed}, [sim])
    if s.model.backend == "oracle":
        train = infer = None
        oracle = pred = stage_key("oracle", {}, [sim, grp])
    else:
        train = stage_key(
            "train", {"model": s.model.to_dict(), "training": s.training.to_dict(), "seed": s.seed}, [sim, grp]
        )
        infer = stage_key("infer", {"backend": s.model.backend}, [train, grp])
        oracle, pred = None, infer
    stitch = stage_key("stitch", {"stitch": s.stitch.to_dict()}, [pred, sim, grp])
    evaluate = stage_key("evaluate", {"evaluation": s.evaluation.to_dict()}, [stitch, sim, grp, pred])
    return ScenarioKeys(scenario_id(s), sim, grp, oracle, train, infer, stitch, evaluate)


def pair_signature(s: Scenario) -> str | None:
    """What two model arms must share to be compared for parity (None for the oracle arm).

    Everything but ``model.backend`` and ``model.relative_sign`` (a convention fork is exactly what
    parity must expose): same data, grouping, architecture, training, stitching and evaluation.
    """
    if s.model.backend == "oracle":
        return None
    data = s.to_dict()
    data["model"] = {k: v for k, v in data["model"].items() if k not in ("backend", "relative_sign")}
    data.pop("resources")
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


@dataclass(frozen=True)
class PairKeys:
    """Keys of the parity comparison of arm ``a`` with arm ``b`` (same data, other backend)."""

    pair_id: str
    a: ScenarioKeys
    b: ScenarioKeys
    transplant_ab: str  # a's bundle run by b's backend
    transplant_ba: str  # b's bundle run by a's backend
    parity: str


def pair_keys(a: Scenario, b: Scenario) -> PairKeys:
    """Keys of the parity stages of arms ``a`` and ``b``."""
    ka, kb = scenario_keys(a), scenario_keys(b)
    assert ka.train is not None and kb.train is not None
    ab = stage_key("transplant", {"target": b.model.backend, "relative_sign": b.model.relative_sign},
                   [ka.train, ka.group])
    ba = stage_key("transplant", {"target": a.model.backend, "relative_sign": a.model.relative_sign},
                   [kb.train, kb.group])
    par = stage_key("parity", {}, [ka.evaluate, kb.evaluate, ab, ba])
    return PairKeys(par[:16], ka, kb, ab, ba, par)
