"""cluster/kuberay/rayjob.yaml against the RayJob v1 API (a trimmed copy of the CRD's schema) and its
entrypoint against ptycho-dist's own command-line parser and study loader."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ptycho_dist.cli import build_parser
from ptycho_dist.storage.specs import load_study

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "cluster" / "kuberay" / "rayjob.yaml"
SCHEMA = json.loads((ROOT / "cluster" / "kuberay" / "rayjob.schema.json").read_text())


def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


def errors(doc: dict[str, Any]) -> list[str]:
    v = jsonschema.Draft202012Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]


def test_schema_is_a_valid_json_schema_naming_its_source() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert "ray.io_rayjobs.yaml" in SCHEMA["$comment"]


def test_manifest_matches_the_rayjob_schema() -> None:
    assert errors(manifest()) == []


def test_manifest_uses_the_image_a_volume_and_gpu_workers() -> None:
    spec = manifest()["spec"]["rayClusterSpec"]
    head = spec["headGroupSpec"]["template"]["spec"]
    assert head["containers"][0]["image"].endswith("ptycho-dist:cpu")
    [gpu] = spec["workerGroupSpecs"]
    worker = gpu["template"]["spec"]
    assert worker["containers"][0]["image"].endswith("ptycho-dist:cuda")
    assert int(worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    for pod in (head, worker):
        assert pod["securityContext"]["runAsNonRoot"] is True
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["runs"] == "/data"
        assert {v["name"] for v in pod["volumes"]} >= {"runs"}
    assert spec["rayVersion"] == __import__("ray").__version__
    assert spec["authOptions"] == {"mode": "token"}


@pytest.mark.parametrize("breakage", ["typo", "entrypoint", "replicas", "quantity", "container_name", "api"])
def test_a_broken_manifest_fails(breakage: str) -> None:
    doc = copy.deepcopy(manifest())
    spec = doc["spec"]
    worker = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    if breakage == "typo":
        spec["shutdownAfterJobFinish"] = True
    elif breakage == "entrypoint":
        del spec["entrypoint"]
    elif breakage == "replicas":
        worker["replicas"] = "one"
    elif breakage == "quantity":
        worker["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "64 GB"
    elif breakage == "container_name":
        del worker["template"]["spec"]["containers"][0]["name"]
    else:
        doc["apiVersion"] = "ray.io/v1alpha1"
    assert errors(doc)


def test_entrypoint_is_a_ptycho_dist_run_of_a_study_in_the_repository() -> None:
    words = shlex.split(manifest()["spec"]["entrypoint"])
    assert words[0] == "ptycho-dist"
    args = build_parser().parse_args(words[1:])
    assert args.command == "run"
    assert args.func.__name__ == "cmd_run"
    assert args.out == "/data/runs" and args.no_progress
    study = load_study(ROOT / args.spec)  # the image's working directory is the repository's root
    assert study.scenarios


def test_a_wrong_entrypoint_is_caught() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(shlex.split("run studies/quickstart.toml --outt /data"))
    from ptycho_dist.errors import SpecError

    with pytest.raises(SpecError):
        load_study(ROOT / "studies" / "no_such_study.toml")
