"""Damaged model directories are refused with one line naming the file, before anything loads them.

Each case damages a copy of a freshly exported tiny model the way a cut copy, a disk error or a stray
edit would; before `integrity.json` four of these loaded anyway (random bytes inside the weights were
served) and the rest failed with tracebacks or misleading messages.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from keyword_extractor.model import integrity
from keyword_extractor.model.artifact import SETTINGS_FILE, InferenceSettings, write_model_dir
from keyword_extractor.model.integrity import INTEGRITY_FILE, ModelDirError, check_model_dir
from tests.conftest import run_module

WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def exported(tiny_base_dir, tmp_path_factory) -> Path:
    """A model directory written by the export code path (random tiny weights: only the files matter)."""
    from transformers import AutoTokenizer, BartForConditionalGeneration

    model = BartForConditionalGeneration.from_pretrained(tiny_base_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    return write_model_dir(model, tokenizer, InferenceSettings(base_model="tiny"), tmp_path_factory.mktemp("x") / "m")


def _overwrite_middle(path: Path, size: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + size] = os.urandom(size)
    path.write_bytes(bytes(data))


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {
    "config.json removed": ("config.json", lambda d: (d / "config.json").unlink()),
    "tokenizer.json removed": ("tokenizer.json", lambda d: (d / "tokenizer.json").unlink()),
    "weights removed": (WEIGHTS, lambda d: (d / WEIGHTS).unlink()),
    "settings removed": (SETTINGS_FILE, lambda d: (d / SETTINGS_FILE).unlink()),
    "generation config removed": ("generation_config.json", lambda d: (d / "generation_config.json").unlink()),
    "weights cut in half": (WEIGHTS, lambda d: _cut(d / WEIGHTS)),
    "4 KB of random bytes in the weights": (WEIGHTS, lambda d: _overwrite_middle(d / WEIGHTS)),
    "weights empty": (WEIGHTS, lambda d: (d / WEIGHTS).write_bytes(b"")),
    "config.json not JSON": ("config.json", lambda d: (d / "config.json").write_text("{")),
    "tokenizer.json cut": ("tokenizer.json", lambda d: _cut(d / "tokenizer.json")),
    "tokenizer_config.json empty": ("tokenizer_config.json", lambda d: (d / "tokenizer_config.json").write_text("")),
    "settings not JSON": (SETTINGS_FILE, lambda d: (d / SETTINGS_FILE).write_text("int8_allowed: yes")),
    "settings a JSON list": (SETTINGS_FILE, lambda d: (d / SETTINGS_FILE).write_text("[]")),
    "integrity record damaged": (INTEGRITY_FILE, lambda d: (d / INTEGRITY_FILE).write_text("{}")),
    "selector half there": ("span_selector.skops", lambda d: (d / "span_selector.json").write_text("{}")),
}
# without integrity.json (a directory exported before it): the structural checks alone
UNRECORDED = {
    "weights cut, no record": (WEIGHTS, lambda d: _cut(d / WEIGHTS)),
    "weights header garbage, no record": (WEIGHTS, lambda d: _garble_head(d)),
    "config.json not JSON, no record": ("config.json", lambda d: (d / "config.json").write_text("{")),
}


def _garble_head(model_dir: Path) -> None:
    data = (model_dir / WEIGHTS).read_bytes()
    (model_dir / WEIGHTS).write_bytes(b"\xff" * 8 + data[8:])


def _damaged_copy(exported: Path, tmp_path: Path, damage, keep_record: bool = True) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(exported, copy)
    if not keep_record:
        (copy / INTEGRITY_FILE).unlink()
    damage(copy)
    return copy


def test_an_exported_directory_records_its_files_and_passes(exported):
    recorded = json.loads((exported / INTEGRITY_FILE).read_text())["files"]
    assert {WEIGHTS, "config.json", "tokenizer.json", "generation_config.json"} <= set(recorded)
    assert SETTINGS_FILE not in recorded  # rewritten by the CPU precision check after export
    assert check_model_dir(exported) == exported


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_every_damage_is_one_line_naming_the_file(exported, tmp_path, case):
    name, damage = DAMAGES[case]
    copy = _damaged_copy(exported, tmp_path, damage)
    with pytest.raises(ModelDirError) as caught:
        check_model_dir(copy)
    message = str(caught.value)
    assert "\n" not in message and name in message, message


@pytest.mark.parametrize("case", sorted(UNRECORDED))
def test_damage_is_found_without_a_record_too(exported, tmp_path, case):
    name, damage = UNRECORDED[case]
    copy = _damaged_copy(exported, tmp_path, damage, keep_record=False)
    with pytest.raises(ModelDirError) as caught:
        check_model_dir(copy)
    assert "\n" not in str(caught.value) and name in str(caught.value)


def test_a_file_changed_on_purpose_is_recorded_again(exported, tmp_path):
    copy = _damaged_copy(exported, tmp_path, lambda d: (d / "generation_config.json").write_text('{"num_beams": 2}'))
    with pytest.raises(ModelDirError):
        check_model_dir(copy)
    integrity.record(copy, ["generation_config.json"])
    assert check_model_dir(copy) == copy


def test_loading_refuses_random_bytes_in_the_weights(exported, tmp_path):
    """They loaded and were served before: a safetensors file with changed numbers is still a safetensors file."""
    from keyword_extractor.inference.extractor import KeywordExtractor

    copy = _damaged_copy(exported, tmp_path, lambda d: _overwrite_middle(d / WEIGHTS))
    with pytest.raises(ModelDirError, match=WEIGHTS):
        KeywordExtractor(copy)


def test_predict_answers_a_damaged_directory_with_one_line_and_exit_2(exported, tmp_path):
    """`predict` used to load before checking: a missing config.json read as `ignore_mismatched_sizes`."""
    copy = _damaged_copy(exported, tmp_path, lambda d: (d / "config.json").unlink())
    questions = tmp_path / "questions.txt"
    questions.write_text("여행자 휴대품 면세한도는 얼마인가요?\n", encoding="utf-8")
    done = run_module(
        "keyword_extractor.inference.predict",
        *("--model-dir", str(copy), "--input", str(questions), "--output", str(tmp_path / "out.jsonl")),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().count("\n") == 0 and "config.json" in done.stderr, done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_a_bento_import_refuses_cut_weights(exported, tmp_path):
    """A cut copy in the model store made `serve` restart its model worker for ever, never ready."""
    copy = _damaged_copy(exported, tmp_path, lambda d: _cut(d / WEIGHTS))
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    done = run_module("keyword_extractor.integrations.bento_models", "import", "--model-dir", str(copy), env=env)
    assert done.returncode == 2 and WEIGHTS in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    stored = tmp_path / "bentoml" / "models"
    assert not stored.exists() or not any(stored.rglob("model.yaml"))
