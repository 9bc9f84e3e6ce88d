"""Study specs: frozen scenario models, study files and grid expansion, content-addressed keys.

Pure: no I/O (reading the file is :func:`ptycho_dist.storage.specs.load_study`).
"""

from __future__ import annotations

from ptycho_dist.study.keys import (
    STAGE_VERSIONS,
    canonical_json,
    derive_seed,
    pair_signature,
    scenario_id,
    seed_cell,
    stage_key,
)
from ptycho_dist.study.plan import (
    PairKeys,
    Plan,
    ScenarioKeys,
    StageTask,
    build_plan,
    find_pairs,
    pair_keys,
    scenario_keys,
    scenario_tasks,
)
from ptycho_dist.study.registry import REGISTRY, STAGES, Input, StageDef, stage_def, stage_names
from ptycho_dist.study.schema import study_json_schema
from ptycho_dist.study.spec import (
    DoseSpec,
    EvaluationSpec,
    FaultsSpec,
    GroupingSpec,
    ModelSpec,
    ObjectSpec,
    ProbeSpec,
    ResourcesSpec,
    RuntimeEnvSpec,
    Scenario,
    ScanSpec,
    StitchSpec,
    TrainingSpec,
)
from ptycho_dist.study.expect import Condition, Expectation, parse_condition
from ptycho_dist.study.study import Axis, Study, StudyFile, StudyMeta, axis_paths, parse_study, study_from_dict

__all__ = [
    "REGISTRY", "STAGES", "Input", "StageDef", "stage_def", "stage_names", "Plan", "StageTask",
    "build_plan", "find_pairs", "scenario_tasks",
    "STAGE_VERSIONS", "PairKeys", "pair_keys", "pair_signature", "seed_cell", "ScenarioKeys", "canonical_json", "derive_seed", "scenario_id", "scenario_keys",
    "stage_key", "study_json_schema", "DoseSpec", "EvaluationSpec", "GroupingSpec", "ModelSpec",
    "ObjectSpec", "ProbeSpec", "ResourcesSpec", "Scenario", "ScanSpec", "StitchSpec", "TrainingSpec",
    "Axis", "Study", "StudyFile", "StudyMeta", "axis_paths", "parse_study", "study_from_dict",
    "Condition", "Expectation", "parse_condition", "FaultsSpec", "RuntimeEnvSpec",
]
