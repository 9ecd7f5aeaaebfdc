"""CPU serving options of KeywordExtractor: int8 quantization, and a generation cap sized from the training targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model.artifact import SETTINGS_FILE, InferenceSettings, max_new_tokens_for
from keyword_extractor.model.int8_linear import RowwiseInt8Linear
from keyword_extractor.text.keywords import is_grounded
from tests.conftest import TEST_TSV, TRAIN_TSV

QUESTIONS = load_pairs(TEST_TSV)["query"].tolist()[:24]


def test_cap_is_the_quantile_length_plus_a_margin_and_never_above_the_bound():
    lengths = [10] * 995 + [20, 21, 22, 23, 40]  # one outlier beyond the 99.9th percentile
    assert max_new_tokens_for(lengths) == 29  # 23 * 1.25 rounded up; the outlier does not count
    assert max_new_tokens_for(lengths, cap=24) == 24
    assert max_new_tokens_for([3, 3, 3]) == 5  # short targets still get two tokens of slack
    with pytest.raises(ValueError):
        max_new_tokens_for([])


def test_training_stores_a_cap_sized_from_its_own_targets(tiny_training_run, tiny_run_data):
    """The fixture trains on the first 256 rows with the default split: the stored cap follows those targets."""
    model_dir = tiny_training_run / "model"
    data = tiny_run_data
    expected = max_new_tokens_for([len(ids) for ids in data.train_set.labels], cap=48)
    stored = json.loads((model_dir / SETTINGS_FILE).read_text())
    assert stored["max_new_tokens"] == expected < 48
    assert json.loads((model_dir / "generation_config.json").read_text())["max_new_tokens"] == expected


def test_export_sizes_the_cap_from_a_training_file(tiny_training_run, tmp_path):
    from keyword_extractor.training.export import export_checkpoint

    cells = load_pairs(TRAIN_TSV)["keyword"].tolist()
    settings = InferenceSettings(max_new_tokens=48)
    path = export_checkpoint(tiny_training_run / "checkpoints" / "best.ckpt", tmp_path / "model", settings, cells)
    stored = InferenceSettings.load(path).max_new_tokens
    assert 1 < stored < 48
    capped = export_checkpoint(
        tiny_training_run / "checkpoints" / "best.ckpt", tmp_path / "capped", InferenceSettings(max_new_tokens=8), cells
    )
    assert InferenceSettings.load(capped).max_new_tokens == 8


def quantized_linears(extractor: KeywordExtractor) -> int:
    return sum(isinstance(module, RowwiseInt8Linear) for module in extractor.model.modules())


def test_int8_extractor_answers_grounded_keyword_lists(talkative_model_dir):
    extractor = KeywordExtractor(talkative_model_dir, device="cpu", quantize="int8")
    assert extractor.quantize == "int8" and quantized_linears(extractor) > 0
    for num_beams in (1, 2):
        answers = extractor.extract(QUESTIONS, num_beams=num_beams)
        assert len(answers) == len(QUESTIONS) and any(answers)
        for question, keywords in zip(QUESTIONS, answers):
            assert all(isinstance(k, str) and k and is_grounded(k, question) for k in keywords), (question, keywords)


def test_directories_of_older_releases_read_their_stored_precision_as_what_is_allowed(tiny_model_dir, tmp_path):
    """They stored the precision training chose ("quantize"); "int8" there now means int8 is allowed."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    settings = {k: v for k, v in json.loads((model_dir / SETTINGS_FILE).read_text()).items() if k != "int8_allowed"}
    for stored, allowed in (("off", False), ("", False), ("int8", True)):
        (model_dir / SETTINGS_FILE).write_text(json.dumps({**settings, "quantize": stored}))
        assert InferenceSettings.load(model_dir).int8_allowed is allowed
    forced = KeywordExtractor(model_dir, device="cpu", quantize="int8")
    assert forced.quantize == "int8" and quantized_linears(forced) > 0
    off = KeywordExtractor(model_dir, device="cpu", quantize="off")
    assert off.quantize == "off" and quantized_linears(off) == 0
    with pytest.raises(ValueError, match="quantize"):
        KeywordExtractor(model_dir, device="cpu", quantize="int4")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quantization_is_ignored_on_gpu_which_decodes_fp32_unless_asked(talkative_model_dir):
    extractor = KeywordExtractor(talkative_model_dir, device="cuda", quantize="int8")
    assert extractor.quantize == "off" and quantized_linears(extractor) == 0
    assert next(extractor.model.parameters()).dtype == torch.float32
    half = KeywordExtractor(talkative_model_dir, device="cuda", half_precision_on_gpu=True)
    assert next(half.model.parameters()).dtype in (torch.bfloat16, torch.float16)
    for answers in (extractor.extract(QUESTIONS), half.extract(QUESTIONS)):
        assert all(is_grounded(k, q) for q, keywords in zip(QUESTIONS, answers) for k in keywords)


def test_an_int8_extractor_keeps_no_mapping_of_the_fp32_weights_file(tiny_model_dir, tmp_path):
    """The fp32 weights are replaced by int8 copies; a file mapping left behind would keep them resident."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    extractor = KeywordExtractor(model_dir, device="cpu", quantize="int8")
    weights = str((model_dir / "model.safetensors").resolve())
    assert extractor.extract(QUESTIONS[:2]) is not None
    assert weights not in Path("/proc/self/maps").read_text()
