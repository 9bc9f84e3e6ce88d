"""cluster/aws.yaml and cluster/gcp.yaml pass Ray's own cluster-config validation (offline: the
launcher's defaults are merged and the result checked against ray/autoscaler/ray-schema.json)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"aws": ROOT / "cluster" / "aws.yaml", "gcp": ROOT / "cluster" / "gcp.yaml"}


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load(CONFIGS[name].read_text())
    assert isinstance(data, dict)
    return data


def check(config: dict[str, Any]) -> dict[str, Any]:
    """What ``ray up`` does before it contacts a cloud: defaults merged, then the schema checks."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_passes_rays_validation(name: str) -> None:
    config = load(name)
    assert config["provider"]["type"] == name
    prepared = check(config)
    types = prepared["available_node_types"]
    assert set(types) == {"head_cpu", "worker_gpu"}
    assert prepared["head_node_type"] == "head_cpu"
    assert types["head_cpu"]["resources"].get("GPU", 0) == 0
    assert types["worker_gpu"]["resources"]["GPU"] >= 1
    assert types["worker_gpu"]["min_workers"] == 0
    assert 1 <= types["worker_gpu"]["max_workers"] <= prepared["max_workers"]
    assert prepared["idle_timeout_minutes"] > 0
    docker = prepared["docker"]
    assert docker["image"].endswith("ptycho-dist:cuda") and docker["head_image"].endswith("ptycho-dist:cpu")
    assert "--gpus all" in docker["worker_run_options"]
    assert "~/.ray/auth_token" in prepared["file_mounts"]
    for cmd in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("RAY_AUTH_MODE=token" in c and "ray start" in c for c in prepared[cmd])
    text = CONFIGS[name].read_text()
    assert 'see README "Object storage"' in text


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("breakage", ["unknown_top_level", "bad_max_workers", "head_type_missing", "min_over_max"])
def test_a_broken_copy_fails(name: str, breakage: str) -> None:
    config = load(name)
    if breakage == "unknown_top_level":
        config["max_worker"] = 3  # a misspelt key: the schema has additionalProperties false
    elif breakage == "bad_max_workers":
        config["available_node_types"]["worker_gpu"]["max_workers"] = "eight"
    elif breakage == "head_type_missing":
        config["head_node_type"] = "head_gpu"
    else:
        config["available_node_types"]["worker_gpu"]["min_workers"] = 20
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        check(config)
