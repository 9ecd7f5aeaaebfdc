"""Whether int8 may serve a model, decided at export: only when the validation F1 allows it, recorded with the model."""

from __future__ import annotations

import json
import shutil

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model.artifact import SETTINGS_FILE, InferenceSettings
from keyword_extractor.model.config import TrainConfig
from keyword_extractor.text.metrics import score
from keyword_extractor.training.cpu_precision import int8_within_drop, measure_int8, store_int8_allowed
from keyword_extractor.training.run import choose_cpu_precision
from tests.conftest import TEST_TSV

QUESTIONS = load_pairs(TEST_TSV)["query"].tolist()[:24]


def test_int8_is_kept_only_within_the_allowed_f1_drop():
    assert int8_within_drop(0.50, 0.50, 0.01)
    assert int8_within_drop(0.50, 0.4950, 0.01)
    assert not int8_within_drop(0.50, 0.4899, 0.01)
    assert int8_within_drop(0.50, 0.5200, 0.0)
    assert not int8_within_drop(0.50, 0.4999, 0.0)


def test_auto_measures_both_precisions_on_the_validation_rows_and_stores_the_choice(
    tiny_training_run, tiny_run_data, tmp_path
):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_training_run / "model", model_dir)
    summary = json.loads((tiny_training_run / "train_summary.json").read_text())
    measured = summary["int8_check"]  # training's default is 'auto': it measured, and stored what it allows
    assert measured is not None and summary["int8_allowed"] == measured["int8_allowed"]
    assert InferenceSettings.load(model_dir).int8_allowed == measured["int8_allowed"]
    data = tiny_run_data
    config = TrainConfig(base_model="tiny", quantize="auto", int8_max_f1_drop=0.01)
    check = choose_cpu_precision(config, model_dir, data)
    assert check.questions == len(data.val_rows) > 0
    assert 0.0 <= check.fp32_f1 <= 1.0 and 0.0 <= check.int8_f1 <= 1.0
    stored = InferenceSettings.load(model_dir)
    assert stored.int8_allowed == check.int8_allowed == int8_within_drop(check.fp32_f1, check.int8_f1, 0.01)
    assert stored.extra["int8_check"] == check.as_dict()


def test_measurement_decodes_in_both_precisions_and_the_choice_is_recorded(talkative_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(talkative_model_dir, model_dir)
    fp32 = KeywordExtractor(model_dir, device="cpu", quantize="off").extract(QUESTIONS)
    assert any(fp32)
    # fp32's own answers as the gold lists: fp32 scores exactly 1, int8 whatever its answers earn
    check = measure_int8(model_dir, QUESTIONS, fp32, max_f1_drop=0.01)
    int8 = KeywordExtractor(model_dir, device="cpu", quantize="int8").extract(QUESTIONS)
    assert check.fp32_f1 == 1.0
    assert check.int8_f1 == round(score(fp32, int8).f1, 4)
    assert check.questions == len(QUESTIONS) and check.int8_allowed == int8_within_drop(1.0, check.int8_f1, 0.01)
    assert "int8" in check.describe() and "fp32" in check.describe()

    before = json.loads((model_dir / SETTINGS_FILE).read_text())
    store_int8_allowed(model_dir, True, check)
    after = json.loads((model_dir / SETTINGS_FILE).read_text())
    assert after["int8_allowed"] is True and after["extra"]["int8_check"] == check.as_dict()
    unchanged = {k: v for k, v in after.items() if k not in ("int8_allowed", "extra")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("int8_allowed", "extra")}
    assert not [p.name for p in model_dir.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    assert KeywordExtractor(model_dir, device="cpu").precision.int8_allowed is True

    store_int8_allowed(model_dir, False)
    cleared = InferenceSettings.load(model_dir)
    assert cleared.int8_allowed is False and "int8_check" not in cleared.extra


def test_an_explicit_choice_is_stored_without_measuring(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    no_data = None  # 'int8' and 'off' never read the validation rows
    for option, allowed in (("int8", True), ("off", False)):
        config = TrainConfig(base_model="tiny", quantize=option)
        assert choose_cpu_precision(config, model_dir, no_data) is None
        assert InferenceSettings.load(model_dir).int8_allowed is allowed
