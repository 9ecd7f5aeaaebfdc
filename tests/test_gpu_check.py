"""benchmarks/gpu_check.sh in its CPU dry-run mode: every step runs and the report holds its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from keyword_extractor.common.cpu_info import SPEED_FLAGS
from tests.conftest import PROJECT_ROOT


def test_gpu_check_dry_run_runs_every_step_and_writes_its_report(tmp_path):
    """On an AVX2 CPU (emulated: torch's kernels limited to AVX2), where bf16 is not native: fp32, tiny shapes."""
    env = {**os.environ, "PYTHON": sys.executable, "ATEN_CPU_CAPABILITY": "avx2"}
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run", "--out", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True
    assert [s["step"] for s in report["steps"]] == [
        "setup",
        "kobart",
        "train_b2",
        "finetune",
        "serve_kobart",
        "serve_tiny",
    ]
    assert all(s["status"] == "passed" for s in report["steps"])
    throughput = report["training_throughput"]["train_b2"]
    environment = throughput["environment"]
    assert environment["precision"] == "fp32" and environment["shape"] == "tiny"  # never emulated bf16
    assert environment["cpu"]["capability"] == "AVX2" and environment["cpu"]["native_bf16"] is False
    assert report["finetune"] is not None
    assert throughput["dynamic_padding"]["tokens_per_sample"] < throughput["pad_to_512"]["tokens_per_sample"]
    assert report["finetune"]["epochs_run"] == 1
    served = report["serving"]["serve_tiny"]["runs"]
    assert [r["questions_per_call"] for r in served] == [1, 16]
    assert all(r["questions_per_s"] > 0 and "f1" in r for r in served)
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert "Training throughput" in markdown and "| serve_tiny | passed |" in markdown


def test_gpu_check_refuses_unknown_arguments():
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--bogus"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown argument --bogus" in result.stderr


def test_bf16_is_native_only_where_torch_may_use_the_cpu_s_bf16_instructions():
    script = (
        "from keyword_extractor.common.cpu_info import describe_cpu; import json; print(json.dumps(describe_cpu()))"
    )
    lowered = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"},
        capture_output=True,
        text=True,
        check=True,
    )
    described = json.loads(lowered.stdout)
    assert described["capability"] == "AVX2" and described["native_bf16"] is False
    # the CPU's own instruction sets are reported as the kernel lists them, whatever torch is limited to
    listed = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split(":", 1)[1].splitlines()[0].split())
    assert described["cpu"] and described["flags"] == {flag: flag in listed for flag in SPEED_FLAGS}
