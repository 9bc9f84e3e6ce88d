"""cluster/Dockerfile installs what the README's set-up installs: the CPU variant as scripts/_env.sh
(constraints file, extras), the CUDA variant as cluster/README.md "Install on GPU nodes"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cluster.pip_lines import Install, dockerfile_stages, markdown_block, merged, pip_installs

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "cluster" / "Dockerfile"


def _variant(text: str, variant: str) -> Install:
    stages = dockerfile_stages(text)
    assert {"base", "cpu", "cuda", "final"} <= set(stages), sorted(stages)
    return merged(pip_installs(stages["base"]), pip_installs(stages[variant]))


def env_sh_install(text: str | None = None) -> Install:
    return pip_installs(text if text is not None else (ROOT / "scripts" / "_env.sh").read_text())


def gpu_install() -> Install:
    return pip_installs(markdown_block((ROOT / "cluster" / "README.md").read_text(), "## Install on GPU nodes"))


def drift(dockerfile_text: str, env_sh_text: str | None = None) -> list[str]:
    """What the Dockerfile's variants install differently from the README's set-up (empty: none)."""
    out = []
    for variant, want in (("cpu", env_sh_install(env_sh_text)), ("cuda", gpu_install())):
        got = _variant(dockerfile_text, variant)
        for name in ("constraints", "requirements", "extras", "packages", "project"):
            if getattr(got, name) != getattr(want, name):
                out.append(f"{variant}: {name} {getattr(got, name)!r} != {getattr(want, name)!r}")
        if variant == "cuda" and got.index_url != want.index_url:
            out.append(f"cuda: index_url {got.index_url!r} != {want.index_url!r}")
    return out


def test_parsers_read_the_set_up_for_real() -> None:
    env = env_sh_install()
    assert env.constraints == {"requirements/cpu-constraints.txt"}
    assert env.extras == {"torch", "tf", "dev", "iterative", "cloud"}
    assert env.project == 1
    gpu = gpu_install()
    assert gpu.constraints == set()
    assert {"torch==2.13.0", "torchvision==0.28.0", "tensorflow[and-cuda]>=2.18,<2.22"} <= gpu.packages
    assert gpu.extras == {"torch", "iterative", "dev", "cloud"}
    assert gpu.index_url == {"https://download.pytorch.org/whl/cu128"}


def test_dockerfile_installs_what_the_readme_installs() -> None:
    assert drift(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize("old,new,what", [
    ('-c requirements/cpu-constraints.txt', '', "cpu: constraints"),
    ('-e ".[torch,tf,dev,iterative,cloud]"', '-e ".[torch,tf,dev]"', "cpu: extras"),
    ('"tensorflow[and-cuda]>=2.18,<2.22"', '"tensorflow[and-cuda]>=2.18,<2.23"', "cuda: packages"),
    ('whl/cu128', 'whl/cu126', "cuda: index_url"),
    ('-e ".[torch,iterative,dev,cloud]"', '-r requirements/gpu.txt -e ".[torch,iterative,dev,cloud]"', "cuda: requirements"),
])
def test_a_drifted_dockerfile_fails(old: str, new: str, what: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    problems = drift(text.replace(old, new, 1))
    assert any(p.startswith(what) for p in problems), problems


def test_a_drifted_env_sh_is_caught() -> None:
    env = (ROOT / "scripts" / "_env.sh").read_text()
    assert "[torch,tf,dev,iterative,cloud]" in env
    drifted = env.replace("[torch,tf,dev,iterative,cloud]", "[torch,tf,dev,iterative,gpu]")
    assert any(p.startswith("cpu: extras") for p in drift(DOCKERFILE.read_text(), drifted))
    assert any(p.startswith("cpu: constraints")
               for p in drift(DOCKERFILE.read_text(), env.replace("requirements/cpu-constraints.txt", "requirements/x.txt")))


def test_image_has_a_non_root_user_and_the_command_on_path() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    final = dockerfile_stages(text)["final"]
    assert "ptycho-dist --help" in final
    assert re.search(r"^ARG VARIANT=cpu$", text, re.MULTILINE)
    assert re.search(r"^FROM \$\{VARIANT\} AS final$", text, re.MULTILINE)


def test_readme_gpu_install_equals_cluster_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    main = pip_installs(markdown_block(readme, "### A workstation with GPUs"))
    assert main.key() == gpu_install().key()
