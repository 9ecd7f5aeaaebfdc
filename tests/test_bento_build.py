"""What a built Bento carries for its image, checked without Docker: base images and resolvable requirements.

Both build files (the slim CPU image, the CUDA variant) are built around the tiny model through the
documented command; their generated Dockerfiles start from the intended base image, and the CPU
Bento's generated requirements resolve from the package registries for a fresh environment
(`pip install --dry-run --ignore-installed`), to the torch range the project supports and the very
BentoML release that built it. Serving a built Bento from its own folder is covered in test_service.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
import yaml
from packaging.requirements import Requirement

from service_support.local_server import bentoml_env, import_model
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def build(model_tag: str, env: dict[str, str], bentofile: str) -> Path:
    command = [sys.executable, "-m", "keyword_extractor.integrations.bento_models", "build", "--model-tag", model_tag]
    done = subprocess.run(
        [*command, "--bentofile", bentofile],
        cwd=PROJECT_ROOT,
        env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    name, version = done.stdout.strip().splitlines()[-2].split(":")
    return Path(env["BENTOML_HOME"]) / "bentos" / name / version


@pytest.fixture(scope="module")
def bentos(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    env = bentoml_env(tmp_path_factory.mktemp("bentoml-home"))
    model_tag = import_model(tiny_model_dir, env)
    return {name: build(model_tag, env, name) for name in ("bentofile.yaml", "bentofile.cuda.yaml")}


def base_image(bento: Path) -> str:
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    return next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM "))


def test_cpu_bento_uses_the_slim_python_image_and_the_cpu_wheel_index(bentos):
    bento = bentos["bentofile.yaml"]
    assert base_image(bento) == "python:3.11-slim"
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements


def test_cuda_variant_differs_only_in_its_base_image_and_torch_index(bentos):
    cpu, cuda = bentos["bentofile.yaml"], bentos["bentofile.cuda.yaml"]
    assert base_image(cuda).startswith("nvidia/cuda:12.6.3")
    # BentoML's CUDA build path passes the index to pip in install.sh, which its Dockerfile runs
    install = (cuda / "env" / "python" / "install.sh").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cu126" in install
    assert "env/python/install.sh" in (cuda / "env" / "docker" / "Dockerfile").read_text()
    specs = [yaml.safe_load((PROJECT_ROOT / name).read_text()) for name in ("bentofile.yaml", "bentofile.cuda.yaml")]
    assert specs[0]["python"]["packages"] == specs[1]["python"]["packages"]
    assert specs[0]["service"] == specs[1]["service"] and specs[0]["include"] == specs[1]["include"]
    assert (cpu / "src" / "service.py").read_text() == (cuda / "src" / "service.py").read_text()


def test_cpu_bento_requirements_resolve_for_a_fresh_environment(bentos, tmp_path):
    requirements = bentos["bentofile.yaml"] / "env" / "python" / "requirements.txt"
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        # an index that cannot be reached (PyTorch's, from a machine that only reaches PyPI) is skipped fast
        + ["--timeout", "5", "--retries", "0", "--report", str(report), "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resolved.returncode == 0, resolved.stderr[-3000:]
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert chosen["bentoml"] == bentoml.__version__  # the Bento pins the release that built it
    for line in requirements.read_text().splitlines():
        if line and not line.startswith(("#", "-")):
            wanted = Requirement(line)
            assert wanted.name.lower() in chosen, f"{wanted.name} was not resolved"
            assert wanted.specifier.contains(chosen[wanted.name.lower()], prereleases=True), (
                wanted,
                chosen[wanted.name.lower()],
            )


def test_the_bento_description_names_the_model_it_serves(bentos):
    """It said KoBART whatever the Bento served; now each built Bento names its own model (tiny here)."""
    for bento in bentos.values():
        described = (bento / "README.md").read_text()
        assert "GET /model_info" in described and "KoBART" not in described
        model = yaml.safe_load((bento / "bento.yaml").read_text())["services"][0]["models"][0]["tag"]
        assert f"This Bento serves {model} (base model tiny" in described, described
    assert (PROJECT_ROOT / "bentofile.yaml").read_text().count("This Bento serves") == 0  # the project's is untouched
