"""Per-backend Ray runtime environments: the ``[runtime_env]`` spec table, the ``--runtime-env`` flag,
the task options, and (on the local Ray) that an environment reaches the tasks of its backend only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from runner_specs import SMALL_BASE, TINY
from ptycho_dist.errors import SpecError
from ptycho_dist.orchestration import driver as driver_mod
from ptycho_dist.orchestration.driver import RunOptions, run_study
from ptycho_dist.orchestration.tasks import runtime_env_target, task_options
from ptycho_dist.storage.specs import load_runtime_env
from ptycho_dist.study import RuntimeEnvSpec, build_plan, parse_study, scenario_id, scenario_keys, study_json_schema

ALL_BACKENDS = TINY.format(name="renv", replicates=1).replace(
    '"scan.kind" = ["grid", "random"]', '"model.backend" = ["oracle", "torch", "tf", "ptychi"]')


def with_env(text: str, table: str) -> str:
    return text.replace("[axes]", table + "\n[axes]", 1)


def test_spec_table_is_parsed_and_validated() -> None:
    study = parse_study(with_env(ALL_BACKENDS, '[runtime_env.tf]\nenv_vars = { CUDA_MODULE_LOADING = "LAZY" }\n'
                                               'py_executable = "/opt/tf-env/bin/python"\n'
                                               '[runtime_env.torch]\npip = ["einops==0.8.1"]\n'))
    assert study.runtime_env.tf is not None and study.runtime_env.tf.to_ray() == {
        "env_vars": {"CUDA_MODULE_LOADING": "LAZY"}, "py_executable": "/opt/tf-env/bin/python"}
    assert study.runtime_env.torch is not None and study.runtime_env.torch.to_ray() == {"pip": ["einops==0.8.1"]}
    assert study.runtime_env.base is None and study.runtime_env.ptychi is None


@pytest.mark.parametrize("table,where", [
    ('[runtime_env.jax]\nenv_vars = { A = "1" }', "runtime_env: unknown key 'jax'"),                     # not a backend
    ('[runtime_env.tf]\nenv_var = { A = "1" }', "runtime_env.tf: unknown key 'env_var'"),                   # misspelt field
    ('[runtime_env.tf]\nenv_vars = { A = 1 }', "runtime_env.tf.env_vars.A"),                 # Ray wants strings
    ('[runtime_env.tf]\npip = ["x"]\nconda = "tf"', "runtime_env.tf"),                       # Ray: one manager
    ('[runtime_env.tf]\nimage_uri = "img"\npip = ["x"]', "runtime_env.tf"),                  # Ray: image_uri alone
    ('[runtime_env.tf]\nenv_vars = { PTYCHO_DIST_BACKEND = "torch" }', "runtime_env.tf"),    # set by us
    ('[runtime_env.tf]\nconfig = { setup_timeout_seconds = 0 }', "runtime_env.tf.config"),   # Ray refuses 0
    ('[runtime_env.tf]\nworking_dir = "."', "runtime_env.tf: unknown key 'working_dir'"),                   # not offered
])
def test_bad_runtime_env_is_a_spec_error_naming_the_field(table: str, where: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_study(with_env(ALL_BACKENDS, table), source="x.toml")
    assert str(err.value).startswith(f"x.toml: {where}"), str(err.value)


def test_runtime_env_changes_no_scenario_id_or_key() -> None:
    plain = parse_study(ALL_BACKENDS)
    with_renv = parse_study(with_env(ALL_BACKENDS, '[runtime_env.tf]\nenv_vars = { A = "1" }\n'
                                                   '[runtime_env.base]\npip = ["numpy"]'))
    assert with_renv.runtime_env != plain.runtime_env
    assert [scenario_id(s) for s in plain.scenarios] == [scenario_id(s) for s in with_renv.scenarios]
    assert [scenario_keys(s) for s in plain.scenarios] == [scenario_keys(s) for s in with_renv.scenarios]
    assert set(build_plan(plain).nodes) == set(build_plan(with_renv).nodes)
    assert plain.to_dict() == with_renv.to_dict()  # study.json: the run's identity is unchanged


def test_schema_has_the_table() -> None:
    schema = study_json_schema()
    text = json.dumps(schema)
    assert "runtime_env" in schema["properties"] and "BackendRuntimeEnv" in text
    repo = Path(__file__).resolve().parents[2] / "schemas" / "study.schema.json"
    assert json.loads(repo.read_text()) == schema


def _options_by_target(study_text: str, renv: RuntimeEnvSpec | None) -> dict[str, list[dict[str, Any]]]:
    study = parse_study(study_text)
    out: dict[str, list[dict[str, Any]]] = {}
    for node in build_plan(study).nodes.values():
        opts = task_options(node.task, has_gpu=False, runtime_env=renv)
        out.setdefault(f"{runtime_env_target(node.task)}:{node.task.stage}", []).append(opts)
    return out


def test_task_options_apply_each_backends_env_only() -> None:
    renv = RuntimeEnvSpec.from_dict({"tf": {"env_vars": {"MARK": "tf"}}, "base": {"env_vars": {"MARK": "base"}}})
    by = _options_by_target(ALL_BACKENDS, renv)
    assert {"tf:train", "torch:train", "ptychi:iterative", "base:simulate"} <= set(by)
    for key, options in by.items():
        target = key.split(":")[0]
        for opts in options:
            env = opts.get("runtime_env", {}).get("env_vars", {})
            assert env.get("MARK") == {"tf": "tf", "base": "base"}.get(target), (key, opts)
            if target in ("torch", "tf", "ptychi"):  # ptycho-dist's own variables stay
                assert env["PTYCHO_DIST_BACKEND"] == target
    plain = _options_by_target(ALL_BACKENDS, None)
    assert all("runtime_env" not in o for k, v in plain.items() if k.startswith("base:") for o in v)


def test_cli_flag_file(tmp_path: Path) -> None:
    f = tmp_path / "tf.json"
    f.write_text(json.dumps({"env_vars": {"A": "1"}, "pip": ["x==1"]}))
    spec = load_runtime_env(f"tf={f}")
    assert spec.tf is not None and spec.tf.to_ray() == {"env_vars": {"A": "1"}, "pip": ["x==1"]}
    f.write_text(json.dumps({"env_vars": {"A": 1}}))
    with pytest.raises(SpecError, match=r"tf.json: runtime_env.tf.env_vars.A"):
        load_runtime_env(f"tf={f}")
    for bad in ("tf", f"jax={f}", f"tf={tmp_path / 'missing.json'}"):
        with pytest.raises(SpecError):
            load_runtime_env(bad)
    file_env = RuntimeEnvSpec.from_dict({"tf": {"env_vars": {"B": "2"}}, "torch": {"env_vars": {"C": "3"}}})
    merged = file_env.merged(RuntimeEnvSpec.from_dict({"tf": {"env_vars": {"A": "1"}}}))
    assert merged.tf is not None and merged.tf.env_vars == {"A": "1"} and merged.torch == file_env.torch


@pytest.mark.ray
def test_env_var_reaches_the_named_backends_tasks_only(ray_session: Any) -> None:
    """The options task_options gives each task of a plan, used on the local Ray: the variable is set
    inside the tasks of the named backend (torch) and in no other task."""
    ray = ray_session

    def _probe(name: str) -> str | None:  # a local function: Ray ships it by value
        return os.environ.get(name)

    probe = ray.remote(_probe)
    renv = RuntimeEnvSpec.from_dict({"torch": {"env_vars": {"PTYCHO_DIST_TEST_RENV": "torch-env"}}})
    study = parse_study(ALL_BACKENDS)
    seen: dict[str, set[str | None]] = {}
    refs = []
    for node in build_plan(study).nodes.values():
        opts = task_options(node.task, has_gpu=False, runtime_env=renv)
        opts = {k: v for k, v in opts.items() if k in ("runtime_env",)}
        refs.append((runtime_env_target(node.task), probe.options(num_cpus=0.5, **opts).remote("PTYCHO_DIST_TEST_RENV")))
    for target, ref in refs:
        seen.setdefault(target, set()).add(ray.get(ref, timeout=300))
    assert seen["torch"] == {"torch-env"}
    for target in ("base", "tf", "ptychi"):
        assert seen[target] == {None}, (target, seen)


@pytest.mark.ray
def test_driver_applies_the_spec_and_the_flag(ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole run on the local Ray: every task the driver submits carries the environment of its
    target (the study's table, replaced by RunOptions.runtime_env for the backends it sets), and the run
    is ok."""
    captured: list[tuple[str, dict[str, Any]]] = []
    real = driver_mod.task_options

    def spy(task: Any, **kw: Any) -> dict[str, Any]:
        opts = real(task, **kw)
        captured.append((runtime_env_target(task), opts))
        return opts

    monkeypatch.setattr(driver_mod, "task_options", spy)
    text = with_env(TINY.format(name="renv_run", replicates=1), '[runtime_env.base]\nenv_vars = { FROM = "file" }')
    study = parse_study(text)
    flag = RuntimeEnvSpec.from_dict({"base": {"env_vars": {"FROM": "flag"}}})
    summary = run_study(study, RunOptions(out=tmp_path / "runs", progress=False, runtime_env=flag))
    assert dict(summary.status) == {"ok": 4}
    assert captured and all(t == "base" for t, _ in captured)
    assert all(o["runtime_env"] == {"env_vars": {"FROM": "flag"}} for _, o in captured)


TORCH_AND_ORACLE = '[study]\nname = "renv_torch"\nseed = 2\n' + SMALL_BASE + """
[base.model]
filters = [8, 16]
[base.training]
epochs = 1
batch_size = 8
[runtime_env.torch]
env_vars = { PTYCHO_DIST_TEST_RENV = "torch-env" }
[axes]
"model.backend" = ["oracle", "torch"]
"""


@pytest.mark.ray
def test_env_var_is_set_inside_the_real_stage_tasks_of_its_backend(
        ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of an oracle and a torch arm with ``[runtime_env.torch]``: every stage task the driver
    submits runs the real stage function and records, from inside its worker, the variable: set in
    the torch model stages (train, infer), unset in every other stage."""
    ray = ray_session
    seen_dir = tmp_path / "seen"
    seen_dir.mkdir()

    def probed(run_dir: str, task: dict[str, Any], fault: Any = None) -> dict[str, Any]:
        import json as _json
        import os as _os
        import uuid

        from ptycho_dist.orchestration.tasks import _run_stage

        outcome = _run_stage(run_dir, task, fault)
        record = {"stage": task["stage"], "backend": _os.environ.get("PTYCHO_DIST_BACKEND"),
                  "mark": _os.environ.get("PTYCHO_DIST_TEST_RENV")}
        (seen_dir / f"{uuid.uuid4().hex}.json").write_text(_json.dumps(record))
        return outcome

    remote = ray.remote(max_retries=3, retry_exceptions=False)(probed)
    monkeypatch.setattr(driver_mod, "remote_for", lambda task: remote)
    summary = run_study(parse_study(TORCH_AND_ORACLE), RunOptions(out=tmp_path / "runs", progress=False))
    assert dict(summary.status) == {"ok": 2}, summary.failures
    records = [json.loads(p.read_text()) for p in seen_dir.iterdir()]
    torch_stages = {r["stage"] for r in records if r["backend"] == "torch"}
    assert {"train", "infer"} <= torch_stages
    assert {r["stage"] for r in records} >= {"simulate", "group", "train", "infer", "stitch", "evaluate"}
    for r in records:
        assert r["mark"] == ("torch-env" if r["backend"] == "torch" else None), r


def test_cli_flag_errors_exit_2_before_ray_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ptycho_dist.cli import build_parser, main

    spec = tmp_path / "s.toml"
    spec.write_text(TINY.format(name="cli_renv", replicates=1))
    args = build_parser().parse_args(["run", str(spec), "--runtime-env", "tf=a.json", "--runtime-env", "base=b.json"])
    assert args.runtime_env == ["tf=a.json", "base=b.json"]
    assert main(["run", str(spec), "--runtime-env", f"tf={tmp_path / 'missing.json'}"]) == 2
    assert "missing.json: no such runtime environment file" in capsys.readouterr().err
    assert main(["run", str(spec), "--runtime-env", "jax=x.json"]) == 2
    assert not (tmp_path / "runs").exists()
