"""benchmarks/engine_compare.py: the CTranslate2 conversion answers exactly as the project's greedy loop."""

from __future__ import annotations

import json

from tests.conftest import run_module


def test_converted_model_gives_the_projects_greedy_answers(selected_model_dir, tmp_path):
    output = tmp_path / "engine.json"
    done = run_module(
        "benchmarks.engine_compare",
        "--model-dir",
        str(selected_model_dir),
        "--limit",
        "24",
        "--skip-kobart",
        "--output",
        str(output),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run,) = json.loads(output.read_text())["runs"]
    assert run["questions"] == 24
    assert run["ctranslate2_float32"]["identical_answers"] == 24  # fp32: the same model, the same answers
    served = run["ctranslate2_float32"]["served_path"]
    assert 0.0 <= served["engine_snapped_f1"] <= 1.0 and 0.0 <= served["project_grounded_f1"] <= 1.0
    assert run["ctranslate2_float32"]["ratio_vs_project"] > 0
