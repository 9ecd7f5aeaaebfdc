"""Fine-tuning end to end on the tiny profile: export, reload, DDP, resume, offline failures."""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BartForConditionalGeneration

from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model.artifact import SETTINGS_FILE, InferenceSettings, write_model_dir
from keyword_extractor.model.grounded import GroundedKeywordsProcessor, GroundedVocabulary, token_texts
from keyword_extractor.model.modeling import BaseModelUnavailable, load_base
from keyword_extractor.text.keywords import is_grounded, parse_keywords
from tests.conftest import PROJECT_ROOT, TEST_TSV, TRAIN_TSV, run_module

QUESTIONS = [
    "여행자 휴대품 면세한도는 얼마인가요?",
    "세종대왕이 훈민정음을 반포한 해는 언제인가?",
    "관세 체납하면 어떻게 돼?",
]
HF_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", SETTINGS_FILE)


def test_tiny_run_exports_a_hugging_face_directory_that_reloads_and_generates(tiny_training_run):
    model_dir = tiny_training_run / "model"
    for name in HF_FILES:
        assert (model_dir / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BartForConditionalGeneration.from_pretrained(model_dir).eval()
    inputs = tokenizer(QUESTIONS[0], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=8)
    assert output.shape[0] == 1 and output.shape[1] > 1
    summary = json.loads((tiny_training_run / "train_summary.json").read_text())
    assert summary["model_dir"] == str(model_dir.resolve())
    assert Path(summary["best_checkpoint"]).name == "best.ckpt"
    assert (tiny_training_run / "checkpoints" / "last.ckpt").is_file()


def test_extractor_returns_clean_grounded_lists_in_input_order(tiny_model_dir):
    extractor = KeywordExtractor(tiny_model_dir)
    results = extractor.extract(QUESTIONS, batch_size=2)
    assert len(results) == len(QUESTIONS)
    for question, keywords in zip(QUESTIONS, results):
        assert isinstance(keywords, list) and all(isinstance(k, str) and k for k in keywords)
        assert len(keywords) == len(set(keywords)) <= extractor.settings.max_keywords
        assert all(is_grounded(k, question) for k in keywords)
        assert all(any(ch.isalnum() for ch in k) for k in keywords)  # never bare punctuation
    assert [extractor.extract_one(q) for q in QUESTIONS] == results


def test_grounded_decoding_only_copies_from_the_question_even_untrained(tiny_base_dir, tmp_path):
    """Random weights write arbitrary tokens; the constraint must still keep every keyword in the question."""
    model = BartForConditionalGeneration.from_pretrained(tiny_base_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    settings = InferenceSettings(filter_ungrounded=False, max_new_tokens=24)
    model_dir = write_model_dir(model, tokenizer, settings, tmp_path / "random")
    extractor = KeywordExtractor(model_dir)
    questions = [row["query"] for row in csv.DictReader(TEST_TSV.open(encoding="utf-8"), delimiter="\t")][:24]
    constrained = extractor.extract(questions, num_beams=2)
    assert any(constrained)
    for question, keywords in zip(questions, constrained):
        assert all(is_grounded(k, question) for k in keywords), (question, keywords)


def _greedy_text(tokenizer, scores_per_step: list[torch.Tensor], processor=None) -> str:
    texts = token_texts(tokenizer)
    ids = [tokenizer.eos_token_id]  # the decoder start token
    for scores in scores_per_step:
        step = scores.clone().unsqueeze(0)
        if processor is not None:
            step = processor(torch.tensor([ids]), step)
        next_id = int(step.argmax())
        if next_id == tokenizer.eos_token_id:
            break
        ids.append(next_id)
    return "".join(texts[i] or "" for i in ids[1:])


def test_grounded_processor_keeps_arbitrary_scores_inside_the_question(tiny_base_dir):
    """Whatever a model prefers, masked decoding writes only substrings of the question, ', '-separated."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    texts = token_texts(tokenizer)
    vocabulary = GroundedVocabulary(texts)
    generator = torch.Generator().manual_seed(0)
    questions = [row["query"] for row in csv.DictReader(TEST_TSV.open(encoding="utf-8"), delimiter="\t")][:40]
    escaped = 0
    for question in questions:
        steps = [torch.randn(len(texts), generator=generator) for _ in range(20)]
        steps[5][tokenizer.convert_tokens_to_ids(",")] += 100.0  # a model that wants a separator here
        processor = GroundedKeywordsProcessor(vocabulary, [question], 1, tokenizer.eos_token_id)
        constrained = _greedy_text(tokenizer, steps, processor)
        keywords = [k for k in parse_keywords(constrained) if k]
        assert keywords and all(is_grounded(k, question) for k in keywords), (question, constrained)
        free = [k for k in parse_keywords(_greedy_text(tokenizer, steps)) if k]
        escaped += any(not is_grounded(k, question) for k in free)
    assert escaped == len(questions)  # the same scores unmasked leave the question every time


def test_export_cli_converts_a_checkpoint_to_the_same_weights(tiny_training_run, tmp_path):
    result = run_module(
        "keyword_extractor.training.export",
        "--checkpoint",
        str(tiny_training_run / "checkpoints" / "best.ckpt"),
        "--output",
        str(tmp_path / "exported"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in HF_FILES:
        assert (tmp_path / "exported" / name).is_file(), name
    a = BartForConditionalGeneration.from_pretrained(tmp_path / "exported").state_dict()
    b = BartForConditionalGeneration.from_pretrained(tiny_training_run / "model").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_export_cli_names_a_missing_checkpoint(tmp_path):
    result = run_module(
        "keyword_extractor.training.export",
        "--checkpoint",
        str(tmp_path / "nope.ckpt"),
        "--output",
        str(tmp_path / "o"),
    )
    assert result.returncode != 0 and "checkpoint not found" in result.stderr
    assert not (tmp_path / "o").exists()


def two_cpu_ranks_training(output_dir: Path) -> list[str]:
    """`keyword_extractor.training` options for a small DDP run on two CPU processes."""
    return [
        "--train",
        str(TRAIN_TSV),
        "--base-model",
        "tiny",
        "--output-dir",
        str(output_dir),
        "--limit-train-rows",
        "96",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--quantize",
        "off",  # no int8 check at export: it is tested on its own (tests/test_cpu_precision.py)
    ]


def test_ddp_on_two_cpu_processes_produces_exactly_one_export(tmp_path):
    result = run_module("keyword_extractor.training", *two_cpu_ranks_training(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "MEMBER: 2/2" in output  # both ranks joined the process group
    assert output.count("exported model to") == 1
    exports = [p.parent for p in tmp_path.rglob(SETTINGS_FILE)]
    assert exports == [tmp_path / "model"]
    assert KeywordExtractor(tmp_path / "model").extract(QUESTIONS[:1])


def test_torchrun_launches_two_cpu_ranks_that_share_one_base_and_one_export(tmp_path):
    """torchrun (the multi-node launcher) instead of Lightning's: the ranks start together, so they must
    not both build the base model into the same folder, and only global rank 0 exports."""
    from service_support.local_server import free_port

    launcher = ["--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    result = run_module(
        "torch.distributed.run",
        *launcher,
        "--master-port",
        str(free_port()),
        "-m",
        "keyword_extractor.training",
        *two_cpu_ranks_training(tmp_path),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "MEMBER: 2/2" in output
    assert output.count("built the tiny base model") == 1, output[-3000:]
    assert output.count("reusing the tiny base model") == 1, output[-3000:]
    assert output.count("exported model to") == 1
    assert [p.parent for p in tmp_path.rglob(SETTINGS_FILE)] == [tmp_path / "model"]


def _last_checkpoint_state(run_dir: Path) -> tuple[int, int]:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return state["epoch"], state["global_step"]


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path):
    common = [
        "--train",
        str(TRAIN_TSV),
        "--base-model",
        "tiny",
        "--output-dir",
        str(tmp_path),
        "--limit-train-rows",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--val-fraction",
        "0.25",
        "--augment-copies",
        "0",
        "--early-stopping-patience",
        "0",
        "--quantize",
        "off",
    ]
    # 48 training rows / 16 = 3 steps per epoch: stopping at step 3 is an interruption after epoch 1.
    first = run_module("keyword_extractor.training", *common, "--max-steps", "3")
    assert first.returncode == 0, first.stderr[-3000:]
    assert _last_checkpoint_state(tmp_path) == (0, 3)
    second = run_module("keyword_extractor.training", *common, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in second.stdout + second.stderr
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["resumed_from"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert _last_checkpoint_state(tmp_path) == (1, 6)  # epoch 2 ran on top, not 2 epochs from scratch
    epochs_logged = {
        row["epoch"] for row in csv.DictReader((tmp_path / "logs" / "version_1" / "metrics.csv").open()) if row["epoch"]
    }
    assert epochs_logged == {"1"}


def test_the_last_checkpoint_follows_every_epoch_even_when_the_best_one_does_not(tmp_path):
    """A resume must continue where the run stopped, not from its best epoch: with a learning rate too small
    to change the answers, epoch 2 is no better than epoch 1, and last.ckpt must still hold epoch 2."""
    args = [
        *("--train", str(TRAIN_TSV), "--base-model", "tiny", "--output-dir", str(tmp_path)),
        *("--limit-train-rows", "64", "--epochs", "2", "--batch-size", "16", "--val-fraction", "0.25"),
        *("--augment-copies", "0", "--early-stopping-patience", "0", "--quantize", "off"),
        *("--learning-rate", "1e-12"),
    ]
    result = run_module("keyword_extractor.training", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert (best["epoch"], best["global_step"]) == (0, 3)  # the first epoch stays the best one
    assert _last_checkpoint_state(tmp_path) == (1, 6)


def test_a_resume_on_other_data_is_refused_with_what_changed_and_the_checkpoint_is_kept(tmp_path):
    common = ["--train", str(TRAIN_TSV), "--base-model", "tiny", "--output-dir", str(tmp_path), "--epochs", "2"]
    common += ["--batch-size", "16", "--val-fraction", "0.25", "--augment-copies", "0", "--quantize", "off"]
    first = run_module("keyword_extractor.training", *common, "--limit-train-rows", "64", "--max-steps", "3")
    assert first.returncode == 0, first.stderr[-3000:]
    before = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
    fewer = tmp_path / "fewer.tsv"  # the same file with rows removed: a rebuilt tokenizer, other rows
    fewer.write_text("\n".join(TRAIN_TSV.read_text(encoding="utf-8").splitlines()[:50]) + "\n", encoding="utf-8")
    again = [*common, "--train", str(fewer), "--limit-train-rows", "64", "--resume"]  # the later --train wins
    second = run_module("keyword_extractor.training", *again)
    assert second.returncode == 2
    message = second.stderr.strip().splitlines()[-1]
    assert message.startswith("error: cannot resume") and "train:" in message and "tokenizer:" in message
    assert "another --output-dir" in message
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == before


def test_unreachable_hub_fails_fast_and_names_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # closed port: what an offline machine sees
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.time()
    with pytest.raises(BaseModelUnavailable) as error:
        load_base("gogamza/kobart-base-v1")
    assert time.time() - started < 10
    message = str(error.value)
    assert "gogamza/kobart-base-v1" in message and "cannot be reached" in message
    assert "--base-model /path/to/kobart" in message and "--base-model tiny" in message


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("kobart", "'kobart' is not a folder here, and Hugging Face ids of BART models name their owner"),
        ("./models/kobart-base-v1", "no folder ./models/kobart-base-v1"),
        ("gogamza/kobart base", "is neither a folder here nor a Hugging Face id"),
        ("README.md", "README.md is a file"),
    ],
)
def test_a_base_model_that_is_no_folder_and_no_hub_id_is_told_apart_from_an_unreachable_hub(
    tmp_path, monkeypatch, spec, says
):
    """A typo used to wait for the hub probe and then blame the network."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(BaseModelUnavailable) as error:
        load_base(spec)
    assert says in str(error.value) and "cannot be reached" not in str(error.value)


def test_the_download_hint_names_the_command_that_is_installed():
    from keyword_extractor.model.modeling import _unavailable_message

    hint = _unavailable_message("gogamza/kobart-base-v1", "offline")
    assert "`hf download gogamza/kobart-base-v1 --local-dir models/kobart-base-v1`" in hint
    assert Path(sys.executable).with_name("hf").is_file()  # installed with the requirements (huggingface_hub)


def test_train_cli_reports_unreachable_hub_without_a_traceback_wall(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = run_module(
        "keyword_extractor.training",
        "--train",
        str(TRAIN_TSV),
        "--output-dir",
        str(tmp_path / "out"),
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Two ways out" in result.stderr and "--base-model tiny" in result.stderr
    assert "Traceback" not in result.stderr


def test_epoch_log_line_shows_that_epochs_own_losses_and_validation_f1(tmp_path):
    """Epoch N's line must carry epoch N's mean train_loss (as in metrics.csv), not epoch N-1's."""
    result = run_module(
        "keyword_extractor.training",
        *("--train", str(TRAIN_TSV), "--base-model", "tiny", "--output-dir", str(tmp_path)),
        *("--limit-train-rows", "64", "--epochs", "3", "--augment-copies", "0"),
        *("--batch-size", "16", "--val-fraction", "0.25", "--early-stopping-patience", "0", "--quantize", "off"),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    logged = {
        int(match[1]): (float(match[2]), float(match[3]))
        for match in re.finditer(r"epoch (\d+)/3 \| train_loss ([\d.]+) \| val_loss [\d.]+ \| val_f1 ([\d.]+)", output)
    }
    rows = list(csv.DictReader((tmp_path / "logs" / "version_0" / "metrics.csv").open()))
    epoch_loss = {int(row["epoch"]) + 1: float(row["train_loss_epoch"]) for row in rows if row.get("train_loss_epoch")}
    epoch_f1 = {int(row["epoch"]) + 1: float(row["val_f1"]) for row in rows if row.get("val_f1")}
    assert sorted(logged) == sorted(epoch_loss) == sorted(epoch_f1) == [1, 2, 3]
    for epoch, (loss, f1) in logged.items():
        assert loss == pytest.approx(epoch_loss[epoch], abs=1e-4), epoch
        assert f1 == pytest.approx(epoch_f1[epoch], abs=1e-4), epoch


def test_bf16_mixed_precision_trains_with_gradient_clipping(tmp_path):
    """The default on a bf16 GPU: Lightning cannot clip a fused optimizer's gradients under mixed precision."""
    result = run_module(
        "keyword_extractor.training",
        *("--train", str(TRAIN_TSV), "--base-model", "tiny", "--output-dir", str(tmp_path)),
        *("--limit-train-rows", "32", "--epochs", "1", "--val-f1-rows", "4", "--tiny-vocab-size", "600"),
        *("--accelerator", "cpu", "--precision", "bf16-mixed", "--gradient-clip", "1.0", "--quantize", "off"),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (tmp_path / "model" / SETTINGS_FILE).is_file()


def test_label_smoothing_reaches_the_loss_from_the_config(tiny_base_dir):
    """An option added to TrainConfig alone is what the module trains with (no plumbing in between)."""
    from keyword_extractor.model.config import TrainConfig
    from keyword_extractor.model.encoding import LABEL_PAD_ID
    from keyword_extractor.model.modeling import KeywordSeq2Seq

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    batch = {
        "input_ids": tokenizer(QUESTIONS[:2], padding=True, return_tensors="pt")["input_ids"],
        "labels": torch.tensor([[5, 6, 7, 1], [8, 9, 1, LABEL_PAD_ID]]),
    }
    losses = {}
    for smoothing in (0.0, 0.2):
        config = TrainConfig(base_model="tiny", label_smoothing=smoothing).model_dump()
        module = KeywordSeq2Seq(str(tiny_base_dir), config, total_steps=10).eval()
        with torch.no_grad():
            losses[smoothing] = module(**batch).item()
            logits = module.model(**batch).logits
        expected = torch.nn.functional.cross_entropy(
            logits.view(-1, logits.size(-1)),
            batch["labels"].view(-1),
            ignore_index=LABEL_PAD_ID,
            label_smoothing=smoothing,
        )
        assert losses[smoothing] == pytest.approx(expected.item(), rel=1e-5)
    assert losses[0.2] != pytest.approx(losses[0.0])
